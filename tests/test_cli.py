"""The `fazhi` command through click's CliRunner, on pipelines with fake embeddings."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from langchain_core.embeddings import DeterministicFakeEmbedding

from rag import cli, components
from rag.conversations import SqliteConversations
from rag.pipeline import Pipeline
from tests.conftest import make_kb
from tests.test_api import RONGCHANG, own_pipeline

FIRST = "荣昌区2024年行政复议直接纠错率是多少？"
FOLLOW_UP = "那梁平区呢？"


@pytest.fixture
def pipeline(seeded_pipeline, tmp_path, monkeypatch):
    """The pipeline every `fazhi` command of the test gets: the seeded knowledge base, with
    conversations of this test's own."""
    pipeline = Pipeline(seeded_pipeline.settings, seeded_pipeline.kb,
                        conversations=SqliteConversations(tmp_path / "c.sqlite3"))
    monkeypatch.setattr(Pipeline, "from_settings", classmethod(lambda cls, settings=None, **kw: pipeline))
    return pipeline


def fazhi(*args: str):
    return CliRunner().invoke(cli.main, list(args))


def test_ask_prints_the_answer_once_then_its_sources(pipeline):
    answer = pipeline.ask(FIRST)
    result = fazhi("ask", FIRST)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(answer.answer) and result.stdout.count(answer.answer) == 1
    sources = result.stdout[len(answer.answer):].strip().splitlines()
    assert sources == [f"[{c.n}] {c.label()} 「{c.quote}」" for c in answer.citations]


def test_ask_json_prints_only_the_answer(pipeline):
    result = fazhi("ask", FIRST, "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert "22.22%" in answer["answer"] and answer["citations"][0]["district"] == "荣昌区"
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("args", "filters", "provider"),
    [
        ([], None, None),
        (["--district", "梁平区"], {"districts": ["梁平区"]}, None),
        (["--district", "梁平区", "--district", "荣昌区"], {"districts": ["梁平区", "荣昌区"]}, None),
        (["--year", "2024", "--year", "2023"], {"years": [2024, 2023]}, None),
        (["--district", "荣昌区", "--year", "2024", "--provider", "extractive"],
         {"districts": ["荣昌区"], "years": [2024]}, "extractive"),
    ],
)
def test_ask_passes_districts_years_and_provider(pipeline, monkeypatch, args, filters, provider):
    calls = []
    stream = pipeline.stream
    monkeypatch.setattr(pipeline, "stream", lambda question, history=None, filters=None, provider=None: (
        calls.append((question, filters, provider)) or stream(question, history, filters, provider)))
    assert fazhi("ask", FIRST, *args).exit_code == 0
    assert calls == [(FIRST, filters, provider)]


def test_a_district_filter_decides_which_report_answers(pipeline):
    result = fazhi("ask", "行政复议直接纠错率是多少？", "--district", "梁平区", "--year", "2024")
    assert result.exit_code == 0, result.output
    assert "12.24%" in result.stdout and "22.22%" not in result.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--year", "24"], "24 is not in the range"),
        (["--provider", "gpt-9"], "'gpt-9' is not one of"),
        (["--conversation", "abc", "--new-conversation"], "not both"),
    ],
)
def test_ask_rejects_bad_options(pipeline, args, words):
    result = fazhi("ask", FIRST, *args)
    assert result.exit_code == 2 and words in result.stderr


def test_ask_continues_a_stored_conversation(pipeline):
    started = fazhi("ask", FIRST, "--new-conversation")
    assert started.exit_code == 0, started.output
    conversation = started.stderr.split()[1].rstrip(":")
    assert f"--conversation {conversation}" in started.stderr and "22.22%" in started.stdout
    follow_up = fazhi("ask", FOLLOW_UP, "--conversation", conversation, "--json")
    assert follow_up.exit_code == 0, follow_up.output
    assert "12.24%" in json.loads(follow_up.stdout)["answer"]  # read with the stored first turn
    turns = pipeline.conversations.get(conversation).turns
    assert [t.question for t in turns] == [FIRST, FOLLOW_UP]
    assert turns[1].answer.model_dump(mode="json") == json.loads(follow_up.stdout)


def test_ask_in_an_unknown_conversation_says_so(pipeline):
    result = fazhi("ask", FIRST, "--conversation", "nope")
    assert result.exit_code == 1 and "没有这个对话 'nope'" in result.stderr


def test_kb_commands_do_not_load_the_embedding_model(tmp_path, monkeypatch):
    """The CLI's pipeline builds its embedder on first use: listing, checking and removing need none."""
    ingested = own_pipeline(tmp_path)
    built = []
    monkeypatch.setattr(components, "build_embeddings",
                        lambda settings: built.append(settings) or DeterministicFakeEmbedding(size=32))
    collection = ingested.kb.vectors._collection.name
    monkeypatch.setattr(Pipeline, "from_settings", classmethod(
        lambda cls, settings=None, embeddings=None: Pipeline(
            ingested.settings, make_kb(ingested.settings.data_dir, embeddings, collection=collection))))

    def printed(*args: str) -> str:
        result = fazhi(*args)
        assert result.exit_code == 0, result.output
        return result.stdout

    assert printed("kb", "list").startswith(f"{RONGCHANG}\t荣昌区\t2024")
    assert RONGCHANG in printed("kb", "chunks")
    assert "knowledge base OK: 1 reports" in printed("kb", "check")
    assert printed("kb", "remove", RONGCHANG) == f"removed {RONGCHANG}\n"
    assert built == []
    printed("ingest")
    assert "22.22%" in printed("ask", FIRST)
    assert len(built) == 2  # once by each command that embeds
