"""The Gradio app without a browser: its pure rendering, its chat handlers driven by hand (the
question box is cleared once, a stop stores nothing, 重新生成 asks the stopped question again), and
its named endpoints called with gradio_client over a real server."""

from __future__ import annotations

import re
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from langchain_core.documents import Document

from eval.processes import free_port
from rag import schema
from rag.conversations import Conversation, SqliteConversations, Turn
from rag.errors import LLMUnavailableError
from rag.pipeline import Pipeline
from rag.retrieval import Passage
from rag.schema import Answer, Citation
from rag.sections import Section

QUESTION = "九龙坡区2025年实施首违不罚、轻微免罚的案件有多少件？"
UI_FOLDER = Path(__file__).resolve().parents[1] / "ui"
# Pictographs, dingbats and the symbols an emoji font draws (✅ ❌ ⚠️ 🗑️ 👍 …).
EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\uFE0F]")


@pytest.fixture(autouse=True, scope="module")
def _gradio():
    pytest.importorskip("gradio")


def citation(**fields) -> Citation:
    return Citation(**{"n": 1, "file": "a.txt", "district": "荣昌区", "year": 2024, "section": "一、总体 > （一）复议",
                       "start": 0, "end": 4, "quote": "办理案件", **fields})


def chunk(section: str, subheading: str = "", file: str = "a.txt", text: str = "正文") -> Document:
    return Document(page_content=text, metadata={
        schema.FILE: file, schema.DISTRICT: "", schema.YEAR: 0, schema.SECTION: section,
        schema.SUBHEADING: subheading, schema.START: 0, schema.END: len(text)})


# ---- rendering ----------------------------------------------------------------------------


def test_the_ui_draws_no_emoji_so_it_needs_no_emoji_font():
    for path in sorted(UI_FOLDER.glob("*.py")):
        found = EMOJI.findall(path.read_text(encoding="utf-8"))
        assert not found, f"{path.name} shows {found}: use ui.render.badge or a CSS mark"


def test_badges_and_status_steps_are_escaped_words_with_css_marks():
    from ui.render import badge, notice, render_steps

    assert badge("ok", "已导入") == "<span class='fz-badge fz-badge-ok'>已导入</span>"
    assert notice("bad", "出错", "<b>模型</b>").endswith("<span class='fz-error'>&lt;b&gt;模型&lt;/b&gt;</span>")
    steps = render_steps([("done", "路由到 荣昌区 · 2024年"), ("active", "生成中…"), ("error", "生成失败")])
    assert re.findall(r"fz-step-(\w+)'>([^<]+)<", steps) == [
        ("done", "路由到 荣昌区 · 2024年"), ("active", "生成中…"), ("error", "生成失败")]
    with pytest.raises(ValueError, match="one of"):
        badge("green", "x")
    with pytest.raises(ValueError, match="one of"):
        render_steps([("running", "x")])


def test_heading_tree_nests_the_headings_and_counts_their_chunks():
    from ui.knowledge_base import heading_tree

    sections = [Section("", "", 0, 10), Section("一、成效", "", 10, 20), Section("一、成效 > （一）复议", "", 20, 40),
                Section("一、成效 > （一）复议", "1．纠错", 40, 60), Section("二、不足", "", 60, 80)]
    chunks = [chunk(""), chunk("一、成效 > （一）复议"), chunk("一、成效 > （一）复议", "1．纠错"), chunk("二、不足")]
    tree = heading_tree(sections, chunks)
    text = re.sub(r"<[^>]+>", "|", tree)
    assert [t for t in text.split("|") if t] == [
        "（报告开头）", "1 段", "一、成效", "2 段", "（一）复议", "2 段", "1．纠错", "1 段", "二、不足", "1 段"]
    # （一） sits inside 一、's list, 1． inside （一）'s
    assert "一、成效<span class='fz-tree-count'>2 段</span><ul><li>（一）复议" in tree
    assert "（一）复议<span class='fz-tree-count'>2 段</span><ul><li>1．纠错" in tree


