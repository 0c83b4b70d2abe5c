"""Check and repair: find what faults and older versions left inconsistent in a knowledge base, and mend it.

Also settles the uploads a killed process left staged (`recover_uploads`, at start-up).
"""

from __future__ import annotations

import os
import shlex
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rag import schema
from rag.errors import BadFileError
from rag.ingest import Ingest, file_sha256, leftover_uploads, report_version, settle_file, upload_in_progress
from rag.loading import EXTENSIONS, LoadedReport, load_report
from rag.metadata import ReportMeta, sidecar_path
from rag.search_index import SearchIndex

if TYPE_CHECKING:
    from rag.store import KnowledgeBase


@dataclass
class KbProblem:
    """One inconsistency `check` found: its kind, what it is about, what is wrong and what mends it."""

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
    """What `check` found (`problems`), and what is left after a repair (`remaining`)."""

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


def check(kb: KnowledgeBase, repair: bool = False, uploads: Path | None = None) -> KbCheck:
    """Find where Chroma, the manifest, the stored texts, the search index and the uploads folder disagree.

    With repair=True, mend what can be mended (see PROBLEM_KINDS), then look again: `remaining`
    is what is left. Holds the ingest lock throughout (IngestBusyError while an ingest runs).
    """
    with kb.ingest_lock.hold():
        survey = kb.survey()
        problems = _problems(kb, survey, uploads)
        remaining = problems
        if repair and problems:
            _repair(kb, survey, problems, uploads)
            survey = kb.survey()
            remaining = _problems(kb, survey, uploads)
        rows = survey["manifest"]["reports"]
        return KbCheck(problems, remaining, repair, len(rows), sum(r["chunks"] for r in rows.values()))


def recover_uploads(kb: KnowledgeBase, folder: Path) -> list[KbProblem]:
    """Finish or roll back the uploads in folder that killed processes left half swapped.

    A staged file (or the old code's NAME.previous) whose bytes the manifest names is moved
    into place: the index committed them. Any other is deleted. Files of live processes are
    left alone. Returns what was found and done.
    """
    if all(upload_in_progress(pid, mtime) for *_, pid, mtime in leftover_uploads(folder)):
        return []  # nothing left over (the usual case): no lock taken
    with kb.ingest_lock.hold():
        return _settle_leftovers(folder, kb.manifest()["reports"], repair=True)


def _settle_leftovers(folder: Path, rows: dict, repair: bool) -> list[KbProblem]:
    """The leftover uploads to folder, as problems; with repair=True each is settled (and those
    still in progress are left out)."""
    problems = []
    for path, kind, name, pid, mtime in leftover_uploads(folder):
        row = rows.get(name)
        if upload_in_progress(pid, mtime):
            if not repair:
                problems.append(KbProblem(kind, path.name, (
                    f"an upload of {name} in progress: process {pid} staged it under an hour ago; it is "
                    "settled when that process ends, or once an hour old.")))
            continue
        committed = row is not None and file_sha256(path) == row["sha256"]
        what = ("left by a process killed while uploading" if kind == "staged_upload"
                else "left by the old upload code")
        problems.append(KbProblem(kind, path.name, (
            f"{what}; the index names its bytes, so --repair moves it to {name}." if committed
            else f"{what}; the index does not name its bytes, so --repair deletes it.")))
        if repair:
            settle_file(path, folder / name, row)
    return problems


def _problems(kb: KnowledgeBase, survey: dict, uploads: Path | None) -> list[KbProblem]:
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
    problem = _search_index_problem(kb, manifest, chunks, named)
    if problem:
        problems.append(problem)
    if uploads is not None and uploads.is_dir():
        problems += _upload_problems(uploads, rows)
    return problems


def _search_index_problem(kb: KnowledgeBase, manifest: dict, chunks: dict, named: set) -> KbProblem | None:
    if not manifest["reports"]:
        return None
    version, folder = manifest["version"], kb.index_dir / manifest["version"]
    live = {cid for key in named for cid in chunks.get(key, [])}
    held = kb.search_index_in_memory(version)
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


