"""The HTTP API with FastAPI's TestClient: every route, every error status, and the
OpenAI route through the real `openai` client."""

from __future__ import annotations

import json
import re
import shutil
from html import escape
from urllib.parse import quote

import httpx
import openai
import pytest
from fastapi.testclient import TestClient
from langchain_core.runnables import RunnableGenerator, RunnableLambda

from eval.processes import free_port
from rag.api import MODELS, create_app
from rag.feedback import FeedbackStore
from rag.pipeline import Pipeline
from rag.settings import load_settings
from tests.conftest import SEEDS, UPLOAD_REPORT, make_kb

QUESTION = "九龙坡区2025年实施首违不罚、轻微免罚的案件有多少件？"
RONGCHANG = "003_190862aaa87d2635.txt"


@pytest.fixture(scope="module")
def client(seeded_pipeline):
    """The API over the shared seeded knowledge base (read-only use)."""
    settings = seeded_pipeline.settings.with_overrides({"server.requests_per_minute": 100000})
    return TestClient(create_app(Pipeline(settings, seeded_pipeline.kb), ui=False))


def own_pipeline(tmp_path, ingest=True, **overrides) -> Pipeline:
    """A pipeline of this test's own (data and seeds folders in tmp_path), for uploads and removals."""
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    shutil.copy(SEEDS / RONGCHANG, seeds / RONGCHANG)
    settings = load_settings(overrides={
        # fake embeddings rank at random: BM25 alone ranks, as in the shared seeded pipeline
        "data_dir": str(tmp_path / "data"), "seeds_dir": str(seeds), "llm.provider": "extractive",
        "retrieval.dense_weight": 0, **overrides,
    })
    kb = make_kb(settings.data_dir)
    pipeline = Pipeline(settings, kb)
    if ingest:
        pipeline.ingest()
    return pipeline


@pytest.fixture
def own(tmp_path):
    pipeline = own_pipeline(tmp_path)
    return pipeline, TestClient(create_app(pipeline, ui=False))


def spy_on_stream(pipeline, monkeypatch) -> list[tuple]:
    """Record the (question, history, filters, provider) of every pipeline.stream call."""
    calls = []
    original = pipeline.stream

    def spy(question, history=None, filters=None, provider=None):
        calls.append((question, history, filters, provider))
        return original(question, history, filters, provider)

    monkeypatch.setattr(pipeline, "stream", spy)
    return calls


def upload(client, name, data, mime="text/plain"):
    return client.post("/api/reports", files={"file": (name, data, mime)})


def sse_events(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields.get("event", "message"), json.loads(fields["data"])))
    return events


# ---- /api/ask -----------------------------------------------------------------------------


def test_ask_returns_the_answer_with_citations(client):
    r = client.post("/api/ask", json={"question": QUESTION})
    assert r.status_code == 200
    body = r.json()
    assert "1722件" in body["answer"]
    assert body["provider"] == "extractive" and not body["refused"]
    first = body["citations"][0]
    assert first["district"] == "九龙坡区" and first["year"] == 2025
    assert set(first) >= {"n", "file", "section", "start", "end", "quote"}


@pytest.mark.parametrize(
    ("payload", "status", "words"),
    [
        ({"question": ""}, 422, "问题为空"),
        ({"question": "   \n"}, 422, "问题为空"),
        ({"question": "问" * 501}, 413, "问题过长"),
        ({}, 422, "question"),
        ({"question": QUESTION, "provider": "gpt-9"}, 422, "provider"),
        ({"question": QUESTION, "history": "not a list"}, 422, "history"),
    ],
)
def test_ask_rejects_bad_requests(client, payload, status, words):
    for route in ("/api/ask", "/api/ask/stream"):
        r = client.post(route, json=payload)
        assert r.status_code == status, route
        assert words in json.dumps(r.json(), ensure_ascii=False)


def test_ask_passes_history_filters_and_provider_to_the_pipeline(tmp_path, monkeypatch):
    pipeline = own_pipeline(tmp_path)
    calls = spy_on_stream(pipeline, monkeypatch)
    client = TestClient(create_app(pipeline, ui=False))
    payload = {
        "question": "那2023年呢？",
        "history": [["荣昌区行政复议直接纠错率是多少？", "22.22%[1]"]],
        "filters": {"districts": ["荣昌区"], "years": [2024]},
        "provider": "extractive",
    }
    assert client.post("/api/ask", json=payload).status_code == 200
    assert client.post("/api/ask/stream", json=payload).status_code == 200
    expected = ("那2023年呢？", [("荣昌区行政复议直接纠错率是多少？", "22.22%[1]")],
                {"districts": ["荣昌区"], "years": [2024]}, "extractive")
    assert calls == [expected, expected]