def test_report_rows_choices_and_hit_rows_say_when_a_district_or_year_is_unknown():
    from ui.knowledge_base import hit_rows, report_choices, report_rows

    reports = [{"file": "a.txt", "district": "", "year": 0, "title": "某报告", "chunks": 3}]
    assert report_rows(reports) == [["a.txt", "区县未识别", "年份未识别", "某报告", 3]]
    assert report_choices(reports) == [("某报告 · a.txt", "a.txt")]
    long_text = "很长的段落" * 50
    rows = hit_rows([Passage(chunk("", text=long_text), 0.0327869, 0.81234, None),
                     Passage(chunk("二、不足"), 0.016, None, 7.55555)])
    assert rows[0][:8] == [1, 0.0328, 0.8123, "—", "区县未识别", "年份未识别", "（报告开头）", "a.txt"]
    assert rows[0][8].endswith("…") and len(rows[0][8]) == 161
    assert rows[1][:7] == [2, 0.016, "—", 7.5556, "区县未识别", "年份未识别", "二、不足"]


def test_a_stored_conversation_becomes_the_chat_with_its_answers_numbered_for_likes():
    from ui.chat import conversation_choices, conversation_messages

    answer = Answer(answer="纠错率为22.22%[1]。", citations=[citation()], provider="extractive")
    turns = [Turn("第一问<b>", answer), Turn("第二问", answer)]
    conversation = Conversation("c1", "第一问", "t", "t", 2, turns)
    messages, answered = conversation_messages(conversation)
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[0]["content"] == "第一问&lt;b&gt;"
    assert "<span class='fz-ref'>[1]</span>" in messages[1]["content"] and "fz-chip" in messages[1]["content"]
    assert answered == {1: 0, 3: 1}
    assert conversation_choices([conversation]) == [("第一问", "c1")]


def test_status_steps_of_a_finished_answer_and_errors_that_say_what_to_do():
    from ui.chat import duration, error_text, finished_steps

    answer = Answer(answer="x[1]", citations=[citation()], provider="local")
    answer.timings.first_token_ms, answer.timings.total_ms = 300, 1234
    steps = finished_steps("路由到 荣昌区", "检索到 6 段 · 40 ms", answer)
    assert [text for _, text in steps] == ["路由到 荣昌区", "检索到 6 段 · 40 ms", "生成 · 首字 300 ms",
                                           "核对数字 · 1 处引用", "完成 · 总计 1.2 秒"]
    assert {state for state, _ in steps} == {"done"}
    assert (duration(44.4), duration(999), duration(1234)) == ("44 ms", "999 ms", "1.2 秒")
    assert "摘录（不用模型）" in error_text(LLMUnavailableError("本地模型没有响应。"))
    assert error_text(KeyError("x")).startswith("内部错误（KeyError")


# ---- the chat's handlers, driven by hand ------------------------------------------------------


@pytest.fixture
def chat(seeded_pipeline, tmp_path):
    """The handlers of a fresh UI over the seeds, its conversations in tmp_path, and the store."""
    from ui.app import build_ui

    store = SqliteConversations(tmp_path / "conversations.sqlite3")
    pipeline = Pipeline(seeded_pipeline.settings, seeded_pipeline.kb, conversations=store)
    demo = build_ui(pipeline)
    handlers = {fn.name: fn.fn for fn in demo.fns.values() if fn.fn is not None}
    yield handlers, store
    store.close()


def is_skip(value) -> bool:
    return value == {"__type__": "update"}


def new_session():
    from ui.chat import ChatSession

    return ChatSession()


def test_asking_clears_the_box_once_and_stores_the_answer(chat):
    handlers, store = chat
    session = new_session()
    outputs = list(handlers["ask_typed"](QUESTION, [], None, [], [], "extractive", session))
    boxes = [o[1] for o in outputs]
    assert boxes[0] == "" and all(is_skip(b) for b in boxes[1:]), "the box is written to only when taken"
    chat_shown, status = outputs[-1][0], outputs[-1][2]
    assert "1722件" in chat_shown[-1]["content"] and "fz-chip" in chat_shown[-1]["content"]
    assert "路由到 九龙坡区" in status and "检索到" in status and "完成" in status
    conversation = store.get(outputs[0][3])
    assert conversation.title == QUESTION and len(conversation.turns) == 1
    assert session.answered == {1: 0} and session.answering is None


