"""Ingest: report files into a KnowledgeBase, what is new embedded first, all committed at once at the end.

Identity: a report is its name and its bytes. Its version hashes both (with its metadata and
the chunker), so no two manifest rows share a version, chunks or stored text; and one set of
bytes is held under one name only: an ingest refuses the same bytes under a second name.
An upload is staged (`staged_path`) and moved to its final path only once the manifest names
its bytes (under the ingest lock); however the ingest ends, a staged file is moved or deleted.
One that a killed process left is settled the same way later (`rag.kb_check`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shlex
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from langchain_core.documents import Document

from rag import ocr, schema
from rag.chunking import CHUNKER_VERSION, chunk_report
from rag.errors import BadFileError, DuplicateReportError, IngestError, RagError
from rag.lease import process_alive
from rag.loading import LoadedReport, load_report
from rag.metadata import ReportMeta, report_metadata

if TYPE_CHECKING:
    from rag.store import KnowledgeBase

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
    """What one ingest did; `failed` maps file name to the reason, `errors` to the error itself;
    `reading` maps a file extension to the files of it read, the seconds that took and the pages
    OCR read (OCR takes seconds a page, a text file milliseconds)."""

    new: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    chunks_embedded: int = 0
    chunks_total: int = 0
    seconds: float = 0.0
    reading: dict[str, dict] = field(default_factory=dict)
    errors: dict[str, RagError] = field(default_factory=dict, repr=False)

    @property
    def chunks_per_s(self) -> float:
        return self.chunks_embedded / self.seconds if self.seconds else 0.0

    def fail(self, file: str, error: RagError) -> None:
        self.failed[file] = str(error)
        self.errors[file] = error

    def count_reading(self, file: str, seconds: float, ocr_pages: int) -> None:
        """Add one file's loading to its extension's entry (a file that fails to load took the time too)."""
        extension = Path(file).suffix.lower() or "(none)"
        entry = self.reading.setdefault(extension, {"files": 0, "seconds": 0.0, "ocr_pages": 0})
        entry["files"] += 1
        entry["seconds"] += seconds
        entry["ocr_pages"] += ocr_pages

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
            "reading": {ext: {**entry, "seconds": round(entry["seconds"], 3)} for ext, entry in self.reading.items()},
        }


def report_version(report: LoadedReport, meta: ReportMeta) -> str:
    """Hash of a report's name, bytes, metadata and the chunker: a sidecar edit is a new version
    too, and two names never share one (nor, so, chunk ids or a stored text)."""
    meta_json = json.dumps(meta.__dict__, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(
        f"{report.file}\n{report.sha256}\n{meta_json}\n{CHUNKER_VERSION}".encode()
    ).hexdigest()


class Ingest:
    """One ingest into `kb`, by its settings (file size, chunking, batch size, free-disk margin); `run` it once."""

    def __init__(self, kb: KnowledgeBase, progress: ProgressFn | None = None):
        self.kb = kb
        self.progress = progress
        self.summary = IngestSummary()

    def run(self, paths: Iterable[Path | ReportSource], root: Path | None = None) -> IngestSummary:
        """Add new and changed reports, skip unchanged ones; commit all at once at the end.

        A path is named relative to `root`, else by its file name; a ReportSource names itself.
        A file that cannot be read, that shares its name with another file of this call, whose
        bytes another report holds already, or that chunks into over max_chunks_per_file chunks
        is reported in `failed` and skipped, before anything is embedded. Anything else that
        fails leaves the previous index as it was and raises IngestError. A staged file is moved
        into place if the index names its bytes when the call ends, however it ends, else deleted.
        """
        started = time.perf_counter()
        paths = list(paths)
        staged = [p for p in paths if isinstance(p, ReportSource) and p.staged]
        locked = False
        try:
            with self.kb.ingest_lock.hold():
                locked = True
                try:
                    self._ingest(_report_sources(paths, root, self.summary))
                finally:
                    self._settle_staged(staged)
        finally:
            if not locked:  # refused before the lock: nothing was ingested
                for source in staged:
                    source.staged.unlink(missing_ok=True)
        self.summary.seconds = time.perf_counter() - started
        return self.summary

    def _page_progress(self, file: str):
        """Pages read so far (OCR takes seconds a page), through the progress callback as 「file · 页」."""
        if self.progress is None:
            return None
        return lambda done, total: self.progress(f"{file} · 页", done, total)

    def _ingest(self, sources: list[ReportSource]) -> None:
        kb, summary = self.kb, self.summary
        old = kb.manifest()
        reports = dict(old["reports"])
        owners: dict[str, str] = {}  # sha256 of bytes → the report that holds them
        for name, row in reports.items():
            owners.setdefault(row["sha256"], name)
        this_call: set[str] = set()
        pending: list[tuple[LoadedReport, ReportMeta, str, list[Document], ReportSource]] = []
        for source in sources:
            file = source.name
            started, ocr_pages = time.perf_counter(), ocr.images_read()
            try:
                report = load_report(source.staged or source.path, max_bytes=kb.max_file_bytes, file=file,
                                     on_page=self._page_progress(file))
                if source.staged:
                    report = replace(report, path=source.path)  # its sidecar is beside its final path
                meta = report_metadata(report)
            except BadFileError as err:
                summary.fail(file, err)
                continue
            finally:
                summary.count_reading(file, time.perf_counter() - started, ocr.images_read() - ocr_pages)
            other = _same_content_as(report.sha256, file, owners)
            if other:
                summary.fail(file, _duplicate(file, other, other in this_call))
                continue
            version = report_version(report, meta)
            current = reports.get(file)
            if current and current["version"] == version:
                summary.unchanged.append(file)
                this_call.add(file)
                continue
            chunks = self.versioned_chunks(report, meta, version)
            if not chunks:
                summary.fail(file, BadFileError(f"{file}: no text to index after parsing."))
                continue
            if len(chunks) > kb.max_chunks_per_file:
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
            if pending:
                kb.mark_pending(old)  # searches filter from now on
            # Chroma's cost is per write more than per chunk: write across reports, texts at once.
            self.add_chunks([c for *_, chunks, _ in pending for c in chunks])
            self._check_disk_space()
            kb.store_report_texts([(version, report) for report, _, version, _, _ in pending])
            for report, meta, version, chunks, source in pending:
                reports[report.file] = _manifest_row(report, meta, version, len(chunks), source)
            if pending:
                kb.commit(reports)
        except RagError:
            raise
        except Exception as err:  # the old manifest is untouched: the index still answers
            raise kb.ingest_failed(err) from err
        if not pending:
            kb.collect_leftovers(old)  # what a killed ingest left behind
        summary.chunks_total = sum(r["chunks"] for r in reports.values())

    def versioned_chunks(self, report: LoadedReport, meta: ReportMeta, version: str) -> list[Document]:
        """The report's chunks, marked with its version and given ids unique to it."""
        chunks = chunk_report(
            report, meta, chunk_tokens=self.kb.chunk_tokens, overlap_tokens=self.kb.overlap_tokens
        )
        for chunk in chunks:
            chunk.metadata[schema.FILE_HASH] = version
            chunk.metadata[schema.CHUNK_ID] = hashlib.sha256(
                f"{version}:{chunk.metadata[schema.CHUNK_ID]}".encode()
            ).hexdigest()[:32]
        return chunks

    def add_chunks(self, chunks: list[Document]) -> None:
        """Embed and write the chunks not in Chroma yet (an interrupted run leaves some), a batch at a time."""
        kb = self.kb
        for start in range(0, len(chunks), kb.embed_batch_size):
            batch = chunks[start : start + kb.embed_batch_size]
            missing = kb.missing_chunks(batch)
            if missing:
                self._check_disk_space()
                kb.write_chunks(missing)
            kb.ingest_lock.renew()
            self.summary.chunks_embedded += len(missing)
            if self.progress:
                self.progress(batch[-1].metadata[schema.FILE], start + len(batch), len(chunks))

    def _check_disk_space(self) -> None:
        """Stop before a write that could fill the disk: Chroma whose own write fails on a full disk
        may not read its store again until space is freed. Checked before every batch, so the
        ingest stops with nothing committed and the previous index answers, in this process and after a restart."""
        free, keep = self.kb.free_bytes(), self.kb.min_free_bytes
        if free < keep:
            raise IngestError(
                f"Ingest stopped: the disk of the data folder is nearly full ({free // 2**20} MB free, an ingest "
                f"keeps {keep // 2**20} MB free: ingest.min_free_mb); nothing new was committed and "
                "the previous index still answers. Free disk space, then ingest again: finished work is reused."
            )

    def _too_many_chunks(self, file: str, count: int) -> BadFileError:
        return BadFileError(
            f"{file}: {count:,} chunks, over the limit of {self.kb.max_chunks_per_file:,} per file "
            "(ingest.max_chunks_per_file); nothing of it was embedded. A report is a few hundred chunks "
            "at most: check that this is the report and not a data dump, split it into parts, or raise "
            "ingest.max_chunks_per_file in the settings."
        )

    def _settle_staged(self, staged: list[ReportSource]) -> None:
        """Move each staged file into place if the manifest names its bytes, else delete it."""
        if not staged:
            return
        try:
            rows = self.kb.manifest()["reports"]
            for source in staged:
                settle_file(source.staged, source.path, rows.get(source.name))
        except Exception as err:  # Chroma gone, a full disk: the restart or `fazhi kb check --repair` settles it
            logger.warning("staged uploads %s left in place (%s); `fazhi kb check --repair` settles them",
                           [str(s.staged) for s in staged], err)


