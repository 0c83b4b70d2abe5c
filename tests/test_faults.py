"""Faults caused for real: a killed ingest, two ingests at once, questions during an ingest,
an LLM server that dies mid-answer, a hosted endpoint that hangs or sends garbage, a Chroma
server stopped and started again, a full or read-only disk.

Ingests that get killed run in real subprocesses (tests/chaos/worker.py); LLM and Chroma
servers are real sockets on 127.0.0.1. A full or read-only disk is a real tmpfs or read-only
bind mount inside `unshare -rm` where the machine allows it, and an injected OSError everywhere.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import filelock
import pytest
from fastapi.testclient import TestClient
from langchain_core.embeddings import DeterministicFakeEmbedding

from eval.processes import chroma_server, data_dir_sharing_models, free_port
from rag.api import create_app
from rag.claims import Ask
from rag.components import build_chat_model_factories
from rag.errors import IndexUnavailableError, IngestBusyError, IngestError, LLMUnavailableError
from rag.search_index import SearchIndex
from rag.pipeline import Pipeline
from rag.report_files import ReportFiles
from rag.settings import load_settings
from rag.store import KnowledgeBase
from tests.chaos.worker import SlowFakeEmbedding, census, chroma_client
from tests.test_api import sse_events
from tests.conftest import SEEDS, UPLOAD_REPORT, make_kb, writer_pipeline

WORKER = Path(__file__).parent / "chaos" / "worker.py"
QUESTION = "荣昌区2024年行政复议直接纠错率是多少？"
RONGCHANG = "003_190862aaa87d2635.txt"  # holds 直接纠错率22.22%
FIGURE, NEW_FIGURE = "22.22%", "33.33%"


def _files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.txt"))


def _settings(data_dir: Path, **overrides):
    """Extractive answers ranked by BM25 alone: the fake embeddings rank at random."""
    return load_settings(overrides={
        "data_dir": str(data_dir), "llm.provider": "extractive", "retrieval.dense_weight": 0, **overrides,
    })


def _said(answer) -> tuple:
    """What an answer says and cites, without its timings."""
    return answer.answer, tuple((c.file, c.start, c.end, c.quote) for c in answer.citations)


def _agrees(counts: dict) -> None:
    """Chunks per file agree between the manifest, Chroma and the search index; nothing left over."""
    assert counts["manifest"] == counts["chroma"] == counts["search"], counts
    assert counts["orphans"] == counts["duplicates"] == 0, counts


# ---- worker subprocesses ---------------------------------------------------------------


def _worker(data_dir: Path, collection: str, *steps: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(data_dir), collection, *steps],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _events(lines) -> list[dict]:
    return [json.loads(line) for line in lines if line.startswith("{")]


def _finish(process: subprocess.Popen, timeout: float = 120) -> list[dict]:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    return _events(out.splitlines())


def _ingest_arg(files: list[Path]) -> str:
    return "ingest=" + ",".join(map(str, files))


# ---- SIGKILL halfway, and a second ingest meanwhile ----------------------------------------


def _kb(data_dir: Path, collection: str, where: str = "") -> KnowledgeBase:
    """A knowledge base with fake embeddings on the Chroma that `where` names, as the worker's first step."""
    return KnowledgeBase(
        chroma_client(data_dir, where), DeterministicFakeEmbedding(size=32), collection=collection,
        index_dir=data_dir / "search", lock_path=data_dir / "ingest.lock",
    )


@pytest.fixture(scope="module", params=["embedded", pytest.param("server", marks=pytest.mark.integration)])
def killed_ingest(request, tmp_path_factory):
    """Ingest two reports; a worker ingests all five slowly and is SIGKILLed halfway; rerun it.

    This process plays `fazhi serve`: it answers before, during and after, and tries a second
    ingest (directly and by upload) while the worker holds the lock. Chroma is embedded, or a
    real server shared by both processes.
    """
    root = tmp_path_factory.mktemp("killed")
    shutil.copytree(SEEDS, root / "reports")
    if request.param == "embedded":
        yield {"mode": "embedded", **_kill_and_rerun(root / "data", _files(root / "reports"), [])}
        return
    port = free_port()
    with chroma_server(root / "chroma-server", port):
        yield {"mode": "server", **_kill_and_rerun(root / "data", _files(root / "reports"), [f"server={port}"])}