def test_an_example_is_asked_without_touching_the_box(chat):
    handlers, store = chat
    outputs = list(handlers["ask_example"]([QUESTION], [], None, [], [], "extractive", new_session()))
    assert all(is_skip(o[1]) for o in outputs), "an example must not erase what the user typed"
    assert "1722件" in outputs[-1][0][-1]["content"] and len(store.list()) == 1


def test_opening_another_conversation_ends_the_answer_being_written(chat):
    handlers, store = chat
    other = store.create("另一个对话")
    session = new_session()
    answering = handlers["ask_typed"](QUESTION, [], None, [], [], "extractive", session)
    asked = next(answering)[3]
    next(answering)
    shown = handlers["open_conversation"](other.id, session)
    assert shown[0] == [] and shown[2] == other.id and shown[4] == "另一个对话"
    assert list(answering) == [] and store.get(asked).turns == []
    assert session.answering is None and session.unanswered is None


def test_a_bad_question_is_answered_inline_and_the_box_keeps_it(chat):
    handlers, store = chat
    for question, said in (("   ", "问题为空"), ("问" * 600, "问题过长")):
        (chat_shown, box, *_), = handlers["ask_typed"](question, [], None, [], [], "extractive", new_session())
        assert said in chat_shown[-1]["content"] and "fz-badge" in chat_shown[-1]["content"]
        assert is_skip(box)
    assert store.list() == []


def test_a_question_while_one_is_answered_is_refused_out_loud_and_kept(chat):
    handlers, _ = chat
    session = new_session()
    session.answering = "上一个问题"
    (chat_shown, box, status, *_), = handlers["ask_typed"]("下一个问题", [], None, [], [], "extractive", session)
    assert is_skip(chat_shown) and is_skip(box)
    assert "正在回答上一个问题" in status


def test_stop_stores_nothing_and_regenerate_asks_the_stopped_question_again(chat):
    handlers, store = chat
    session = new_session()
    answering = handlers["ask_typed"](QUESTION, [], None, [], [], "extractive", session)
    first = next(answering)
    conversation_id, shown = first[3], first[0]
    next(answering)  # retrieved; the answer is next
    chat_shown, status, send, stop, again = handlers["stop"](shown, session)
    assert list(answering) == [], "a stopped answer yields no more"
    assert chat_shown[-1]["content"].endswith("<span class='fz-stopped'>（已停止）</span>")
    assert "没有保存" in status and send["interactive"] and not stop["interactive"]
    assert store.get(conversation_id).turns == []

    outputs = list(handlers["regenerate"](conversation_id, [], [], "extractive", session))
    assert "1722件" in outputs[-1][0][-1]["content"]
    assert [t.question for t in store.get(conversation_id).turns] == [QUESTION]
    # with nothing stopped, 重新生成 replaces the last stored answer, not adding a turn
    list(handlers["regenerate"](conversation_id, [], [], "extractive", session))
    assert len(store.get(conversation_id).turns) == 1


def test_a_model_that_fails_is_reported_in_the_chat_with_what_to_do(seeded_pipeline, tmp_path):
    from langchain_core.runnables import RunnableGenerator

    from ui.app import build_ui

    def half_then_fail(_inputs):
        yield "九龙坡区2025年实施首违不罚、轻微免罚的案件1722件[1]。"
        raise ConnectionError("connection refused")

    store = SqliteConversations(tmp_path / "c.sqlite3")
    pipeline = Pipeline(seeded_pipeline.settings, seeded_pipeline.kb,
                        {"local": lambda: (RunnableGenerator(half_then_fail), "flaky")}, conversations=store)
    ask = next(fn.fn for fn in build_ui(pipeline).fns.values() if fn.name == "ask_typed")
    session = new_session()
    *_, last = ask(QUESTION, [], None, [], [], "local", session)
    chat_shown, _, status, *_, send, stop, again = last
    shown = chat_shown[-1]["content"]
    assert "1722件" in shown and "出错" in shown and "did not answer" in shown and "摘录（不用模型）" in shown
    assert "生成失败" in status and send["interactive"] and again["interactive"] and not stop["interactive"]
    assert session.unanswered == QUESTION and session.answering is None
    store.close()


