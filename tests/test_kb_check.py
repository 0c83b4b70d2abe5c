"""`fazhi kb check [--repair]`: what a fault leaves behind is found, then mended or explained."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
import time

import pytest
from click.testing import CliRunner

from rag import cli, schema
from rag.chunking import CHUNKER_VERSION
from rag.errors import IngestError
from rag.ingest import ReportSource, staged_path
from rag.pipeline import Pipeline
from rag.report_files import ReportFiles
from rag.search_index import SearchIndex
from rag.settings import load_settings
from tests.conftest import UPLOAD_REPORT, make_kb
from tests.test_store import _FailingEmbeddings

QUESTION = "荣昌区2024年行政复议直接纠错率是多少？"
RONGCHANG = "003_190862aaa87d2635.txt"
UPLOAD = "bishan.txt"
OTHER_REPORT = UPLOAD_REPORT.replace("璧山区", "铜梁区")
DEAD_PID = 999_999_999  # above any pid_max: a process that is gone


def _pipeline(tmp_path, seeds_copy) -> Pipeline:
    """The five seeds ingested, and one upload."""
    settings = load_settings(overrides={
        "data_dir": str(tmp_path / "data"), "seeds_dir": str(seeds_copy), "llm.provider": "extractive",
        "retrieval.dense_weight": 0,
    })
    pipeline = Pipeline(settings, make_kb(settings.data_dir))
    pipeline.ingest()
    ReportFiles(pipeline).add(UPLOAD, io.BytesIO(UPLOAD_REPORT.encode()))
    return pipeline


def _uploads(pipeline: Pipeline):
    return pipeline.settings.data_dir / "reports"


def _left_on_disk(pipeline: Pipeline) -> list[str]:
    """The files in the uploads folder, and any staged upload."""
    staging = pipeline.settings.data_dir / "reports.staging"
    return sorted(p.name for folder in (_uploads(pipeline), staging) if folder.is_dir() for p in folder.iterdir())


def _row(pipeline: Pipeline, file: str) -> dict:
    return pipeline.kb.manifest()["reports"][file]


def _said(pipeline: Pipeline) -> tuple:
    answer = pipeline.ask(QUESTION)
    return answer.answer, [(c.file, c.start, c.end) for c in answer.citations]


def _kb_check(pipeline: Pipeline, monkeypatch, *args):
    """`fazhi kb check ARGS` run on this pipeline."""
    monkeypatch.setattr(Pipeline, "from_settings", classmethod(lambda cls, settings=None, **kw: pipeline))
    return CliRunner().invoke(cli.main, ["kb", "check", *args])


def _extra_report(pipeline: Pipeline):
    path = pipeline.settings.data_dir.parent / "extra.txt"
    path.write_text(OTHER_REPORT * 3, encoding="utf-8")
    return path


# ---- faults: each leaves the knowledge base as a crash, an old version or a hand edit would -----------


def killed_while_embedding(pipeline, monkeypatch):
    """An ingest that died embedding: chunks no manifest names, searches filtering on versions."""
    broken = make_kb(pipeline.settings.data_dir, _FailingEmbeddings(size=32, calls_before_failure=1),
                     collection=pipeline.kb.vectors._collection.name, embed_batch_size=2)
    with pytest.raises(IngestError):
        broken.ingest([_extra_report(pipeline)])


def killed_saving_the_search_index(pipeline, monkeypatch):
    """An ingest that died at its commit: chunks and the report text stored, the manifest not swapped."""
    def save(index, folder):
        raise OSError(errno.ENOSPC, "[injected] No space left on device", str(folder))

    monkeypatch.setattr(SearchIndex, "save", save)
    with pytest.raises(IngestError):
        pipeline.kb.ingest([_extra_report(pipeline)])
    monkeypatch.undo()


def chunks_deleted(pipeline, monkeypatch):
    """Some chunks of a report gone from Chroma."""
    ids = pipeline.kb.vectors.get(where={schema.FILE_HASH: _row(pipeline, RONGCHANG)["version"]}, include=[])["ids"]
    pipeline.kb.vectors.delete(ids=ids[:3])


def chunk_count_edited(pipeline, monkeypatch):
    """A manifest row whose chunk count disagrees with Chroma."""
    manifest = pipeline.kb.manifest()
    row = manifest["reports"][RONGCHANG]
    pipeline.kb._commit_manifest({**manifest, "reports": {**manifest["reports"], RONGCHANG: {**row, "chunks": 99}}})


def report_text_deleted(pipeline, monkeypatch):
    pipeline.kb._meta.delete(ids=["report:" + _row(pipeline, RONGCHANG)["version"]])


def search_index_deleted(pipeline, monkeypatch):
    shutil.rmtree(pipeline.kb.index_dir / pipeline.kb.manifest()["version"])


def search_index_of_another_version(pipeline, monkeypatch):
    """The saved search index of the live version holds the chunks of the one before."""
    live = pipeline.kb.index_dir / pipeline.kb.manifest()["version"]
    older = next(folder for folder in pipeline.kb.index_dir.iterdir() if folder != live)
    shutil.rmtree(live)
    shutil.copytree(older, live)


def _version_without_name(report, meta):
    """The old report_version: the same bytes under two names got one version."""
    meta_json = json.dumps(meta.__dict__, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(f"{report.sha256}\n{meta_json}\n{CHUNKER_VERSION}".encode()).hexdigest()


def same_content_under_two_names_by_old_code(pipeline, monkeypatch):
    """What the old code did on `fazhi ingest DIR/sub` then `fazhi ingest DIR`: two rows, one version."""
    monkeypatch.setattr("rag.ingest.report_version", _version_without_name)
    monkeypatch.setattr("rag.ingest._same_content_as", lambda *args: None)
    folder = pipeline.settings.data_dir.parent / "given"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.txt").write_text(OTHER_REPORT, encoding="utf-8")
    pipeline.ingest([folder / "sub"])
    pipeline.ingest([folder])
    monkeypatch.undo()
    rows = pipeline.kb.manifest()["reports"]
    assert rows["a.txt"]["version"] == rows["sub/a.txt"]["version"]


def upload_not_in_the_index(pipeline, monkeypatch):
    (_uploads(pipeline) / "stray.txt").write_text(OTHER_REPORT, encoding="utf-8")


def _commit_new_upload_bytes(pipeline) -> bytes:
    """Commit new bytes under the upload's name, as a replacing upload does; return the old bytes."""
    path = _uploads(pipeline) / UPLOAD
    old = path.read_bytes()
    staged = staged_path(path)
    staged.write_text(UPLOAD_REPORT.replace("865件", "866件"), encoding="utf-8")
    summary = pipeline.kb.ingest([ReportSource(UPLOAD, path, staged=staged)])
    assert summary.replaced == [UPLOAD] and not staged.exists()
    return old


