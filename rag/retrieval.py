"""Retrieval: route a question by the places and years it names, then hybrid search.

Dense (Chroma) and keyword (BM25) candidates are fused by weighted reciprocal rank, and
reranked by their best sentence: a chunk one of whose sentences says what is asked (「聘任区政府
法律顾问5名」) outranks chunks both searches half-like for the words they share with it.
A question about a place or year that no report covers is not searched at all:
answering it from another district's report would be wrong. A place is a county-level unit
(its code tells two 朝阳区 apart) or a town in one; a name two places of the knowledge base
share is answered for each of them, never for one picked silently.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from langchain_core.documents import Document

from rag import schema
from rag.claims import Ask, asks_for_list, content_bigrams, is_english, rarity_weights, report_terms, weighted_share
from rag.districts import (
    KNOWN_TOWNS, district_mentions, find_districts, gazetteer, mention_label, meta_label, names_label, place_label,
)
from rag.glossary import chinese_terms
from rag.schema import UNKNOWN_YEAR_TEXT
from rag.settings import RetrievalSettings
from rag.store import KnowledgeBase
from rag.text import fold, sentence_bounds, sentence_spans

_YEAR = re.compile(r"(20\d{2})\s*年")
_FOLLOW_UP = re.compile(r"^(那|那么|还有|同样|其|它|该区|该镇)|呢[？?]?$")
# Years asked for without being written: 「近三年」「三年来」, 「比上年」「同比」, and a change over the years.
_NUMBERS = {c: n for n, c in enumerate("一二三四五六七八九十", 1)} | {"两": 2}
RECENT_YEARS = re.compile(r"近([一二两三四五六七八九十]|\d{1,2})年|([一二两三四五六七八九十]|\d{1,2})年(?:来|以来|间)")
PREVIOUS_YEAR = re.compile(r"上年|上一年|去年|前一年|同比|上年度")
OVER_YEARS = re.compile(r"变化|趋势|逐年|历年|各年|每年|几年|近年|增减|变动|对比|相比|比较|\btrend|\bover the years|"
                         r"\beach year|\bchange[sd]?\b", re.IGNORECASE)


@dataclass(frozen=True)
class Place:
    """A place the knowledge base holds reports of: its district (or town) and the unit it is in."""

    district: str
    city: str = ""
    province: str = ""
    code: str = ""    # the county-level unit's code; "" when the report's unit was not identified

    @classmethod
    def of(cls, report: Mapping) -> "Place":
        """The place of a manifest row (rows of older indexes have no city, province or code)."""
        return cls(report[schema.DISTRICT], report.get(schema.CITY) or "", report.get(schema.PROVINCE) or "",
                   report.get(schema.DISTRICT_CODE) or "")

    @property
    def label(self) -> str:
        """荣昌区; 北京市朝阳区 when two units share the name."""
        return place_label(self.district, self.city, self.province)


@dataclass
class Route:
    """What a question is about, resolved against the reports in the knowledge base."""

    question: str
    query: str = ""                                       # what is searched: the question, with the
                                                          # Chinese terms of an English one
    districts: list[str] = field(default_factory=list)   # the places searched, as written for people
                                                          # (荣昌区; 北京市朝阳区 when a name is shared)
    places: list[Place] = field(default_factory=list)    # the same places, to filter the search by
    years: list[int] = field(default_factory=list)       # report years to search
    comparison: bool = False                              # several places, or several years of one:
                                                          # each searched and answered apart
    across_years: bool = False                            # the report years are searched apart
    not_covered: str = ""                                 # why nothing can be searched, if so
    elsewhere: list[str] = field(default_factory=list)   # places named that no report is of: only
                                                          # passages writing them may answer

    def groups(self) -> list[tuple[Place | None, list[int] | None]]:
        """(place, report years) searched apart: one per place and, across years, one per year."""
        years = [[year] for year in self.years] if self.across_years else [self.years or None]
        return [(place, y) for place in self.places or [None] for y in years]


@dataclass
class Passage:
    """A retrieved chunk with its fused score, and the scores it was fused from (None: that search
    did not find it): the cosine similarity of dense search and the BM25 score of keyword search."""

    chunk: Document
    score: float
    dense: float | None = None
    keyword: float | None = None

    @property
    def meta(self) -> dict:
        return self.chunk.metadata


def covered_summary(reports: list[dict]) -> str:
    """「九龙坡区 2025年、梁平区 2024年、璧山区（年份未识别）」: the reports of known districts, or "";
    a name two units share is written with its city (北京市朝阳区 2024年).

    A report whose district was not detected is left out: it would read 「、 2024年」.
    """
    names = (f"{meta_label(r)} {r['year']}年" if r["year"] else f"{meta_label(r)}（{UNKNOWN_YEAR_TEXT}）"
             for r in sorted(reports, key=lambda r: r["file"]) if r["district"].strip())
    return "、".join(dict.fromkeys(names))


def _holdings(reports: list[dict]) -> str:
    """「已收录的报告为：…」 for a refusal, counting (never naming) the reports of no known district."""
    unknown = sum(1 for r in reports if not r["district"].strip())
    extra = f"（另有 {unknown} 份报告区县未识别）" if unknown else ""
    summary = covered_summary(reports)
    return f"已收录的报告为：{summary}{extra}。" if summary else f"已收录的报告都未识别出区县{extra}。"


def resolve_districts(mentions: list[str], known: list[str]) -> tuple[list[str], list[str]]:
    """Map places named (names or labels) onto the knowledge base's places (labels); return
    (matched, unmatched mentions).

    A town matches its own entry (大进镇 → 开州区大进镇), and so does its district (开州区); 朝阳区
    matches both 北京市朝阳区 and 长春市朝阳区, 长春市朝阳区 only its own; a blank known district
    (not detected) matches nothing.
    """
    matched, unmatched = [], []
    for mention in mentions:
        hits = [d for d in known if names_label(mention, d)]
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


def _places_named(question: str, places: dict[str, Place]) -> list[str]:
    """The places a question names, as labels: the knowledge base's short forms (武侯) and towns count."""
    g = gazetteer()
    towns = set(KNOWN_TOWNS)
    for place in places.values():
        county = g.county_part(place.district)
        if county and place.district != county:
            towns.add(place.district[len(county) :])
    known = {place.code for place in places.values() if place.code}
    return list(dict.fromkeys(mention_label(m) for m in district_mentions(question, towns, known)))