def test_district_filter_limits_the_citations(client):
    r = client.post("/api/ask", json={"question": "人民调解的调解成功率是多少？", "filters": {"districts": ["梁平区"]}})
    assert r.status_code == 200
    assert {c["district"] for c in r.json()["citations"]} <= {"梁平区"}


def test_ask_on_an_empty_knowledge_base_is_503(tmp_path):
    client = TestClient(create_app(own_pipeline(tmp_path, ingest=False), ui=False))
    r = client.post("/api/ask", json={"question": QUESTION})
    assert r.status_code == 503
    assert "知识库为空" in r.json()["detail"]


# ---- /api/ask/stream ------------------------------------------------------------------------


def test_stream_sends_deltas_then_the_answer(client):
    r = client.post("/api/ask/stream", json={"question": QUESTION})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "answer" and set(kinds[:-1]) == {"delta"} and len(kinds) >= 2
    streamed = "".join(data["text"] for kind, data in events if kind == "delta")
    answer = events[-1][1]
    assert "1722件" in streamed and "1722件" in answer["answer"]
    assert answer["citations"] and answer["citations"][0]["district"] == "九龙坡区"


# ---- the LLM down: 503 with the reason ------------------------------------------------------


@pytest.fixture
def llm_down(seeded_pipeline):
    def refuse(_):
        raise httpx.ConnectError("Connection refused by 127.0.0.1:8089")

    pipeline = Pipeline(seeded_pipeline.settings, seeded_pipeline.kb, {"local": lambda: (RunnableLambda(refuse), "down")})
    return TestClient(create_app(pipeline, ui=False))


def test_llm_down_is_503_with_the_reason(llm_down):
    for route in ("/api/ask", "/api/ask/stream"):
        r = llm_down.post(route, json={"question": QUESTION, "provider": "local"})
        assert r.status_code == 503, route
        assert "Connection refused" in r.json()["detail"] and "--provider extractive" in r.json()["detail"]
    r = llm_down.post("/v1/chat/completions", json={
        "model": "fazhi-qa-local", "messages": [{"role": "user", "content": QUESTION}]})
    assert r.status_code == 503
    assert "Connection refused" in r.json()["error"]["message"]


def test_llm_failing_mid_stream_ends_the_stream_with_an_error_event(seeded_pipeline):
    def half_then_fail(_inputs):
        yield "九龙坡区2025年实施首违不罚、轻微免罚1722件[1]。"
        yield "审结"
        raise httpx.ReadTimeout("timed out after 120 s")

    pipeline = Pipeline(seeded_pipeline.settings, seeded_pipeline.kb,
                        {"local": lambda: (RunnableGenerator(half_then_fail), "flaky")})
    client = TestClient(create_app(pipeline, ui=False))
    r = client.post("/api/ask/stream", json={"question": QUESTION, "provider": "local"})
    assert r.status_code == 200
    events = sse_events(r.text)
    assert events[0] == ("delta", {"text": "九龙坡区2025年实施首违不罚、轻微免罚1722件[1]。"})
    assert events[-1][0] == "error" and events[-1][1]["status"] == 503
    assert "timed out" in events[-1][1]["detail"]
    oai = openai.OpenAI(base_url="http://testserver/v1", api_key="x", http_client=client)
    stream = oai.chat.completions.create(model="fazhi-qa-local", messages=[{"role": "user", "content": QUESTION}], stream=True)
    with pytest.raises(openai.APIError, match="timed out"):
        list(stream)


def test_an_unexpected_error_is_a_500_answer_not_a_crash(seeded_pipeline, monkeypatch):
    pipeline = Pipeline(seeded_pipeline.settings, seeded_pipeline.kb)
    monkeypatch.setattr(pipeline, "reports", lambda: 1 / 0)
    client = TestClient(create_app(pipeline, ui=False), raise_server_exceptions=False)
    r = client.get("/api/reports")
    assert r.status_code == 500
    assert "ZeroDivisionError" in r.json()["detail"]
    assert client.get("/healthz").status_code == 200  # and the server goes on


