"""Retrieval: route a question by the districts and years it names, then hybrid search.

Dense (Chroma) and keyword (BM25) candidates are fused by weighted reciprocal rank.
A question about a district or year that no report covers is not searched at all:
answering it from another district's report would be wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from langchain_core.documents import Document

from rag.claims import is_english
from rag.districts import find_districts, names_district
from rag.glossary import chinese_terms
from rag.schema import UNKNOWN_YEAR_TEXT
from rag.settings import RetrievalSettings
from rag.store import KnowledgeBase
from rag.text import fold

_YEAR = re.compile(r"(20\d{2})\s*年")
_FOLLOW_UP = re.compile(r"^(那|那么|还有|同样|其|它|该区|该镇)|呢[？?]?$")


@dataclass
class Route:
    """What a question is about, resolved against the reports in the knowledge base."""

    question: str
    query: str = ""                                       # what is searched: the question, with the
                                                          # Chinese terms of an English one
    districts: list[str] = field(default_factory=list)   # knowledge-base districts to search
    years: list[int] = field(default_factory=list)       # report years to search
    comparison: bool = False
    not_covered: str = ""                                 # why nothing can be searched, if so


@dataclass
class Passage:
    """A retrieved chunk with its fused score and rank."""

    chunk: Document
    score: float

    @property
    def meta(self) -> dict:
        return self.chunk.metadata


def covered_summary(reports: list[dict]) -> str:
    """「九龙坡区 2025年、梁平区 2024年、璧山区（年份未识别）」: the reports of known districts, or "".

    A report whose district was not detected is left out: it would read 「、 2024年」.
    """
    names = (f"{r['district']} {r['year']}年" if r["year"] else f"{r['district']}（{UNKNOWN_YEAR_TEXT}）"
             for r in sorted(reports, key=lambda r: r["file"]) if r["district"].strip())
    return "、".join(dict.fromkeys(names))


def _holdings(reports: list[dict]) -> str:
    """「已收录的报告为：…」 for a refusal, counting (never naming) the reports of no known district."""
    unknown = sum(1 for r in reports if not r["district"].strip())
    extra = f"（另有 {unknown} 份报告区县未识别）" if unknown else ""
    summary = covered_summary(reports)
    return f"已收录的报告为：{summary}{extra}。" if summary else f"已收录的报告都未识别出区县{extra}。"


def resolve_districts(mentions: list[str], known: list[str]) -> tuple[list[str], list[str]]:
    """Map mentioned districts onto knowledge-base districts; return (matched, unmatched mentions).

    A town matches its own entry (大进镇 → 开州区大进镇), and so does its district (开州区);
    a blank known district (not detected) matches nothing.
    """
    matched, unmatched = [], []
    for mention in mentions:
        hits = [d for d in known if names_district(mention, d)]
        if hits:
            matched.extend(h for h in hits if h not in matched)
        else:
            unmatched.append(mention)
    return matched, unmatched


def rewrite_follow_up(question: str, history: list[tuple[str, str]] | None) -> str:
    """Make 「那梁平区呢？」 standalone from the last question in history.

    The districts of the earlier question are replaced by the ones named now; a follow-up
    naming none inherits the earlier question's subject.
    """
    if not history:
        return question
    previous = next((q for q, _ in reversed(history) if q.strip()), "")
    if not previous or not (_FOLLOW_UP.search(question.strip()) or len(question.strip()) <= 8):
        return question
    named_now = find_districts(question)
    named_before = find_districts(previous)
    if named_now and named_before:
        rewritten = previous
        for old in named_before:
            rewritten = rewritten.replace(old, named_now[0]).replace(old.rstrip("区县镇"), named_now[0])
        years_now = _YEAR.findall(question)
        if years_now:
            rewritten = _YEAR.sub(f"{years_now[0]}年", rewritten, count=1)
        return rewritten
    return f"{previous}（追问：{question}）"


def route_question(question: str, reports: list[dict], districts=None, years=None) -> Route:
    """Turn a question (and optional explicit filters) into a Route over the live reports.

    A report whose district or year was not detected ("", 0) is searched only by a question that
    names no district (or no year): it is never a match for a named one. Blank filters filter nothing.
    """
    known = sorted({r["district"] for r in reports if r["district"].strip()})
    route = Route(question=question, query=question)
    if is_english(question):
        route.query = " ".join([question, *chinese_terms(question), *find_districts(question)])
    mentions = [d for d in districts or () if d.strip()] or find_districts(question)
    if mentions:
        matched, unmatched = resolve_districts(mentions, known)
        if unmatched:
            route.not_covered = f"现有报告不涉及{'、'.join(unmatched)}；{_holdings(reports)}"
            return route
        route.districts = matched
    route.comparison = len(route.districts) > 1
    named = _YEAR.findall(fold(question)) or (re.findall(r"\b(20\d{2})\b", question) if is_english(question) else [])
    asked_years = [int(y) for y in (years or named) if int(y) > 0]
    if asked_years:
        # A report of year Y covers Y and sets out its plans for Y+1.
        wanted = {y for a in asked_years for y in (a, a - 1)}
        candidates = [r for r in reports if not route.districts or r["district"] in route.districts]
        covering = sorted({r["year"] for r in candidates if r["year"] in wanted})
        if not covering:
            where = "、".join(route.districts)
            route.not_covered = (
                f"报告中没有{where}{'、'.join(str(y) for y in sorted(set(asked_years)))}年的相关信息；"
                f"{_holdings(candidates or reports)}"
            )
            return route
        route.years = covering
    return route


class HybridRetriever:
    """Dense + BM25 search fused by weighted reciprocal rank, per routed district group."""

    def __init__(self, kb: KnowledgeBase, settings: RetrievalSettings):
        self.kb = kb
        self.settings = settings

    def retrieve(self, route: Route, manifest: dict, k: int | None = None) -> list[Passage]:
        """Best passages for the route, best first; one slice per district for comparisons."""
        if route.not_covered:
            return []
        years = route.years or None
        if not route.comparison:
            ranked = self._fuse(route.query, manifest, route.districts or None, years, k or self.settings.top_k)
        else:
            per_district = self.settings.per_district_k
            groups = [self._fuse(route.query, manifest, [d], years, per_district) for d in route.districts]
            ranked = [group[rank] for rank in range(per_district)  # interleaved: every district near the top
                      for group in groups if rank < len(group)]
        chunks = self.kb.get_chunks([cid for cid, _ in ranked])
        return [Passage(chunks[cid], score) for cid, score in ranked if cid in chunks]

    def _fuse(self, query, manifest, districts, years, k) -> list[tuple[str, float]]:
        """The k best (chunk id, fused score) pairs of dense and keyword search."""
        s = self.settings
        dense = self.kb.dense_search(query, s.dense_k, manifest, districts, years)
        keyword = self.kb.keyword_search(query, s.keyword_k, manifest, districts, years)
        scores: dict[str, float] = {}
        for weight, ranking in ((s.dense_weight, dense), (s.keyword_weight, keyword)):
            for rank, (cid, _) in enumerate(ranking):
                scores[cid] = scores.get(cid, 0.0) + weight / (s.rrf_k + rank + 1)
        return sorted(scores.items(), key=lambda item: item[1], reverse=True)[:k]
