"""Claims bound to evidence: every claim of an answer cites the one sentence that states it.

An answer is cut into claims (a clause closed by its [n] markers, or a sentence). Each claim
is matched against every evidence sentence the answer was written from, not only the one its
marker names: a sentence supports a claim when it states every figure of the claim with the
same value and kind of quantity, under a label that fits (the words just before the figure:
「审结率为85.29%」 does not support 「直接纠错率为85.29%」), for the district the claim names and,
for figure questions, the year the question asks. The claim's marker then points at that
sentence and the citation quotes exactly it. A claim no sentence supports is never shown.

What a question asks is read once (`Ask`): the kinds of quantity it wants (a count in 件/人/家,
a rate in %, an amount in 万元…), the years and districts it names, its language, whether it
wants a list. The same reading decides whether a sentence answers the question at all, for
the extractive writer and for checking the LLM's answer alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rag import schema
from rag.districts import find_districts
from rag.grounding import Quantity, quantities
from rag.text import fold, sentence_spans

# Characters that carry no subject: bigrams containing them are not compared.
_STOP = set("的了为是和与及在等共其并对将把被已之中有个全年区镇县我本该达到约")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_LABEL_BOUNDARY = re.compile(r"[，,。；;：:、（()）]")
_LABEL_CHARS = 6          # how far before a figure its label is read
LABEL_FIT = 0.5           # share of a sentence label's bigrams the claim or question must hold
TEXT_SUPPORT = 0.5        # share of a text claim's bigrams its sentence must hold
_YEAR = re.compile(r"(?<!\d)(20\d{2})\s*年")
# Words that ask rather than name what is asked about.
QUESTION_WORDS = (
    "多少", "哪些", "哪几", "哪个", "哪份", "哪一", "什么", "是否", "如何", "怎么", "怎样", "各有", "分别", "方面",
    "做法", "情况", "报告", "主要", "具体", "请问", "目前", "提到", "指出", "相关", "有关", "介绍", "达到",
    "一共", "总共", "共计", "几个", "几项", "几次", "多大", "多久", "最高", "最低", "最多", "最少", "之间",
)

_ASKS = {
    "rate": re.compile(r"率|比例|占比|百分比|百分之|\bpercent|\brates?\b|\bshare\b|\bproportion|\bratio"),
    "count": re.compile(
        r"(?:多少|几)(?:个|件|人|家|次|名|项|起|条|场|份|所|处|批|期|届|户|卷|篇|部|支|座|类|套|位|例|宗)(?!方面|领域|部分|类)"
        r"|数量|人数|件数|次数|家数|个数|\bhow many\b|\bnumber of\b"
    ),
    "amount": re.compile(r"金额|多少钱|多少万元|多少元|资金|经费|\bhow much money\b|\bamount\b|\byuan\b"),
    "area": re.compile(r"面积|多大|平方米|\barea\b|square"),
    "duration": re.compile(r"多长时间|多久|时长|天数|多少天|\bhow long\b"),
    "date": re.compile(r"何时|什么时候|哪一年|哪年|\bwhen\b|\bwhat year\b"),
}
_ASKS_LIST = re.compile(
    r"哪些|哪几|有什么(?:举措|措施|做法|安排|打算|不足|问题|目标)|\bwhat (?:are|were)\b|\bwhich\b.*\b(?:measures|steps|problems|plans|areas)\b",
    re.IGNORECASE,
)
_ASKS_SOME_FIGURE = re.compile(r"多少|几[个项件家次人名条批场](?!方面|领域|部分|类)|\bhow (?:many|much)\b", re.IGNORECASE)
_LATIN = re.compile(r"[A-Za-z]")


def content_bigrams(text: str, drop: tuple[str, ...] = ()) -> set[str]:
    """Two-character windows of the Chinese text (folded), skipping stop characters and `drop` words."""
    folded = fold(text)
    for word in drop:
        folded = folded.replace(fold(word), " ")
    chars = [c if _CJK.match(c) and c not in _STOP else " " for c in folded]
    return {a + b for a, b in zip(chars, chars[1:]) if a != " " and b != " "}


def share(part: set[str], whole: set[str]) -> float:
    """Share of `part` found in `whole` (1.0 when part is empty)."""
    return len(part & whole) / len(part) if part else 1.0


def is_english(text: str) -> bool:
    """True when Latin letters outnumber Chinese characters."""
    return len(_LATIN.findall(text)) > 2 * len(_CJK.findall(text))


@dataclass
class Ask:
    """What a question asks for, read once."""

    question: str
    search: str = ""                                # the question, with the Chinese terms of an English one
    kinds: set[str] = field(default_factory=set)   # quantity kinds asked for; empty: no figure asked
    wants_figure: bool = False
    years: list[int] = field(default_factory=list)  # years the question names
    districts: list[str] = field(default_factory=list)  # districts it names (canonical)
    comparison: bool = False
    wants_list: bool = False
    english: bool = False

    @property
    def bigrams(self) -> set[str]:
        """The question's content bigrams: without its districts and the words that only ask."""
        return content_bigrams(self.search or self.question, tuple(self.districts) + QUESTION_WORDS)

    @classmethod
    def read(cls, question: str, districts: list[str] | None = None, comparison: bool = False,
             search: str = "") -> "Ask":
        folded = fold(question).lower()
        kinds = {kind for kind, pattern in _ASKS.items() if pattern.search(folded)}
        # 「覆盖率达到了多少」 asks a rate; 「多少件？同比增长多少？」 a count and a change.
        if re.search(r"(增长|增幅|提高|上升|下降|减少)[^，。？?]{0,4}多少", folded):
            kinds.add("rate")
        return cls(
            question=question,
            search=search or question,
            kinds=kinds,
            wants_figure=bool(kinds) or bool(_ASKS_SOME_FIGURE.search(folded)),
            years=sorted({int(y) for y in _YEAR.findall(folded)} | {int(y) for y in re.findall(r"\b(20\d{2})\b", folded)}),
            districts=list(districts or find_districts(question)),
            comparison=comparison,
            wants_list=bool(_ASKS_LIST.search(folded)),
            english=is_english(question),
        )