def _asked_years(question: str, explicit: list[int], available: list[int]) -> tuple[list[int], set[int]]:
    """(years asked, report years wanted). Years written are asked (and with 「比上年」 the year before
    each); a report of year Y covers Y and sets out its plans for Y+1, so Y-1's report is wanted too.
    Else, among the report years `available` of the places named: the latest N for 「近N年」, the
    latest two for 「比上年」, all of them for a change over the years."""
    folded = fold(question)
    previous = bool(PREVIOUS_YEAR.search(folded))
    if explicit:
        asked = set(explicit) | ({y - 1 for y in explicit} if previous else set())
        return sorted(asked), {y for a in explicit for y in (a, a - 1)}
    if not available:
        return [], set()
    latest = available[-1]
    recent = RECENT_YEARS.search(folded)
    if recent:
        n = recent.group(1) or recent.group(2)
        asked = [y for y in available if y > latest - (int(n) if n.isdigit() else _NUMBERS[n])]
    elif previous:
        asked = [y for y in available if y >= latest - 1]
    else:
        asked = available if OVER_YEARS.search(folded) else []
    return asked, set(asked)


def route_question(question: str, reports: list[dict], districts=None, years=None) -> Route:
    """Turn a question (and optional explicit filters) into a Route over the live reports.

    A report whose district or year was not detected ("", 0) is searched only by a question that
    names no district (or no year): it is never a match for a named one. Blank filters filter nothing.
    A question over several years of one place (「近三年」, 「2023年和2024年…变化」, 「比上年」)
    searches each report year apart.
    """
    places = {Place.of(r).label: Place.of(r) for r in reports if r["district"].strip()}
    route = Route(question=question, query=question)
    if is_english(question):
        known = {p.code for p in places.values() if p.code}
        route.query = " ".join([question, *chinese_terms(question), *find_districts(question, known=known)])
    else:
        route.query = " ".join([question, *report_terms(question)])
    mentions = [d for d in districts or () if d.strip()] or _places_named(question, places)
    if mentions:
        matched, unmatched = resolve_districts(mentions, list(places))
        if unmatched:
            route.not_covered = f"现有报告不涉及{'、'.join(unmatched)}；{_holdings(reports)}"
            route.elsewhere = unmatched
        route.districts = matched
        route.places = [places[label] for label in matched]
    candidates = [r for r in reports if not route.places or Place.of(r) in route.places]
    named = _YEAR.findall(fold(question)) or (re.findall(r"\b(20\d{2})\b", question) if is_english(question) else [])
    explicit = [int(y) for y in (years or named) if int(y) > 0]
    available = sorted({r["year"] for r in candidates if r["year"]}) if route.places else []
    asked_years, wanted = _asked_years(question, explicit, available)
    if asked_years:
        covering = sorted({r["year"] for r in candidates if r["year"] in wanted})
        if not covering and named and not years:
            # No report of the year: the next year's report states its figures as the base of its
            # changes (「比上年」, a table's previous-year column); only figures about it will answer.
            covering = sorted({r["year"] for r in candidates if r["year"] in {y + 1 for y in asked_years}})
        if not covering:
            where = "、".join(route.districts)
            route.elsewhere = []
            route.not_covered = (
                f"报告中没有{where}{'、'.join(str(y) for y in sorted(set(asked_years)))}年的相关信息；"
                f"{_holdings(candidates or reports)}"
            )
            return route
        route.years = covering
        route.across_years = bool(route.places) and len(asked_years) > 1 and len(covering) > 1
    route.comparison = len(route.places) > 1 or route.across_years
    return route


