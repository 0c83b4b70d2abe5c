"""The knowledge base: report chunks in Chroma, a BM25 index kept in step, and a manifest.

Consistency rule: a chunk is live only when its report version (FILE_HASH) is the
one named in the manifest. An ingest adds the new version's chunks first, then
swaps the manifest (one Chroma record, replaced in one write), then deletes what
the old manifest named. A killed ingest therefore leaves only unreferenced
chunks behind: queries never see them, and the next ingest reuses or removes them.
The keyword index is derived from Chroma and cached on disk per manifest version,
so every process sharing a Chroma server rebuilds it when the manifest changes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import filelock
from langchain_chroma import Chroma
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from rag import schema
from rag.chunking import chunk_report
from rag.errors import BadFileError, IndexMissingError, IngestError, RagError
from rag.keyword import KeywordIndex
from rag.loading import LoadedReport, load_report
from rag.metadata import ReportMeta, report_metadata

MANIFEST_ID = "manifest"
_REPORT_TEXT_PREFIX = "report:"
_KEEP_KEYWORD_VERSIONS = 3

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
    """Hash of a report's bytes and its metadata: a sidecar edit is a new version too."""
    meta_json = json.dumps(meta.__dict__, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(f"{report.sha256}\n{meta_json}".encode()).hexdigest()


def indexed_text(doc: Document) -> str:
    """What is embedded and keyword-indexed: the short header, then the chunk's own text."""
    return f"{doc.metadata[schema.HEADER]}\n{doc.page_content}"


def chunk_from_indexed(text: str, metadata: dict) -> Document:
    """The chunk Document (original text only) from a stored record."""
    return Document(page_content=text[len(metadata[schema.HEADER]) + 1 :], metadata=dict(metadata))


class KnowledgeBase:
    """Reports in Chroma plus a keyword index; ingest, remove, list and search them."""

    def __init__(
        self,
        client,
        embeddings: Embeddings,
        *,
        collection: str,
        keyword_dir: Path,
        lock_path: Path,
        max_file_bytes: int = 20 * 2**20,
        chunk_tokens: int = 220,
        overlap_tokens: int = 40,
        embed_batch_size: int = 32,
    ):
        self.client = client
        self.embeddings = embeddings
        self.vectors = Chroma(
            client=client,
            collection_name=collection,
            embedding_function=embeddings,
            collection_metadata={"hnsw:space": "cosine"},
        )
        self._meta = client.get_or_create_collection(f"{collection}_manifest", embedding_function=None)
        self.keyword_dir = keyword_dir
        self.lock_path = lock_path
        self.max_file_bytes = max_file_bytes
        self.chunk_tokens = chunk_tokens
        self.overlap_tokens = overlap_tokens
        self.embed_batch_size = embed_batch_size
        self._keyword: tuple[str, KeywordIndex] | None = None
        self._keyword_lock = threading.Lock()

    # ---- manifest ---------------------------------------------------------------

    def manifest(self) -> dict:
        """The committed manifest: {"version": str, "reports": {file: {...}}}."""
        got = self._meta.get(ids=[MANIFEST_ID], include=["documents"])
        if not got["ids"]:
            return {"version": "", "reports": {}}
        return json.loads(got["documents"][0])

    def _commit_manifest(self, manifest: dict) -> None:
        version = manifest["version"]
        self._meta.upsert(
            ids=[MANIFEST_ID],
            embeddings=[[1.0]],
            documents=[json.dumps(manifest, ensure_ascii=False)],
            metadatas=[{"kind": "manifest", "version": version}],
        )

    def reports(self) -> list[dict]:
        """One row per live report: file, district, year, title, body, chunks."""
        rows = self.manifest()["reports"]
        return [
            {key: row[key] for key in ("file", "district", "year", "title", "body", "chunks")}
            for row in sorted(rows.values(), key=lambda r: r["file"])
        ]

    def report_text(self, file: str) -> str:
        """The original text of a live report."""
        row = self.manifest()["reports"].get(file)
        if row is None:
            raise KeyError(file)
        got = self._meta.get(ids=[_REPORT_TEXT_PREFIX + row["version"]], include=["documents"])
        if not got["ids"]:
            raise IndexMissingError(f"The text of {file} is missing from the index: run `fazhi ingest` again.")
        return got["documents"][0]

    def live_filter(self, manifest: dict, districts: list[str] | None = None, years: list[int] | None = None) -> dict:
        """A Chroma `where` that admits only live chunks, optionally of some districts and years."""
        versions = [r["version"] for r in manifest["reports"].values()]
        clauses = [{schema.FILE_HASH: {"$in": versions}}]
        if districts:
            clauses.append({schema.DISTRICT: {"$in": list(districts)}})
        if years:
            clauses.append({schema.YEAR: {"$in": list(years)}})
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

    # ---- search -----------------------------------------------------------------

    def require_reports(self) -> dict:
        """The manifest, or IndexMissingError when nothing is ingested."""
        manifest = self.manifest()
        if not manifest["reports"]:
            raise IndexMissingError("知识库为空：请先运行 fazhi ingest（或在 知识库 页上传报告）。")
        return manifest

    def dense_search(
        self, query: str, k: int, manifest: dict, districts=None, years=None
    ) -> list[tuple[Document, float]]:
        """Chunks nearest to query by embedding, with cosine similarity, best first."""
        found = self.vectors.similarity_search_with_score(
            query, k=k, filter=self.live_filter(manifest, districts, years)
        )
        return [(chunk_from_indexed(d.page_content, d.metadata), 1.0 - dist) for d, dist in found]

    def keyword_search(self, query: str, k: int, manifest: dict, districts=None, years=None) -> list[tuple[str, float]]:
        """(chunk id, BM25 score) pairs, best first."""
        return self.keyword_index(manifest).search(query, k, districts=districts, years=years)

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
        manifest = manifest or self.manifest()
        if not manifest["reports"]:
            return []
        got = self.vectors.get(where=self.live_filter(manifest), include=["documents", "metadatas"])
        docs = [chunk_from_indexed(t, m) for t, m in zip(got["documents"], got["metadatas"])]
        return sorted(docs, key=lambda d: (d.metadata[schema.FILE], d.metadata[schema.START]))

    def keyword_index(self, manifest: dict) -> KeywordIndex:
        """The BM25 index of this manifest version: in memory, else on disk, else built from Chroma."""
        version = manifest["version"]
        with self._keyword_lock:
            if self._keyword and self._keyword[0] == version:
                return self._keyword[1]
            folder = self.keyword_dir / version
            if (folder / "chunks.json").exists():
                index = KeywordIndex.load(folder)
            else:
                index = self._build_keyword_index(manifest, folder)
            self._keyword = (version, index)
            return index

    def _build_keyword_index(self, manifest: dict, folder: Path) -> KeywordIndex:
        docs = self.chunks(manifest)
        index = KeywordIndex(
            [d.metadata[schema.CHUNK_ID] for d in docs],
            [indexed_text(d) for d in docs],
            [d.metadata[schema.DISTRICT] for d in docs],
            [d.metadata[schema.YEAR] for d in docs],
        )
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        index.save(partial)
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
        self._prune_keyword_dirs()
        return index

    def _prune_keyword_dirs(self) -> None:
        folders = sorted(
            (p for p in self.keyword_dir.iterdir() if p.is_dir() and not p.name.endswith(".partial")),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        for old in folders[_KEEP_KEYWORD_VERSIONS:]:
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

            total = sum(len(c) for *_, c in pending)
            done = 0
            try:
                for report, meta, version, chunks in pending:
                    done = self._add_chunks(chunks, summary, progress, done, total)
                    self._store_report_text(report, version)
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
                raise IngestError(
                    f"Ingest stopped ({type(err).__name__}: {err}); the previous index is unchanged. "
                    "Fix the cause and run `fazhi ingest` again: finished work is reused."
                ) from err
            summary.chunks_total = sum(r["chunks"] for r in reports.values())
        summary.seconds = time.perf_counter() - started
        return summary

    def remove(self, file: str) -> None:
        """Take one report out of the index."""
        with self._ingest_lock():
            reports = dict(self.manifest()["reports"])
            if file not in reports:
                raise KeyError(file)
            del reports[file]
            self._commit(reports)

    def _commit(self, reports: dict) -> None:
        manifest = {"version": _manifest_version(reports), "reports": reports}
        self.keyword_index(manifest)  # built before the swap, so readers find it ready
        self._commit_manifest(manifest)
        self._collect_garbage(manifest)

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

    def _add_chunks(self, chunks: list[Document], summary: IngestSummary, progress, done: int, total: int) -> int:
        ids = [c.metadata[schema.CHUNK_ID] for c in chunks]
        present = set(self.vectors.get(ids=ids, include=[])["ids"])  # left by an interrupted run
        missing = [c for c in chunks if c.metadata[schema.CHUNK_ID] not in present]
        done += len(chunks) - len(missing)
        for i in range(0, len(missing), self.embed_batch_size):
            batch = missing[i : i + self.embed_batch_size]
            self.vectors.add_documents(
                [Document(page_content=indexed_text(c), metadata=c.metadata) for c in batch],
                ids=[c.metadata[schema.CHUNK_ID] for c in batch],
            )
            summary.chunks_embedded += len(batch)
            done += len(batch)
            if progress:
                progress(batch[0].metadata[schema.FILE], done, total)
        return done

    def _store_report_text(self, report: LoadedReport, version: str) -> None:
        self._meta.upsert(
            ids=[_REPORT_TEXT_PREFIX + version],
            embeddings=[[1.0]],
            documents=[report.text],
            metadatas=[{"kind": "report", schema.FILE: report.file}],
        )

    def _collect_garbage(self, manifest: dict) -> None:
        """Delete chunks and texts of versions the manifest no longer names."""
        live = [r["version"] for r in manifest["reports"].values()]
        where = {schema.FILE_HASH: {"$nin": live}} if live else None
        stale = self.vectors.get(where=where, include=[])["ids"] if where else self.vectors.get(include=[])["ids"]
        if stale:
            self.vectors.delete(ids=stale)
        texts = self._meta.get(where={"kind": "report"}, include=[])["ids"]
        dead = [i for i in texts if i[len(_REPORT_TEXT_PREFIX) :] not in live]
        if dead:
            self._meta.delete(ids=dead)

    @contextmanager
    def _ingest_lock(self):
        """Hold the data folder's ingest lock, or refuse at once when another ingest has it."""
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(str(self.lock_path), timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout as err:
            raise IngestError(
                "另一个导入正在进行: another ingest holds the lock "
                f"{self.lock_path}; wait for it to finish, then run `fazhi ingest` again."
            ) from err
        try:
            yield
        finally:
            lock.release()


def _manifest_version(reports: dict) -> str:
    pairs = sorted((file, row["version"]) for file, row in reports.items())
    return hashlib.sha256(json.dumps(pairs).encode()).hexdigest()[:16]