# ---- /api/reports ---------------------------------------------------------------------------


def test_reports_lists_the_seeds(client):
    rows = client.get("/api/reports").json()
    assert [r["file"] for r in rows] == sorted(p.name for p in SEEDS.glob("*.txt"))
    rongchang = next(r for r in rows if r["file"] == RONGCHANG)
    assert rongchang["district"] == "荣昌区" and rongchang["year"] == 2024 and rongchang["chunks"] > 0


def test_upload_ingests_a_report_that_can_then_be_asked_about(own):
    pipeline, client = own
    r = upload(client, "璧山区 2024 报告.txt", UPLOAD_REPORT.encode())
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["file"] == "璧山区_2024_报告.txt"  # sanitised
    assert body["report"]["district"] == "璧山区" and body["report"]["year"] == 2024
    assert body["summary"]["new"] == ["璧山区_2024_报告.txt"]
    assert (pipeline.settings.data_dir / "reports" / "璧山区_2024_报告.txt").read_text(encoding="utf-8") == UPLOAD_REPORT
    assert "璧山区_2024_报告.txt" in [row["file"] for row in client.get("/api/reports").json()]

    answer = client.post("/api/ask", json={"question": "璧山区2024年办理法律援助案件多少件？"}).json()
    assert "865件" in answer["answer"]
    cited = answer["citations"][0]
    assert cited["file"] == "璧山区_2024_报告.txt"

    passage = client.get(f"/api/reports/{cited['file']}/passage",
                         params={"start": cited["start"], "end": cited["end"]}).json()
    assert passage["quote"] == cited["quote"]
    assert UPLOAD_REPORT.index(passage["before"] + passage["quote"] + passage["after"]) >= 0


def test_upload_of_the_same_name_replaces_the_report(own):
    _, client = own
    assert upload(client, "bishan.md", UPLOAD_REPORT.encode()).status_code == 201
    r = upload(client, "bishan.md", UPLOAD_REPORT.replace("865件", "866件").encode())
    assert r.status_code == 201 and r.json()["summary"]["replaced"] == ["bishan.md"]
    assert "866件" in client.post("/api/ask", json={"question": "璧山区2024年办理法律援助案件多少件？"}).json()["answer"]


@pytest.mark.parametrize(
    ("name", "data", "status", "words"),
    [
        ("report.exe", b"MZ\x90\x00", 415, "不支持的文件类型"),
        ("report", UPLOAD_REPORT.encode(), 415, "不支持的文件类型"),
        ("notes.csv", b"a,b\n1,2\n", 415, ".csv"),
        ("binary.txt", bytes(range(256)) * 8, 415, "binary"),
        ("empty.txt", b"", 415, "empty"),
        ("../outside.txt", UPLOAD_REPORT.encode(), 400, ".."),
        ("/etc/cron.d/evil.txt", UPLOAD_REPORT.encode(), 400, "绝对路径"),
        ("..\\..\\evil.txt", UPLOAD_REPORT.encode(), 400, ".."),
    ],
)
def test_upload_rejections_say_why_and_keep_nothing(own, name, data, status, words):
    pipeline, client = own
    r = upload(client, name, data)
    assert r.status_code == status
    assert words in r.json()["detail"]
    folder = pipeline.settings.data_dir / "reports"
    assert not folder.exists() or list(folder.iterdir()) == []
    assert [row["file"] for row in client.get("/api/reports").json()] == [RONGCHANG]


def test_upload_over_the_size_limit_is_413(tmp_path):
    pipeline = own_pipeline(tmp_path, **{"server.max_upload_mb": 0.001})  # 1,048 bytes
    client = TestClient(create_app(pipeline, ui=False))
    r = upload(client, "big.txt", ("法治" * 1000).encode())
    assert r.status_code == 413
    assert "server.max_upload_mb" in r.json()["detail"]
    assert list((pipeline.settings.data_dir / "reports").iterdir()) == []


