"""The knowledge base: report chunks in Chroma, a BM25 index kept in step, and a manifest.

Consistency rule: a chunk is live only when its report version (FILE_HASH) is the
one named in the manifest. An ingest (`rag.ingest`) adds the new version's chunks first, then
swaps the manifest (one Chroma record, replaced in one write: `KnowledgeBase.commit`), then deletes
what the old manifest named. A killed ingest therefore leaves only unreferenced
chunks behind: queries never see them, and the next ingest reuses or removes them.
A question that reads the manifest just before a swap may find some of its chunks
collected; the pipeline checks the manifest again after retrieval and retries.
The search index (BM25 and vectors, `rag.search_index`) is derived from Chroma and cached
on disk per manifest version, so every process sharing a Chroma server rebuilds it when the
manifest changes. Chroma's HNSW answers unfiltered dense searches; the search index answers
the filtered ones, which Chroma would pre-filter slowly.
Changes take the ingest lock (`rag.lease`); `rag.kb_check` finds and mends what faults left.
The 指标库 table (`rag.indicator_table`) is written in the same commit, before the swap, and
follows the manifest version as the search index does: a reader finding it stale rebuilds it.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import itertools
import json
import logging
import shutil
import threading
import time
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Iterable
from pathlib import Path

import httpx
from chromadb.errors import InternalError as ChromaInternalError
from langchain_chroma import Chroma
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from rag import kb_check, schema
from rag.errors import IndexMissingError, IndexUnavailableError, IngestError, RagError
from rag.indicator_table import IndicatorTable, StaleTableError
from rag.indicators import Indicator, MetricKeys, extract_indicators
from rag.ingest import MAX_CHUNKS_PER_FILE, MIN_FREE_BYTES, Ingest, IngestSummary, ProgressFn, ReportSource
from rag.kb_check import KbCheck, KbProblem
from rag.lease import IngestLock
from rag.loading import LoadedReport
from rag.metadata import ReportMeta
from rag.search_index import SearchIndex

MANIFEST_ID = "manifest"
_REPORT_TEXT_PREFIX = "report:"
_KEEP_INDEX_VERSIONS = 3
_QUERY_VECTORS_CACHED = 256
_PAGE = 5000  # records per Chroma read or delete: one SQL statement holds at most 32,766 variables
_INDEX_VERSIONS_IN_MEMORY = 2  # the live one, and the one a question begun before a swap still reads
_UNREACHABLE = (httpx.TransportError, ConnectionError)  # a Chroma server that is down or cut off
# Write failures the user fixes on the machine: disk full, read-only folder, quota, file size limit.
_DISK_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG}
_LOW_DISK_BYTES = 16 * 2**20   # below this, a failed write is put down to a full disk

logger = logging.getLogger(__name__)


def indexed_text(doc: Document) -> str:
    """What is embedded and keyword-indexed: the short header, then the chunk's own text."""
    return f"{doc.metadata[schema.HEADER]}\n{doc.page_content}"


def chunk_from_indexed(text: str, metadata: dict) -> Document:
    """The chunk Document (original text only) from a stored record."""
    return Document(page_content=text[len(metadata[schema.HEADER]) + 1 :], metadata=dict(metadata))


def _reads_chroma(method):
    """A KnowledgeBase method whose Chroma store cannot be read becomes IndexUnavailableError (503):
    a server that is down, or a store whose pending writes Chroma cannot apply (a full disk)."""

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except _UNREACHABLE as err:
            raise IndexUnavailableError(self.unreachable_message(err)) from err
        except ChromaInternalError as err:
            raise IndexUnavailableError(self.unreadable_message(err)) from err

    return call


