"""Stored conversations: the store itself, and the pipeline reading a follow-up's history from it."""

from __future__ import annotations

import pytest

from rag.conversations import ConversationNotFoundError, SqliteConversations
from rag.errors import BadRequestError
from rag.pipeline import Pipeline
from rag.schema import Answer


def test_conversations_changed_within_one_second_list_newest_first(tmp_path):
    store = SqliteConversations(tmp_path / "c.sqlite3")
    made = [store.create(f"第{n}个") for n in range(5)]
    assert [c.id for c in store.list()] == [c.id for c in reversed(made)]


def test_a_conversation_is_created_listed_renamed_and_deleted(tmp_path):
    store = SqliteConversations(tmp_path / "c.sqlite3")
    first, second = store.create(), store.create("自定义标题")
    store.append(first.id, "荣昌区2024年行政复议直接纠错率是多少？", Answer(answer="22.22%[1]"), {"years": [2024]})
    assert [c.id for c in store.list()] == [first.id, second.id]  # the one answered last comes first
    assert store.list()[0].title == "荣昌区2024年行政复议直接纠错率是多少？" and store.list()[0].turn_count == 1
    assert store.rename(first.id, "  纠错率  ").title == "纠错率"
    again = SqliteConversations(tmp_path / "c.sqlite3").get(first.id)  # another process, or after a restart
    assert again.history() == [("荣昌区2024年行政复议直接纠错率是多少？", "22.22%[1]")]
    assert again.turns[0].filters == {"years": [2024]}
    store.delete(first.id)
    with pytest.raises(ConversationNotFoundError):
        store.get(first.id)
    with pytest.raises(BadRequestError):
        store.rename(second.id, " ")
    assert [c.id for c in store.list()] == [second.id]


def test_a_follow_up_uses_the_stored_history_and_regenerate_replaces_the_last_answer(seeded_pipeline, tmp_path):
    pipeline = Pipeline(seeded_pipeline.settings, seeded_pipeline.kb,
                        conversations=SqliteConversations(tmp_path / "c.sqlite3"))
    conversation = pipeline.conversations.create()
    first = pipeline.converse(conversation.id, "荣昌区2024年行政复议直接纠错率是多少？")
    assert "22.22%" in "".join(first)
    follow_up = pipeline.converse(conversation.id, "那梁平区呢？")
    assert "12.24%" in follow_up.answer.answer  # 梁平区's 纠错率: the question was read with the stored turn
    stored = pipeline.conversations.get(conversation.id)
    assert [t.question for t in stored.turns] == ["荣昌区2024年行政复议直接纠错率是多少？", "那梁平区呢？"]
    regenerated = pipeline.converse(conversation.id, "", regenerate=True).answer
    turns = pipeline.conversations.get(conversation.id).turns
    assert len(turns) == 2 and turns[-1].answer == regenerated and "12.24%" in regenerated.answer


def test_a_stopped_answer_is_not_stored(seeded_pipeline, tmp_path):
    pipeline = Pipeline(seeded_pipeline.settings, seeded_pipeline.kb,
                        conversations=SqliteConversations(tmp_path / "c.sqlite3"))
    conversation = pipeline.conversations.create()
    stream = iter(pipeline.converse(conversation.id, "荣昌区2024年行政复议直接纠错率是多少？"))
    next(stream)
    stream.close()  # the client stopped it
    assert pipeline.conversations.get(conversation.id).turns == []