def killed_moving_an_upload_into_place(pipeline, monkeypatch):
    """Killed after the commit, before the new upload replaced the old file: the index names the new bytes."""
    path = _uploads(pipeline) / UPLOAD
    old = _commit_new_upload_bytes(pipeline)
    os.replace(path, staged_path(path, pid=DEAD_PID))
    path.write_bytes(old)


def killed_before_an_upload_committed(pipeline, monkeypatch):
    staged_path(_uploads(pipeline) / UPLOAD, pid=DEAD_PID).write_bytes(OTHER_REPORT.encode())


def old_code_killed_replacing_an_upload(pipeline, monkeypatch):
    """The old upload moved the confirmed file to NAME.previous and put unconfirmed bytes at NAME first."""
    path = _uploads(pipeline) / UPLOAD
    shutil.copy(path, path.with_name(UPLOAD + ".previous"))
    path.write_text(OTHER_REPORT, encoding="utf-8")


FAULTS = [
    (killed_while_embedding, {"orphan_chunks", "pending"}),
    (killed_saving_the_search_index, {"orphan_chunks", "orphan_text", "pending"}),
    (chunks_deleted, {"chunk_count", "search_index"}),
    (chunk_count_edited, {"chunk_count"}),
    (report_text_deleted, {"missing_text"}),
    (search_index_deleted, {"search_index"}),
    (search_index_of_another_version, {"search_index"}),
    (same_content_under_two_names_by_old_code, {"duplicate_content"}),
    (upload_not_in_the_index, {"unindexed_upload"}),
    (killed_moving_an_upload_into_place, {"staged_upload", "changed_upload"}),
    (killed_before_an_upload_committed, {"staged_upload"}),
    (old_code_killed_replacing_an_upload, {"previous_upload", "changed_upload"}),
]