class KnowledgeBase:
    """Reports in Chroma plus a search index per version; list, read, search and remove them, commit a change.

    Ingest (`rag.ingest`) and check (`rag.kb_check`) are their own modules, called from here.
    """

    def __init__(
        self,
        client,
        embeddings: Embeddings,
        *,
        collection: str,
        index_dir: Path,
        lock_path: Path,
        max_file_bytes: int = 20 * 2**20,
        chunk_tokens: int = 220,
        overlap_tokens: int = 40,
        embed_batch_size: int = 32,
        shared_store: bool | None = None,
        max_chunks_per_file: int = MAX_CHUNKS_PER_FILE,
        min_free_bytes: int = MIN_FREE_BYTES,
        indicators: IndicatorTable | None = None,
        indicator_aliases: Path | None = None,
    ):
        self.client = client
        self.embeddings = embeddings
        self.vectors = Chroma(
            client=client,
            collection_name=collection,
            embedding_function=embeddings,
            collection_metadata={"hnsw:space": "cosine"},
        )
        self._chunks = client.get_collection(collection, embedding_function=None)
        self._meta = client.get_or_create_collection(f"{collection}_manifest", embedding_function=None)
        self.index_dir = index_dir
        self.lock_path = lock_path
        self.max_file_bytes = max_file_bytes
        self.chunk_tokens = chunk_tokens
        self.overlap_tokens = overlap_tokens
        self.embed_batch_size = embed_batch_size
        self.max_chunks_per_file = max_chunks_per_file
        self.min_free_bytes = min_free_bytes
        self.indicators = indicators          # the 指标库 table written with every commit; None: none kept
        self.indicator_aliases = indicator_aliases  # config/indicator_aliases.yaml: metric variants → key
        self._indexes: OrderedDict[str, SearchIndex] = OrderedDict()
        self._index_lock = threading.Lock()
        self._embedded = bool(client.get_settings().is_persistent)
        # Other data folders (other hosts) may ingest into the store: a Chroma server, by default.
        shared = not self._embedded if shared_store is None else shared_store
        self.ingest_lock = IngestLock(lock_path, self._meta, shared)
        self._known_versions: set[str] = set()
        self._manifest_cache: tuple[str, dict] | None = None
        # A comparison searches each named district with one question: embed it once.
        self.query_vector = functools.lru_cache(maxsize=_QUERY_VECTORS_CACHED)(embeddings.embed_query)

    # ---- what to say when Chroma or the disk fails --------------------------------

    def unreachable_message(self, err: Exception) -> str:
        """What to do when the Chroma server does not answer."""
        c = self.client.get_settings()
        where = f"{c.chroma_server_host}:{c.chroma_server_http_port}"
        return (
            f"Chroma 服务不可用: the Chroma server at {where} does not answer ({type(err).__name__}: {err}). "
            f"Start it again (`chroma run --path DIR --host {c.chroma_server_host} --port "
            f"{c.chroma_server_http_port}`); questions work again once it answers, without restarting fazhi."
        )

    def unreadable_message(self, err: Exception) -> str:
        """What to do when Chroma cannot read its store, e.g. after a disk filled during a write."""
        free = self.free_bytes()
        cause = (f"the disk of the data folder is full ({free // 1024} KB free): free disk space"
                 if free < _LOW_DISK_BYTES else "check the data folder's disk and permissions")
        return (
            f"知识库暂时无法读取: Chroma cannot read its store ({err}); {cause}. Questions answer again once "
            "Chroma can apply its pending writes, without a restart; the next ingest completes an interrupted one."
        )

    def ingest_failed(self, err: Exception) -> RagError:
        """The error for an ingest that stopped halfway, saying what to fix."""
        unchanged = "the previous index is unchanged and still answers"
        again = "ingest again (upload the file again, or `fazhi ingest`): finished work is reused"
        if isinstance(err, _UNREACHABLE):
            return IndexUnavailableError(f"Ingest stopped: {self.unreachable_message(err)} {unchanged}; then {again}.")
        if isinstance(err, OSError) and err.errno in _DISK_ERRNOS:
            return IngestError(
                f"Ingest stopped: cannot write in the data folder ({err.strerror}); "
                f"{unchanged}. Free disk space or make the data folder writable, then {again}."
            )
        free = self.free_bytes()
        if free < _LOW_DISK_BYTES:  # Chroma's own writes fail with its own words ("compaction", "sqlite")
            return IngestError(
                f"Ingest stopped ({type(err).__name__}: {err}): the disk of the data folder is full "
                f"({free // 1024} KB free); {unchanged}. Free disk space, then {again}."
            )
        return IngestError(
            f"Ingest stopped ({type(err).__name__}: {err}); {unchanged}. Fix the cause and {again}."
        )

    def free_bytes(self) -> int:
        """Free space on the data folder's disk."""
        data_dir = self.index_dir.parent
        return shutil.disk_usage(data_dir).free if data_dir.exists() else _LOW_DISK_BYTES

    @_reads_chroma
    def probe(self) -> None:
        """Read one chunk, as a question would: IndexUnavailableError when Chroma cannot."""
        self._chunks.get(limit=1, include=[])

    # ---- manifest ---------------------------------------------------------------

    @_reads_chroma
    def manifest(self) -> dict:
        """The committed manifest: {"version": str, "pending": bool, "reports": {file: {...}}}.

        `pending` is true while the store may hold chunks the manifest does not name (an ingest
        adding them, or one that was killed): searches then filter on report versions.
        The manifest is read whole only when its stamp changed; callers must not modify it.
        """
        got = self._meta.get(ids=[MANIFEST_ID], include=["metadatas"])
        if not got["ids"]:
            return {"version": "", "pending": False, "reports": {}}
        cached = self._manifest_cache
        if cached and cached[0] == got["metadatas"][0].get("stamp"):
            return cached[1]
        got = self._meta.get(ids=[MANIFEST_ID], include=["documents", "metadatas"])
        manifest = {"pending": True, **json.loads(got["documents"][0])}
        self._manifest_cache = (got["metadatas"][0].get("stamp"), manifest)
        return manifest

    def _commit_manifest(self, manifest: dict) -> None:
        self._meta.upsert(
            ids=[MANIFEST_ID],
            embeddings=[[1.0]],
            documents=[json.dumps(manifest, ensure_ascii=False)],
            metadatas=[{"kind": "manifest", "version": manifest["version"], "pending": manifest["pending"],
                        "stamp": uuid.uuid4().hex}],
        )

    @staticmethod
    def still_valid(read: dict, now: dict) -> bool:
        """Whether a search made under manifest `read` holds under manifest `now`, read after it."""
        return now["version"] == read["version"] and (read["pending"] or not now["pending"])

    def reports(self) -> list[dict]:
        """One row per live report: file, district (with city, province, district_code), year, title, body, chunks."""
        rows = self.manifest()["reports"]
        return [
            {key: row.get(key, "") for key in ("file", "district", "city", "province", "district_code", "year",
                                               "title", "body", "chunks")}
            for row in sorted(rows.values(), key=lambda r: r["file"])
        ]

    @_reads_chroma
    def report_text(self, file: str) -> str:
        """The original text of a live report."""
        row = self.manifest()["reports"].get(file)
        if row is None:
            raise KeyError(file)
        text = self.stored_text(row["version"])
        if text is None:
            raise IndexMissingError(
                f"The text of {file} is missing from the index: upload it again (POST /api/reports) or run "
                "`fazhi kb check --repair`.")
        return text

    def stored_text(self, version: str) -> str | None:
        """The original text stored for a report version, live or not; None when there is none."""
        got = self._meta.get(ids=[_REPORT_TEXT_PREFIX + version], include=["documents"])
        return got["documents"][0] if got["ids"] else None

    def stored_report(self, row: dict) -> tuple[LoadedReport, ReportMeta] | None:
        """A manifest row's report as ingested, read back from its stored text; None when none is stored."""
        text = self.stored_text(row["version"])
        if text is None:
            return None
        report = LoadedReport(file=row["file"], path=Path(row.get("source") or row["file"]), text=text,
                              sha256=row["sha256"], encoding=row["encoding"], pages=tuple(row.get("pages", ())))
        meta = ReportMeta(district=row["district"], year=row["year"] or None, body=row["body"], title=row["title"],
                          city=row.get("city", ""), province=row.get("province", ""),
                          district_code=row.get("district_code", ""))
        return report, meta

    def live_filter(self, manifest: dict, districts: list[str] | None = None,
                    years: list[int] | None = None) -> dict | None:
        """A Chroma `where` that admits only live chunks, optionally of some districts and years."""
        clauses = []
        if manifest["pending"]:  # a filter on thousands of versions is slow: only when needed
            clauses.append({schema.FILE_HASH: {"$in": [r["version"] for r in manifest["reports"].values()]}})
        if districts:
            clauses.append({schema.DISTRICT: {"$in": list(districts)}})
        if years:
            clauses.append({schema.YEAR: {"$in": list(years)}})
        return {"$and": clauses} if len(clauses) > 1 else (clauses[0] if clauses else None)

    # ---- search -----------------------------------------------------------------

    def require_reports(self) -> dict:
        """The manifest, or IndexMissingError when nothing is ingested."""
        manifest = self.manifest()
        if not manifest["reports"]:
            raise IndexMissingError(
                "知识库为空：请先上传报告（知识库 页，或 POST /api/reports），或在服务器上运行 fazhi ingest。")
        return manifest

    @_reads_chroma
    def dense_search(self, query: str, k: int, manifest: dict, districts=None, years=None) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity) pairs nearest to query by embedding, best first.

        Chroma's HNSW searches the whole collection; a search Chroma would have to filter
        (by district, year, or live version) scans the admitted rows of the search index.
        """
        self._check_same_writer(manifest)
        embedding = self.query_vector(query)
        where = self.live_filter(manifest, districts, years)
        if where is not None:
            return self.search_index(manifest).dense_search(embedding, k, districts=districts, years=years)
        try:
            found = self._chunks.query(query_embeddings=[embedding], n_results=k, include=["distances"])
        except ChromaInternalError as err:
            if "finding id" not in str(err):
                raise
            raise _changed_by_another_process(str(err)) from err
        return [(cid, 1.0 - distance) for cid, distance in zip(found["ids"][0], found["distances"][0])]

    def _check_same_writer(self, manifest: dict) -> None:
        """In embedded mode, refuse to search an index version another process committed.

        Embedded Chroma loads a collection's vectors once per process: a search would silently
        miss what another process added since. The first version seen, and those this process
        commits, are known good.
        """
        if not self._embedded:
            return
        if not self._known_versions:
            self._known_versions.add(manifest["version"])
        elif manifest["version"] not in self._known_versions:
            raise _changed_by_another_process(f"index version {manifest['version']} was committed elsewhere")

    def keyword_search(self, query: str, k: int, manifest: dict, districts=None, years=None) -> list[tuple[str, float]]:
        """(chunk id, BM25 score) pairs, best first."""
        return self.search_index(manifest).keyword_search(query, k, districts=districts, years=years)

    @_reads_chroma
    def get_chunks(self, ids: list[str]) -> dict[str, Document]:
        """Chunks by id."""
        if not ids:
            return {}
        got = self.vectors.get(ids=ids, include=["documents", "metadatas"])
        return {
            i: chunk_from_indexed(text, meta)
            for i, text, meta in zip(got["ids"], got["documents"], got["metadatas"])
        }

    def chunks(self, manifest: dict | None = None) -> list[Document]:
        """Every live chunk, in file and offset order."""
        docs = [chunk_from_indexed(t, m) for _, t, m, _ in self._live_records(manifest or self.manifest())]
        return sorted(docs, key=lambda d: (d.metadata[schema.FILE], d.metadata[schema.START]))

    @_reads_chroma
    def _live_records(self, manifest: dict, vectors: bool = False) -> list[tuple]:
        """(id, indexed text, metadata, vector or None) of every live chunk, read in pages."""
        if not manifest["reports"]:
            return []
        records, where = [], self.live_filter(manifest)
        include = ["documents", "metadatas"] + (["embeddings"] if vectors else [])
        for offset in itertools.count(0, _PAGE):  # Chroma fails on one get of over ~32,000 records
            got = self._chunks.get(where=where, include=include, limit=_PAGE, offset=offset)
            page_vectors = got["embeddings"] if vectors else [None] * len(got["ids"])
            records += zip(got["ids"], got["documents"], got["metadatas"], page_vectors)
            if len(got["ids"]) < _PAGE:
                break
        return records

    def search_index(self, manifest: dict) -> SearchIndex:
        """The search index of this manifest version: in memory, else on disk, else built from Chroma.

        A new build that cannot be saved (disk full, read-only folder) is used from memory.
        """
        return self._search_index(manifest, must_save=False)

    def search_index_in_memory(self, version: str) -> SearchIndex | None:
        """The search index of this version this process holds, if any (none is built or loaded)."""
        return self._indexes.get(version)

    def _search_index(self, manifest: dict, must_save: bool) -> SearchIndex:
        version = manifest["version"]
        with self._index_lock:
            folder = self.index_dir / version
            if version in self._indexes:
                self._indexes.move_to_end(version)
                if must_save and not (folder / "chunks.json").exists():
                    # a version live again (a report added, then removed) whose folder was pruned meanwhile
                    self._save_search_index(self._indexes[version], folder, must_save)
                return self._indexes[version]
            if (folder / "chunks.json").exists():
                index = SearchIndex.load(folder)
            else:
                index = self.build_search_index(manifest)
                expected = sum(r["chunks"] for r in manifest["reports"].values())
                if len(index) != expected:
                    if must_save:
                        raise IngestError(
                            f"Chroma holds {len(index)} chunks of the new index, the manifest names {expected}: "
                            "nothing was committed. Run `fazhi kb check --repair` (it mends what an older "
                            "version or a crash left), then try again."
                        )
                    return index  # a replaced manifest whose chunks are being collected: not worth keeping
                self._save_search_index(index, folder, must_save)
            self._indexes[version] = index
            while len(self._indexes) > _INDEX_VERSIONS_IN_MEMORY:
                self._indexes.popitem(last=False)
            return index

    def build_search_index(self, manifest: dict) -> SearchIndex:
        """A new search index of this version, read from Chroma (neither cached nor saved)."""
        records = self._live_records(manifest, vectors=True)
        return SearchIndex(
            [cid for cid, *_ in records],
            [text for _, text, _, _ in records],
            [meta[schema.DISTRICT] for _, _, meta, _ in records],
            [meta[schema.YEAR] for _, _, meta, _ in records],
            [vector for *_, vector in records],
        )

    def _save_search_index(self, index: SearchIndex, folder: Path, must_save: bool) -> None:
        """Write into a private folder, then rename: readers and other writers never see a half index."""
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            partial = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:12]}.partial")
            try:
                index.save(partial)
                partial.rename(folder)
            except OSError:
                shutil.rmtree(partial, ignore_errors=True)
                if not (folder / "chunks.json").exists():  # else another process saved it first
                    raise
        except OSError as err:
            if must_save:
                raise
            logger.warning("search index %s kept in memory only: %s", folder, err)
            return
        self._prune_index_dirs()

    def _prune_index_dirs(self) -> None:
        """Keep the newest versions; drop partial folders that a killed process left over an hour ago."""
        folders, partials = [], []
        for path in self.index_dir.iterdir():
            if path.is_dir():
                (partials if path.name.endswith(".partial") else folders).append(path)
        folders.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        stale = [p for p in partials if time.time() - p.stat().st_mtime > 3600]
        for old in folders[_KEEP_INDEX_VERSIONS:] + stale:
            shutil.rmtree(old, ignore_errors=True)

    # ---- changes ------------------------------------------------------------------

    def ingest(self, paths: Iterable[Path | ReportSource], progress: ProgressFn | None = None,
               root: Path | None = None) -> IngestSummary:
        """Add new and changed reports, skip unchanged ones; commit all at once at the end (see `Ingest.run`)."""
        return Ingest(self, progress).run(paths, root)

    def remove(self, file: str) -> None:
        """Take one report out of the index."""
        with self.ingest_lock.hold():
            reports = dict(self.manifest()["reports"])
            if file not in reports:
                raise KeyError(file)
            del reports[file]
            self.commit(reports)

    def check(self, repair: bool = False, uploads: Path | None = None) -> KbCheck:
        """Find (and with repair=True mend) what faults left inconsistent (see `rag.kb_check.check`)."""
        return kb_check.check(self, repair, uploads)

    def recover_uploads(self, folder: Path) -> list[KbProblem]:
        """Settle the uploads to folder that killed processes left staged (see `rag.kb_check.recover_uploads`)."""
        return kb_check.recover_uploads(self, folder)

    def commit(self, reports: dict, fresh: bool = False) -> None:
        """Swap in a manifest of these rows, its search index built first, then collect the garbage.

        Every change to the knowledge base ends here (ingest, remove, repair), under the ingest lock;
        what the rows name must be written before. `fresh` gives the manifest a version never used
        before, so every process builds its search index anew.
        """
        version = _manifest_version(reports)
        if fresh:
            version = hashlib.sha256(f"{version}:{uuid.uuid4().hex}".encode()).hexdigest()[:16]
        manifest = {"version": version, "pending": True, "reports": reports}
        self._search_index(manifest, must_save=True)  # built before the swap, so readers find it ready
        self._write_indicators(manifest, self.manifest())  # the same: readers find the table at the new version
        self._known_versions.add(manifest["version"])
        self._commit_manifest(manifest)
        self._collect_garbage(manifest)
        self._commit_manifest({**manifest, "pending": False})

    def current_indicators(self, table: IndicatorTable | None = None) -> IndicatorTable | None:
        """The 指标库 table (this knowledge base's unless one is given) at the live manifest's version,
        rebuilt first when it is not: deleted, or left behind by a change that died between the two
        commits or by another process's commit. None when there is none."""
        table = table or self.indicators
        manifest = self.manifest()
        if table is not None and table.version() != manifest["version"]:
            self._write_indicators(manifest, None, table)
        return table

    def _write_indicators(self, manifest: dict, base: dict | None, table: IndicatorTable | None = None) -> None:
        """Write the table for `manifest`: from `base` (the live manifest), only the reports that changed;
        everything when the table is not at base's version."""
        table = table or self.indicators
        if table is None:
            return
        reports, keys = manifest["reports"], MetricKeys.from_file(self.indicator_aliases) if self.indicator_aliases else None
        if base is not None and base["version"] and table.version() == base["version"]:
            old = base["reports"]
            changed = {f: self._indicators_of(row, keys) for f, row in reports.items()
                       if old.get(f, {}).get("version") != row["version"]}
            try:
                table.replace(changed, [f for f in old if f not in reports], manifest["version"],
                              base_version=base["version"])
                return
            except StaleTableError:
                pass  # another process wrote it meanwhile: rebuild
        table.rebuild(((f, self._indicators_of(row, keys)) for f, row in reports.items()), manifest["version"])

    def _indicators_of(self, row: dict, keys: MetricKeys | None) -> list[Indicator]:
        stored = self.stored_report(row)
        return extract_indicators(*stored, keys) if stored else []

    def mark_pending(self, manifest: dict) -> None:
        """Mark the manifest pending before writing chunks it does not name: searches filter from now on."""
        if not manifest["pending"]:
            self._commit_manifest({**manifest, "pending": True})

    def collect_leftovers(self, manifest: dict) -> None:
        """Delete what a killed change left beside this manifest, and clear its pending mark."""
        self._collect_garbage(manifest)
        if manifest["pending"] and manifest["version"]:
            self._commit_manifest({**manifest, "pending": False})

    def missing_chunks(self, chunks: list[Document]) -> list[Document]:
        """Those of the chunks Chroma does not hold (an interrupted ingest leaves some written)."""
        held = set(self.vectors.get(ids=[c.metadata[schema.CHUNK_ID] for c in chunks], include=[])["ids"])
        return [c for c in chunks if c.metadata[schema.CHUNK_ID] not in held]

    def write_chunks(self, chunks: list[Document]) -> None:
        """Embed the chunks' indexed text and write them to Chroma."""
        self.vectors.add_documents(
            [Document(page_content=indexed_text(c), metadata=c.metadata) for c in chunks],
            ids=[c.metadata[schema.CHUNK_ID] for c in chunks],
        )

    def delete_chunks(self, ids: list[str]) -> None:
        """Delete chunks by id, a page at a time."""
        for start in range(0, len(ids), _PAGE):
            self.vectors.delete(ids=ids[start : start + _PAGE])

    def store_report_texts(self, texts: list[tuple[str, LoadedReport]]) -> None:
        """Keep each report's original text (for passages and citations) under its version."""
        if texts:
            self._meta.upsert(
                ids=[_REPORT_TEXT_PREFIX + version for version, _ in texts],
                embeddings=[[1.0]] * len(texts),
                documents=[report.text for _, report in texts],
                metadatas=[{"kind": "report", schema.FILE: report.file} for _, report in texts],
            )

    def _collect_garbage(self, manifest: dict) -> None:
        """Delete chunks and texts of versions the manifest no longer names."""
        live = [r["version"] for r in manifest["reports"].values()]
        where = {schema.FILE_HASH: {"$nin": live}} if live else None
        stale = self.vectors.get(where=where, include=[])["ids"] if where else self.vectors.get(include=[])["ids"]
        self.delete_chunks(stale)
        texts = self._meta.get(where={"kind": "report"}, include=[])["ids"]
        dead = [i for i in texts if i[len(_REPORT_TEXT_PREFIX) :] not in live]
        if dead:
            self._meta.delete(ids=dead)

    @_reads_chroma
    def survey(self) -> dict:
        """Everything held, live or not: the manifest, every chunk id by (version, file), and the
        versions of the stored texts."""
        chunks: dict[tuple[str, str], list[str]] = defaultdict(list)
        for offset in itertools.count(0, _PAGE):
            got = self._chunks.get(include=["metadatas"], limit=_PAGE, offset=offset)
            for cid, meta in zip(got["ids"], got["metadatas"]):
                chunks[(meta.get(schema.FILE_HASH, ""), meta.get(schema.FILE, ""))].append(cid)
            if len(got["ids"]) < _PAGE:
                break
        texts = {i[len(_REPORT_TEXT_PREFIX):] for i in self._meta.get(where={"kind": "report"}, include=[])["ids"]}
        return {"manifest": self.manifest(), "chunks": chunks, "texts": texts}


def _changed_by_another_process(detail: str) -> IndexUnavailableError:
    """Embedded Chroma loads a collection's vectors once per process: another writer needs a restart."""
    return IndexUnavailableError(
        "索引已被另一个进程更新: another process (`fazhi ingest`?) changed the embedded Chroma store "
        f"this process opened earlier ({detail}). Restart this process to read it; next time ingest "
        "through this process (upload page or POST /api/reports), or use chroma.mode: server."
    )


def _manifest_version(reports: dict) -> str:
    pairs = sorted((file, row["version"]) for file, row in reports.items())
    return hashlib.sha256(json.dumps(pairs).encode()).hexdigest()[:16]
