"""Server mode: two processes share one real Chroma server on loopback (marked integration).

Process A is this test process: it ingests the seeds with the real e5 embeddings. Process B is
`fazhi serve` with its own data_dir, so its own keyword-index cache. B must answer as A does,
and must see a report that A ingests later: each process rebuilds its keyword index from
Chroma when the manifest version changes.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from eval.processes import chroma_server, console_script, data_dir_sharing_models, free_port, running
from rag.pipeline import Pipeline
from rag.settings import load_settings
from tests.conftest import UPLOAD_REPORT

pytestmark = pytest.mark.integration

QUESTION = "荣昌区2024年行政复议直接纠错率是多少？"
FIGURE = "22.22%"  # seeds/003_…: 审结率为85.29%、直接纠错率22.22%
NEW_QUESTION = "璧山区2024年行政复议直接纠错率是多少？"
NEW_FIGURE = "18.5%"  # UPLOAD_REPORT: 直接纠错率18.5%


def _server_overrides(data: Path, port: int) -> dict[str, str]:
    return {
        "data_dir": str(data), "chroma.mode": "server", "chroma.host": "127.0.0.1",
        "chroma.port": str(port), "llm.provider": "extractive", "server.requests_per_minute": "10000",
    }


@pytest.fixture(scope="module")
def chroma_port(tmp_path_factory):
    """A Chroma server on a free loopback port with a fresh --path, stopped after the module."""
    folder = tmp_path_factory.mktemp("chroma-server")
    port = free_port()
    with chroma_server(folder / "db", port, folder / "chroma.log"):
        yield port


@pytest.fixture(scope="module")
def pipeline_a(chroma_port, tmp_path_factory):
    """Process A: the real pipeline in server mode, with the seeds ingested once."""
    data = data_dir_sharing_models(tmp_path_factory.mktemp("process-a"))
    pipeline = Pipeline.from_settings(load_settings(overrides=_server_overrides(data, chroma_port)))
    summary = pipeline.ingest()
    assert len(summary.new) == 5 and not summary.failed
    return pipeline


@pytest.fixture(scope="module")
def process_b(pipeline_a, chroma_port, tmp_path_factory):
    """Process B: `fazhi serve` on the same Chroma server with its own data_dir; yields (url, data_dir)."""
    data = data_dir_sharing_models(tmp_path_factory.mktemp("process-b"))
    port = free_port()
    sets = [arg for key, value in _server_overrides(data, chroma_port).items() for arg in ("--set", f"{key}={value}")]
    env = {k: v for k, v in os.environ.items() if k != "FAZHI_API_KEY" and not k.startswith("FAZHI__")}
    env["HF_HUB_OFFLINE"] = "1"
    args = [console_script("fazhi"), *sets, "serve", "--host", "127.0.0.1", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    with running(args, f"{url}/healthz", 240, data.parent / "serve.log", env):
        yield url, data


def _ask_b(url: str, question: str) -> dict:
    response = httpx.post(f"{url}/api/ask", json={"question": question}, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()


def _where(citations) -> list[tuple]:
    return [(c["file"], c["district"], c["year"], c["start"], c["end"]) for c in citations]


def test_process_a_answers_through_the_server(pipeline_a):
    answer = pipeline_a.ask(QUESTION)
    assert FIGURE in answer.answer and not answer.refused
    assert answer.citations[0].district == "荣昌区" and answer.citations[0].year == 2024
    assert "〔荣昌区 · 2024 ·" in answer.citations[0].label()
    health = pipeline_a.health()
    assert health["chroma"] == {"ok": True, "mode": "server"} and health["index"]["reports"] == 5


def test_a_second_process_sees_the_same_reports_and_answers_the_same(pipeline_a, process_b):
    url, data_b = process_b
    listed = httpx.get(f"{url}/api/reports", timeout=30).json()
    assert listed == pipeline_a.reports()
    got = _ask_b(url, QUESTION)
    expected = pipeline_a.ask(QUESTION)
    assert FIGURE in got["answer"] and got["answer"] == expected.answer
    assert _where(got["citations"]) == _where(c.model_dump() for c in expected.citations)
    # B built its own search index from Chroma, under the manifest version A committed
    version = pipeline_a.kb.manifest()["version"]
    assert (data_b / "search" / version / "chunks.json").exists()


def test_a_report_ingested_by_a_is_answered_by_b(pipeline_a, process_b, tmp_path):
    url, data_b = process_b
    before = _ask_b(url, NEW_QUESTION)
    assert before["refused"] and not before["citations"]

    report = tmp_path / "璧山区2024.txt"
    report.write_text(UPLOAD_REPORT, encoding="utf-8")
    summary = pipeline_a.ingest([report])
    assert summary.new == [report.name] and summary.chunks_total > summary.chunks_embedded > 0

    after = _ask_b(url, NEW_QUESTION)
    assert NEW_FIGURE in after["answer"] and not after["refused"]
    assert {(c["district"], c["year"]) for c in after["citations"]} == {("璧山区", 2024)}
    assert (data_b / "search" / pipeline_a.kb.manifest()["version"] / "chunks.json").exists()
    assert len(httpx.get(f"{url}/api/reports", timeout=30).json()) == 6