@pytest.mark.parametrize(("fault", "kinds"), FAULTS, ids=[fault.__name__ for fault, _ in FAULTS])
def test_kb_check_finds_a_fault_and_repair_mends_it(tmp_path, seeds_copy, monkeypatch, fault, kinds):
    pipeline = _pipeline(tmp_path, seeds_copy)
    assert pipeline.kb_check().ok
    before = _said(pipeline)
    fault(pipeline, monkeypatch)
    on_disk = {p.name: p.read_bytes() for p in _uploads(pipeline).iterdir()}

    found = pipeline.kb_check()
    assert not found.ok and {p.kind for p in found.problems} == kinds, found.as_dict()
    assert found.remaining == found.problems and not found.repaired
    assert {p.name: p.read_bytes() for p in _uploads(pipeline).iterdir()} == on_disk  # a check changes nothing
    shown = _kb_check(pipeline, monkeypatch)
    assert shown.exit_code == 2, shown.output
    assert all(kind in shown.output for kind in kinds) and "fazhi kb check --repair" in shown.output

    repaired = _kb_check(pipeline, monkeypatch, "--repair", "--json")
    assert repaired.exit_code == 0, repaired.output
    body = json.loads(repaired.output)
    assert body["ok"] and body["repaired"] and body["remaining"] == []
    assert {p["kind"] for p in body["problems"]} == kinds
    after = pipeline.kb_check()
    assert after.ok and after.problems == [], after.as_dict()
    assert _said(pipeline) == before
    rows = pipeline.kb.manifest()["reports"]
    assert hashlib.sha256((_uploads(pipeline) / UPLOAD).read_bytes()).hexdigest() == rows[UPLOAD]["sha256"]
    assert _left_on_disk(pipeline) == [UPLOAD]


def test_repair_keeps_the_first_of_two_names_and_unfreezes_the_index(tmp_path, seeds_copy, monkeypatch):
    pipeline = _pipeline(tmp_path, seeds_copy)
    same_content_under_two_names_by_old_code(pipeline, monkeypatch)
    problem = next(p for p in pipeline.kb_check().problems if p.kind == "duplicate_content")
    assert "a.txt" in problem.detail and "sub/a.txt" in problem.detail
    assert pipeline.kb_check(repair=True).ok
    assert "sub/a.txt" not in [r["file"] for r in pipeline.reports()]
    assert {d.metadata[schema.FILE] for d in pipeline.kb.chunks()} >= {"a.txt"}
    pipeline.remove_report("a.txt")  # the old code answered 500 here
    files = ReportFiles(pipeline)
    assert files.add("new.txt", io.BytesIO(OTHER_REPORT.encode()))["report"]["file"] == "new.txt"
    assert pipeline.kb_check().ok