def test_fix_metadata_writes_the_sidecar_and_reingests(own):
    pipeline, client = own
    upload(client, "bishan.txt", UPLOAD_REPORT.encode())
    r = client.patch("/api/reports/bishan.txt", json={"district": "铜梁区", "year": 2023})
    assert r.status_code == 200, r.text
    assert r.json()["report"]["district"] == "铜梁区" and r.json()["report"]["year"] == 2023
    sidecar = pipeline.settings.data_dir / "reports" / "bishan.txt.meta.yaml"
    assert "铜梁区" in sidecar.read_text(encoding="utf-8")
    row = next(row for row in client.get("/api/reports").json() if row["file"] == "bishan.txt")
    assert (row["district"], row["year"]) == ("铜梁区", 2023)


def test_fix_metadata_of_a_seed_writes_beside_the_seed(own):
    pipeline, client = own
    r = client.patch(f"/api/reports/{RONGCHANG}", json={"year": 2025})
    assert r.status_code == 200 and r.json()["report"]["year"] == 2025
    assert (pipeline.settings.seeds_dir / f"{RONGCHANG}.meta.yaml").exists()


def test_remove_deletes_the_report_and_its_upload(own):
    pipeline, client = own
    upload(client, "bishan.txt", UPLOAD_REPORT.encode())
    r = client.delete("/api/reports/bishan.txt")
    assert r.status_code == 200 and r.json() == {"removed": "bishan.txt"}
    assert [row["file"] for row in client.get("/api/reports").json()] == [RONGCHANG]
    assert not (pipeline.settings.data_dir / "reports" / "bishan.txt").exists()
    assert client.delete("/api/reports/bishan.txt").status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("delete", "/api/reports/nope.txt", 404),
        ("patch", "/api/reports/nope.txt", 404),
        ("get", "/api/reports/nope.txt/passage?start=0&end=5", 404),
        ("delete", "/api/reports/..%2F..%2Fetc%2Fpasswd", 400),
        ("delete", "/api/reports/sub%2F..%2F..%2Fx.txt", 400),
        ("patch", "/api/reports/..%2Fconfig%2Fdefault.yaml", 400),
        ("get", "/api/reports/..%2F..%2Fetc%2Fpasswd/passage?start=0&end=5", 400),
        ("get", f"/api/reports/{RONGCHANG}/passage?start=10&end=5", 400),
        ("get", f"/api/reports/{RONGCHANG}/passage?start=0&end=99999999", 400),
        ("get", f"/api/reports/{RONGCHANG}/passage?start=-1&end=5", 422),
        ("get", f"/api/reports/{RONGCHANG}/passage", 422),
    ],
)
def test_report_routes_reject_unknown_reports_and_escapes(client, method, path, status):
    kwargs = {"json": {"year": 2024}} if method == "patch" else {}
    r = getattr(client, method)(path, **kwargs)
    assert r.status_code == status, r.text
    assert r.json()["detail"]


def test_passage_returns_the_text_around_a_citation(client):
    cited = client.post("/api/ask", json={"question": QUESTION}).json()["citations"][0]
    r = client.get(f"/api/reports/{cited['file']}/passage", params={"start": cited["start"], "end": cited["end"], "context": 50})
    assert r.status_code == 200
    body = r.json()
    assert body["quote"] == cited["quote"]
    assert 0 < len(body["before"]) <= 50 and 0 < len(body["after"]) <= 50


# ---- feedback, health, docs, key, rate --------------------------------------------------------


def test_feedback_is_appended_to_a_jsonl_file(own):
    pipeline, client = own
    answer = client.post("/api/ask", json={"question": "荣昌区行政复议直接纠错率"}).json()
    r = client.post("/api/feedback", json={"rating": "down", "question": "荣昌区行政复议直接纠错率", "answer": answer})
    assert r.status_code == 201
    records = FeedbackStore.in_data_dir(pipeline.settings.data_dir).read()
    assert len(records) == 1
    assert records[0]["rating"] == "down" and records[0]["answer"] == answer["answer"]
    assert records[0]["citations"] == answer["citations"]
    assert client.post("/api/feedback", json={"rating": "meh", "question": "q", "answer": answer}).status_code == 422


def test_healthz_reports_index_chroma_and_llm(client, tmp_path):
    body = client.get("/healthz").json()
    assert body["ok"] and body["chroma"]["ok"] and body["index"]["reports"] == 5
    assert body["llm"]["provider"] == "extractive"
    empty = TestClient(create_app(own_pipeline(tmp_path, ingest=False), ui=False))
    r = empty.get("/healthz")
    assert r.status_code == 503 and r.json()["index"]["ok"] is False


