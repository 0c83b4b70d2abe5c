"""Gold files: read them, and check them against the reports they cite."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from eval.metrics import (
    DEFAULT_LANG,
    DEFAULT_STYLE,
    LANGS,
    NEAR_MISS_KINDS,
    STYLE_ORDER,
    TYPE_ORDER,
    UNANSWERABLE,
    is_english,
    locate,
    section_levels,
    section_matches,
)
from rag.schema import SECTION_SEPARATOR
from rag.sections import parse_sections
from rag.text import fold

SOURCE_KEYS = ("file", "district", "year", "section", "evidence")
EVIDENCE_CHARS = (10, 80)


class GoldError(ValueError):
    """A gold file that cannot be read."""


def load_gold(path: Path) -> list[dict]:
    """The questions of a JSON-lines gold file, in order; GoldError names a bad line.

    Optional keys: style (default "dev"), lang (default "zh"), near_miss, items; check_gold validates them.
    """
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
        item.setdefault("style", DEFAULT_STYLE)
        item.setdefault("lang", DEFAULT_LANG)
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
    not found verbatim, section levels not written as headings in that order; unknown
    style, lang or near_miss kind, near_miss on an answerable question, items that are not
    a non-empty list of strings, on an unanswerable question or not in a source file after
    folding, and lang "en" on a question that is not mostly ASCII letters.
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
        _check_trust_keys(item, texts, err)
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


def _check_trust_keys(item: dict, texts: dict[str, str], err) -> None:
    """Errors in the optional keys style, lang, near_miss and items of one question."""
    qid, unanswerable = item.get("id", "?"), item.get("type") == UNANSWERABLE
    style = item.get("style", DEFAULT_STYLE)
    if style not in STYLE_ORDER:
        err(f"{qid}: unknown style {style!r} (one of {', '.join(STYLE_ORDER)})")
    lang = item.get("lang", DEFAULT_LANG)
    if lang not in LANGS:
        err(f"{qid}: unknown lang {lang!r} (one of {', '.join(LANGS)})")
    elif lang == "en" and not is_english(str(item.get("question", ""))):
        err(f"{qid}: lang en, but the question is not mostly ASCII letters")
    if "near_miss" in item:
        if not unanswerable:
            err(f"{qid}: near_miss marks unanswerable questions only")
        elif item["near_miss"] not in NEAR_MISS_KINDS:
            err(f"{qid}: unknown near_miss kind {item['near_miss']!r} (one of {', '.join(NEAR_MISS_KINDS)})")
    if "items" not in item:
        return
    items = item["items"]
    if not isinstance(items, list) or not items or not all(isinstance(x, str) and x.strip() for x in items):
        err(f"{qid}: items must be a non-empty list of strings")
        return
    if unanswerable:
        err(f"{qid}: an unanswerable question has no items")
        return
    files = [s["file"] for s in item.get("sources", []) if isinstance(s, dict) and s.get("file") in texts]
    for entry in items if files else []:  # unknown source files are reported with the sources
        if not any(fold(entry) in fold(texts[file]) for file in files):
            err(f"{qid}: item 「{entry}」 not found in {', '.join(files)} (compared after folding)")


def report_texts(folder: Path, extensions: list[str], max_bytes: int) -> dict[str, str]:
    """File name (relative to folder) -> text as ingest reads it, for every report under folder."""
    from rag.loading import load_report

    texts = {}
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in extensions):
        name = path.relative_to(folder).as_posix()
        texts[name] = load_report(path, max_bytes=max_bytes, file=name).text
    return texts
