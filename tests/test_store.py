"""Knowledge base: incremental ingest, failures that lose nothing, and the keyword index in step."""

from __future__ import annotations

import shutil
import socket
import threading
import time

import pytest
from fastapi.testclient import TestClient
from langchain_core.embeddings import DeterministicFakeEmbedding

from rag import schema
from rag.api import create_app
from rag.errors import DuplicateReportError, IngestBusyError, IngestError
from rag.ingest import Ingest, report_version
from rag.lease import LEASE_ID
from rag.loading import load_report
from rag.metadata import report_metadata
from rag.pipeline import Pipeline, report_files
from rag.search_index import SearchIndex
from rag.store import KnowledgeBase
from tests.conftest import SEEDS, UPLOAD_REPORT, make_kb
from tests.test_api import RONGCHANG, own_pipeline


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
    with kb.ingest_lock.hold():
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
    with kb_a.ingest_lock.hold():
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


def test_identical_files_in_one_ingest_keep_the_first_name_only(tmp_path, seeds_copy):
    first = _files(seeds_copy)[0]
    twin = seeds_copy / f"copy-of-{first.name}"
    twin.write_bytes(first.read_bytes())
    kb = make_kb(tmp_path)
    summary = kb.ingest([first, twin])
    assert summary.new == [first.name] and list(summary.failed) == [twin.name]
    assert f"'{first.name}'" in summary.failed[twin.name] and "in this ingest" in summary.failed[twin.name]
    assert [r["file"] for r in kb.reports()] == [first.name]
    assert kb.check().ok


def test_the_same_content_under_a_second_name_is_refused_naming_the_first(settings, seeds_copy):
    """`fazhi ingest DIR/sub`, then `fazhi ingest DIR`: the same bytes as "a.txt", then as "sub/a.txt"."""
    folder = settings.data_dir.parent / "given"
    (folder / "sub").mkdir(parents=True)
    seeds = _files(seeds_copy)
    shutil.copy(seeds[0], folder / "sub" / "a.txt")
    shutil.copy(seeds[1], folder / "b.txt")
    pipeline = Pipeline(settings, make_kb(settings.data_dir))
    assert pipeline.ingest([folder / "sub"]).new == ["a.txt"]
    summary = pipeline.ingest([folder])
    assert summary.new == ["b.txt"] and list(summary.failed) == ["sub/a.txt"]  # the rest goes on
    reason, error = summary.failed["sub/a.txt"], summary.errors["sub/a.txt"]
    assert isinstance(error, DuplicateReportError) and error.http_status == 409 and str(error) == reason
    assert "'a.txt'" in reason and "fazhi kb remove a.txt" in reason and "DELETE /api/reports/a.txt" in reason
    assert pipeline.kb_check().ok
    # nothing is frozen: the first name goes, and the same bytes come back under the second
    pipeline.remove_report("a.txt")
    again = pipeline.ingest([folder])
    assert again.new == ["sub/a.txt"] and again.unchanged == ["b.txt"] and not again.failed
    assert [r["file"] for r in pipeline.reports()] == ["b.txt", "sub/a.txt"]
    assert {d.metadata[schema.FILE] for d in pipeline.kb.chunks()} == {"b.txt", "sub/a.txt"}
    assert pipeline.kb_check().ok


def test_two_names_never_share_a_version_so_never_chunk_ids(seeds_copy):
    path = _files(seeds_copy)[0]
    first, second = (load_report(path, max_bytes=2**20, file=name) for name in ("a.txt", "sub/a.txt"))
    meta = report_metadata(first)
    assert report_version(first, meta) != report_version(second, meta)
    kb = make_kb(seeds_copy.parent / "data")
    ids = [{c.metadata[schema.CHUNK_ID] for c in Ingest(kb).versioned_chunks(r, meta, report_version(r, meta))}
           for r in (first, second)]
    assert ids[0] and not ids[0] & ids[1]


def test_an_upload_of_a_report_already_there_under_another_name_is_409(tmp_path):
    pipeline = own_pipeline(tmp_path)
    client = TestClient(create_app(pipeline, ui=False))
    seed = (SEEDS / RONGCHANG).read_bytes()
    r = client.post("/api/reports", files={"file": ("rongchang.txt", seed, "text/plain")})
    assert r.status_code == 409 and r.json()["error"] == "DuplicateReportError"
    assert f"'{RONGCHANG}'" in r.json()["detail"] and f"DELETE /api/reports/{RONGCHANG}" in r.json()["detail"]
    assert list((pipeline.settings.data_dir / "reports").iterdir()) == []
    assert [row["file"] for row in pipeline.reports()] == [RONGCHANG]
    assert pipeline.kb_check().ok