def test_show_passage_without_a_chip_shows_the_hint(chat):
    import gradio as gr

    from ui.chat import PASSAGE_HINT

    handlers, _ = chat
    assert handlers["show_passage"](gr.EventData(None, None)) == PASSAGE_HINT


# ---- the named endpoints, through gradio_client ------------------------------------------


@contextmanager
def serving(pipeline: Pipeline):
    """uvicorn on a free port serving the app (API and UI) of `pipeline`; its URL."""
    import uvicorn

    from rag.api import create_app

    port = free_port()
    # a client's heartbeat stream stays open: shut down without waiting for it
    uv = uvicorn.Server(uvicorn.Config(create_app(pipeline), host="127.0.0.1", port=port, log_level="warning",
                                       timeout_graceful_shutdown=1))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not uv.started and time.monotonic() < deadline:
        time.sleep(0.1)
    assert uv.started, "uvicorn did not start within 60 s"
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        uv.should_exit = True
        thread.join(15)


@pytest.fixture(scope="module")
def server(seeded_pipeline, tmp_path_factory):
    """The app over the seeds, its conversations in a folder of its own; (url, pipeline)."""
    store = SqliteConversations(tmp_path_factory.mktemp("conversations") / "c.sqlite3")
    pipeline = Pipeline(seeded_pipeline.settings, seeded_pipeline.kb, conversations=store)
    with serving(pipeline) as url:
        yield url, pipeline
    store.close()


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    client = Client(server[0], verbose=False, analytics_enabled=False, download_files=False)
    yield client
    client.close()


def test_only_the_named_endpoints_are_an_api(client):
    api = client.view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) == {"/ask", "/passage", "/reports"}
    assert not api["unnamed_endpoints"]


def test_ask_with_a_district_filter_returns_the_answer_json(client):
    answer = client.predict(question="首违不罚、轻微免罚的案件有多少件？", districts=["九龙坡区"], years=[2025],
                            provider="extractive", api_name="/ask")
    answer = Answer.model_validate(answer)
    assert "1722件" in answer.answer and answer.citations
    assert {c.district for c in answer.citations} == {"九龙坡区"} and {c.year for c in answer.citations} == {2025}


def test_ask_in_a_conversation_stores_the_turn(client, server):
    _, pipeline = server
    conversation = pipeline.conversations.create()
    client.predict(question=QUESTION, conversation_id=conversation.id, api_name="/ask")
    assert [t.question for t in pipeline.conversations.get(conversation.id).turns] == [QUESTION]


def test_passage_and_reports_endpoints(client, server):
    _, pipeline = server
    cited = pipeline.ask(QUESTION).citations[0]
    passage = client.predict(file=cited.file, start=cited.start, end=cited.end, context=50, api_name="/passage")
    assert passage["quote"] == cited.quote and passage["file"] == cited.file and len(passage["before"]) <= 50
    reports = client.predict(api_name="/reports")
    assert {r["file"] for r in reports} == {r["file"] for r in pipeline.reports()} and len(reports) == 5


def test_endpoint_errors_carry_the_message(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="问题为空"):
        client.predict(question=" ", api_name="/ask")
    with pytest.raises(AppError, match="没有报告"):
        client.predict(file="nope.txt", start=0, end=1, api_name="/passage")


def test_with_a_key_set_the_client_sends_it_in_a_header(seeded_pipeline, monkeypatch):
    from gradio_client import Client

    key = "k-ui-test-7d2e"
    monkeypatch.setenv(seeded_pipeline.settings.server.api_key_env, key)
    with serving(seeded_pipeline) as url:
        with pytest.raises(ValueError, match="credentials were not provided"):
            Client(url, verbose=False, analytics_enabled=False)
        keyed = Client(url, verbose=False, analytics_enabled=False, headers={"X-API-Key": key})
        assert len(keyed.predict(api_name="/reports")) == 5
        keyed.close()
