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
"""

from __future__ import annotations

import errno
import functools
import hashlib
import itertools
import json
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
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
    IndexMissingError,
    IndexUnavailableError,
    IngestBusyError,
    IngestError,
    RagError,
)
from rag.loading import LoadedReport, load_report
from rag.metadata import ReportMeta, report_metadata
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
_MIN_FREE_TO_START = 2**20      # an ingest does not start below this

logger = logging.getLogger(__name__)

ProgressFn = Callable[[str, int, int], None]


@dataclass
class IngestSummary:
    """What one ingest did; `failed` maps file name to the reason."""

    new: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    chunks_embedded: int = 0
    chunks_total: int = 0
    seconds: float = 0.0

    @property
    def chunks_per_s(self) -> float:
        return self.chunks_embedded / self.seconds if self.seconds else 0.0

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
    """Hash of a report's bytes, its metadata and the chunker: a sidecar edit is a new version too."""
    meta_json = json.dumps(meta.__dict__, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(f"{report.sha256}\n{meta_json}\n{CHUNKER_VERSION}".encode()).hexdigest()


def indexed_text(doc: Document) -> str:
    """What is embedded and keyword-indexed: the short header, then the chunk's own text."""
    return f"{doc.metadata[schema.HEADER]}\n{doc.page_content}"


def chunk_from_indexed(text: str, metadata: dict) -> Document:
    """The chunk Document (original text only) from a stored record."""
    return Document(page_content=text[len(metadata[schema.HEADER]) + 1 :], metadata=dict(metadata))


def _reads_chroma(method):
    """A KnowledgeBase method whose Chroma server being unreachable becomes IndexUnavailableError."""

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except _UNREACHABLE as err:
            raise IndexUnavailableError(self.unreachable_message(err)) from err

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
        """One row per live report: file, district, year, title, body, chunks."""
        rows = self.manifest()["reports"]
        return [
            {key: row[key] for key in ("file", "district", "year", "title", "body", "chunks")}
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
            raise IndexMissingError(f"The text of {file} is missing from the index: run `fazhi ingest` again.")
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
            raise IndexMissingError("知识库为空：请先运行 fazhi ingest（或在 知识库 页上传报告）。")
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
                            "nothing was committed; run `fazhi ingest` again."
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

    def ingest(self, paths: Iterable[Path], progress: ProgressFn | None = None, root: Path | None = None) -> IngestSummary:
        """Add new and changed reports, skip unchanged ones; commit all at once at the end.

        A file that cannot be read is reported in `failed` and skipped. Anything else that
        fails leaves the previous index as it was and raises IngestError.
        """
        started = time.perf_counter()
        summary = IngestSummary()
        with self._ingest_lock():
            old = self.manifest()
            reports = dict(old["reports"])
            pending: list[tuple[LoadedReport, ReportMeta, str, list[Document]]] = []
            for path in paths:
                file = str(path.relative_to(root)) if root else path.name
                try:
                    report = load_report(path, max_bytes=self.max_file_bytes, file=file)
                    meta = report_metadata(report)
                except BadFileError as err:
                    summary.failed[file] = str(err)
                    continue
                version = report_version(report, meta)
                current = reports.get(file)
                if current and current["version"] == version:
                    summary.unchanged.append(file)
                    continue
                chunks = self._versioned_chunks(report, meta, version)
                if not chunks:
                    summary.failed[file] = f"{file}: no text to index after parsing."
                    continue
                (summary.replaced if current else summary.new).append(file)
                pending.append((report, meta, version, chunks))

            if pending:
                self._check_disk_space()
            try:
                if pending and not old["pending"]:
                    self._commit_manifest({**old, "pending": True})  # searches filter from now on
                # Chroma's cost is per write more than per chunk: write across reports, texts at once.
                self._add_chunks([c for *_, chunks in pending for c in chunks], summary, progress)
                # identical files (text and metadata) share a version, and so the stored text
                self._store_report_texts(list({version: report for report, _, version, _ in pending}.items()))
                for report, meta, version, chunks in pending:
                    reports[report.file] = {
                        "file": report.file,
                        "version": version,
                        "sha256": report.sha256,
                        "encoding": report.encoding,
                        "district": meta.district,
                        "year": meta.year or 0,
                        "title": meta.title,
                        "body": meta.body,
                        "chunks": len(chunks),
                        "ingested_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
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
        summary.seconds = time.perf_counter() - started
        return summary

    def _free_bytes(self) -> int:
        data_dir = self.index_dir.parent
        return shutil.disk_usage(data_dir).free if data_dir.exists() else _LOW_DISK_BYTES

    def _check_disk_space(self) -> None:
        """Refuse to start writing on a nearly full disk: Chroma recovers badly from a failed write."""
        free = self._free_bytes()
        if free < _MIN_FREE_TO_START:
            raise IngestError(
                f"Ingest refused: the disk of {self.index_dir.parent} is nearly full ({free // 1024} KB free); "
                "nothing was changed and the index still answers. Free disk space, then run `fazhi ingest` again."
            )

    def _ingest_failed(self, err: Exception) -> RagError:
        """The error for an ingest that stopped halfway, saying what to fix."""
        unchanged = "the previous index is unchanged and still answers"
        again = "run `fazhi ingest` again: finished work is reused"
        if isinstance(err, _UNREACHABLE):
            return IndexUnavailableError(f"Ingest stopped: {self.unreachable_message(err)} {unchanged}; then {again}.")
        if isinstance(err, OSError) and err.errno in _DISK_ERRNOS:
            return IngestError(
                f"Ingest stopped: cannot write {err.filename or self.index_dir.parent} ({err.strerror}); "
                f"{unchanged}. Free disk space or make the data folder writable, then {again}."
            )
        data_dir, free = self.index_dir.parent, self._free_bytes()
        if free < _LOW_DISK_BYTES:  # Chroma's own writes fail with its own words ("compaction", "sqlite")
            return IngestError(
                f"Ingest stopped ({type(err).__name__}: {err}): the disk of {data_dir} is full "
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

    def _commit(self, reports: dict) -> None:
        manifest = {"version": _manifest_version(reports), "pending": True, "reports": reports}
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
                "另一个导入正在进行: another ingest holds the lock "
                f"{self.lock_path}; wait for it to finish, then run `fazhi ingest` again."
            ) from err
        except OSError as err:
            raise IngestError(
                f"Cannot take the ingest lock {self.lock_path} ({err.strerror}): the data folder must be "
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
                    "more; wait for it to finish, then run `fazhi ingest` again."
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