def _kill_and_rerun(data: Path, files: list[Path], where: list[str]) -> dict:
    kb = _kb(data, "killed-ingest", *where)
    kb.ingest([files[0], files[3]])
    pipeline = Pipeline(_settings(data), kb)
    seen = {"files": [f.name for f in files], "manifest_before": kb.manifest(), "before": _said(pipeline.ask(QUESTION))}

    worker = _worker(data, "killed-ingest", *where, "delay=0.3", _ingest_arg(files))
    batches = []
    for line in worker.stdout:
        batches += [e for e in _events([line]) if e["event"] == "batch"]
        if len(batches) == 3:
            break
    assert len(batches) == 3, f"the worker stopped early: {worker.stderr.read()[-3000:]}"
    seen["during"] = _said(pipeline.ask(QUESTION))
    with pytest.raises(IngestBusyError) as busy:
        kb.ingest(files)
    seen["busy"] = busy.value
    upload = TestClient(create_app(pipeline, ui=False)).post(
        "/api/reports", files={"file": ("璧山区2024.txt", UPLOAD_REPORT.encode(), "text/plain")}
    )
    seen["upload"] = (upload.status_code, upload.json())
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    seen.update(killed_at=batches[-1], returncode=worker.returncode, manifest_after=kb.manifest())
    seen["after"] = _said(pipeline.ask(QUESTION))

    events = _finish(_worker(data, "killed-ingest", *where, _ingest_arg(files), f"census={QUESTION}"))
    seen["rerun"] = next(e for e in events if e["event"] == "ingested")
    seen["census"] = next(e for e in events if e["event"] == "census")
    seen["check"] = kb.check()
    try:
        seen["after_rerun"] = _said(pipeline.ask(QUESTION))
    except IndexUnavailableError as err:
        seen["after_rerun"] = err
    return seen


def test_sigkill_halfway_leaves_the_old_index_answering(killed_ingest):
    seen = killed_ingest
    assert seen["returncode"] == -signal.SIGKILL
    assert 0 < seen["killed_at"]["done"] < seen["killed_at"]["total"]
    before, after = seen["manifest_before"], seen["manifest_after"]
    assert {**after, "pending": False} == before and after["pending"]  # unnamed chunks exist: searches filter
    assert seen["during"] == seen["after"] == seen["before"]
    assert FIGURE in seen["before"][0] and seen["before"][1][0][0] == RONGCHANG


def test_rerun_after_sigkill_finishes_without_duplicates_or_orphans(killed_ingest):
    seen = killed_ingest
    rerun, counts = seen["rerun"], seen["census"]
    assert rerun["unchanged"] == [seen["files"][0], seen["files"][3]] and not rerun["failed"]
    assert sorted(rerun["new"]) == sorted(set(seen["files"]) - set(rerun["unchanged"]))
    # the chunks the killed run embedded are reused, not embedded again
    fresh = rerun["chunks_total"] - sum(r["chunks"] for r in seen["manifest_before"]["reports"].values())
    assert rerun["chunks_embedded"] <= fresh - seen["killed_at"]["done"]
    assert set(counts["manifest"]) == set(seen["files"]) and sum(counts["manifest"].values()) == rerun["chunks_total"]
    _agrees(counts)
    assert counts["search_saved"] and RONGCHANG in counts["keyword_hits"] and counts["dense_hits"]
    assert seen["check"].ok, seen["check"].as_dict()


def test_after_the_rerun_this_process_answers_from_the_new_index_or_says_to_restart(killed_ingest):
    """A Chroma server shows the rerun's index at once; embedded Chroma loads vectors once per process."""
    after = killed_ingest["after_rerun"]
    if killed_ingest["mode"] == "server":
        assert FIGURE in after[0] and after[1][0][0] == RONGCHANG
    else:
        assert isinstance(after, IndexUnavailableError) and after.http_status == 503
        assert "Restart this process" in str(after) and "chroma.mode: server" in str(after)