def _manifest_row(report: LoadedReport, meta: ReportMeta, version: str, chunks: int, source: ReportSource) -> dict:
    return {
        "file": report.file,
        "version": version,
        "sha256": report.sha256,
        "encoding": report.encoding,
        "pages": list(report.pages),  # where each page starts in the text (a PDF): citations name the page
        "district": meta.district,
        "city": meta.city,
        "province": meta.province,
        "district_code": meta.district_code,
        "year": meta.year or 0,
        "title": meta.title,
        "body": meta.body,
        "chunks": chunks,
        "ingested_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "source": os.path.abspath(source.path),
    }


def _same_content_as(sha256: str, file: str, owners: dict[str, str]) -> str | None:
    """The other report that holds these bytes already, if any."""
    other = owners.get(sha256)
    return other if other and other != file else None


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


# ---- staged uploads ---------------------------------------------------------------


def staged_path(final: Path, pid: int | None = None) -> Path:
    """Where an upload to `final` is staged (its folder created): <folder>.staging/<pid>-<tag>-<name>."""
    staging = _staging(final.parent)
    staging.mkdir(parents=True, exist_ok=True)
    return staging / f"{pid or os.getpid()}-{uuid.uuid4().hex[:8]}-{final.name}"


def settle_file(staged: Path, final: Path, row: dict | None) -> None:
    """Move a staged file to its final path if the manifest row names its bytes, else delete it."""
    if not staged.exists():
        return
    if row is not None and file_sha256(staged) == row["sha256"]:
        os.replace(staged, final)
    else:
        staged.unlink()


def file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def leftover_uploads(folder: Path) -> list[tuple[Path, str, str, int | None, float]]:
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


def upload_in_progress(pid: int | None, mtime: float) -> bool:
    """Whether a staged upload may still be in the hands of its process (alive, and the file young)."""
    return pid is not None and process_alive(pid) and time.time() - mtime < _STAGED_STALE_S


def _staging(uploads: Path) -> Path:
    return uploads.with_name(uploads.name + ".staging")