def _upload_problems(uploads: Path, rows: dict) -> list[KbProblem]:
    problems = _settle_leftovers(uploads, rows, repair=False)
    for path in sorted(uploads.iterdir()):
        if not path.is_file() or path.suffix.lower() not in EXTENSIONS:
            continue
        row = rows.get(path.name)
        if row is None:
            problems.append(KbProblem("unindexed_upload", path.name, (
                f"{path} is in the uploads folder but not in the index (an upload or a removal that was "
                f"killed halfway?); --repair moves it to {_unindexed(uploads)}: upload it again to index it.")))
        elif file_sha256(path) != row["sha256"]:
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


def _repair(kb: KnowledgeBase, survey: dict, problems: list[KbProblem], uploads: Path | None) -> None:
    """Mend the problems found: settle staged uploads, then drop duplicate names, rebuild broken rows,
    delete stray chunks, and commit the rows with a fresh version (the search index built anew)."""
    rows = survey["manifest"]["reports"]
    if uploads is not None and uploads.is_dir():
        _settle_leftovers(uploads, rows, repair=True)
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
            rebuilt = _rebuilt_row(kb, row, survey["chunks"])
            held = len(survey["chunks"].get((row["version"], name), []))
            if rebuilt is not None:
                reports[name] = rebuilt
            elif held:  # no text to rebuild from: the manifest names what is there
                reports[name] = {**row, "chunks": held}
            else:  # nothing of it left
                del reports[name]
        named = {(row["version"], name) for name, row in reports.items()}
        versions = {row["version"] for row in reports.values()}
        kb.delete_chunks([cid for (version, file), ids in survey["chunks"].items()
                          if version in versions and (version, file) not in named for cid in ids])
        kb.commit(reports, fresh=True)
    if uploads is not None and uploads.is_dir():
        manifest_rows = kb.manifest()["reports"]
        for path in sorted(uploads.iterdir()):
            if path.is_file() and path.suffix.lower() in EXTENSIONS and path.name not in manifest_rows:
                _unindexed(uploads).mkdir(exist_ok=True)
                for part in (path, sidecar_path(path)):
                    if part.exists():
                        os.replace(part, _unindexed(uploads) / part.name)


def _rebuilt_row(kb: KnowledgeBase, row: dict, chunks: dict) -> dict | None:
    """The row with its text stored and its chunks embedded again, from the stored text or its
    unchanged file; None when neither is left."""
    name = row["file"]
    text = kb.stored_text(row["version"])
    source = Path(row["source"]) if row.get("source") else None
    if text is None and source is not None and source.is_file():
        try:
            loaded = load_report(source, max_bytes=kb.max_file_bytes, file=name)
        except BadFileError:
            loaded = None
        if loaded is not None and loaded.sha256 == row["sha256"]:
            text = loaded.text
    if text is None:
        return None
    report = LoadedReport(file=name, path=source or Path(name), text=text, sha256=row["sha256"],
                          encoding=row["encoding"], pages=tuple(row.get("pages", ())))
    meta = ReportMeta(district=row["district"], year=row["year"] or None, body=row["body"], title=row["title"],
                      city=row.get("city", ""), province=row.get("province", ""),
                      district_code=row.get("district_code", ""))
    version = report_version(report, meta)  # the row's own, unless it was made by an older version
    ingest = Ingest(kb)
    rebuilt = ingest.versioned_chunks(report, meta, version)
    ingest.add_chunks(rebuilt)
    expected = {c.metadata[schema.CHUNK_ID] for c in rebuilt}
    kb.delete_chunks([cid for cid in chunks.get((version, name), []) if cid not in expected])
    kb.store_report_texts([(version, report)])
    return {**row, "version": version, "chunks": len(rebuilt)}


def _first_ingested(names: list[str], rows: dict) -> list[str]:
    """Names of one content, the one to keep first: the earliest ingested, then by name."""
    return sorted(names, key=lambda n: (rows[n].get("ingested_at", ""), n))


def _unindexed(uploads: Path) -> Path:
    return uploads.with_name(uploads.name + ".unindexed")
