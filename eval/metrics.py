"""Scores of an evaluation run: pure functions, per-question scores and their aggregates.

`score_question` turns one gold question and what the pipeline did with it into a
record (one line of results.jsonl); `summarize` turns the records into metrics.json.
Conventions:

* retrieval, answer accuracy, citations and false refusals cover answerable questions;
  refusal recall covers the unanswerable ones;
* citation and numeric-faithfulness figures are pooled over every cited passage or
  stated figure (micro averages); the others are means over questions;
* a figure with nothing to measure is None (null in JSON), never 0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import NamedTuple

from rag.grounding import figures
from rag.schema import SECTION_SEPARATOR
from rag.text import fold

UNANSWERABLE = "unanswerable"
HIT_KS = (1, 3, 5, 10)
RETRIEVE_K = max(HIT_KS)
TYPE_ORDER = ("fact_number", "fact_text", "attribution", "section", "comparison", "multi_hop", UNANSWERABLE)

METRIC_KEYS = (
    *(f"retrieval.hit@{k}" for k in HIT_KS),
    "retrieval.mrr",
    f"retrieval.recall@{RETRIEVE_K}",
    "answer.accuracy",
    "citation.district_accuracy",
    "citation.section_accuracy",
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

_MARKER = re.compile(r"\[\d+\]")
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
    if answer is not None and not refused:
        labels = " ".join(f"{c['district']} {c['year']} {c['section']}" for c in citations)
        found, unsupported = figure_support(text, [c["quote"] for c in citations], gold["question"] + " " + labels)
        scores["figures_found"], scores["figures_unsupported"] = sorted(found), sorted(unsupported)
        if unsupported:
            reason("unsupported_figure", "not in the cited passages: " + "、".join(sorted(unsupported)))

    return {
        "id": gold["id"],
        "type": gold["type"],
        "question": gold["question"],
        "expected": {"answer": gold.get("answer", ""), "must_include": gold.get("must_include", []),
                     "sources": gold.get("sources", [])},
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
    metrics["refusal.recall"] = mean(r["scores"]["refused"] is True for r in unanswerable)
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


def summarize(records: list[dict]) -> dict:
    """aggregate() over all records, and the same per question type under "by_type"."""
    metrics = aggregate(records)
    types = [t for t in TYPE_ORDER if any(r["type"] == t for r in records)]
    types += sorted({r["type"] for r in records} - set(types))
    metrics["by_type"] = {t: aggregate([r for r in records if r["type"] == t]) for t in types}
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
    """metrics[key]; "by_type.TYPE.figure" looks inside by_type. KeyError when unknown."""
    if key.startswith("by_type."):
        _, kind, figure = key.split(".", 2)
        return metrics["by_type"][kind][figure]
    return metrics[key]


def check_floors(metrics: dict, floors: dict) -> list[str]:
    """One message per figure below its floor ("min") or above its ceiling ("max")."""
    problems = []
    for bound, compare, word in (("min", float.__lt__, "below its floor"), ("max", float.__gt__, "above its ceiling")):
        for key, limit in floors.get(bound, {}).items():
            try:
                value = lookup(metrics, key)
            except KeyError:
                problems.append(f"{key}: not in the metrics (unknown figure or question type)")
                continue
            if value is None:
                problems.append(f"{key}: not measured (no questions of that kind)")
            elif compare(float(value), float(limit)):
                problems.append(f"{key} = {value:.3f} is {word} {limit}")
    return problems