@dataclass(eq=False)
class Evidence:
    """One sentence an answer may cite, with the figures it states."""

    chunk: object     # langchain Document
    start: int        # offsets into the report text
    end: int
    text: str
    excerpt: int      # 0-based number of the prompt excerpt it stands in
    quantities: list[Quantity] = field(default_factory=list)

    @property
    def meta(self) -> dict:
        return self.chunk.metadata

    @property
    def district(self) -> str:
        return self.meta[schema.DISTRICT]

    @property
    def report_year(self) -> int:
        return int(self.meta[schema.YEAR])

    def label(self, q: Quantity) -> set[str]:
        """The content bigrams of the few words right before a figure: what it measures."""
        before = self.text[: q.start]
        cut = max((m.end() for m in _LABEL_BOUNDARY.finditer(before)), default=0)
        earlier = [p.end for p in self.quantities if p.end <= q.start]
        cut = max(cut, max(earlier, default=0))
        words = "".join(c for c in fold(before[cut:]) if c not in _STOP)
        return content_bigrams(words[-_LABEL_CHARS:])

    def about_year(self, q: Quantity | None = None) -> int:
        """The year a figure is about: a year written before it in the sentence, else the
        year of its section heading (「二、2025年…工作思路」), else the report's year."""
        before = fold(self.text[: q.start] if q else self.text)
        years = _YEAR.findall(before)
        if years:
            return int(years[-1])
        section = _YEAR.findall(fold(self.meta.get(schema.SECTION) or ""))
        return int(section[0]) if section else self.report_year


def evidence_sentences(excerpts) -> list[Evidence]:
    """The sentences of the prompt excerpts, in prompt order."""
    found = []
    for n, excerpt in enumerate(excerpts):
        for s, e in sentence_spans(excerpt.text):
            text = excerpt.text[s:e]
            found.append(Evidence(excerpt.chunk, excerpt.start + s, excerpt.start + e, text, n, quantities(text)))
    return found


def district_matches(named: str, district: str) -> bool:
    """开州区 names 开州区大进镇's reports, and 大进镇 does too."""
    a, b = fold(named), fold(district)
    return a in b or b in a


@dataclass
class Support:
    """The sentences that state a claim, best first, and whether its figures answer the question."""

    sentences: list[Evidence]
    figures: list[tuple[Quantity, Evidence, Quantity]]  # (claim figure, sentence, the sentence's figure)