def test_a_knowledge_base_frozen_by_the_old_code_says_what_mends_it(tmp_path, seeds_copy, monkeypatch):
    """The finding: a removal through the cached index left the other name's chunks, then every upload failed."""
    pipeline = _pipeline(tmp_path, seeds_copy)
    same_content_under_two_names_by_old_code(pipeline, monkeypatch)
    pipeline.remove_report("sub/a.txt")
    files = ReportFiles(pipeline)
    with pytest.raises(IngestError, match="fazhi kb check --repair"):
        files.add("new.txt", io.BytesIO(OTHER_REPORT.replace("2024", "2023").encode()))
    assert "orphan_chunks" in {p.kind for p in pipeline.kb_check().problems}
    assert pipeline.kb_check(repair=True).ok
    added = files.add("new.txt", io.BytesIO(OTHER_REPORT.replace("2024", "2023").encode()))
    assert added["summary"]["new"] == ["new.txt"]
    pipeline.remove_report("a.txt")
    assert pipeline.kb_check().ok


def test_an_upload_deleted_by_hand_is_reported_not_repaired(tmp_path, seeds_copy, monkeypatch):
    pipeline = _pipeline(tmp_path, seeds_copy)
    (_uploads(pipeline) / UPLOAD).unlink()
    result = _kb_check(pipeline, monkeypatch, "--repair")
    assert result.exit_code == 2 and "missing_upload" in result.output
    assert f"fazhi kb remove {UPLOAD}" in result.output
    assert [p.kind for p in pipeline.kb_check().remaining] == ["missing_upload"]
    assert UPLOAD in [r["file"] for r in pipeline.reports()]  # its text still answers
    ReportFiles(pipeline).remove(UPLOAD)
    assert pipeline.kb_check().ok


@pytest.mark.parametrize("fault", [killed_moving_an_upload_into_place, killed_before_an_upload_committed,
                                   old_code_killed_replacing_an_upload])
def test_the_first_change_after_a_restart_finishes_or_rolls_back_a_half_done_upload(
        tmp_path, seeds_copy, monkeypatch, fault):
    pipeline = _pipeline(tmp_path, seeds_copy)
    fault(pipeline, monkeypatch)
    committed = _row(pipeline, UPLOAD)["sha256"]
    ReportFiles(pipeline).fix(UPLOAD, year=2024)  # settles first, then ingests the file at the name
    assert _left_on_disk(pipeline) == [UPLOAD, f"{UPLOAD}.meta.yaml"]
    assert hashlib.sha256((_uploads(pipeline) / UPLOAD).read_bytes()).hexdigest() == committed
    assert pipeline.kb_check().ok


def test_an_upload_being_staged_by_a_live_process_is_left_alone_until_stale(tmp_path, seeds_copy):
    pipeline = _pipeline(tmp_path, seeds_copy)
    staged = staged_path(_uploads(pipeline) / UPLOAD)
    staged.write_bytes(OTHER_REPORT.encode())
    ReportFiles(pipeline).recover()
    assert staged.exists()
    found = pipeline.kb_check(repair=True)
    assert [p.kind for p in found.remaining] == ["staged_upload"] and "in progress" in found.remaining[0].detail
    hours_ago = time.time() - 7200
    os.utime(staged, (hours_ago, hours_ago))
    assert pipeline.kb_check(repair=True).ok and not staged.exists()


def test_a_clean_knowledge_base_checks_ok(tmp_path, seeds_copy, monkeypatch):
    pipeline = _pipeline(tmp_path, seeds_copy)
    result = _kb_check(pipeline, monkeypatch)
    assert result.exit_code == 0 and "6 reports" in result.output and "OK" in result.output
    body = json.loads(_kb_check(pipeline, monkeypatch, "--json").output)
    assert body == {"ok": True, "repaired": False, "reports": 6, "chunks": body["chunks"], "problems": [],
                    "remaining": []}
    assert body["chunks"] == sum(r["chunks"] for r in pipeline.reports())


def test_an_empty_knowledge_base_checks_ok(tmp_path):
    kb = make_kb(tmp_path)
    assert kb.check().ok and kb.check(repair=True).ok