def test_openapi_docs(client):
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/ask", "/api/ask/stream", "/api/reports", "/api/conversations",
            "/api/conversations/{conversation_id}/ask", "/v1/chat/completions", "/v1/models", "/healthz"} <= set(paths)


def test_the_api_docs_load_nothing_from_another_host(client):
    html = client.get("/docs")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
    assert sorted(assets) == ["/docs/assets/favicon.png", "/docs/assets/swagger-ui-bundle.js",
                              "/docs/assets/swagger-ui.css"]
    for url, kind in zip(sorted(assets), ("image/png", "text/javascript", "text/css"), strict=True):
        r = client.get(url)
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind) and len(r.content) > 1000, url
    assert "SwaggerUIBundle" in client.get("/docs/assets/swagger-ui-bundle.js").text
    assert "url: '/openapi.json'" in html.text and client.get("/openapi.json").status_code == 200
    assert client.get("/docs/assets/..%2F..%2Fapi.py").status_code == 404
    assert client.get("/docs/assets/index.html").status_code == 404


def test_api_key_protects_api_and_v1(seeded_pipeline, monkeypatch):
    monkeypatch.setenv(seeded_pipeline.settings.server.api_key_env, "s3cret")
    client = TestClient(create_app(seeded_pipeline, ui=False))
    for path in ("/api/reports", "/v1/models"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.get(path, headers={"X-API-Key": "s3cret"}).status_code == 200
    assert "FAZHI_API_KEY" in client.get("/api/reports").json()["detail"]
    assert client.get("/healthz").status_code == 200
    assert client.get("/docs").status_code == 200 and client.get("/docs/assets/swagger-ui.css").status_code == 200
    openai_client = openai.OpenAI(base_url="http://testserver/v1", api_key="wrong", http_client=client)
    with pytest.raises(openai.AuthenticationError):
        openai_client.models.list()


def test_requests_over_the_rate_limit_get_429(tmp_path):
    client = TestClient(create_app(own_pipeline(tmp_path, **{"server.requests_per_minute": 2}), ui=False))
    assert [client.get("/api/reports").status_code for _ in range(3)] == [200, 200, 429]
    assert "server.requests_per_minute" in client.get("/api/reports").json()["detail"]
    assert client.get("/healthz").status_code == 200


# ---- OpenAI-compatible routes, through the real openai client ----------------------------------


@pytest.fixture(scope="module")
def oai(client):
    return openai.OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=client)


def test_models_lists_one_model_per_provider(oai):
    assert [m.id for m in oai.models.list()] == list(MODELS)


def test_chat_completion_carries_citations_in_text_and_field(oai):
    completion = oai.chat.completions.create(
        model="fazhi-qa-extractive", messages=[{"role": "system", "content": "你是助手"}, {"role": "user", "content": QUESTION}]
    )
    text = completion.choices[0].message.content
    assert "1722件" in text and "[1]" in text
    assert "来源：\n[1] 〔九龙坡区 · 2025 · " in text
    citations = completion.model_extra["citations"]
    assert citations[0]["district"] == "九龙坡区" and citations[0]["quote"] in text
    assert completion.choices[0].finish_reason == "stop"


def test_chat_completion_streams(oai):
    stream = oai.chat.completions.create(model="fazhi-qa", messages=[{"role": "user", "content": QUESTION}], stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert "1722件" in text and "来源：" in text
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].model_extra["citations"][0]["district"] == "九龙坡区"


def test_chat_completion_turns_earlier_messages_into_history(tmp_path, monkeypatch):
    pipeline = own_pipeline(tmp_path)
    calls = spy_on_stream(pipeline, monkeypatch)
    oai = openai.OpenAI(base_url="http://testserver/v1", api_key="x",
                        http_client=TestClient(create_app(pipeline, ui=False)))
    oai.chat.completions.create(model="fazhi-qa-extractive", messages=[
        {"role": "system", "content": "只用中文"},
        {"role": "user", "content": "荣昌区行政复议直接纠错率是多少？"},
        {"role": "assistant", "content": "22.22%[1]\n\n来源：\n[1] 〔荣昌区 · 2024 · …〕「…」"},
        {"role": "user", "content": [{"type": "text", "text": "那2023年呢？"}]},
    ], extra_body={"filters": {"districts": ["荣昌区"]}})
    assert calls == [("那2023年呢？", [("荣昌区行政复议直接纠错率是多少？", "22.22%[1]")], {"districts": ["荣昌区"]}, "extractive")]