_SENTENCE_REACH = 400  # characters a retrieved piece of a sentence is widened by, at most, each side
_TEXTS_KEPT = 32  # report texts the retriever keeps to widen pieces


class HybridRetriever:
    """Dense + BM25 search fused by weighted reciprocal rank, per routed district group."""

    def __init__(self, kb: KnowledgeBase, settings: RetrievalSettings):
        self.kb = kb
        self.settings = settings
        self._texts: dict[str, str | None] = {}  # report text by version (immutable), the latest few
        self._texts_lock = threading.Lock()  # questions are answered on several threads

    def retrieve(self, route: Route, manifest: dict, k: int | None = None) -> list[Passage]:
        """Best passages for the route, best first; one slice per place (and per year across years)
        for comparisons. A route naming places no report is of finds only passages that write them
        (「和泸县、内江…建立警务合作」: a partner a report names), else nothing."""
        if route.not_covered:
            if not route.elsewhere:
                return []
            names = [fold(name) for name in route.elsewhere]
            found = self.retrieve(replace(route, not_covered="", elsewhere=[]), manifest, k)
            return [p for p in found if any(name in fold(p.chunk.page_content) for name in names)]
        groups = route.groups()
        chunks: dict[str, Document] = {}  # those read while ranking, not read again
        if len(groups) == 1:
            place, years = groups[0]
            ranked = self._fuse(route.query, manifest, place, years, k or self.settings.top_k, chunks)
        else:
            per_group = self.settings.per_district_k
            found = [self._fuse(route.query, manifest, place, years, per_group, chunks) for place, years in groups]
            ranked = [group[rank] for rank in range(per_group)  # interleaved: every place and year near the top
                      for group in found if rank < len(group)]
        unread = [cid for cid, *_ in ranked if cid not in chunks]
        if unread:
            chunks.update(self.kb.get_chunks(unread))
        passages, spans = [], set()
        for cid, *scores in ranked:
            if cid in chunks:
                chunk = self._whole_sentences(chunks[cid])
                span = (chunk.metadata[schema.FILE], chunk.metadata[schema.START], chunk.metadata[schema.END])
                if span not in spans:  # two pieces of one sentence, widened, are one passage
                    spans.add(span)
                    passages.append(Passage(chunk, *scores))
        return passages

    def _whole_sentences(self, chunk: Document) -> Document:
        """The chunk widened to the whole sentences it cuts. A sentence over the chunk budget is
        indexed in pieces (rag.chunking); a piece alone leaves a figure without the words that say
        what it counts (「…大竹縣、渠縣、開江縣等地檢察機關、審判機關、|司法行政機關共15家單位共簽…」)."""
        meta = chunk.metadata
        text = self._report_text(meta.get(schema.FILE_HASH, ""))
        if text is None or text[meta[schema.START]:meta[schema.END]] != chunk.page_content:
            return chunk
        start, end = sentence_bounds(text, meta[schema.START], meta[schema.END], _SENTENCE_REACH)
        if (start, end) == (meta[schema.START], meta[schema.END]):
            return chunk
        return Document(page_content=text[start:end], metadata={**meta, schema.START: start, schema.END: end})

    def _report_text(self, version: str) -> str | None:
        """The stored text of a report version, kept for the next questions (the oldest dropped)."""
        with self._texts_lock:
            if version in self._texts:
                return self._texts[version]
        text = self.kb.stored_text(version) if version else None
        with self._texts_lock:
            if len(self._texts) >= _TEXTS_KEPT:
                del self._texts[next(iter(self._texts))]
            self._texts[version] = text
        return text

    def _fuse(self, query, manifest, place: Place | None, years, k,
              read: dict) -> list[tuple[str, float, float | None, float | None]]:
        """The k best (chunk id, fused score, dense score, keyword score) of dense and keyword search,
        of one place or all; the chunks it reads to rank them go into `read`."""
        s = self.settings
        districts = [place.district] if place else None
        dense = self.kb.dense_search(query, s.dense_k, manifest, districts, years)
        keyword = self.kb.keyword_search(query, s.keyword_k, manifest, districts, years)
        scores: dict[str, float] = {}
        for weight, ranking in ((s.dense_weight, dense), (s.keyword_weight, keyword)):
            for rank, (cid, _) in enumerate(ranking):
                scores[cid] = scores.get(cid, 0.0) + weight / (s.rrf_k + rank + 1)
        fused = sorted(scores.items(), key=lambda item: item[1], reverse=True)
        shared = place and any(Place.of(r) != place and r["district"] == place.district
                               for r in manifest["reports"].values())
        chunks = self.kb.get_chunks([cid for cid, _ in fused]) if fused and (shared or s.sentence_weight) else {}
        read.update(chunks)
        if shared:  # the store filters by name: of two 朝阳区, keep this one's chunks
            fused = [(cid, score) for cid, score in fused
                     if cid in chunks and Place.of(chunks[cid].metadata) == place]
        if s.sentence_weight and fused:
            fused = self._by_best_sentence(query, fused, {cid: chunks[cid] for cid, _ in fused if cid in chunks},
                                           s.sentence_weight)
        dense_of, keyword_of = dict(dense), dict(keyword)
        return [(cid, score, dense_of.get(cid), keyword_of.get(cid)) for cid, score in fused[:k]]

    @staticmethod
    def _by_best_sentence(query: str, fused: list[tuple[str, float]], chunks: dict,
                          weight: float) -> list[tuple[str, float]]:
        """The fused candidates again, each score raised by `weight` times the share of the question's
        words (weighed by how rare they are among the candidates' sentences) its best sentence holds.

        Reciprocal rank fusion ranks a chunk both searches place fairly high above one only BM25
        places near the top; a long chunk whose one sentence says what is asked embeds far from
        the question. The sentence that holds the question's rarer words says which chunk answers.
        A question for a list is for a part of a report, found by its heading, not by one sentence."""
        asked = Ask(question=query, districts=find_districts(query)).bigrams
        if not asked or asks_for_list(query):
            return fused
        sentences = {cid: [content_bigrams(chunk.page_content[a:b]) & asked
                           for a, b in sentence_spans(chunk.page_content)] for cid, chunk in chunks.items()}
        weights = rarity_weights([bigrams for found in sentences.values() for bigrams in found])
        best = {cid: max((weighted_share(asked, bigrams, weights) for bigrams in found), default=0.0)
                for cid, found in sentences.items()}
        return sorted(((cid, score + weight * best.get(cid, 0.0)) for cid, score in fused),
                      key=lambda item: item[1], reverse=True)
