"""Knowledge base: incremental ingest, failures that lose nothing, and the keyword index in step."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from rag import schema
from rag.errors import IngestBusyError, IngestError
from rag.search_index import SearchIndex
from rag.metadata import write_sidecar
from rag.store import LEASE_ID, KnowledgeBase
from tests.conftest import make_kb


def _files(folder):
    return sorted(folder.glob("*.txt"))


def test_reingesting_unchanged_reports_embeds_nothing(tmp_path, seeds_copy):
    kb = make_kb(tmp_path)
    first = kb.ingest(_files(seeds_copy))
    assert len(first.new) == 5 and first.chunks_embedded == first.chunks_total > 0
    second = kb.ingest(_files(seeds_copy))
    assert second.chunks_embedded == 0 and len(second.unchanged) == 5
    assert second.chunks_total == first.chunks_total


def test_changed_report_replaces_exactly_its_own_chunks(tmp_path, seeds_copy):
    kb = make_kb(tmp_path)
    kb.ingest(_files(seeds_copy))
    before = {d.metadata[schema.CHUNK_ID]: d.metadata[schema.FILE] for d in kb.chunks()}
    changed = seeds_copy / "004_d150b2aa907695eb.txt"
    changed.write_text(changed.read_text(encoding="utf-8") + "\n新增一段：全年开展普法讲座12场。\n", encoding="utf-8")
    summary = kb.ingest(_files(seeds_copy))
    assert summary.replaced == ["004_d150b2aa907695eb.txt"] and len(summary.unchanged) == 4
    after = {d.metadata[schema.CHUNK_ID]: d.metadata[schema.FILE] for d in kb.chunks()}
    assert {i for i, f in before.items() if f != changed.name} <= set(after)
    assert all(f == changed.name for i, f in after.items() if i not in before)
    # Chroma holds no orphan: exactly the live chunks remain, and BM25 agrees
    assert len(kb.vectors.get(include=[])["ids"]) == len(after)
    assert set(kb.search_index(kb.manifest()).ids) == set(after)
    assert kb.keyword_search("普法讲座12场", 3, kb.manifest())[0][0] in set(after) - set(before)


class _FailingEmbeddings(DeterministicFakeEmbedding):
    """Fails after a number of embed_documents calls, like a crash halfway through an ingest."""

    calls_before_failure: int = 2

    def embed_documents(self, texts):
        if self.calls_before_failure <= 0:
            raise RuntimeError("simulated crash while embedding")
        self.calls_before_failure -= 1
        return super().embed_documents(texts)


def test_interrupted_ingest_leaves_old_index_answering(tmp_path, seeds_copy):
    kb = make_kb(tmp_path)
    files = _files(seeds_copy)
    kb.ingest(files[:2])
    old = kb.manifest()
    old_hits = kb.keyword_search("调解成功率", 5, old)

    broken = make_kb(tmp_path, _FailingEmbeddings(size=32), collection=kb.vectors._collection.name)
    with pytest.raises(IngestError, match="previous index is unchanged"):
        broken.ingest(files)
    after = kb.manifest()
    assert {**after, "pending": False} == old and after["pending"]  # unnamed chunks exist: searches filter
    assert kb.keyword_search("调解成功率", 5, after) == old_hits
    assert {d.metadata[schema.FILE] for d in kb.chunks()} == {f.name for f in files[:2]}
    # the rerun finishes the job, reusing what was embedded, and leaves no orphan
    summary = kb.ingest(files)
    assert len(summary.new) == 3 and summary.chunks_embedded < summary.chunks_total
    assert len(kb.vectors.get(include=[])["ids"]) == summary.chunks_total == len(kb.chunks())
    assert not kb.manifest()["pending"]


def test_ingest_with_nothing_new_collects_what_a_failed_one_left(tmp_path, seeds_copy):
    kb = make_kb(tmp_path)
    files = _files(seeds_copy)
    kb.ingest(files[:2])
    live = len(kb.chunks())
    broken = make_kb(tmp_path, _FailingEmbeddings(size=32), collection=kb.vectors._collection.name)
    with pytest.raises(IngestError):
        broken.ingest(files)
    assert len(kb.vectors.get(include=[])["ids"]) > live  # chunks no manifest names
    summary = kb.ingest(files[:2])
    assert len(summary.unchanged) == 2 and len(kb.vectors.get(include=[])["ids"]) == live
    assert not kb.manifest()["pending"] and kb.live_filter(kb.manifest()) is None


def test_search_index_that_cannot_be_saved_is_used_from_memory(tmp_path, seeds_copy, monkeypatch, caplog):
    kb = make_kb(tmp_path)
    kb.ingest(_files(seeds_copy))
    hits = kb.keyword_search("调解成功率", 5, kb.manifest())
    other = tmp_path / "read-only"  # another process's data folder: no search index cache yet
    fresh = KnowledgeBase(kb.client, kb.embeddings, collection=kb.vectors._collection.name,
                          index_dir=other / "search", lock_path=other / "ingest.lock")

    def save(index, folder):
        raise OSError(30, "Read-only file system", str(folder))

    monkeypatch.setattr(SearchIndex, "save", save)
    assert fresh.keyword_search("调解成功率", 5, fresh.manifest()) == hits
    assert "kept in memory only" in caplog.text and not list((other / "search").iterdir())


def test_bad_file_is_reported_and_the_rest_goes_on(tmp_path, seeds_copy):
    (seeds_copy / "empty.txt").write_bytes(b"")
    (seeds_copy / "binary.txt").write_bytes(bytes(range(256)) * 10)
    kb = make_kb(tmp_path)
    summary = kb.ingest(_files(seeds_copy))
    assert set(summary.failed) == {"empty.txt", "binary.txt"}
    assert "empty.txt" in summary.failed["empty.txt"] and "binary.txt" in summary.failed["binary.txt"]
    assert len(summary.new) == 5


def test_second_ingest_at_once_is_refused(tmp_path, seeds_copy):
    kb = make_kb(tmp_path)
    with kb._ingest_lock():
        errors = []
        thread = threading.Thread(target=lambda: _capture(errors, kb.ingest, _files(seeds_copy)))
        thread.start()
        thread.join()
    assert errors and isinstance(errors[0], IngestBusyError) and errors[0].http_status == 409
    assert "另一个导入正在进行" in str(errors[0])
    assert kb.manifest()["reports"] == {}


def _capture(errors, fn, *args):
    try:
        fn(*args)
    except IngestError as err:
        errors.append(err)


def test_remove_takes_one_report_out(tmp_path, seeds_copy):
    kb = make_kb(tmp_path)
    kb.ingest(_files(seeds_copy))
    kb.remove("000_cd1dfdaf8535a5bd.txt")
    assert [r["file"] for r in kb.reports()] == [f.name for f in _files(seeds_copy)[1:]]
    assert all(d.metadata[schema.FILE] != "000_cd1dfdaf8535a5bd.txt" for d in kb.chunks())
    with pytest.raises(KeyError):
        kb.remove("nope.txt")


def test_ingests_from_two_data_folders_sharing_one_store_are_kept_apart(tmp_path, seeds_copy):
    """Two data folders (their own file locks) on one Chroma store: the lease refuses the second ingest."""
    kb_a = make_kb(tmp_path / "a", shared_store=True)
    kb_b = KnowledgeBase(kb_a.client, kb_a.embeddings, collection=kb_a.vectors._collection.name,
                         index_dir=tmp_path / "b" / "search", lock_path=tmp_path / "b" / "ingest.lock",
                         shared_store=True)
    reports = sorted(seeds_copy.glob("*.txt"))
    with kb_a._ingest_lock():
        with pytest.raises(IngestBusyError, match="另一个导入正在进行.*data folder sharing its Chroma store"):
            kb_b.ingest(reports[:1])
    assert kb_b.reports() == []
    assert kb_b.ingest(reports[:1]).new == [reports[0].name]  # released: the next one goes ahead
    assert [r["file"] for r in kb_a.reports()] == [reports[0].name]


@pytest.mark.parametrize("owner, until", [
    ("other-host:1:x", -1),                          # lapsed
    (f"{socket.gethostname()}:999999999:x", 300),   # this machine, process gone (killed)
])
def test_the_lease_of_a_killed_ingest_does_not_block(tmp_path, seeds_copy, owner, until):
    kb = make_kb(tmp_path, shared_store=True)
    kb._meta.upsert(ids=[LEASE_ID], embeddings=[[1.0]],
                    metadatas=[{"kind": "lease", "owner": owner, "until": time.time() + until}])
    assert len(kb.ingest(sorted(seeds_copy.glob("*.txt"))[:1]).new) == 1
    assert kb._meta.get(ids=[LEASE_ID])["ids"] == []


def test_a_live_lease_from_another_host_blocks(tmp_path, seeds_copy):
    kb = make_kb(tmp_path, shared_store=True)
    kb._meta.upsert(ids=[LEASE_ID], embeddings=[[1.0]],
                    metadatas=[{"kind": "lease", "owner": "other-host:1:x", "until": time.time() + 60}])
    with pytest.raises(IngestBusyError, match="other-host:1 is ingesting"):
        kb.ingest(sorted(seeds_copy.glob("*.txt"))[:1])


def test_a_comparison_embeds_its_question_once(tmp_path, seeds_copy):
    from rag.retrieval import HybridRetriever, route_question
    from rag.settings import RetrievalSettings

    asked = []

    class Counting(DeterministicFakeEmbedding):
        def embed_query(self, text):
            asked.append(text)
            return super().embed_query(text)

    kb = make_kb(tmp_path, Counting(size=32))
    kb.ingest(_files(seeds_copy))
    manifest = kb.manifest()
    route = route_question("荣昌区和梁平区的行政复议直接纠错率分别是多少？", kb.reports())
    passages = HybridRetriever(kb, RetrievalSettings()).retrieve(route, manifest)
    assert route.comparison and {p.meta[schema.DISTRICT] for p in passages} == {"荣昌区", "梁平区"}
    assert asked == [route.question]


def test_identical_files_under_two_names_are_both_indexed(tmp_path, seeds_copy):
    first = _files(seeds_copy)[0]
    twin = seeds_copy / f"copy-of-{first.name}"
    twin.write_bytes(first.read_bytes())
    for path in (first, twin):  # the same text and the same metadata: one version
        write_sidecar(path, district="九龙坡区", year=2025, title="九龙坡区2025年法治政府建设情况报告")
    kb = make_kb(tmp_path)
    summary = kb.ingest([first, twin])
    assert sorted(summary.new) == sorted([first.name, twin.name]) and not summary.failed
    rows = {r["file"]: r["chunks"] for r in kb.reports()}
    assert rows[first.name] == rows[twin.name] == summary.chunks_embedded / 2 > 0
    assert kb.report_text(twin.name) == kb.report_text(first.name)


def test_chunks_are_read_in_pages(tmp_path, seeds_copy, monkeypatch):
    """Chroma refuses one read of over ~32,000 records: every page is read, none twice."""
    kb = make_kb(tmp_path)
    kb.ingest(_files(seeds_copy))
    whole = [d.metadata[schema.CHUNK_ID] for d in kb.chunks()]
    monkeypatch.setattr("rag.store._PAGE", 7)
    paged = [d.metadata[schema.CHUNK_ID] for d in kb.chunks()]
    assert paged == whole and len(set(paged)) == len(paged) == 177
