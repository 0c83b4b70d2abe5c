"""Gold files: read them, and check them against the reports they cite."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from eval.metrics import TYPE_ORDER, UNANSWERABLE, locate, section_levels, section_matches
from rag.schema import SECTION_SEPARATOR
from rag.sections import parse_sections
from rag.text import fold

SOURCE_KEYS = ("file", "district", "year", "section", "evidence")
EVIDENCE_CHARS = (10, 80)


class GoldError(ValueError):
    """A gold file that cannot be read."""


def load_gold(path: Path) -> list[dict]:
    """The questions of a JSON-lines gold file, in order; GoldError names a bad line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise GoldError(f"Cannot read gold file {path}: {err.strerror}.") from err
    items = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            raise GoldError(f"{path}:{number}: not valid JSON ({err.msg}).") from err
        if not isinstance(item, dict) or not {"id", "question", "type"} <= item.keys():
            raise GoldError(f"{path}:{number}: a question needs at least id, question and type.")
        item.setdefault("must_include", [])
        item.setdefault("sources", [])
        items.append(item)
    if not items:
        raise GoldError(f"Gold file {path} holds no questions.")
    return items


@dataclass
class GoldCheck:
    """What check_gold found: errors make a gold file unusable, notes are worth a look."""

    questions: int = 0
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def heading_at_line_start(level: str, text: str, after: int = 0) -> int | None:
    """Offset of the first line (from `after` on) that opens with heading `level`, compared folded."""
    pattern = re.compile(r"(?m)^[ \t\u3000#]*" + re.escape(fold(level).strip()))
    match = pattern.search(fold(text), after)
    return match.start() if match else None


def check_gold(items: list[dict], texts: dict[str, str]) -> GoldCheck:
    """Check questions against report texts (file name -> text, as ingested).

    Errors: duplicate ids, unknown types, missing keys, answerable questions without
    must_include or sources (or unanswerable ones with them), unknown files, evidence
    not found verbatim, section levels not written as headings in that order.
    Notes: evidence length outside 10..80, evidence above its section heading, and
    section paths that rag.sections would not give the evidence.
    """
    check = GoldCheck(questions=len(items))
    err, note = check.errors.append, check.notes.append
    for qid, count in Counter(item.get("id") for item in items).items():
        if count > 1:
            err(f"{qid}: id used {count} times")
    sections_of: dict[str, list] = {}
    for item in items:
        qid = item.get("id", "?")
        kind = item.get("type")
        if kind not in TYPE_ORDER:
            err(f"{qid}: unknown type {kind!r} (one of {', '.join(TYPE_ORDER)})")
        if not str(item.get("question", "")).strip():
            err(f"{qid}: empty question")
        must, sources = item.get("must_include", []), item.get("sources", [])
        if kind == UNANSWERABLE and (must or sources):
            err(f"{qid}: an unanswerable question has no must_include and no sources")
        if kind != UNANSWERABLE and (not must or not sources):
            err(f"{qid}: an answerable question needs must_include and sources")
        for n, source in enumerate(sources, 1):
            where = f"{qid} source {n}"
            missing = [key for key in SOURCE_KEYS if key not in source]
            if missing:
                err(f"{where}: missing {', '.join(missing)}")
                continue
            file, evidence, section = source["file"], source["evidence"], source["section"]
            if file not in texts:
                err(f"{where}: no report named {file}")
                continue
            text = texts[file]
            if not EVIDENCE_CHARS[0] <= len(evidence) <= EVIDENCE_CHARS[1]:
                note(f"{where}: evidence is {len(evidence)} characters (expected {EVIDENCE_CHARS[0]}..{EVIDENCE_CHARS[1]})")
            at = text.find(evidence)
            if at < 0:
                folded = locate(evidence, text)
                hint = " (it matches only after folding script/width)" if folded else ""
                err(f"{where}: evidence 「{evidence}」 not found verbatim in {file}{hint}")
            position, heading = 0, None
            for level in section.split(SECTION_SEPARATOR):
                heading = heading_at_line_start(level, text, position)
                if heading is None:
                    err(f"{where}: section level 「{level.strip()}」 is not a heading line of {file}"
                        + (" after the levels before it" if position else ""))
                    break
                position = heading + 1
            if heading is None or at < 0:
                continue
            if at < heading:
                note(f"{where}: evidence comes before its section heading 「{section.split(SECTION_SEPARATOR)[-1]}」")
            if file not in sections_of:
                sections_of[file] = parse_sections(text)
            parsed = next((s for s in sections_of[file] if s.start <= at < s.end), None)
            if parsed is None or not section_matches(parsed.path, section) or (
                len(section_levels(parsed.path)) < len(section_levels(section))
            ):
                note(f"{where}: rag.sections puts the evidence under 「{parsed.path if parsed else ''}」, "
                     f"gold says 「{section}」")
    return check


def report_texts(folder: Path, extensions: list[str], max_bytes: int) -> dict[str, str]:
    """File name (relative to folder) -> text as ingest reads it, for every report under folder."""
    from rag.loading import load_report

    texts = {}
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in extensions):
        name = path.relative_to(folder).as_posix()
        texts[name] = load_report(path, max_bytes=max_bytes, file=name).text
    return texts