def test_second_ingest_while_one_runs_is_refused_with_409(killed_ingest):
    seen = killed_ingest
    assert "另一个导入正在进行" in str(seen["busy"]) and seen["busy"].http_status == 409
    status, body = seen["upload"]
    assert status == 409 and body["error"] == "IngestBusyError" and "fazhi ingest" in body["detail"]


# ---- an upload that replaces a report, killed or interrupted halfway -----------------------------

# A process that uploads one report as `fazhi serve` would: argv is ROOT DATA NAME SOURCE MODE, where
# MODE "slow" embeds slowly (to be killed from outside) and "die-at-commit" SIGKILLs itself right
# after the manifest names the new bytes, before anything else happens.
_UPLOADER = """
import os, signal, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from tests.chaos.worker import SlowFakeEmbedding, chroma_client, emit
from rag.pipeline import Pipeline
from rag.report_files import ReportFiles
from rag.settings import load_settings
from rag.store import KnowledgeBase

data, name, source, mode = Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4]), sys.argv[5]
kb = KnowledgeBase(chroma_client(data, ""), SlowFakeEmbedding(size=32, delay=0.3 if mode == "slow" else 0),
                   collection="uploads", index_dir=data / "search", lock_path=data / "ingest.lock", embed_batch_size=4)
if mode == "die-at-commit":
    commit = kb._commit_manifest

    def commit_then_die(manifest):
        commit(manifest)
        if not manifest["pending"]:
            os.kill(os.getpid(), signal.SIGKILL)

    kb._commit_manifest = commit_then_die
files = ReportFiles(Pipeline(load_settings(overrides={"data_dir": str(data), "llm.provider": "extractive"}), kb))
with source.open("rb") as upload:
    added = files.add(name, upload, progress=lambda file, done, total: emit("batch", done=done, total=total))
emit("uploaded", **added["summary"])
"""