def test_chat_completion_errors_reach_the_openai_client(oai):
    with pytest.raises(openai.NotFoundError, match="fazhi-qa-extractive"):
        oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}])
    with pytest.raises(openai.UnprocessableEntityError, match="问题为空"):
        oai.chat.completions.create(model="fazhi-qa", messages=[{"role": "user", "content": "  "}])
    with pytest.raises(openai.APIStatusError) as err:
        oai.chat.completions.create(model="fazhi-qa", messages=[{"role": "user", "content": "问" * 600}], stream=True)
    assert err.value.status_code == 413


def test_openai_client_over_a_real_server(seeded_pipeline):
    """The same route over uvicorn on 127.0.0.1, streaming for real."""
    import threading
    import time

    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(seeded_pipeline, ui=False), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        oai = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
        chunks = list(oai.chat.completions.create(model="fazhi-qa", messages=[{"role": "user", "content": QUESTION}], stream=True))
        assert "1722件" in "".join(c.choices[0].delta.content or "" for c in chunks)
    finally:
        server.should_exit = True
        thread.join(10)


# ---- the UI: mounted at /, and its HTML rendering ------------------------------------------------


def test_ui_is_mounted_at_root_beside_the_api(seeded_pipeline):
    client = TestClient(create_app(seeded_pipeline))
    page = client.get("/")
    assert page.status_code == 200 and "<html" in page.text
    config = client.get("/config").json()
    assert config["title"] == "法治政府建设报告问答"
    assert client.get("/api/reports").status_code == 200


def test_render_answer_makes_escaped_clickable_chips(seeded_pipeline):
    from ui.app import chip_label, render_answer  # Gradio loads slowly: only where it is needed

    answer = seeded_pipeline.ask(QUESTION)
    answer.answer = answer.answer + "<script>x</script>"
    html = render_answer(answer)
    c = answer.citations[0]
    assert f"<a class='fz-chip' href='#fz-cite={c.start}-{c.end}-{quote(c.file)}'" in html
    assert f"title='{escape(c.label())}'>[1] {escape(chip_label(c))}</a>" in html
    assert chip_label(c).startswith("〔九龙坡区 · 2025 · ") and len(chip_label(c)) < 40
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "extractive" in html and "总计" in html


def test_render_passage_marks_the_quote():
    from ui.app import render_passage

    html = render_passage({"file": "a.txt", "before": "前文<b>", "quote": "引用的话", "after": "后文"}, "〔荣昌区 · 2024 · 一、…〕")
    assert "<mark>引用的话</mark>" in html and "&lt;b&gt;" in html and "〔荣昌区 · 2024 · 一、…〕" in html


def test_openai_stream_markers_are_the_numbers_of_its_sources_list(seeded_pipeline):
    """The model numbers excerpts its own way ([3]); what streams must use the sources list's numbers."""
    def reply(_inputs):
        yield "九龙坡区2025年实施首违不罚、轻微免罚"
        yield "1722件[3]。"

    pipeline = Pipeline(seeded_pipeline.settings, seeded_pipeline.kb, {"local": lambda: (RunnableGenerator(reply), "fake")})
    client = TestClient(create_app(pipeline, ui=False))
    oai = openai.OpenAI(base_url="http://testserver/v1", api_key="x", http_client=client)
    chunks = list(oai.chat.completions.create(
        model="fazhi-qa-local", messages=[{"role": "user", "content": QUESTION}], stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    body, _, sources = text.partition("来源：")
    said = set(re.findall(r"\[(\d{1,3})\]", body))
    listed = set(re.findall(r"^\[(\d{1,3})\]", sources, re.M))
    assert said and said == listed, text
    assert all("1722" in line for line in sources.strip().splitlines())  # each source states the figure
    whole = oai.chat.completions.create(model="fazhi-qa-local", messages=[{"role": "user", "content": QUESTION}])
    assert whole.choices[0].message.content == text  # streamed and not: the same words and numbers