@pytest.mark.parametrize("given", [["a", "b"], ["a/x.txt", "b/x.txt"], ["a", "b", "a/x.txt", "b"]],
                         ids=["two-folders", "two-files", "given-twice"])
def test_files_of_one_name_in_two_folders_are_both_kept(settings, seeds_copy, given):
    seeds = _files(seeds_copy)
    for folder, seed in (("a", seeds[0]), ("b", seeds[1])):
        (seeds_copy / folder).mkdir()
        shutil.copy(seed, seeds_copy / folder / "x.txt")
    pipeline = Pipeline(settings, make_kb(settings.data_dir))
    summary = pipeline.ingest([seeds_copy / path for path in given])
    assert summary.new == ["a/x.txt", "b/x.txt"] and not summary.failed
    assert [r["file"] for r in pipeline.reports()] == ["a/x.txt", "b/x.txt"]
    assert pipeline.kb_check().ok


def test_one_folder_or_files_of_one_folder_are_named_as_before(seeds_copy):
    files, folder = _files(seeds_copy), seeds_copy.parent
    assert [s.name for s in report_files([seeds_copy], [".txt"])] == [f.name for f in files]
    assert [s.name for s in report_files(files[:2], [".txt"])] == [f.name for f in files[:2]]
    assert [s.name for s in report_files([folder], [".txt"])] == [f"{seeds_copy.name}/{f.name}" for f in files]


def test_two_files_of_one_name_given_to_the_knowledge_base_are_refused_naming_both(tmp_path, seeds_copy):
    seeds = _files(seeds_copy)
    paths = []
    for folder, seed in (("a", seeds[0]), ("b", seeds[1])):
        (tmp_path / folder).mkdir()
        paths.append(shutil.copy(seed, tmp_path / folder / "x.txt"))
    kb = make_kb(tmp_path / "data")
    summary = kb.ingest(paths + seeds[2:3])
    assert summary.new == [seeds[2].name] and list(summary.failed) == ["x.txt"]
    assert all(str(p) in summary.failed["x.txt"] for p in paths)
    assert kb.check().ok


class _CountingEmbeddings(DeterministicFakeEmbedding):
    embedded: list = []

    def embed_documents(self, texts):
        self.embedded.extend(texts)
        return super().embed_documents(texts)


def test_a_file_over_the_chunk_cap_is_refused_before_embedding(tmp_path, seeds_copy):
    """The seeds chunk into 34, 48, 30, 38 and 27 chunks; a cap of 30 lets two of them in."""
    embeddings = _CountingEmbeddings(size=32, embedded=[])
    kb = make_kb(tmp_path, embeddings, max_chunks_per_file=30)
    files = _files(seeds_copy)
    summary = kb.ingest(files)
    assert summary.new == [files[2].name, files[4].name]
    assert list(summary.failed) == [files[0].name, files[1].name, files[3].name]
    reason = summary.failed[files[1].name]
    assert reason.startswith(files[1].name) and "48 chunks" in reason and "30" in reason
    assert "ingest.max_chunks_per_file" in reason and "split" in reason
    assert len(embeddings.embedded) == summary.chunks_embedded == summary.chunks_total == 57
    assert kb.check().ok


def test_the_chunk_cap_is_a_setting(settings, seeds_copy):
    assert settings.ingest.max_chunks_per_file == 2000
    capped = settings.with_overrides({"ingest.max_chunks_per_file": 30})
    pipeline = Pipeline.from_settings(capped, embeddings=DeterministicFakeEmbedding(size=32))
    summary = pipeline.ingest([seeds_copy])
    assert len(summary.new) == 2 and "ingest.max_chunks_per_file" in summary.failed["001_467031b72275275f.txt"]


def test_an_upload_over_the_chunk_cap_is_refused_and_not_kept(tmp_path):
    pipeline = own_pipeline(tmp_path)
    pipeline.kb.max_chunks_per_file = 5
    client = TestClient(create_app(pipeline, ui=False))
    r = client.post("/api/reports", files={"file": ("long.txt", (UPLOAD_REPORT * 10).encode(), "text/plain")})
    assert r.status_code == 415 and "ingest.max_chunks_per_file" in r.json()["detail"]
    assert list((pipeline.settings.data_dir / "reports").iterdir()) == []
    assert pipeline.kb_check().ok


def test_chunks_are_read_in_pages(tmp_path, seeds_copy, monkeypatch):
    """Chroma refuses one read of over ~32,000 records: every page is read, none twice."""
    kb = make_kb(tmp_path)
    kb.ingest(_files(seeds_copy))
    whole = [d.metadata[schema.CHUNK_ID] for d in kb.chunks()]
    monkeypatch.setattr("rag.store._PAGE", 7)
    paged = [d.metadata[schema.CHUNK_ID] for d in kb.chunks()]
    assert paged == whole and len(set(paged)) == len(paged) == 178


