"""Stored conversations over HTTP: create, ask, follow up, regenerate, rename, list, delete."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from rag.api import create_app
from rag.conversations import SqliteConversations
from rag.pipeline import Pipeline
from tests.test_api import sse_events

FIRST = "荣昌区2024年行政复议直接纠错率是多少？"
FOLLOW_UP = "那梁平区呢？"


@pytest.fixture
def client(seeded_pipeline, tmp_path):
    """The API over the seeded knowledge base (extractive by default, a fake LLM as "local"), with
    conversations of this test's own."""
    settings = seeded_pipeline.settings.with_overrides({"server.requests_per_minute": 100000})
    model = FakeListChatModel(responses=["梁平区行政复议直接纠错率为12.24%[1]。"])
    pipeline = Pipeline(settings, seeded_pipeline.kb, {"local": lambda: (model, "fake-chat")},
                        conversations=SqliteConversations(tmp_path / "c.sqlite3"))
    return TestClient(create_app(pipeline, ui=False))


def test_a_conversation_from_its_start_to_its_deletion(client):
    r = client.post("/api/conversations")
    assert r.status_code == 201 and r.json()["turns"] == [] and r.json()["title"] == "新对话"
    conversation = r.json()["id"]
    first = client.post(f"/api/conversations/{conversation}/ask", json={"question": FIRST})
    assert first.status_code == 200 and "22.22%" in first.json()["answer"]
    follow_up = client.post(f"/api/conversations/{conversation}/ask", json={"question": FOLLOW_UP})
    # 梁平区's 纠错率: the follow-up was read with the stored first turn, which the client did not send
    assert follow_up.status_code == 200 and "12.24%" in follow_up.json()["answer"]
    assert {c["district"] for c in follow_up.json()["citations"]} == {"梁平区"}

    stored = client.get(f"/api/conversations/{conversation}").json()
    assert stored["title"] == FIRST and stored["turn_count"] == 2
    assert [t["question"] for t in stored["turns"]] == [FIRST, FOLLOW_UP]
    assert stored["turns"][1]["answer"] == follow_up.json()

    again = client.post(f"/api/conversations/{conversation}/regenerate", json={"provider": "local"})
    assert again.status_code == 200 and "12.24%" in again.json()["answer"]
    assert (follow_up.json()["provider"], again.json()["provider"]) == ("extractive", "local")
    turns = client.get(f"/api/conversations/{conversation}").json()["turns"]
    assert len(turns) == 2 and turns[1]["question"] == FOLLOW_UP and turns[1]["answer"] == again.json()

    renamed = client.patch(f"/api/conversations/{conversation}", json={"title": "  纠错率  "})
    assert renamed.status_code == 200 and renamed.json()["title"] == "纠错率"
    other = client.post("/api/conversations", json={"title": "另一个"}).json()
    listed = client.get("/api/conversations").json()
    # newest first is the store's order (tests/test_conversations.py); its clock counts whole seconds
    assert sorted((c["id"], c["title"], c["turn_count"]) for c in listed) == sorted([
        (other["id"], "另一个", 0), (conversation, "纠错率", 2)])
    assert "turns" not in listed[0]

    assert client.delete(f"/api/conversations/{conversation}").json() == {"removed": conversation}
    gone = client.get(f"/api/conversations/{conversation}")
    assert gone.status_code == 404 and gone.json()["error"] == "ConversationNotFoundError"
    assert [c["id"] for c in client.get("/api/conversations").json()] == [other["id"]]


def test_the_streamed_answer_ends_with_the_stored_answer(client):
    conversation = client.post("/api/conversations").json()["id"]
    client.post(f"/api/conversations/{conversation}/ask", json={"question": FIRST})
    r = client.post(f"/api/conversations/{conversation}/ask/stream", json={"question": FOLLOW_UP})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert [kind for kind, _ in events[:-1]] == ["delta"] * (len(events) - 1) and events[-1][0] == "answer"
    streamed, answer = "".join(data["text"] for _, data in events[:-1]), events[-1][1]
    assert "12.24%" in streamed and "12.24%" in answer["answer"]
    assert client.get(f"/api/conversations/{conversation}").json()["turns"][-1]["answer"] == answer

    regenerated = sse_events(client.post(f"/api/conversations/{conversation}/regenerate/stream").text)
    assert regenerated[-1][0] == "answer" and "12.24%" in regenerated[-1][1]["answer"]
    turns = client.get(f"/api/conversations/{conversation}").json()["turns"]
    assert len(turns) == 2 and turns[-1]["answer"] == regenerated[-1][1]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "words"),
    [
        ("get", "/api/conversations/nope", None, 404, "没有这个对话 'nope'"),
        ("patch", "/api/conversations/nope", {"title": "t"}, 404, "没有这个对话"),
        ("delete", "/api/conversations/nope", None, 404, "没有这个对话"),
        ("post", "/api/conversations/nope/ask", {"question": FIRST}, 404, "GET /api/conversations"),
        ("post", "/api/conversations/nope/ask/stream", {"question": FIRST}, 404, "没有这个对话"),
        ("post", "/api/conversations/nope/regenerate", None, 404, "没有这个对话"),
        ("post", "/api/conversations/nope/regenerate/stream", None, 404, "没有这个对话"),
        ("post", "/api/conversations", {"title": "   "}, 422, "title"),
        ("patch", "/api/conversations/{id}", {"title": " "}, 422, "title"),
        ("patch", "/api/conversations/{id}", {}, 422, "title"),
        ("post", "/api/conversations/{id}/ask", {"question": ""}, 422, "问题为空"),
        ("post", "/api/conversations/{id}/ask", {"question": FIRST, "provider": "gpt-9"}, 422, "provider"),
        ("post", "/api/conversations/{id}/ask/stream", {"question": "问" * 501}, 413, "问题过长"),
        ("post", "/api/conversations/{id}/regenerate", None, 422, "ask a question first"),
    ],
)
def test_bad_conversation_requests_say_why(client, method, path, body, status, words):
    conversation = client.post("/api/conversations").json()["id"]
    r = client.request(method.upper(), path.replace("{id}", conversation), json=body)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]
    assert client.get(f"/api/conversations/{conversation}").json()["turns"] == []  # nothing stored

