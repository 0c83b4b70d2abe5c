"""The knowledge base: report chunks in Chroma, a BM25 index kept in step, and a manifest.

Consistency rule: a chunk is live only when its report version (FILE_HASH) is the
one named in the manifest. An ingest adds the new version's chunks first, then
swaps the manifest (one Chroma record, replaced in one write), then deletes what
the old manifest named. A killed ingest therefore leaves only unreferenced
chunks behind: queries never see them, and the next ingest reuses or removes them.
A question that reads the manifest just before a swap may find some of its chunks
collected; the pipeline checks the manifest again after retrieval and retries.
The search index (BM25 and vectors, `rag.search_index`) is derived from Chroma and cached
on disk per manifest version, so every process sharing a Chroma server rebuilds it when the
manifest changes. Chroma's HNSW answers unfiltered dense searches; the search index answers
the filtered ones, which Chroma would pre-filter slowly.

Identity: a report is its name and its bytes. Its version hashes both (with its metadata and
the chunker), so no two manifest rows share a version, chunks or stored text; and one set of
bytes is held under one name only: an ingest refuses the same bytes under a second name.
An upload is staged (`staged_path`) and moved to its final path only once the manifest names
its bytes (under the ingest lock); however the ingest ends, a staged file is moved or deleted.
One that a killed process left is settled the same way later (`recover_uploads`, `check`).
`check` finds what faults and older versions left inconsistent, and with repair=True mends it.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import itertools
import json
import logging
import os
import re
import shlex
import shutil
import socket
import threading
import time
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import filelock
import httpx
from chromadb.errors import InternalError as ChromaInternalError
from langchain_chroma import Chroma
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from rag import schema
from rag.chunking import CHUNKER_VERSION, chunk_report
from rag.errors import (
    BadFileError,
    DuplicateReportError,
    IndexMissingError,
    IndexUnavailableError,
    IngestBusyError,
    IngestError,
    RagError,
)
from rag.loading import EXTENSIONS, LoadedReport, load_report
from rag.metadata import ReportMeta, report_metadata, sidecar_path
from rag.search_index import SearchIndex

MANIFEST_ID = "manifest"
LEASE_ID = "ingest-lease"
_LEASE_S = 300.0        # renewed after every embedded batch; a killed ingest's lease lapses after this
_LEASE_SETTLE_S = 0.2   # two ingests taking the lease at once: the last write wins, and both read it
_REPORT_TEXT_PREFIX = "report:"
_KEEP_INDEX_VERSIONS = 3
_QUERY_VECTORS_CACHED = 256
_PAGE = 5000  # records per Chroma read or delete: one SQL statement holds at most 32,766 variables
_INDEX_VERSIONS_IN_MEMORY = 2  # the live one, and the one a question begun before a swap still reads
_UNREACHABLE = (httpx.TransportError, ConnectionError)  # a Chroma server that is down or cut off
# Write failures the user fixes on the machine: disk full, read-only folder, quota, file size limit.
_DISK_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG}
_LOW_DISK_BYTES = 16 * 2**20   # below this, a failed write is put down to a full disk
MIN_FREE_BYTES = 128 * 2**20    # ingest.min_free_mb: an ingest writes nothing while less is free
MAX_CHUNKS_PER_FILE = 2000  # ingest.max_chunks_per_file: the longest seed is 48; 2,000 embed in 1-1.5 min
# An upload to FOLDER/NAME is staged as FOLDER.staging/<pid>-<tag>-NAME: on the same disk (a rename
# moves it into place), keeping its extension (which says how to read it), and out of FOLDER, whose
# every report file is a confirmed one. The old code left FOLDER/NAME.upload (partly written) and
# FOLDER/NAME.previous (the confirmed copy, kept while the new bytes were ingested).
_STAGED = re.compile(r"(?P<pid>\d+)-[0-9a-f]{8}-(?P<name>.+)")
_OLD_STAGED = re.compile(r"(?P<name>.+)\.upload")
_PREVIOUS = re.compile(r"(?P<name>.+)\.previous")
_STAGED_STALE_S = 3600.0  # a staged file this old is a leftover even if its pid is alive (reused)

logger = logging.getLogger(__name__)

ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ReportSource:
    """One report to ingest: its name in the knowledge base and its file (the sidecar lives beside it).

    `staged`, when given, holds the new bytes to read instead: they replace `path` once the
    index names them, and are deleted otherwise.
    """

    name: str
    path: Path
    staged: Path | None = None


@dataclass
class IngestSummary:
    """What one ingest did; `failed` maps file name to the reason, `errors` to the error itself."""

    new: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    chunks_embedded: int = 0
    chunks_total: int = 0
    seconds: float = 0.0
    errors: dict[str, RagError] = field(default_factory=dict, repr=False)

    @property
    def chunks_per_s(self) -> float:
        return self.chunks_embedded / self.seconds if self.seconds else 0.0

    def fail(self, file: str, error: RagError) -> None:
        self.failed[file] = str(error)
        self.errors[file] = error

    def as_dict(self) -> dict:
        return {
            "new": self.new,
            "unchanged": self.unchanged,
            "replaced": self.replaced,
            "failed": self.failed,
            "chunks_embedded": self.chunks_embedded,
            "chunks_total": self.chunks_total,
            "seconds": round(self.seconds, 3),
            "chunks_per_s": round(self.chunks_per_s, 2),
        }


def report_version(report: LoadedReport, meta: ReportMeta) -> str:
    """Hash of a report's name, bytes, metadata and the chunker: a sidecar edit is a new version
    too, and two names never share one (nor, so, chunk ids or a stored text)."""
    meta_json = json.dumps(meta.__dict__, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(
        f"{report.file}\n{report.sha256}\n{meta_json}\n{CHUNKER_VERSION}".encode()
    ).hexdigest()


@dataclass
class KbProblem:
    """One inconsistency `KnowledgeBase.check` found: its kind, what it is about, what is wrong and what mends it."""

    kind: str     # one of PROBLEM_KINDS
    subject: str  # the report name, chunk version or file it is about
    detail: str


# What `check` looks for. The upload kinds need the uploads folder; missing_upload and changed_upload
# (and a staged upload still in progress) need a person's decision, so repair leaves them.
PROBLEM_KINDS = (
    "orphan_chunks",     # chunks of a (version, file) no manifest row names: deleted
    "orphan_text",       # a stored report text no row names: deleted
    "missing_text",      # a row whose stored text is gone: stored again from its file, if unchanged
    "chunk_count",       # a row whose chunks in Chroma are not the number it says: re-chunked, re-embedded
    "duplicate_content", # the same bytes under two names (old versions did that): the first ingested is kept
    "pending",           # the manifest still marked pending by a killed ingest: cleared
    "search_index",      # the saved search index of the live version missing or not its chunks: rebuilt
    "staged_upload",     # an upload a killed process staged: moved into place if the index names it, else deleted
    "previous_upload",   # NAME.previous left by the old upload code: settled the same way
    "unindexed_upload",  # a file in the uploads folder the index does not hold: moved to <uploads>.unindexed/
    "missing_upload",    # a row uploaded here whose file is gone: `fazhi kb remove NAME`, or upload it again
    "changed_upload",    # an upload whose bytes differ from what the index holds: upload it again, or PATCH it
)
_UPLOAD_KINDS = {"staged_upload", "previous_upload", "unindexed_upload", "missing_upload", "changed_upload"}


@dataclass
class KbCheck:
    """What `KnowledgeBase.check` found (`problems`), and what is left after a repair (`remaining`)."""

    problems: list[KbProblem]
    remaining: list[KbProblem]
    repaired: bool  # whether a repair was asked for
    reports: int    # rows in the manifest, and their chunks, after any repair
    chunks: int

    @property
    def ok(self) -> bool:
        return not self.remaining

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "repaired": self.repaired,
            "reports": self.reports,
            "chunks": self.chunks,
            "problems": [p.__dict__ for p in self.problems],
            "remaining": [p.__dict__ for p in self.remaining],
        }


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
    """Reports in Chroma plus a search index per version; ingest, remove, list and search them."""

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
        self._indexes: OrderedDict[str, SearchIndex] = OrderedDict()
        self._index_lock = threading.Lock()
        self._embedded = bool(client.get_settings().is_persistent)
        # Other data folders (other hosts) may ingest into the store: a Chroma server, by default.
        self._shared = not self._embedded if shared_store is None else shared_store
        self._known_versions: set[str] = set()
        self._lease_owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._manifest_cache: tuple[str, dict] | None = None
        # A comparison searches each named district with one question: embed it once.
        self.query_vector = functools.lru_cache(maxsize=_QUERY_VECTORS_CACHED)(embeddings.embed_query)

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
        free = self._free_bytes()
        cause = (f"the disk of the data folder is full ({free // 1024} KB free): free disk space"
                 if free < _LOW_DISK_BYTES else "check the data folder's disk and permissions")
        return (
            f"知识库暂时无法读取: Chroma cannot read its store ({err}); {cause}. Questions answer again once "
            "Chroma can apply its pending writes, without a restart; the next ingest completes an interrupted one."
        )

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
        got = self._meta.get(ids=[_REPORT_TEXT_PREFIX + row["version"]], include=["documents"])
        if not got["ids"]:
            raise IndexMissingError(
                f"The text of {file} is missing from the index: upload it again (POST /api/reports) or run "
                "`fazhi kb check --repair`.")
        return got["documents"][0]

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

    def _search_index(self, manifest: dict, must_save: bool) -> SearchIndex:
        version = manifest["version"]
        with self._index_lock:
            if version in self._indexes:
                self._indexes.move_to_end(version)
                return self._indexes[version]
            folder = self.index_dir / version
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

    # ---- ingest -----------------------------------------------------------------

    def ingest(self, paths: Iterable[Path | ReportSource], progress: ProgressFn | None = None,
               root: Path | None = None) -> IngestSummary:
        """Add new and changed reports, skip unchanged ones; commit all at once at the end.

        A path is named relative to `root`, else by its file name; a ReportSource names itself.
        A file that cannot be read, that shares its name with another file of this call, whose
        bytes another report holds already, or that chunks into over max_chunks_per_file chunks
        is reported in `failed` and skipped, before anything is embedded. Anything else that
        fails leaves the previous index as it was and raises IngestError. A staged file is moved
        into place if the index names its bytes when the call ends, however it ends, else deleted.
        """
        started = time.perf_counter()
        summary = IngestSummary()
        paths = list(paths)
        staged = [p for p in paths if isinstance(p, ReportSource) and p.staged]
        locked = False
        try:
            with self._ingest_lock():
                locked = True
                try:
                    self._ingest(_report_sources(paths, root, summary), summary, progress)
                finally:
                    self._settle_staged(staged)
        finally:
            if not locked:  # refused before the lock: nothing was ingested
                for source in staged:
                    source.staged.unlink(missing_ok=True)
        summary.seconds = time.perf_counter() - started
        return summary

    def _ingest(self, sources: list[ReportSource], summary: IngestSummary, progress) -> None:
        old = self.manifest()
        reports = dict(old["reports"])
        owners: dict[str, str] = {}  # sha256 of bytes → the report that holds them
        for name, row in reports.items():
            owners.setdefault(row["sha256"], name)
        this_call: set[str] = set()
        pending: list[tuple[LoadedReport, ReportMeta, str, list[Document], ReportSource]] = []
        for source in sources:
            file = source.name
            try:
                report = load_report(source.staged or source.path, max_bytes=self.max_file_bytes, file=file)
                if source.staged:
                    report = replace(report, path=source.path)  # its sidecar is beside its final path
                meta = report_metadata(report)
            except BadFileError as err:
                summary.fail(file, err)
                continue
            other = self._same_content_as(report.sha256, file, owners)
            if other:
                summary.fail(file, _duplicate(file, other, other in this_call))
                continue
            version = report_version(report, meta)
            current = reports.get(file)
            if current and current["version"] == version:
                summary.unchanged.append(file)
                this_call.add(file)
                continue
            chunks = self._versioned_chunks(report, meta, version)
            if not chunks:
                summary.fail(file, BadFileError(f"{file}: no text to index after parsing."))
                continue
            if len(chunks) > self.max_chunks_per_file:
                summary.fail(file, self._too_many_chunks(file, len(chunks)))
                continue
            if current and owners.get(current["sha256"]) == file:
                del owners[current["sha256"]]
            owners[report.sha256] = file
            this_call.add(file)
            (summary.replaced if current else summary.new).append(file)
            pending.append((report, meta, version, chunks, source))

        if pending:
            self._check_disk_space()
        try:
            if pending and not old["pending"]:
                self._commit_manifest({**old, "pending": True})  # searches filter from now on
            # Chroma's cost is per write more than per chunk: write across reports, texts at once.
            self._add_chunks([c for *_, chunks, _ in pending for c in chunks], summary, progress)
            self._check_disk_space()
            self._store_report_texts([(version, report) for report, _, version, _, _ in pending])
            for report, meta, version, chunks, source in pending:
                reports[report.file] = {
                    "file": report.file,
                    "version": version,
                    "sha256": report.sha256,
                    "encoding": report.encoding,
                    "district": meta.district,
                    "city": meta.city,
                    "province": meta.province,
                    "district_code": meta.district_code,
                    "year": meta.year or 0,
                    "title": meta.title,
                    "body": meta.body,
                    "chunks": len(chunks),
                    "ingested_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    "source": os.path.abspath(source.path),
                }
            if pending:
                self._commit(reports)
        except RagError:
            raise
        except Exception as err:  # the old manifest is untouched: the index still answers
            raise self._ingest_failed(err) from err
        if not pending:
            self._collect_garbage(old)  # what a killed ingest left behind
            if old["pending"] and old["version"]:
                self._commit_manifest({**old, "pending": False})
        summary.chunks_total = sum(r["chunks"] for r in reports.values())

    def _same_content_as(self, sha256: str, file: str, owners: dict[str, str]) -> str | None:
        """The other report that holds these bytes already, if any."""
        other = owners.get(sha256)
        return other if other and other != file else None

    def _too_many_chunks(self, file: str, count: int) -> BadFileError:
        return BadFileError(
            f"{file}: {count:,} chunks, over the limit of {self.max_chunks_per_file:,} per file "
            "(ingest.max_chunks_per_file); nothing of it was embedded. A report is a few hundred chunks "
            "at most: check that this is the report and not a data dump, split it into parts, or raise "
            "ingest.max_chunks_per_file in the settings."
        )

    def _settle_staged(self, staged: list[ReportSource]) -> None:
        """Move each staged file into place if the manifest names its bytes, else delete it."""
        if not staged:
            return
        try:
            rows = self.manifest()["reports"]
            for source in staged:
                _settle_file(source.staged, source.path, rows.get(source.name))
        except Exception as err:  # Chroma gone, a full disk: the restart or `fazhi kb check --repair` settles it
            logger.warning("staged uploads %s left in place (%s); `fazhi kb check --repair` settles them",
                           [str(s.staged) for s in staged], err)

    def recover_uploads(self, folder: Path) -> list[KbProblem]:
        """Finish or roll back the uploads in folder that killed processes left half swapped.

        A staged file (or the old code's NAME.previous) whose bytes the manifest names is moved
        into place: the index committed them. Any other is deleted. Files of live processes are
        left alone. Returns what was found and done.
        """
        if all(_in_progress(pid, mtime) for *_, pid, mtime in _leftovers(folder)):
            return []  # nothing left over (the usual case): no lock taken
        with self._ingest_lock():
            return self._settle_leftovers(folder, self.manifest()["reports"], repair=True)

    def _settle_leftovers(self, folder: Path, rows: dict, repair: bool) -> list[KbProblem]:
        """The leftover uploads to folder, as problems; with repair=True each is settled (and those
        still in progress are left out)."""
        problems = []
        for path, kind, name, pid, mtime in _leftovers(folder):
            row = rows.get(name)
            if _in_progress(pid, mtime):
                if not repair:
                    problems.append(KbProblem(kind, path.name, (
                        f"an upload of {name} in progress: process {pid} staged it under an hour ago; it is "
                        "settled when that process ends, or once an hour old.")))
                continue
            committed = row is not None and _file_sha256(path) == row["sha256"]
            what = ("left by a process killed while uploading" if kind == "staged_upload"
                    else "left by the old upload code")
            problems.append(KbProblem(kind, path.name, (
                f"{what}; the index names its bytes, so --repair moves it to {name}." if committed
                else f"{what}; the index does not name its bytes, so --repair deletes it.")))
            if repair:
                _settle_file(path, folder / name, row)
        return problems

    def _free_bytes(self) -> int:
        data_dir = self.index_dir.parent
        return shutil.disk_usage(data_dir).free if data_dir.exists() else _LOW_DISK_BYTES

    def _check_disk_space(self) -> None:
        """Stop before a write that could fill the disk: Chroma whose own write fails on a full disk
        may not read its store again until space is freed. Checked before every batch, so the
        ingest stops with nothing committed and the previous index answers, in this process and after a restart."""
        free = self._free_bytes()
        if free < self.min_free_bytes:
            raise IngestError(
                f"Ingest stopped: the disk of the data folder is nearly full ({free // 2**20} MB free, an ingest "
                f"keeps {self.min_free_bytes // 2**20} MB free: ingest.min_free_mb); nothing new was committed and "
                "the previous index still answers. Free disk space, then ingest again: finished work is reused."
            )

    def _ingest_failed(self, err: Exception) -> RagError:
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
        free = self._free_bytes()
        if free < _LOW_DISK_BYTES:  # Chroma's own writes fail with its own words ("compaction", "sqlite")
            return IngestError(
                f"Ingest stopped ({type(err).__name__}: {err}): the disk of the data folder is full "
                f"({free // 1024} KB free); {unchanged}. Free disk space, then {again}."
            )
        return IngestError(
            f"Ingest stopped ({type(err).__name__}: {err}); {unchanged}. Fix the cause and {again}."
        )

    def remove(self, file: str) -> None:
        """Take one report out of the index."""
        with self._ingest_lock():
            reports = dict(self.manifest()["reports"])
            if file not in reports:
                raise KeyError(file)
            del reports[file]
            self._commit(reports)

    # ---- check and repair ---------------------------------------------------------

    def check(self, repair: bool = False, uploads: Path | None = None) -> KbCheck:
        """Find where Chroma, the manifest, the stored texts, the search index and the uploads folder disagree.

        With repair=True, mend what can be mended (see PROBLEM_KINDS), then look again: `remaining`
        is what is left. Holds the ingest lock throughout (IngestBusyError while an ingest runs).
        """
        with self._ingest_lock():
            survey = self._survey()
            problems = self._problems(survey, uploads)
            remaining = problems
            if repair and problems:
                self._repair(survey, problems, uploads)
                survey = self._survey()
                remaining = self._problems(survey, uploads)
            rows = survey["manifest"]["reports"]
            return KbCheck(problems, remaining, repair, len(rows), sum(r["chunks"] for r in rows.values()))

    @_reads_chroma
    def _survey(self) -> dict:
        """The manifest, every chunk id by (version, file), and the versions of the stored texts."""
        chunks: dict[tuple[str, str], list[str]] = defaultdict(list)
        for offset in itertools.count(0, _PAGE):
            got = self._chunks.get(include=["metadatas"], limit=_PAGE, offset=offset)
            for cid, meta in zip(got["ids"], got["metadatas"]):
                chunks[(meta.get(schema.FILE_HASH, ""), meta.get(schema.FILE, ""))].append(cid)
            if len(got["ids"]) < _PAGE:
                break
        texts = {i[len(_REPORT_TEXT_PREFIX):] for i in self._meta.get(where={"kind": "report"}, include=[])["ids"]}
        return {"manifest": self.manifest(), "chunks": chunks, "texts": texts}

    def _problems(self, survey: dict, uploads: Path | None) -> list[KbProblem]:
        manifest, chunks, texts = survey["manifest"], survey["chunks"], survey["texts"]
        rows = manifest["reports"]
        named = {(row["version"], name) for name, row in rows.items()}
        versions = {row["version"] for row in rows.values()}
        problems = [
            KbProblem("orphan_chunks", f"{file}@{version[:12]}", (
                f"{len(ids)} chunks of {file!r} (version {version[:12]}) that no manifest row names, left by an "
                "ingest that was killed or failed (or by an old version); --repair deletes them."))
            for (version, file), ids in sorted(chunks.items()) if (version, file) not in named
        ]
        problems += [
            KbProblem("orphan_text", version[:12], f"a stored report text (version {version[:12]}) that no "
                      "manifest row names; --repair deletes it.")
            for version in sorted(texts - versions)
        ]
        for name, row in sorted(rows.items()):
            if row["version"] not in texts:
                problems.append(KbProblem("missing_text", name, (
                    f"the stored text of {name} is gone (passages and citations of it fail); --repair stores it "
                    f"again from {row.get('source') or name} if that file is unchanged; else ingest the report "
                    "again.")))
            held = len(chunks.get((row["version"], name), []))
            if held != row["chunks"]:
                problems.append(KbProblem("chunk_count", name, (
                    f"the manifest names {row['chunks']} chunks of {name}, Chroma holds {held}; --repair "
                    "chunks its stored text again and embeds what is missing (without a text, the row is made "
                    "to name what Chroma holds, or removed if nothing is left: ingest the report again).")))
        by_bytes: dict[str, list[str]] = defaultdict(list)
        for name, row in rows.items():
            by_bytes[row["sha256"]].append(name)
        for names in by_bytes.values():
            if len(names) > 1:
                keep, *others = _first_ingested(names, rows)
                shared = len({rows[n]["version"] for n in names}) < len(names)
                problems.append(KbProblem("duplicate_content", ", ".join(sorted(names)), (
                    f"the same bytes under {len(names)} names: {', '.join(sorted(names))}"
                    f"{' (sharing one version, so their chunks are mixed)' if shared else ''}; every figure of it "
                    f"counts {len(names)} times. --repair keeps {keep!r}, the first ingested, and removes "
                    f"{', '.join(map(repr, others))} from the index.")))
        if manifest["pending"]:
            problems.append(KbProblem("pending", manifest["version"] or "(empty)", (
                "the manifest is still marked pending by an ingest that did not finish: every search filters "
                "on report versions, which is slower; --repair collects its leftovers and clears the mark.")))
        problem = self._search_index_problem(manifest, chunks, named)
        if problem:
            problems.append(problem)
        if uploads is not None and uploads.is_dir():
            problems += self._upload_problems(uploads, rows)
        return problems

    def _search_index_problem(self, manifest: dict, chunks: dict, named: set) -> KbProblem | None:
        if not manifest["reports"]:
            return None
        version, folder = manifest["version"], self.index_dir / manifest["version"]
        live = {cid for key in named for cid in chunks.get(key, [])}
        held = self._indexes.get(version)
        try:
            saved = SearchIndex.load(folder) if (folder / "chunks.json").exists() else None
        except Exception as err:  # a damaged folder: json, numpy and bm25s fail in their own ways
            wrong = f"cannot be read ({type(err).__name__}: {err})"
        else:
            if saved is None:
                wrong = "is missing"
            elif set(saved.ids) != live:
                wrong = f"holds {len(saved.ids)} chunks, not the {len(live)} live ones"
            elif held is not None and set(held.ids) != live:
                wrong = f"held in this process holds {len(held.ids)} chunks, not the {len(live)} live ones"
            else:
                return None
        return KbProblem("search_index", version, (
            f"the search index of version {version} (in {folder}) {wrong}; --repair builds it again."))

    def _upload_problems(self, uploads: Path, rows: dict) -> list[KbProblem]:
        problems = self._settle_leftovers(uploads, rows, repair=False)
        for path in sorted(uploads.iterdir()):
            if not path.is_file() or path.suffix.lower() not in EXTENSIONS:
                continue
            row = rows.get(path.name)
            if row is None:
                problems.append(KbProblem("unindexed_upload", path.name, (
                    f"{path} is in the uploads folder but not in the index (an upload or a removal that was "
                    f"killed halfway?); --repair moves it to {_unindexed(uploads)}: upload it again to index it.")))
            elif _file_sha256(path) != row["sha256"]:
                problems.append(KbProblem("changed_upload", path.name, (
                    f"{path} is not the file the index holds for {path.name} (a metadata fix would ingest it); "
                    f"upload the right one again, or `fazhi ingest {shlex.quote(str(path))}` to take this one.")))
        for name, row in sorted(rows.items()):
            source = Path(row.get("source") or "")
            if source.parent == Path(os.path.abspath(uploads)) and not source.exists():
                problems.append(KbProblem("missing_upload", name, (
                    f"{name} was uploaded to {uploads} but its file is gone; the index still answers from its "
                    f"stored text, but its metadata cannot be fixed. `fazhi kb remove {shlex.quote(name)}` (or DELETE "
                    f"/api/reports/{name}) removes it, or upload it again.")))
        return problems

    def _repair(self, survey: dict, problems: list[KbProblem], uploads: Path | None) -> None:
        """Mend the problems found: settle staged uploads, then drop duplicate names, rebuild broken rows,
        delete stray chunks, and commit the rows with a fresh version (the search index built anew)."""
        rows = survey["manifest"]["reports"]
        if uploads is not None and uploads.is_dir():
            self._settle_leftovers(uploads, rows, repair=True)
        kinds = {p.kind for p in problems}
        if kinds - _UPLOAD_KINDS:
            reports = dict(rows)
            by_bytes: dict[str, list[str]] = defaultdict(list)
            for name, row in rows.items():
                by_bytes[row["sha256"]].append(name)
            for names in by_bytes.values():
                for name in _first_ingested(names, rows)[1:]:
                    del reports[name]
            broken = {p.subject for p in problems if p.kind in ("missing_text", "chunk_count")}
            for name in sorted(broken & set(reports)):
                row = reports[name]
                rebuilt = self._rebuilt_row(row, survey["chunks"])
                held = len(survey["chunks"].get((row["version"], name), []))
                if rebuilt is not None:
                    reports[name] = rebuilt
                elif held:  # no text to rebuild from: the manifest names what is there
                    reports[name] = {**row, "chunks": held}
                else:  # nothing of it left
                    del reports[name]
            named = {(row["version"], name) for name, row in reports.items()}
            versions = {row["version"] for row in reports.values()}
            stray = [cid for (version, file), ids in survey["chunks"].items()
                     if version in versions and (version, file) not in named for cid in ids]
            for start in range(0, len(stray), _PAGE):
                self.vectors.delete(ids=stray[start : start + _PAGE])
            self._commit(reports, fresh=True)
        if uploads is not None and uploads.is_dir():
            manifest_rows = self.manifest()["reports"]
            for path in sorted(uploads.iterdir()):
                if path.is_file() and path.suffix.lower() in EXTENSIONS and path.name not in manifest_rows:
                    _unindexed(uploads).mkdir(exist_ok=True)
                    for part in (path, sidecar_path(path)):
                        if part.exists():
                            os.replace(part, _unindexed(uploads) / part.name)

    def _rebuilt_row(self, row: dict, chunks: dict) -> dict | None:
        """The row with its text stored and its chunks embedded again, from the stored text or its
        unchanged file; None when neither is left."""
        name = row["file"]
        got = self._meta.get(ids=[_REPORT_TEXT_PREFIX + row["version"]], include=["documents"])
        text = got["documents"][0] if got["ids"] else None
        source = Path(row["source"]) if row.get("source") else None
        if text is None and source is not None and source.is_file():
            try:
                loaded = load_report(source, max_bytes=self.max_file_bytes, file=name)
            except BadFileError:
                loaded = None
            if loaded is not None and loaded.sha256 == row["sha256"]:
                text = loaded.text
        if text is None:
            return None
        report = LoadedReport(file=name, path=source or Path(name), text=text, sha256=row["sha256"],
                              encoding=row["encoding"])
        meta = ReportMeta(district=row["district"], year=row["year"] or None, body=row["body"], title=row["title"],
                          city=row.get("city", ""), province=row.get("province", ""),
                          district_code=row.get("district_code", ""))
        version = report_version(report, meta)  # the row's own, unless it was made by an older version
        rebuilt = self._versioned_chunks(report, meta, version)
        self._add_chunks(rebuilt, IngestSummary(), None)
        expected = {c.metadata[schema.CHUNK_ID] for c in rebuilt}
        extra = [cid for cid in chunks.get((version, name), []) if cid not in expected]
        if extra:
            self.vectors.delete(ids=extra)
        self._store_report_texts([(version, report)])
        return {**row, "version": version, "chunks": len(rebuilt)}

    def _commit(self, reports: dict, fresh: bool = False) -> None:
        """Swap in a manifest of these rows, its search index built first, then collect the garbage.

        `fresh` gives it a version never used before, so every process builds its search index anew.
        """
        version = _manifest_version(reports)
        if fresh:
            version = hashlib.sha256(f"{version}:{uuid.uuid4().hex}".encode()).hexdigest()[:16]
        manifest = {"version": version, "pending": True, "reports": reports}
        self._search_index(manifest, must_save=True)  # built before the swap, so readers find it ready
        self._known_versions.add(manifest["version"])
        self._commit_manifest(manifest)
        self._collect_garbage(manifest)
        self._commit_manifest({**manifest, "pending": False})

    def _versioned_chunks(self, report: LoadedReport, meta: ReportMeta, version: str) -> list[Document]:
        chunks = chunk_report(
            report, meta, chunk_tokens=self.chunk_tokens, overlap_tokens=self.overlap_tokens
        )
        for chunk in chunks:
            chunk.metadata[schema.FILE_HASH] = version
            chunk.metadata[schema.CHUNK_ID] = hashlib.sha256(
                f"{version}:{chunk.metadata[schema.CHUNK_ID]}".encode()
            ).hexdigest()[:32]
        return chunks

    def _add_chunks(self, chunks: list[Document], summary: IngestSummary, progress) -> None:
        """Embed and write the chunks not in Chroma yet (an interrupted run leaves some), a batch at a time."""
        for start in range(0, len(chunks), self.embed_batch_size):
            batch = chunks[start : start + self.embed_batch_size]
            present = set(self.vectors.get(ids=[c.metadata[schema.CHUNK_ID] for c in batch], include=[])["ids"])
            missing = [c for c in batch if c.metadata[schema.CHUNK_ID] not in present]
            if missing:
                self._check_disk_space()
                self.vectors.add_documents(
                    [Document(page_content=indexed_text(c), metadata=c.metadata) for c in missing],
                    ids=[c.metadata[schema.CHUNK_ID] for c in missing],
                )
            if self._shared:
                self._renew_lease()
            summary.chunks_embedded += len(missing)
            if progress:
                progress(batch[-1].metadata[schema.FILE], start + len(batch), len(chunks))

    def _store_report_texts(self, texts: list[tuple[str, LoadedReport]]) -> None:
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
        for start in range(0, len(stale), _PAGE):
            self.vectors.delete(ids=stale[start : start + _PAGE])
        texts = self._meta.get(where={"kind": "report"}, include=[])["ids"]
        dead = [i for i in texts if i[len(_REPORT_TEXT_PREFIX) :] not in live]
        if dead:
            self._meta.delete(ids=dead)

    @contextmanager
    def _ingest_lock(self):
        """Hold the data folder's ingest lock (and the server's lease), or refuse at once.

        The file lock keeps apart ingests of one data folder; with a Chroma server, the lease,
        a record in Chroma, keeps apart ingests from other data folders or hosts sharing it.
        """
        lock = filelock.FileLock(str(self.lock_path), timeout=0)
        try:
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            lock.acquire()
        except filelock.Timeout as err:
            raise IngestBusyError(
                "另一个导入正在进行: another ingest is changing this knowledge base; wait for it to finish "
                "(uploads take seconds, `fazhi ingest` of a folder minutes), then try again."
            ) from err
        except OSError as err:
            raise IngestError(
                f"Cannot take the ingest lock in the data folder ({err.strerror}): the data folder must be "
                "writable and have free space; nothing was changed."
            ) from err
        try:
            if not self._shared:  # an embedded store belongs to one data folder: its file lock is enough
                yield
                return
            self._take_lease()
            try:
                yield
            finally:
                self._release_lease()
        finally:
            lock.release()

    def _release_lease(self) -> None:
        try:
            self._meta.delete(ids=[LEASE_ID], where={"owner": self._lease_owner})
        except Exception as err:  # a full disk, a server gone: the lease lapses, or this store retakes it
            logger.warning("could not release the ingest lease (%s); it lapses in %.0f s", err, _LEASE_S)

    def _lease_holder(self) -> dict | None:
        """The live lease on this collection's ingests, if any: unexpired, and not of a dead local process."""
        got = self._meta.get(ids=[LEASE_ID], include=["metadatas"])
        if not got["ids"] or got["metadatas"][0]["until"] <= time.time():
            return None
        holder = got["metadatas"][0]
        host, pid, _ = holder["owner"].rsplit(":", 2)
        if host == socket.gethostname() and not _process_alive(int(pid)):
            return None  # killed mid-ingest on this machine: its rerun need not wait for the lease to lapse
        return holder

    def _renew_lease(self) -> None:
        self._meta.upsert(ids=[LEASE_ID], embeddings=[[1.0]], metadatas=[
            {"kind": "lease", "owner": self._lease_owner, "until": time.time() + _LEASE_S}])

    def _take_lease(self) -> None:
        for attempt in ("take", "check"):
            holder = self._lease_holder()
            if holder and holder["owner"] != self._lease_owner:
                raise IngestBusyError(
                    f"另一个导入正在进行: {holder['owner'].rsplit(':', 1)[0]} is ingesting into this knowledge "
                    f"base (a data folder sharing its Chroma store) for up to {holder['until'] - time.time():.0f} s "
                    "more; wait for it to finish, then try again."
                )
            if attempt == "take":
                self._renew_lease()
                time.sleep(_LEASE_SETTLE_S)