def _uploader(data: Path, name: str, source: Path, mode: str) -> subprocess.Popen:
    root = Path(__file__).resolve().parents[1]
    return subprocess.Popen([sys.executable, "-c", _UPLOADER, str(root), str(data), name, str(source), mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("kill", ["while-embedding", "after-the-commit"])
def test_a_replacing_upload_killed_halfway_leaves_the_file_the_index_names(tmp_path, kill):
    """SIGKILL while the new bytes embed (the old ones stay), or just after the commit (the new ones win).

    After the restart (this process, on the same data folder), the first change to the uploads, a
    metadata fix, first finishes or rolls back the swap, then ingests the confirmed bytes; a removal
    then leaves nothing behind.
    """
    data, old, new = tmp_path / "data", tmp_path / "old.txt", tmp_path / "new.txt"
    old.write_text(UPLOAD_REPORT, encoding="utf-8")
    new.write_text(UPLOAD_REPORT.replace("865件", "866件") * 20, encoding="utf-8")
    _finish(_uploader(data, "bishan.txt", old, "fast"))
    worker = _uploader(data, "bishan.txt", new, "slow" if kill == "while-embedding" else "die-at-commit")
    if kill == "while-embedding":
        batches = 0
        for line in worker.stdout:
            batches += line.startswith('{"event": "batch"')
            if batches == 2:
                break
        assert batches == 2, worker.stderr.read()[-3000:]
        worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=120)
    assert worker.returncode == -signal.SIGKILL, worker.stderr.read()[-3000:]
    confirmed = old if kill == "while-embedding" else new

    pipeline = Pipeline(_settings(data), _kb(data, "uploads"))
    files, folder = ReportFiles(pipeline), data / "reports"
    assert pipeline.kb.manifest()["reports"]["bishan.txt"]["sha256"] == _sha256(confirmed)
    left = {p.kind for p in pipeline.kb_check().problems}
    assert left <= {"orphan_chunks", "pending", "staged_upload", "changed_upload"} and "staged_upload" in left
    fixed = files.fix("bishan.txt", district="铜梁区")
    assert fixed["report"]["district"] == "铜梁区"
    assert sorted(p.name for p in folder.iterdir()) == ["bishan.txt", "bishan.txt.meta.yaml"]
    assert not any((data / "reports.staging").iterdir())
    assert _sha256(folder / "bishan.txt") == _sha256(confirmed)
    assert pipeline.kb.report_text("bishan.txt") == confirmed.read_text(encoding="utf-8")
    assert pipeline.kb_check().ok
    files.remove("bishan.txt")
    assert list(folder.iterdir()) == [] and pipeline.kb_check().ok


@pytest.mark.parametrize("where", ["embedding", "collecting-garbage"])
def test_a_replacing_upload_interrupted_in_this_process_leaves_the_file_the_index_names(tmp_path, monkeypatch, where):
    """A KeyboardInterrupt before the commit (the old bytes stay) or after it (the new ones win)."""
    data = tmp_path / "data"
    pipeline = Pipeline(_settings(data), make_kb(data))
    files, folder = ReportFiles(pipeline), data / "reports"
    old, new = UPLOAD_REPORT.encode(), UPLOAD_REPORT.replace("865件", "866件").encode()
    files.add("bishan.txt", io.BytesIO(old))

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(*((pipeline.kb.vectors, "add_documents") if where == "embedding"
                          else (pipeline.kb, "_collect_garbage")), interrupt)
    with pytest.raises(KeyboardInterrupt):
        files.add("bishan.txt", io.BytesIO(new))
    monkeypatch.undo()
    assert sorted(p.name for p in folder.iterdir()) == ["bishan.txt"]
    assert not any((data / "reports.staging").iterdir())
    assert (folder / "bishan.txt").read_bytes() == (old if where == "embedding" else new)
    assert _sha256(folder / "bishan.txt") == pipeline.kb.manifest()["reports"]["bishan.txt"]["sha256"]
    assert {p.kind for p in pipeline.kb_check().problems} <= {"orphan_chunks", "orphan_text", "pending"}
    assert pipeline.kb_check(repair=True).ok and pipeline.kb_check().ok


# ---- questions while an ingest runs in this process ------------------------------------------


def _replace_figure(folder: Path) -> None:
    report = folder / RONGCHANG
    report.write_text(report.read_text(encoding="utf-8").replace(FIGURE, NEW_FIGURE), encoding="utf-8")


def test_question_spanning_a_commit_is_answered_from_one_version(tmp_path, seeds_copy, monkeypatch):
    """The commit and its garbage collection land between reading the manifest and searching."""
    settings = _settings(tmp_path / "data")
    kb = make_kb(settings.data_dir)
    kb.ingest(_files(seeds_copy))
    pipeline = Pipeline(settings, kb)
    old = _said(pipeline.ask(QUESTION))
    _replace_figure(seeds_copy)
    searched = []
    dense_search = kb.dense_search

    def ingest_lands_first(query, k, manifest, *args):
        if not searched:
            kb.ingest(_files(seeds_copy))
        searched.append(manifest["version"])
        return dense_search(query, k, manifest, *args)

    monkeypatch.setattr(kb, "dense_search", ingest_lands_first)
    spanning = _said(pipeline.ask(QUESTION))
    monkeypatch.undo()
    new = _said(pipeline.ask(QUESTION))
    assert FIGURE in old[0] and NEW_FIGURE in new[0]
    assert spanning == new
    assert len(set(searched)) == 2  # the old version first, then the search again on the new one


def test_questions_during_an_ingest_see_the_old_or_the_new_index(tmp_path, seeds_copy):
    settings = _settings(tmp_path / "data")
    kb = make_kb(settings.data_dir, embeddings=SlowFakeEmbedding(size=32, delay=0.01))
    kb.embed_batch_size = 2
    kb.ingest(_files(seeds_copy))
    pipeline = Pipeline(settings, kb)
    old = _said(pipeline.ask(QUESTION))
    _replace_figure(seeds_copy)
    (seeds_copy / "璧山区2024.txt").write_text(UPLOAD_REPORT * 20, encoding="utf-8")
    ingest = threading.Thread(target=kb.ingest, args=(_files(seeds_copy),))
    ingest.start()
    during = []
    while ingest.is_alive():
        during.append(_said(pipeline.ask(QUESTION)))
    ingest.join()
    new = _said(pipeline.ask(QUESTION))
    assert NEW_FIGURE in new[0] and new != old
    assert len(during) >= 3 and set(during) <= {old, new}, {a[0] for a in during}
    _agrees(census(kb, QUESTION))
    assert kb.check().ok


# ---- LLM servers that die, hang or send garbage --------------------------------------------


CLAIM = "荣昌区2024年行政复议直接纠错率为22.22%[1]。"  # the answer to QUESTION: shown once checked
TOKENS = [CLAIM, "其中", "涉企", "案件", "较多", "。"]


class FakeChatServer:
    """An OpenAI-compatible chat endpoint on 127.0.0.1, streaming TOKENS like llama.cpp (chunked).

    mode "ok" answers; "hang" never answers; "garbage" sends an HTML error page with status 200,
    "bad-gateway" with status 502;
    "crash" sends two tokens (a whole claim, then a word), then drops the connection and stops listening, as a crash would.
    Called with llama.cpp's params it stands in for xllamacpp.Server, on params.port.
    """

    def __init__(self, params=None, mode: str = "ok"):
        fake = self
        self.mode, self.requests, self.released, self.connections = mode, 0, threading.Event(), []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                fake.connections.append(self.connection)

            def do_GET(self):
                self._send(200, "application/json", [b'{"status":"ok"}'])

            def do_POST(self):
                fake.requests += 1
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if fake.mode == "hang":
                    fake.released.wait(30)
                elif fake.mode in ("garbage", "bad-gateway"):
                    status = 200 if fake.mode == "garbage" else 502
                    self._send(status, "text/html", [b"<html><body>502 Bad Gateway</body></html>"])
                else:
                    self._send(200, "text/event-stream", [_sse_chunk(t) for t in TOKENS] + [b"data: [DONE]\n\n"])

            def _send(self, status, content_type, parts):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for n, part in enumerate(parts):
                    if fake.mode == "crash" and n == 2:
                        fake.die()
                        return
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", params.port if params else 0), Handler)
        self.listening_address = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def die(self):
        """Stop listening and cut every open connection."""
        self.released.set()
        threading.Thread(target=self.httpd.shutdown).start()  # not from a handler's own thread: it waits
        self.httpd.server_close()
        for connection in self.connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # closed already


def _sse_chunk(text: str) -> bytes:
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "fake",
             "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode()


def test_local_llm_server_crashing_mid_answer_gives_503_and_the_next_question_restarts_it(
    seeded_pipeline, monkeypatch, tmp_path
):
    pytest.importorskip("xllamacpp")
    from rag import local_llm

    monkeypatch.setattr(local_llm, "prepare_local_llm", lambda models_dir, name: tmp_path / name)
    modes, started = ["crash", "crash", "ok"], []

    def llama(params):
        started.append(FakeChatServer(params, modes.pop(0)))
        return started[-1]

    settings = seeded_pipeline.settings.with_overrides({"llm.provider": "local"})
    server = local_llm.LocalLLMServer(settings, server_factory=llama)
    pipeline = writer_pipeline(Pipeline(settings, seeded_pipeline.kb), build_chat_model_factories(settings, local_server=server))
    client = TestClient(create_app(pipeline, ui=False))
    try:
        streamed = sse_events(client.post("/api/ask/stream", json={"question": QUESTION}).text)
        assert streamed[0] == ("delta", {"text": CLAIM})
        assert streamed[-1][0] == "error" and streamed[-1][1]["status"] == 503
        assert "did not answer" in streamed[-1][1]["detail"] and not server.is_running()

        crashed = client.post("/api/ask", json={"question": QUESTION})  # restarted, then crashes again
        assert crashed.status_code == 503 and crashed.json()["error"] == "LLMUnavailableError"

        answered = client.post("/api/ask", json={"question": QUESTION})
        assert answered.status_code == 200 and answered.json()["answer"].startswith(CLAIM)
        assert len(started) == 3 and len({s.listening_address for s in started}) == 1
    finally:
        server.stop()
        for fake in started:
            fake.die()


@pytest.mark.parametrize(
    ("mode", "requests"),
    # a timeout or a 5xx is retried llm.max_retries (1) times; a garbled 200 is not
    [("hang", 2), ("bad-gateway", 2), ("garbage", 1)],
)
def test_hosted_endpoint_hanging_or_sending_garbage_gives_503_with_bounded_retries(
    seeded_pipeline, monkeypatch, mode, requests
):
    monkeypatch.setenv("FAULT_TEST_KEY", "sk-test")
    endpoint = FakeChatServer(mode=mode)
    settings = seeded_pipeline.settings.with_overrides({
        "llm.provider": "openai", "llm.timeout_s": 0.5, "llm.max_retries": 1,
        "llm.openai.base_url": f"{endpoint.listening_address}/v1", "llm.openai.api_key_env": "FAULT_TEST_KEY",
    })
    pipeline = Pipeline(settings, seeded_pipeline.kb, build_chat_model_factories(settings))
    client = TestClient(create_app(pipeline, ui=False))
    try:
        started = time.monotonic()
        failed = client.post("/api/ask", json={"question": QUESTION})
        seconds = time.monotonic() - started
        assert failed.status_code == 503 and failed.json()["error"] == "LLMUnavailableError"
        assert "did not answer" in failed.json()["detail"] and "openai" in failed.json()["detail"]
        assert endpoint.requests == requests and seconds < 5

        endpoint.mode = "ok"
        answered = client.post("/api/ask", json={"question": QUESTION})
        assert answered.status_code == 200 and answered.json()["answer"].startswith(CLAIM)
        assert endpoint.requests == requests + 1
    finally:
        endpoint.die()


@pytest.mark.integration
def test_real_local_llm_stopped_mid_answer_then_restarted(seeded_pipeline, tmp_path):
    from rag.local_llm import LocalLLMServer

    settings = seeded_pipeline.settings.with_overrides(
        {"llm.provider": "local", "llm.max_tokens": 16, "llm.context_tokens": 50, "llm.local.n_ctx": 1024,
         # the models folder built by `fazhi models prepare`, in a data folder of the test's own (the
         # real one's 指标库 table, rebuilt by an ingest beside the test, would answer instead)
         "data_dir": str(data_dir_sharing_models(tmp_path))}
    )
    server = LocalLLMServer(settings)
    pipeline = Pipeline(settings, seeded_pipeline.kb, build_chat_model_factories(settings, local_server=server))
    try:
        stream = pipeline.answerer().stream(Ask.read(QUESTION), pipeline.excerpts(QUESTION))
        first = next(stream)  # the model's own first token: the answer stream shows text only once checked
        assert isinstance(first, str) and server.is_running()
        threading.Thread(target=server.stop).start()
        with pytest.raises(LLMUnavailableError, match="did not answer"):
            list(stream)
        assert not server.is_running()
        answer = pipeline.ask(QUESTION)
        assert server.is_running() and answer.answer and answer.provider == "local"
    finally:
        server.stop()


# ---- the Chroma server stopped and started again -----------------------------------------


@pytest.mark.integration
def test_chroma_server_stopped_gives_503_and_answers_again_once_restarted(tmp_path, seeds_copy):
    port, store = free_port(), tmp_path / "chroma-server"
    with chroma_server(store, port):
        settings = _settings(tmp_path / "data", **{"chroma.mode": "server", "chroma.port": port})
        kb = _kb(settings.data_dir, "faults", f"server={port}")
        kb.ingest(_files(seeds_copy)[2:4])
        api = TestClient(create_app(Pipeline(settings, kb), ui=False))
        before = api.post("/api/ask", json={"question": QUESTION})
        assert before.status_code == 200 and FIGURE in before.json()["answer"]

    down = api.post("/api/ask", json={"question": QUESTION})
    assert down.status_code == 503 and down.json()["error"] == "IndexUnavailableError"
    assert f"127.0.0.1:{port} does not answer" in down.json()["detail"] and "chroma run" in down.json()["detail"]
    assert api.get("/healthz").status_code == 503

    with chroma_server(store, port):
        again = api.post("/api/ask", json={"question": QUESTION})
        assert again.status_code == 200 and again.json()["answer"] == before.json()["answer"]
        assert api.get("/healthz").status_code == 200


# ---- a full or read-only disk ----------------------------------------------------------------


def _fail_index_save(kb, monkeypatch, code):
    def save(index, folder):
        raise OSError(code, f"[injected] {errno.errorcode[code]}", str(folder))

    monkeypatch.setattr(SearchIndex, "save", save)


def _fail_chroma_add(kb, monkeypatch, code):
    def add_documents(*args, **kwargs):
        raise OSError(code, f"[injected] {errno.errorcode[code]}", "chroma.sqlite3")

    monkeypatch.setattr(kb.vectors, "add_documents", add_documents)


def _fail_lock(kb, monkeypatch, code):
    def acquire(*args, **kwargs):
        raise OSError(code, f"[injected] {errno.errorcode[code]}", str(kb.lock_path))

    monkeypatch.setattr(filelock.FileLock, "acquire", acquire)


@pytest.mark.parametrize(
    ("inject", "code", "says"),
    [
        (_fail_index_save, errno.ENOSPC, "Free disk space or make the data folder writable"),
        (_fail_chroma_add, errno.ENOSPC, "Free disk space or make the data folder writable"),
        (_fail_index_save, errno.EROFS, "Free disk space or make the data folder writable"),
        (_fail_lock, errno.EROFS, "the data folder must be writable"),
    ],
    ids=["disk-full-at-index-save", "disk-full-at-chroma-add", "read-only-at-index-save", "read-only-at-lock"],
)
def test_write_failure_during_ingest_is_clear_and_the_old_index_answers(
    tmp_path, seeds_copy, monkeypatch, inject, code, says
):
    settings = _settings(tmp_path / "data")
    kb = make_kb(settings.data_dir)
    files = _files(seeds_copy)
    kb.ingest(files[2:4])
    pipeline = Pipeline(settings, kb)
    old, before = kb.manifest(), _said(pipeline.ask(QUESTION))
    inject(kb, monkeypatch, code)
    with pytest.raises(IngestError, match=says) as failed:
        kb.ingest(files)
    assert "[injected]" in str(failed.value)
    assert "previous index is unchanged" in str(failed.value) or "nothing was changed" in str(failed.value)
    assert kb.manifest()["reports"] == old["reports"] and _said(pipeline.ask(QUESTION)) == before
    assert not list(settings.data_dir.glob("search/*.partial"))
    monkeypatch.undo()
    assert len(kb.ingest(files).new) == 3
    _agrees(census(kb, QUESTION))
    assert kb.check().ok


def _in_namespace(script: str, folder: Path, timeout: float = 180) -> list[dict]:
    """Run a shell script as root of a new user and mount namespace; skip where that is not allowed."""
    probe = subprocess.run(["unshare", "-rm", "mount", "-t", "tmpfs", "tmpfs", str(folder)], capture_output=True)
    if probe.returncode:
        pytest.skip(f"no mount namespace here ({probe.stderr.decode().strip()}); the injected faults cover it")
    done = subprocess.run(["unshare", "-rm", "sh", "-ec", script], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return _events(done.stdout.splitlines())


def test_disk_full_on_a_real_tiny_filesystem(tmp_path, seeds_copy):
    data, files = tmp_path / "data", _files(seeds_copy)
    data.mkdir()
    worker = f"{sys.executable} {WORKER} {data} tiny"
    events = _in_namespace(
        f"mount -t tmpfs -o size=4m tmpfs {data}\n"
        f"{worker} margin=1000000 {_ingest_arg(files[2:4])} census={QUESTION} fill=60000 {_ingest_arg(files)} "
        f"census={QUESTION} "
        f"unfill {_ingest_arg(files)} census={QUESTION}",
        data,
    )
    error = next(e for e in events if e["event"] == "error")
    before, after_error, after_rerun = [e for e in events if e["event"] == "census"]
    assert error["kind"] == "IngestError" and "Free disk space" in error["message"], error
    assert after_error == before and RONGCHANG in before["keyword_hits"]
    _agrees(after_error)
    assert len(after_rerun["manifest"]) == 5
    _agrees(after_rerun)


def test_a_disk_filling_during_an_ingest_stops_it_before_chroma_fails(tmp_path, seeds_copy):
    """The ingest stops at the batch that would leave less than the margin free: Chroma never meets
    a full disk, so this process and a restarted one answer from the old index; freeing space and
    ingesting again completes it."""
    data, files = tmp_path / "data", _files(seeds_copy)
    data.mkdir()
    worker = f"{sys.executable} {WORKER} {data} tiny"
    events = _in_namespace(
        f"mount -t tmpfs -o size=8m tmpfs {data}\n"
        f"{worker} margin=2000000 {_ingest_arg(files[2:4])} census={QUESTION} fill=2300000 "
        f"{_ingest_arg(files)} census={QUESTION} ask={QUESTION}\n"
        f"{worker} margin=2000000 census={QUESTION} ask={QUESTION} unfill {_ingest_arg(files)} census={QUESTION}",
        data,
    )
    error = next(e for e in events if e["event"] == "error")
    assert error["kind"] == "IngestError" and "Free disk space" in error["message"], error
    assert any(e["event"] == "batch" for e in events[: events.index(error)]), "it stopped during, not before"
    before, after_error, restarted, after_rerun = [e for e in events if e["event"] == "census"]
    def answering(census: dict) -> dict:  # the chunks the stopped ingest embedded wait, unreferenced, for its rerun
        return {key: census[key] for key in ("version", "manifest", "search", "keyword_hits")}

    assert answering(after_error) == answering(restarted) == answering(before) and RONGCHANG in before["keyword_hits"]
    answers, healths = [e for e in events if e["event"] == "answer"], [e for e in events if e["event"] == "health"]
    assert len(answers) == 2 and all(FIGURE in a["text"] for a in answers) and all(h["ok"] for h in healths)
    assert len(after_rerun["manifest"]) == 5
    _agrees(after_rerun)


def test_a_store_chroma_cannot_read_is_a_503_with_the_reason_until_it_can(tmp_path, seeds_copy, monkeypatch):
    """A disk that fills under Chroma's own writes (no margin, or another program filling it) can
    leave a store that a restarted process cannot read: Chroma's compactor fails every read, as seen
    on a real tmpfs. Injected at that read: questions get 503 saying to free space (it was a 500),
    /healthz says so (it said ok), and both recover once reads work, without a restart."""
    from chromadb.errors import InternalError as ChromaInternalError

    settings = _settings(tmp_path / "data")
    kb = make_kb(settings.data_dir)
    kb.ingest(_files(seeds_copy))
    client = TestClient(create_app(Pipeline(settings, kb), ui=False))
    collection_get = type(kb._chunks).get

    def unreadable(*args, **kwargs):
        raise ChromaInternalError("Error executing plan: Error sending backfill request to compactor: "
                                  "Failed to apply logs to the metadata segment")

    monkeypatch.setattr(type(kb._chunks), "get", unreadable)
    monkeypatch.setattr(type(kb), "free_bytes", lambda self: 40 * 1024)
    asked, health = client.post("/api/ask", json={"question": QUESTION}), client.get("/healthz")
    assert asked.status_code == 503 and "free disk space" in asked.json()["detail"], asked.text
    assert health.status_code == 503 and "disk of the data folder is full" in health.json()["problems"][0]
    monkeypatch.setattr(type(kb._chunks), "get", collection_get)
    assert FIGURE in client.post("/api/ask", json={"question": QUESTION}).json()["answer"]
    assert client.get("/healthz").status_code == 200


def test_read_only_data_folder_refuses_ingest_and_still_answers(tmp_path, seeds_copy):
    """Chroma apart (say, a Chroma server), the data folder keeps the lock and the search index cache."""
    data, chroma, files = tmp_path / "data", tmp_path / "chroma", _files(seeds_copy)
    data.mkdir()
    worker = f"{sys.executable} {WORKER} {data} readonly chroma={chroma}"
    events = _in_namespace(
        f"mount --bind {data} {data}\n"
        f"{worker} {_ingest_arg(files[2:4])} census={QUESTION}\n"
        f"rm -r {data}/search\n"  # so the read-only process must build the search index itself
        f"{worker} readonly census={QUESTION} {_ingest_arg(files)} census={QUESTION}",
        data,
    )
    error = next(e for e in events if e["event"] == "error")
    written, read_only, after_error = [e for e in events if e["event"] == "census"]
    assert error["kind"] == "IngestError" and "Read-only file system" in error["message"]
    assert "the data folder must be writable" in error["message"]
    assert not read_only.pop("search_saved") and written.pop("search_saved")
    after_error.pop("search_saved")
    assert read_only == written == after_error
    _agrees(read_only)
