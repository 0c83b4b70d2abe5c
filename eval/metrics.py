"""Scores of an evaluation run: pure functions, per-question scores and their aggregates.

`score_question` turns one gold question and what the pipeline did with it into a
record (one line of results.jsonl); `summarize` turns the records into metrics.json.
Conventions:

* retrieval, answer accuracy, citations checked against gold and false refusals cover
  answerable questions; refusal recall covers the unanswerable ones;
* what an answer says is checked against its own citations (numeric faithfulness, citation
  precision, clause districts) in every answer that is not a refusal;
* citation and numeric-faithfulness figures are pooled over every cited passage, stated
  figure or marked clause (micro averages); the others are means over questions;
* a figure with nothing to measure is None (null in JSON), never 0.

Trust figures look at an answer cut into segments: the text before each group of
consecutive [n] markers, closed by that group (see marker_segments).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import NamedTuple

from rag.districts import find_districts
from rag.claims import is_english as written_in_english
from rag.grounding import figures
from rag.schema import SECTION_SEPARATOR
from rag.text import fold

UNANSWERABLE = "unanswerable"
_REPORT_NAME = re.compile(r"(?:19|20)\d{2}年(?:的)?报告")
HIT_KS = (1, 3, 5, 10)
RETRIEVE_K = max(HIT_KS)
# aggregate: a question over every report (最高, 排名, 超过10%, 各区…), answered from the indicator table.
TYPE_ORDER = ("fact_number", "fact_text", "attribution", "section", "comparison", "multi_hop", "aggregate",
              UNANSWERABLE)
# Gold keys of the trust questions. A question without "style" is a "dev" one, without "lang" a Chinese
# one; an unanswerable question without "near_miss" is of kind "other".
DEFAULT_STYLE = "dev"
STYLE_ORDER = (DEFAULT_STYLE, "paraphrase", "no_district", "other_script", "english", "near_miss", "list")
NEAR_MISS_KINDS = ("year", "kind", "district", "absent")
OTHER_KIND = "other"
DEFAULT_LANG = "zh"
LANGS = (DEFAULT_LANG, "en")

METRIC_KEYS = (
    *(f"retrieval.hit@{k}" for k in HIT_KS),
    "retrieval.mrr",
    f"retrieval.recall@{RETRIEVE_K}",
    "answer.accuracy",
    "answer.language",
    "list.completeness",
    "citation.district_accuracy",
    "citation.section_accuracy",
    "citation.precision",
    "citation.clause_district",
    "refusal.recall",
    "refusal.false_rate",
    "faithfulness.numeric",
    "latency.retrieve_p50",
    "latency.first_token_p50",
    "latency.total_p50",
    "latency.total_p95",
)
# Reason categories that make an answer wrong; the others (retrieval_miss, wrong_district,
# wrong_section, unsupported_figure, gold_evidence_missing) are problems of a right answer too.
WRONG_ANSWER = ("error", "false_refusal", "missing", "not_refused")
# Where a higher value is worse (used by reports and comparisons).
LOWER_IS_BETTER = ("refusal.false_rate", "latency.")

_MARKER = re.compile(r"\[\d{1,3}\]")  # as rag.answering reads them: [2024] is text
_MARKER_GROUP = re.compile(r"\[\d{1,3}\](?:\s*\[\d{1,3}\])*")
_QUOTED = re.compile(r"「[^」]*」")
_SPACE = re.compile(r"\s+")


class Span(NamedTuple):
    """A character span [start, end) of one report file."""

    file: str
    start: int
    end: int


# ---- text ---------------------------------------------------------------------------


def normalize(text: str) -> str:
    """Fold script and width (梁平區 → 梁平区, ９９.８％ → 99.8%) and drop white space."""
    return _SPACE.sub("", fold(text))


def missing_terms(answer: str, must_include: Iterable[str]) -> list[str]:
    """The must_include strings that the answer does not contain, compared after normalize."""
    got = normalize(answer)
    return [term for term in must_include if normalize(term) not in got]


def list_completeness(answer: str, items: list[str]) -> float | None:
    """Share of the items that the answer contains, compared as missing_terms does (None without items)."""
    if not items:
        return None
    return (len(items) - len(missing_terms(answer, items))) / len(items)


def is_english(text: str) -> bool:
    """True when an answer is written in English: rag.claims.is_english of it, [n] markers and 「」 quotes left out."""
    return written_in_english(_QUOTED.sub("", _MARKER.sub("", fold(text))))


def locate(evidence: str, text: str) -> tuple[int, int] | None:
    """(start, end) of evidence in text: verbatim, else after folding (fold keeps offsets)."""
    at = text.find(evidence)
    if at < 0:
        at = fold(text).find(fold(evidence))
    return None if at < 0 else (at, at + len(evidence))


# ---- retrieval ------------------------------------------------------------------------


def overlaps(a: Span, b: Span) -> bool:
    """Same file and the spans share at least one character."""
    return a.file == b.file and a.start < b.end and b.start < a.end


def passage_hits(passages: list[Span], evidence: list[Span]) -> list[bool]:
    """For each ranked passage: does it overlap any evidence span?"""
    return [any(overlaps(p, e) for e in evidence) for p in passages]


def first_hit(hits: list[bool]) -> int | None:
    """1-based rank of the first hit, or None."""
    return next((rank for rank, hit in enumerate(hits, 1) if hit), None)


def hit_at(hits: list[bool], k: int) -> float:
    """1.0 when a hit is among the first k passages, else 0.0."""
    return 1.0 if any(hits[:k]) else 0.0


def reciprocal_rank(hits: list[bool]) -> float:
    rank = first_hit(hits)
    return 1.0 / rank if rank else 0.0


def evidence_recall(passages: list[Span], evidence: list[Span]) -> float | None:
    """Share of the evidence spans that some passage overlaps (None without evidence)."""
    if not evidence:
        return None
    return sum(any(overlaps(p, e) for p in passages) for e in evidence) / len(evidence)


# ---- citations ------------------------------------------------------------------------


def section_levels(section: str) -> list[str]:
    return [normalize(level) for level in fold(section).split(SECTION_SEPARATOR.strip()) if normalize(level)]


def section_matches(cited: str, gold: str) -> bool:
    """Equal after folding, or one is the other plus deeper levels (a subsection of it)."""
    a, b = section_levels(cited), section_levels(gold)
    if not a or not b:
        return False
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def citation_matches(citation: dict, sources: list[dict]) -> tuple[bool, bool]:
    """(district right, section right): the section must match a gold source of the same file."""
    district = any(normalize(citation["district"]) == normalize(s["district"]) for s in sources)
    section = any(
        citation["file"] == s["file"] and section_matches(citation["section"], s["section"]) for s in sources
    )
    return district, section


def figure_support(answer: str, cited_texts: list[str], allowed: str = "") -> tuple[set[str], set[str]]:
    """(figures found in the cited texts, figures not found) among those the answer states.

    Figures that also occur in `allowed` (the question, the citation labels) are not counted.
    """
    stated = figures(_MARKER.sub("", answer)) - figures(allowed)
    known = set().union(*(figures(t) for t in cited_texts)) if cited_texts else set()
    return stated & known, stated - known


class ClauseCheck(NamedTuple):
    """A segment of an answer that names a district, and the districts of the markers closing it."""

    text: str
    named: list[str]
    cited: list[tuple[int, str | None]]  # (n, district of citation n; None when no citation has that n)
    ok: bool


def marker_segments(answer: str) -> list[tuple[str, list[int]]]:
    """The answer cut after each group of consecutive [n] markers (white space between them allowed):
    (the text before the group, the group's numbers); text after the last group comes last with []."""
    segments, at = [], 0
    for match in _MARKER_GROUP.finditer(answer):
        segments.append((answer[at:match.start()], [int(n) for n in re.findall(r"\d+", match.group())]))
        at = match.end()
    if answer[at:]:
        segments.append((answer[at:], []))
    return segments


def figure_precision(answer: str, citations: list[dict], allowed: str = "") -> tuple[list[str], list[str]]:
    """(precise, imprecise): each figure of each segment, precise when a quote of the markers closing
    that segment states it (compared as figures() gives them); a figure after the last marker is imprecise.

    Figures that also occur in `allowed` (the question, the citation labels) are not counted.
    """
    quotes = {c["n"]: c["quote"] for c in citations}
    skip = figures(allowed)
    precise: list[str] = []
    imprecise: list[str] = []
    for segment, numbers in marker_segments(answer):
        known = set().union(*(figures(quotes[n]) for n in numbers if n in quotes))
        for figure in sorted(figures(segment) - skip):
            (precise if figure in known else imprecise).append(figure)
    return precise, imprecise


def district_agrees(named: str, cited: str) -> bool:
    """The named district is the cited one, or its start or end (开州区, 大进镇 of 开州区大进镇), after folding."""
    a, b = normalize(named), normalize(cited)
    return bool(a) and (b.startswith(a) or b.endswith(a))


def clause_districts(answer: str, citations: list[dict]) -> list[ClauseCheck]:
    """A check of each segment that names a district in its own words and is closed by markers: ok
    when every marker's citation is of a district the segment names (a marker without a citation is
    not). A 「quote」 is the report's words: a place it mentions (成都市武侯区 in 沙坪坝区's sentence)
    is not the writer's."""
    district_of = {c["n"]: c["district"] for c in citations}
    checks = []
    for segment, numbers in marker_segments(answer):
        named = find_districts(re.sub(r"「[^」]*」", "", segment))
        if not named or not numbers:
            continue
        cited = [(n, district_of.get(n)) for n in numbers]
        ok = all(d is not None and any(district_agrees(name, d) for name in named) for _, d in cited)
        checks.append(ClauseCheck(segment, named, cited, ok))
    return checks


def _clause_detail(check: ClauseCheck) -> str:
    shown = check.text.strip().lstrip("。；;，,、：:")[-30:]
    wrong = [f"[{n}] {d or 'no passage'}" for n, d in check.cited
             if d is None or not any(district_agrees(name, d) for name in check.named)]
    return f"「{shown}」 names {'、'.join(check.named)} but cites {'、'.join(wrong)}"


# ---- aggregation helpers ------------------------------------------------------------------


def mean(values: Iterable[float | bool | None]) -> float | None:
    """Mean of the values that are not None; None when there are none."""
    kept = [float(v) for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation, as numpy's default."""
    data = sorted(values)
    if not data:
        return None
    pos = (len(data) - 1) * q / 100
    low, high = math.floor(pos), math.ceil(pos)
    return data[low] + (data[high] - data[low]) * (pos - low)


# ---- one question ---------------------------------------------------------------------------


def score_question(
    gold: dict,
    retrieved: list[dict],
    evidence: list[Span | None],
    answer: dict | None,
    error: str | None = None,
) -> dict:
    """The record of one question: its gold data, what came back, its scores and why it failed.

    retrieved: ranked passages as dicts with file, start, end (district, section kept as is).
    evidence: the located span of each gold source (None when not found in the indexed text).
    answer: the pipeline's Answer as a dict, or None when the call raised (see error).
    """
    answerable = gold["type"] != UNANSWERABLE
    lang = gold.get("lang") or DEFAULT_LANG
    items = gold.get("items") or []
    reasons: list[dict] = []

    def reason(category: str, detail: str) -> None:
        reasons.append({"category": category, "detail": detail})

    if error:
        reason("error", error)
    located = [span for span in evidence if span is not None]
    for source, span in zip(gold.get("sources", []), evidence):
        if span is None:
            reason("gold_evidence_missing", f"{source['file']}: 「{source['evidence']}」 not in the indexed text")

    scores: dict = {"answerable": answerable}
    rows = [dict(row) for row in retrieved]
    if answerable:
        hits = passage_hits([Span(r["file"], r["start"], r["end"]) for r in rows], located)
        for row, hit in zip(rows, hits):
            row["hit"] = hit
        scores["first_hit"] = first_hit(hits)
        for k in HIT_KS:
            scores[f"hit@{k}"] = hit_at(hits, k)
        scores["rr"] = reciprocal_rank(hits)
        scores["evidence_recall"] = evidence_recall([Span(r["file"], r["start"], r["end"]) for r in rows], located)
        if scores["first_hit"] is None:
            reason("retrieval_miss", f"no gold evidence in the top {len(rows)} passages")

    refused = None if answer is None else bool(answer["refused"])
    scores["refused"] = refused
    text = answer["answer"] if answer else ""
    citations = answer["citations"] if answer else []
    if answerable:
        missing = list(gold["must_include"]) if refused or answer is None else missing_terms(text, gold["must_include"])
        scores["missing"] = missing
        scores["correct"] = answer is not None and not refused and not missing
        if refused:
            reason("false_refusal", "refused an answerable question")
        elif answer is not None and missing:
            reason("missing", "answer lacks " + "、".join(missing))
        checks = []
        for c in citations if not refused else []:
            district_ok, section_ok = citation_matches(c, gold["sources"])
            checks.append({"n": c["n"], "district_ok": district_ok, "section_ok": section_ok})
            if not district_ok:
                reason("wrong_district", f"[{c['n']}] cites {c['district']}")
            elif not section_ok:
                reason("wrong_section", f"[{c['n']}] cites {c['district']} · {c['section']}")
        scores["citations"] = checks
    else:
        scores["correct"] = refused is True
        if refused is False:
            reason("not_refused", "answered a question the reports do not cover")

    scores["figures_found"], scores["figures_unsupported"] = [], []
    scores["citation_precision"] = scores["clause_district"] = None
    if answer is not None and not refused:
        labels = " ".join(f"{c['district']} {c['year']} {c['section']}" for c in citations)
        # 「九龙坡区2025年报告」 names a report (the reports a table answer lists as not stating a figure)
        report_names = " ".join(_REPORT_NAME.findall(text))
        allowed = " ".join((gold["question"], labels, report_names))
        found, unsupported = figure_support(text, [c["quote"] for c in citations], allowed)
        scores["figures_found"], scores["figures_unsupported"] = sorted(found), sorted(unsupported)
        if unsupported:
            reason("unsupported_figure", "not in the cited passages: " + "、".join(sorted(unsupported)))
        precise, imprecise = figure_precision(text, citations, allowed)
        scores["citation_precision"] = {"precise": len(precise), "total": len(precise) + len(imprecise),
                                        "imprecise": imprecise}
        clauses = clause_districts(text, citations)
        scores["clause_district"] = {"right": sum(c.ok for c in clauses), "total": len(clauses),
                                     "wrong": [_clause_detail(c) for c in clauses if not c.ok]}
    given = text if answer is not None and not refused else ""
    scores["list_completeness"] = list_completeness(given, items)
    scores["items_missing"] = missing_terms(given, items)
    scores["language_ok"] = (answer is not None and is_english(text)) if lang == "en" else None

    return {
        "id": gold["id"],
        "type": gold["type"],
        "style": gold.get("style") or DEFAULT_STYLE,
        "lang": lang,
        "near_miss": gold.get("near_miss"),
        "question": gold["question"],
        "expected": {"answer": gold.get("answer", ""), "must_include": gold.get("must_include", []),
                     "sources": gold.get("sources", []), "items": list(items)},
        "evidence": [list(span) if span else None for span in evidence],
        "retrieved": rows,
        "answer": answer,
        "error": error,
        "scores": scores,
        "failed": not scores["correct"],
        "reasons": reasons,
    }


# ---- a run ----------------------------------------------------------------------------------


def aggregate(records: list[dict]) -> dict:
    """The figures of METRIC_KEYS over records, plus counts."""
    answerable = [r for r in records if r["scores"]["answerable"]]
    unanswerable = [r for r in records if not r["scores"]["answerable"]]
    answered = [r for r in records if r["answer"] is not None]
    metrics: dict = {}
    for k in HIT_KS:
        metrics[f"retrieval.hit@{k}"] = mean(r["scores"][f"hit@{k}"] for r in answerable)
    metrics["retrieval.mrr"] = mean(r["scores"]["rr"] for r in answerable)
    metrics[f"retrieval.recall@{RETRIEVE_K}"] = mean(r["scores"]["evidence_recall"] for r in answerable)
    metrics["answer.accuracy"] = mean(r["scores"]["correct"] for r in answerable)
    checks = [c for r in answerable for c in r["scores"]["citations"]]
    metrics["citation.district_accuracy"] = ratio(sum(c["district_ok"] for c in checks), len(checks))
    metrics["citation.section_accuracy"] = ratio(sum(c["section_ok"] for c in checks), len(checks))
    metrics["answer.language"] = mean(r["scores"]["language_ok"] for r in records)
    metrics["list.completeness"] = mean(r["scores"]["list_completeness"] for r in records)
    precision = [s for r in records if (s := r["scores"]["citation_precision"])]
    metrics["citation.precision"] = ratio(sum(s["precise"] for s in precision), sum(s["total"] for s in precision))
    clauses = [s for r in records if (s := r["scores"]["clause_district"])]
    metrics["citation.clause_district"] = ratio(sum(s["right"] for s in clauses), sum(s["total"] for s in clauses))
    metrics["refusal.recall"] = mean(r["scores"]["refused"] is True for r in unanswerable)
    kinds = (*NEAR_MISS_KINDS, OTHER_KIND)
    kinds += tuple(sorted({near_miss_kind(r) for r in unanswerable} - set(kinds)))
    metrics["refusal.recall_by_kind"] = {
        kind: mean(r["scores"]["refused"] is True for r in unanswerable if near_miss_kind(r) == kind) for kind in kinds
    }
    metrics["refusal.false_rate"] = mean(r["scores"]["refused"] is True for r in answerable)
    found = sum(len(r["scores"]["figures_found"]) for r in records)
    stated = found + sum(len(r["scores"]["figures_unsupported"]) for r in records)
    metrics["faithfulness.numeric"] = ratio(found, stated)
    timings = [r["answer"]["timings"] for r in answered]
    # Questions routed away before retrieval (a district no report covers) have no retrieve time.
    metrics["latency.retrieve_p50"] = percentile([t["retrieve_ms"] for t in timings if t["retrieve_ms"] > 0], 50)
    metrics["latency.first_token_p50"] = percentile(
        [t["first_token_ms"] for t in timings if t["first_token_ms"] > 0], 50
    )
    metrics["latency.total_p50"] = percentile([t["total_ms"] for t in timings], 50)
    metrics["latency.total_p95"] = percentile([t["total_ms"] for t in timings], 95)
    metrics["questions"] = len(records)
    metrics["answerable"] = len(answerable)
    metrics["errors"] = sum(1 for r in records if r["error"])
    return metrics


def near_miss_kind(record: dict) -> str:
    """The near-miss kind of an unanswerable question's record ("other" when the gold gives none)."""
    return record.get("near_miss") or OTHER_KIND


def breakdown(records: list[dict], field: str, order: tuple[str, ...]) -> dict[str, dict]:
    """aggregate() over the records of each value of record[field]: values in `order` first, then the others."""
    values = [v for v in order if any(r[field] == v for r in records)]
    values += sorted({r[field] for r in records} - set(values))
    return {v: aggregate([r for r in records if r[field] == v]) for v in values}


def summarize(records: list[dict]) -> dict:
    """aggregate() over all records, and the same per question type ("by_type") and style ("by_style")."""
    metrics = aggregate(records)
    metrics["by_type"] = breakdown(records, "type", TYPE_ORDER)
    metrics["by_style"] = breakdown(records, "style", STYLE_ORDER)
    return metrics


def failure_categories(records: list[dict]) -> dict[str, int]:
    """How many questions show each reason category, most frequent first."""
    counts: dict[str, int] = {}
    for r in records:
        for category in {x["category"] for x in r["reasons"]}:
            counts[category] = counts.get(category, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


# ---- floors ---------------------------------------------------------------------------------


def lookup(metrics: dict, key: str):
    """The figure named key; dotted names reach into groups ("by_type.TYPE.figure", "by_style.STYLE.figure",
    "refusal.recall_by_kind.KIND"). KeyError when unknown or when key names a whole group."""
    if key in metrics and not isinstance(metrics[key], dict):
        return metrics[key]
    for at in (i for i, char in enumerate(key) if char == "."):
        group = metrics.get(key[:at])
        if isinstance(group, dict):
            try:
                return lookup(group, key[at + 1:])
            except KeyError:
                continue
    raise KeyError(key)


def check_floors(metrics: dict, floors: dict) -> list[str]:
    """One message per figure below its floor ("min") or above its ceiling ("max")."""
    problems = []
    for bound, compare, word in (("min", float.__lt__, "below its floor"), ("max", float.__gt__, "above its ceiling")):
        for key, limit in floors.get(bound, {}).items():
            try:
                value = lookup(metrics, key)
            except KeyError:
                problems.append(f"{key}: not in the metrics (unknown figure, question type, style or kind)")
                continue
            if value is None:
                problems.append(f"{key}: not measured (no questions of that kind)")
            elif compare(float(value), float(limit)):
                problems.append(f"{key} = {value:.3f} is {word} {limit}")
    return problems