def _changed_by_another_process(detail: str) -> IndexUnavailableError:
    """Embedded Chroma loads a collection's vectors once per process: another writer needs a restart."""
    return IndexUnavailableError(
        "索引已被另一个进程更新: another process (`fazhi ingest`?) changed the embedded Chroma store "
        f"this process opened earlier ({detail}). Restart this process to read it; next time ingest "
        "through this process (upload page or POST /api/reports), or use chroma.mode: server."
    )


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _manifest_version(reports: dict) -> str:
    pairs = sorted((file, row["version"]) for file, row in reports.items())
    return hashlib.sha256(json.dumps(pairs).encode()).hexdigest()[:16]


def _report_sources(paths: list, root: Path | None, summary: IngestSummary) -> list[ReportSource]:
    """The sources to ingest, a file given twice once; files of one name are refused (in summary)."""
    by_name: dict[str, list[ReportSource]] = {}
    for item in paths:
        if not isinstance(item, ReportSource):
            path = Path(item)
            item = ReportSource(path.relative_to(root).as_posix() if root else path.name, path)
        same = by_name.setdefault(item.name, [])
        if all(os.path.realpath(s.path) != os.path.realpath(item.path) for s in same):
            same.append(item)
    for name, same in by_name.items():
        if len(same) > 1:
            summary.fail(name, BadFileError(
                f"{name}: {len(same)} files of this ingest have that name ({', '.join(str(s.path) for s in same)}); "
                "none of them was ingested. Ingest their common folder instead (`fazhi ingest FOLDER` names each "
                "by its path under it), or rename one."))
    return [same[0] for same in by_name.values() if len(same) == 1]