class Binder:
    """Finds, for each claim of an answer, the evidence sentence that states it."""

    def __init__(self, ask: Ask, evidence: list[Evidence]):
        self.ask = ask
        self.evidence = evidence
        self.question_bigrams = ask.bigrams

    def bind(self, claim: str, markers: list[int]) -> Support | None:
        """The support of a claim (markers name prompt excerpts, 1-based), or None when nothing states it."""
        named = [d for d in find_districts(claim)]
        pool = [e for e in self.evidence if not named or any(district_matches(d, e.district) for d in named)]
        stated = [q for q in quantities(claim) if not self._context_figure(q)]
        preferred = {m - 1 for m in markers}
        if stated:
            return self._bind_figures(claim, stated, pool, preferred)
        return self._bind_text(claim, pool, preferred, named)

    def _context_figure(self, q: Quantity) -> bool:
        """A year the question or a report names (「荣昌区2024年…」, "(2024 report)") needs no sentence."""
        if q.unit not in ("年", "") or not re.fullmatch(r"(19|20)\d{2}", q.value):
            return False
        year = int(q.value)
        return year in self.ask.years or any(year == e.report_year for e in self.evidence)

    def _bind_figures(self, claim: str, stated: list[Quantity], pool: list[Evidence], preferred: set[int]):
        context = content_bigrams(claim, tuple(self.ask.districts)) | self.question_bigrams
        covered: list[tuple[Quantity, Evidence, Quantity]] = []
        for q in stated:
            options = []
            for e in pool:
                for p in e.quantities:
                    if not q.matches(p):
                        continue
                    label = e.label(p)
                    if self.question_bigrams and share(label, context) < LABEL_FIT and len(label & context) < 3:
                        continue
                    if self.ask.wants_figure and self.ask.years and e.about_year(p) not in self.ask.years:
                        continue
                    options.append((e.excerpt in preferred, share(label, context), -e.excerpt, e, p))
            if not options:
                return None
            options.sort(key=lambda o: o[:3], reverse=True)
            # A sentence already used for another figure of this claim is the better choice.
            used = [o for o in options if any(o[3] is c[1] for c in covered)]
            _, _, _, e, p = (used or options)[0]
            covered.append((q, e, p))
        sentences = list(dict.fromkeys(e for _, e, _ in covered))
        return Support(sentences, covered)

    def _bind_text(self, claim: str, pool: list[Evidence], preferred: set[int], named: list[str]):
        words = content_bigrams(claim, tuple(named))
        if self.ask.english or not words:
            # An English claim cannot be compared word by word: it stands on the sentence of its
            # marker that best fits the question; a claim without markers stands on nothing.
            marked = [e for e in pool if e.excerpt in preferred]
            if not marked:
                return None
            best = max(marked, key=lambda e: share(self.question_bigrams, content_bigrams(e.text)))
            return Support([best], [])
        scored = [(share(words, content_bigrams(e.text + (e.meta.get(schema.SECTION) or ""))), e.excerpt in preferred, e)
                  for e in pool]
        scored = [s for s in scored if s[0] >= TEXT_SUPPORT]
        if not scored:
            return None
        scored.sort(key=lambda s: (round(s[0], 1), s[1]), reverse=True)
        return Support([scored[0][2]], [])

    def answers_question(self, support: Support) -> bool:
        """True when a bound figure is of a kind the question asks, for its year, under a label
        that fits the question's words (kind and year only when the question has no Chinese words)."""
        for _, e, p in support.figures:
            if self.ask.kinds and p.kind not in self.ask.kinds and p.kind != "number":
                continue
            if self.ask.years and e.about_year(p) not in self.ask.years:
                continue
            if not self.question_bigrams or share(e.label(p), self.question_bigrams) >= LABEL_FIT:
                return True
        return False

    def fits(self, e: Evidence) -> float:
        """How well a sentence (with its section heading) covers the question's words (0..1)."""
        if not self.question_bigrams:
            return 0.0
        return share(self.question_bigrams, content_bigrams(e.text + (e.meta.get(schema.SECTION) or "")))

    def answering_figures(self, e: Evidence) -> list[Quantity]:
        """The figures of a sentence that answer a figure question (kind, year and label)."""
        return [p for p in e.quantities if self.answers_question(Support([e], [(p, e, p)]))]