def test_a_manifest_seen_before_gets_its_search_index_on_disk_again(tmp_path, monkeypatch):
    """Removing the report just added brings back the earlier manifest's version, whose folder was
    pruned (here: only the newest is kept) while the version was still held in memory: the commit
    writes it again, so kb check and another process find it."""
    monkeypatch.setattr("rag.store._KEEP_INDEX_VERSIONS", 1)
    kb = make_kb(tmp_path / "data")
    first = tmp_path / "a.txt"
    first.write_text(UPLOAD_REPORT, encoding="utf-8")
    kb.ingest([first])
    version = kb.manifest()["version"]
    kb.ingest([SEEDS / RONGCHANG])
    assert not (kb.index_dir / version).exists()
    kb.remove(RONGCHANG)
    assert kb.manifest()["version"] == version
    assert (kb.index_dir / version / "chunks.json").exists()
    assert kb.check().ok


def test_the_chunk_whose_sentence_says_what_is_asked_is_retrieved_among_chunks_sharing_its_words(tmp_path, seeds_copy):
    """「聘请了几名政府法律顾问」: every report has 法律顾问 sentences, and fusion with a dense search
    that ranks by noise leaves 荣昌区's 「聘任区政府法律顾问5名」 out of the first few; its sentence
    holds the question's rarer words (政府法律顾问) and brings its chunk in."""
    from rag.retrieval import HybridRetriever, route_question
    from rag.settings import RetrievalSettings

    kb = make_kb(tmp_path, DeterministicFakeEmbedding(size=32))
    kb.ingest(_files(seeds_copy))
    route = route_question("聘请了几名政府法律顾问？", kb.reports())
    passages = HybridRetriever(kb, RetrievalSettings(top_k=3)).retrieve(route, kb.manifest())
    assert any("聘任区政府法律顾问5名" in p.chunk.page_content for p in passages)


def test_a_question_for_a_list_is_retrieved_as_fused_not_by_one_sentence(tmp_path, seeds_copy):
    """「…对2024年的工作有哪些打算」 asks for a part of a report, found by its heading: sentences that
    write 司法局 and 工作 must not push the plan's heading out."""
    from rag.retrieval import HybridRetriever, route_question
    from rag.settings import RetrievalSettings

    kb = make_kb(tmp_path, DeterministicFakeEmbedding(size=32))
    kb.ingest(_files(seeds_copy))
    route = route_question("沙坪坝区司法局对2024年的工作有哪些打算？", kb.reports())
    ranked = [[p.chunk.page_content for p in HybridRetriever(kb, RetrievalSettings(sentence_weight=w)).retrieve(
        route, kb.manifest())] for w in (0.0, 0.03)]
    assert ranked[0] == ranked[1]


@pytest.mark.parametrize("question", ["沙坪坝区二〇二四年全年受理了多少件法律援助案件？",
                                      "沙坪坝区２０２４年全年受理了多少件法律援助案件？"])
def test_a_year_in_chinese_numerals_or_full_width_is_the_year_asked(question):
    """「二〇二四年」 is 2024 as much as 「2024年」: asked of that year, routed to the reports that may
    speak of it (2023's sets out its plans for 2024)."""
    from rag.claims import Ask
    from rag.retrieval import route_question

    reports = [{"file": "s.txt", "district": "沙坪坝区", "year": 2023, "city": "重庆市", "province": "重庆市",
                "district_code": "500106"}]
    assert Ask.read(question).years == [2024]
    assert route_question(question, reports).years == [2023]


def test_a_passage_cut_inside_a_sentence_is_retrieved_as_the_whole_sentence(tmp_path, seeds_copy):
    """A sentence over the chunk budget is indexed in pieces; the piece retrieved comes back with the
    rest of its sentence, or 「司法行政機關共15家單位共簽…」 loses the partners that sign (大竹縣…)."""
    from rag.retrieval import HybridRetriever, route_question
    from rag.settings import RetrievalSettings

    kb = make_kb(tmp_path, DeterministicFakeEmbedding(size=32))
    kb.ingest(_files(seeds_copy))
    assert not any("大竹" in c.page_content and "15家" in c.page_content for c in kb.chunks())  # indexed apart
    route = route_question("梁平区有多少家单位共签了社区矫正协作机制的意见？", kb.reports())
    passages = HybridRetriever(kb, RetrievalSettings(top_k=5)).retrieve(route, kb.manifest())
    (signed,) = [p for p in passages if "15家" in p.chunk.page_content]
    text = kb.report_text(signed.meta[schema.FILE])
    assert "大竹" in signed.chunk.page_content and signed.chunk.page_content.startswith("與區法院")
    assert text[signed.meta[schema.START]:signed.meta[schema.END]] == signed.chunk.page_content
