"""Bad input at the edges: bad files through the upload route and the ingest, bodies too large
to read, and malformed requests. Each is refused with a 4xx that says why; the server goes on,
keeps nothing of a refused file, and never holds a large body in memory."""

from __future__ import annotations

import asyncio
import json
import tracemalloc

import pytest

from rag.api import MAX_JSON_BYTES, create_app
from rag.errors import UploadTooLargeError
from rag.loading import load_report
from rag.report_files import MAX_NAME_BYTES, ReportFiles
from tests.conftest import UPLOAD_REPORT, make_kb
from tests.test_api import QUESTION, RONGCHANG, client, own, own_pipeline, upload  # noqa: F401 - fixtures
from tests.test_loading import docx_bytes, pdf_bytes, zip_bomb

MB = 1 << 20
BIG = 200 * MB  # "a 200 MB text file": a sparse file or a lazy stream, never held in memory


def kept_uploads(pipeline) -> list[str]:
    folder = pipeline.settings.data_dir / "reports"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ---- files ------------------------------------------------------------------------------------


def _truncated_docx() -> bytes:
    data = docx_bytes(["一、主要举措", "全年调解矛盾纠纷1.16万件。"])
    return data[: len(data) // 2]


BAD_FILES = [
    ("empty.txt", b"", "the file is empty"),
    ("blank.md", " \n\t\u3000\n".encode(), "only white space"),
    ("photo.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 64, "binary"),
    ("controls.txt", bytes(range(1, 32)) * 64, "binary"),
    ("truncated.docx", None, "damaged"),
    ("bomb.docx", None, "zip bomb"),
    ("locked.pdf", None, "password-protected"),
    ("scan.pdf", None, "no text layer"),
    ("fake.pdf", b"%PDF-1.7 not really " * 20, "the PDF is damaged"),
    ("one-line.txt", "全年调解矛盾纠纷1.16万件，调解成功率为99.8%。".encode() * 5000, "no line break"),  # 135,000 characters
]


def _bad_file(name: str, data: bytes | None) -> bytes:
    made = {
        "truncated.docx": _truncated_docx,
        "bomb.docx": lambda: zip_bomb(12 * MB),  # the real limits: packed ~1000 : 1
        "locked.pdf": lambda: pdf_bytes("Rule of law report 2024", password="s3cret"),
        "scan.pdf": lambda: pdf_bytes(None),
    }
    return made[name]() if data is None else data


@pytest.mark.parametrize(("name", "data", "words"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_upload_is_415_with_the_reason_and_the_server_goes_on(own, name, data, words):
    pipeline, client = own
    r = upload(client, name, _bad_file(name, data), "application/octet-stream")
    assert r.status_code == 415, r.text
    assert name in r.json()["detail"] and words in r.json()["detail"]
    assert kept_uploads(pipeline) == []
    assert client.get("/healthz").status_code == 200
    assert [row["file"] for row in client.get("/api/reports").json()] == [RONGCHANG]
    answer = client.post("/api/ask", json={"question": "荣昌区行政复议直接纠错率是多少？"}).json()
    assert answer["citations"] and {c["file"] for c in answer["citations"]} == {RONGCHANG}


def test_bad_files_in_an_ingested_folder_are_listed_and_the_rest_is_ingested(tmp_path):
    folder = tmp_path / "reports"
    folder.mkdir()
    for name, data, _ in BAD_FILES:
        (folder / name).write_bytes(_bad_file(name, data))
    (folder / "good.txt").write_text(UPLOAD_REPORT, encoding="utf-8")
    summary = make_kb(tmp_path / "data").ingest(sorted(folder.iterdir()))
    assert summary.new == ["good.txt"]
    assert sorted(summary.failed) == sorted(name for name, _, _ in BAD_FILES)
    for name, _, words in BAD_FILES:
        assert words in summary.failed[name], summary.failed[name]


def test_a_200_mb_text_file_is_refused_by_its_size_unread(tmp_path):
    path = tmp_path / "huge.txt"
    with path.open("wb") as f:
        f.truncate(BIG)  # sparse: 200 MB to stat, nothing on disk
    kb = make_kb(tmp_path / "data")
    tracemalloc.start()
    try:
        summary = kb.ingest([path])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert summary.new == [] and "209.7 MB is over the 21.0 MB limit" in summary.failed["huge.txt"]
    assert "ingest.max_file_mb" in summary.failed["huge.txt"]
    assert peak < 8 * MB


class Endless:
    """A file-like upload that would yield `size` bytes; counts what was read from it."""

    def __init__(self, size: int):
        self.left, self.read_bytes = size, 0

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        self.read_bytes += n
        return b"a" * n


def test_a_200_mb_upload_stream_is_cut_off_at_the_limit(tmp_path):
    pipeline = own_pipeline(tmp_path, **{"server.max_upload_mb": 1})
    source = Endless(BIG)
    with pytest.raises(UploadTooLargeError, match=r"huge\.txt 太大：超过上限 1 MB（server\.max_upload_mb）"):
        ReportFiles(pipeline).add("huge.txt", source)
    assert source.read_bytes <= 2 * MB
    assert kept_uploads(pipeline) == []


def asgi_post(app, path: str, headers: dict[str, str], chunks) -> tuple[int, dict, int]:
    """POST a body sent chunk by chunk straight to the ASGI app: (status, JSON answer, bytes it read)."""
    read = 0
    sent: list[dict] = []

    async def receive():
        nonlocal read
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        read += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 40000), "server": ("testserver", 80),
    }
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), read


def _multipart_chunks(name: str, size: int, block: int = 256 << 10):
    yield (f'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
           "Content-Type: text/plain\r\n\r\n").encode()
    for _ in range(size // block):
        yield "法治".encode() * (block // 6)


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_200_mb_upload_over_http_is_413_before_it_is_read(tmp_path, declared):
    pipeline = own_pipeline(tmp_path, **{"server.max_upload_mb": 1})
    app = create_app(pipeline, ui=False)
    headers = {"content-type": "multipart/form-data; boundary=XyZ"}
    if declared:
        headers["content-length"] = str(BIG)
    tracemalloc.start()
    try:
        status, body, read = asgi_post(app, "/api/reports", headers, _multipart_chunks("huge.txt", BIG))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert status == 413
    assert "server.max_upload_mb" in body["detail"] and "1 MB" in body["detail"]
    assert read == 0 if declared else read <= 1 * MB + (512 << 10)
    assert peak < 16 * MB
    assert kept_uploads(pipeline) == []


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("a;rm -rf ~;$(reboot)`id`|x&.txt", "a_rm_-rf_(reboot)_id_x_.txt"),  # $ ; ` | & gone: ( ) stay, as in 报告(终稿)
        ("-rf --no-preserve-root.md", "rf_--no-preserve-root.md"),
        (".hidden.txt", "hidden.txt"),
        ("报告 <2024> \"终稿\".TXT", "报告_2024_终稿_.txt"),
        ("report\u202etxt.exe.txt", "report_txt.exe.txt"),
        ("sub/dir/name.docx", "name.docx"),
        ("荣" * 300 + ".pdf", "荣" * ((MAX_NAME_BYTES - 4) // 3) + ".pdf"),
    ],
)
def test_upload_names_are_sanitised(tmp_path, filename, expected):
    files = ReportFiles(own_pipeline(tmp_path, ingest=False))
    name = files.upload_name(filename)
    assert name == expected
    assert len(name.encode()) <= MAX_NAME_BYTES


def test_shell_and_overlong_names_upload_into_the_reports_folder(own, tmp_path):
    pipeline, client = own
    for n, filename in enumerate(("a;rm -rf ~;$(reboot)`id`|x&.txt", "荣" * 300 + ".txt")):
        r = upload(client, filename, UPLOAD_REPORT.replace("865件", f"86{n}件").encode())  # two reports, not one twice
        assert r.status_code == 201, r.text
        assert (pipeline.settings.data_dir / "reports" / r.json()["file"]).is_file()
    assert len(kept_uploads(pipeline)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "seeds"]


# ---- requests ---------------------------------------------------------------------------------

JSON = {"content-type": "application/json"}
LONG_HISTORY_QUESTION = [["行政复议" * 200, "22.22%[1]"]]


@pytest.mark.parametrize(
    ("route", "request_kwargs", "status", "words"),
    [
        ("/api/ask", {"content": b'{"question": "', "headers": JSON}, 422, "not valid JSON"),
        ("/api/ask", {"content": b'{"question": "\xff\xfe"}', "headers": JSON}, 400, "UTF-8 JSON"),
        ("/api/ask", {"json": ["a", "list"]}, 422, "valid dictionary"),
        ("/api/ask", {"json": {"question": ["行政复议"]}}, 422, "question: Input should be a valid string"),
        ("/api/ask", {"content": b'{"question": "\\ud800\xe8\xa1\x8c"}', "headers": JSON}, 422, "surrogate"),
        ("/api/ask", {"json": {"question": QUESTION, "history": LONG_HISTORY_QUESTION}}, 413, "history 第 1 轮"),
        ("/api/ask", {"json": {"question": "那呢？", "history": [["问" * 1000, "答"]] * 400}}, 413, "请求体太大"),
        ("/api/ask/stream", {"json": {"question": QUESTION, "history": LONG_HISTORY_QUESTION}}, 413, "max_question_chars"),
        ("/api/ask", {"json": {"question": QUESTION, "filters": {"years": [10**30]}}}, 422, "filters.years.0"),
        ("/api/ask", {"json": {"question": QUESTION, "filters": {"districts": ["区"] * 51}}}, 422, "at most 50"),
        ("/api/feedback", {"json": {"rating": "up", "question": "问" * 501, "answer": {"answer": "a"}}}, 413, "问题过长"),
        ("/v1/chat/completions", {"content": b"{", "headers": JSON}, 422, "not valid JSON"),
        ("/v1/chat/completions", {"json": {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}},
         422, "messages.0.content.0.text"),
        ("/v1/chat/completions", {"json": {"messages": [{"role": "user", "content": "行政复议" * 200},
                                                        {"role": "assistant", "content": "答"},
                                                        {"role": "user", "content": "那呢？"}]}}, 413, "history 第 1 轮"),
        ("/v1/chat/completions", {"json": {"messages": "hello"}}, 422, "messages"),
    ],
)
def test_malformed_requests_are_4xx_with_a_message(client, route, request_kwargs, status, words):
    r = client.post(route, **request_kwargs)
    assert r.status_code == status, r.text
    body = r.json()
    message = body["error"]["message"] if route.startswith("/v1/") else body["detail"]
    assert isinstance(message, str) and words in message, message


def test_a_json_body_over_the_limit_is_refused_unread(own):
    _, client = own
    status, body, read = asgi_post(client.app, "/api/ask", {**JSON, "content-length": str(BIG)},
                                    iter([b"{}"] * 10))
    assert (status, read) == (413, 0)
    assert f"{MAX_JSON_BYTES // 1024} KB" in body["detail"]


@pytest.mark.parametrize(
    ("method", "path", "payload", "status", "words"),
    [
        ("patch", f"/api/reports/{RONGCHANG}", {"year": 10**30}, 422, "year: Input should be less than or equal to 2099"),
        ("patch", f"/api/reports/{RONGCHANG}", {"year": -1}, 422, "year"),
        ("patch", f"/api/reports/{RONGCHANG}", {"district": "区" * 61}, 422, "district"),
        ("get", f"/api/reports/{RONGCHANG}/passage?start=-5&end=-1", None, 422, "query.start"),
        ("get", f"/api/reports/{RONGCHANG}/passage?start={10**40}&end={10**41}", None, 400, "outside"),
    ],
)
def test_bad_report_edits_and_offsets_are_4xx(own, method, path, payload, status, words):
    _, client = own
    r = client.request(method.upper(), path, json=payload)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]


def test_a_sidecar_with_an_impossible_year_fails_its_report_only(tmp_path):
    pipeline = own_pipeline(tmp_path, ingest=False)
    (pipeline.settings.seeds_dir / f"{RONGCHANG}.meta.yaml").write_text("year: 99999999999999999999\n", encoding="utf-8")
    summary = pipeline.ingest()
    assert summary.new == []
    assert "is not between 1900 and 2099" in summary.failed[RONGCHANG]


def test_loaded_text_of_an_upload_is_what_was_sent(own):
    """A control: the refusals above are not a loader that refuses everything."""
    pipeline, client = own
    assert upload(client, "ok.txt", UPLOAD_REPORT.encode()).status_code == 201
    path = pipeline.settings.data_dir / "reports" / "ok.txt"
    assert load_report(path, max_bytes=MB).text == UPLOAD_REPORT


def test_a_utf16_upload_without_a_byte_order_mark_is_ingested_and_answers(own):
    """Saved as "Unicode" (UTF-16 LE) by Notepad without a BOM: before, refused as binary."""
    pipeline, client = own
    r = upload(client, "bishan.txt", UPLOAD_REPORT.encode("utf-16-le"))
    assert r.status_code == 201, r.text
    assert r.json()["report"]["district"] == "璧山区" and r.json()["report"]["year"] == 2024
    answer = client.post("/api/ask", json={"question": "璧山区2024年办理法律援助案件多少件？"}).json()
    assert "865件" in answer["answer"] and {c["file"] for c in answer["citations"]} == {"bishan.txt"}