def _duplicate(file: str, other: str, in_this_call: bool) -> DuplicateReportError:
    where = "in this ingest" if in_this_call else "already in the knowledge base"
    return DuplicateReportError(
        f"{file}: 内容重复 — the same bytes as report '{other}' {where}, so it was not added a second time "
        f"(its figures would count twice). To keep it as '{file}' instead, remove '{other}' first "
        f"(`fazhi kb remove {shlex.quote(other)}`, or DELETE /api/reports/{other}), then ingest or upload it again."
    )


def _first_ingested(names: list[str], rows: dict) -> list[str]:
    """Names of one content, the one to keep first: the earliest ingested, then by name."""
    return sorted(names, key=lambda n: (rows[n].get("ingested_at", ""), n))


def _file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _settle_file(staged: Path, final: Path, row: dict | None) -> None:
    """Move a staged file to its final path if the manifest row names its bytes, else delete it."""
    if not staged.exists():
        return
    if row is not None and _file_sha256(staged) == row["sha256"]:
        os.replace(staged, final)
    else:
        staged.unlink()


def _leftovers(folder: Path) -> list[tuple[Path, str, str, int | None, float]]:
    """(path, kind, report name, pid, mtime) of the uploads to folder staged (or, by the old code,
    kept as NAME.previous) and not settled yet, oldest first."""
    candidates = []
    for where, patterns in ((_staging(folder), [(_STAGED, "staged_upload")]),
                            (folder, [(_OLD_STAGED, "staged_upload"), (_PREVIOUS, "previous_upload")])):
        if where.is_dir():
            candidates += [(path, match, kind) for path in where.iterdir() for pattern, kind in patterns
                           if (match := pattern.fullmatch(path.name))]
    found = []
    for path, match, kind in candidates:
        try:
            if not path.is_file():
                continue
            mtime = path.stat().st_mtime
        except FileNotFoundError:  # moved into place meanwhile by the upload that staged it
            continue
        pid = match.groupdict().get("pid")
        found.append((path, kind, match["name"], int(pid) if pid else None, mtime))
    return sorted(found, key=lambda f: f[4])


def _in_progress(pid: int | None, mtime: float) -> bool:
    """Whether a staged upload may still be in the hands of its process (alive, and the file young)."""
    return pid is not None and _process_alive(pid) and time.time() - mtime < _STAGED_STALE_S


def staged_path(final: Path, pid: int | None = None) -> Path:
    """Where an upload to `final` is staged (its folder created): <folder>.staging/<pid>-<tag>-<name>."""
    staging = _staging(final.parent)
    staging.mkdir(parents=True, exist_ok=True)
    return staging / f"{pid or os.getpid()}-{uuid.uuid4().hex[:8]}-{final.name}"


def _staging(uploads: Path) -> Path:
    return uploads.with_name(uploads.name + ".staging")


def _unindexed(uploads: Path) -> Path:
    return uploads.with_name(uploads.name + ".unindexed")
