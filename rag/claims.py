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

import math
import re
from collections import Counter
from functools import lru_cache
from dataclasses import dataclass, field

from rag import schema
from rag.districts import district_mentions, find_districts, mention_label, meta_label, names_label
from rag.glossary import PARAPHRASES, chinese_terms, paraphrases
from rag.keyword import tokenize
from rag.grounding import Quantity, counted_by, measured_words, named_in_turn, quantities
from rag.sections import heading_only, heading_text
from rag.text import fold, sentence_spans

# Characters that carry no subject: bigrams containing them are not compared.
_STOP = set("的了为是和与及在等共其并对将把被已之中有个全年区镇县我本该达到约")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_LABEL_CHARS = 8          # how far before a figure its label is read
LABEL_FIT = 0.33          # share of a figure label's bigrams the claim or question must hold
TEXT_SUPPORT = 0.5        # share of a text claim's bigrams its sentence must hold
SENTENCE_FIT = 0.5        # weighted share of the question's bigrams a sentence covering it holds
_YEAR = re.compile(r"(?<!\d)(20\d{2})\s*年")
_SINCE = set("比较与跟从自")  # before a year that is compared with, not the one a figure is about
_ENGLISH_YEAR = re.compile(r"\b(20\d{2})\b")
_ENGLISH_SINCE = re.compile(
    r"\b(?:than|since|from|compared (?:with|to)|over|versus|vs\.?)\s+(?:the\s+)?(?:end\s+of\s+)?$", re.IGNORECASE)
# Words that ask rather than name what is asked about.
QUESTION_WORDS = (
    "多少", "哪些", "哪几", "哪个", "哪份", "哪一", "什么", "是否", "如何", "怎么", "怎样", "各有", "分别", "方面",
    "做法", "情况", "报告", "主要", "具体", "请问", "目前", "提到", "指出", "相关", "有关", "介绍", "达到",
    "一共", "总共", "共计", "几个", "几项", "几次", "多大", "多久", "多快", "多长", "最高", "最低", "最多", "最少", "之间",
)

_AREA_WORDS = r"面积|平方米|\barea\b|square"
_ASKS = {
    "rate": re.compile(r"率|比例|占比|百分比|百分之|满意度|满意程度|满不满意|知晓度|认可度|\bpercent|\brates?\b|\bshare\b"
                       r"|\bproportion|\bratio|\bsatisfaction\b"),
    "count": re.compile(
        r"(?:多少|几)(?:个|件|人|家|次|名|项|起|条|场|份|所|处|批|期|届|户|卷|篇|部|支|座|套|位|例|宗)(?!方面|领域|部分|类)"
        r"|数量|人数|件数|次数|家数|个数|\bhow many\b|\bnumber of\b"
    ),
    "amount": re.compile(r"金额|多少钱|多少万元|多少元|资金|经费|\bhow much money\b|\bamount\b|\byuan\b"),
    "area": re.compile(_AREA_WORDS + r"|多大"),  # not 多大 of a change: _ASKS_CHANGE
    "duration": re.compile(r"多长时间|多久|多快|多长|时长|天数|多少天|几天|\bhow (?:long|quickly|fast)\b"),
    "date": re.compile(r"何时|什么时候|\bwhen\b"),  # 哪一年 asks the report's year, which every citation names
}
# What an asked rate measures, by the two characters before its 率 or degree noun: 纠错 of 「直接纠错率」,
# 满意 of 「受援人满意度」.
_MEASURE = re.compile(r"([\u4e00-\u9fff]{2})率|(满意|知晓|认可)(?:程?度)|(满意)(?=[？?]|$)")
# The measure word a question counts in: 「多少件」, 「几场」, 「参训人数」.
_COUNTS_IN = re.compile(r"(?:多少|几)(人次|件次|场次|批次|[件人家次名项起条场份所处批期届户卷篇部座套位例宗])"
                        r"(?!方面|领域|部分|类)|([人件次家户])数")
# A question for the items of a part of a report: its problems, plans, measures, aspects…
_LIST_OF = r"(?:不足|不够|不到位|欠缺|差距|薄弱|问题|短板|打算|安排|举措|措施|方面|目标|任务|思路|计划|重点|做法)"
_ASKS_LIST = re.compile(
    rf"(?:哪些|哪几)[^？?，,]{{0,12}}{_LIST_OF}|{_LIST_OF}[^？?，,]{{0,6}}(?:有哪些|有哪几|包括哪)"
    # 「有什么打算」, 「存在什么问题」 (not 「定了什么目标」: one goal), 「怎么安排的」, 「分了哪几块」
    r"|什么[^？?，,]{0,4}(?:不足|问题|短板|打算|安排|举措|措施|思路|计划)|(?:怎么|如何|怎样)(?:安排|打算|部署)"
    r"|哪几(?:块|大块|个部分|部分)"
    r"|\bwhat (?:are|were) the (?:main )?(?:problems|shortcomings|plans|measures|tasks|priorities)\b",
    re.IGNORECASE,
)
_ASKS_SOME_FIGURE = re.compile(r"多少|几[个项件家次人名条批场](?!方面|领域|部分|类)|\bhow (?:many|much)\b"
                               r"|\bwhat (?:was|were|is|are) the (?:numbers?|figures?)\b", re.IGNORECASE)
# 「哪个区调解的纠纷最多」, "which district mediated more disputes": a figure decides which.
_ASKS_WHICH_MOST = re.compile(r"(?:哪|\bwhich\b)[^？?]*(?:[更最](?:多|少|高|低|大|小)|\b(?:more|most|fewer|fewest|higher|"
                              r"highest|lower|lowest|larger|largest)\b)", re.IGNORECASE)
_LATIN = re.compile(r"[A-Za-z]")
# A question for a goal the report sets (「下一步打算让这个比例保持在什么水平」, 「对2025年定了什么目标」).
_ASKS_PLAN = re.compile(r"下一步|目标|打算|力争|明年|今后|计划(?:达到|在|将|要|让)|\bplans?\b|\btargets?\b|\bgoals?\b")
# What makes a figure a goal: a plan heading over it, or a word of intent in its clause.
PLAN_HEADING = re.compile(r"安排|计划|打算|思路|目标|下一步|展望|工作重点")
TARGET_WORDS = re.compile(r"力争|确保|争取|预计|力求|目标")
_ASKS_AREA = re.compile(_AREA_WORDS)
_ASKS_DIRECTION = re.compile(r"多了还是少了|增加还是减少|增长还是下降|升还是降|高了还是低了|涨还是跌")
# A part of a question that refers back to the one before: 这个比例, 它, 其, 又…, 跟前一年比.
_LEANS_ON_BEFORE = re.compile(r"这个|这项|这一|该|它|其|他们|又|跟前|与上|同比|比上|相比"
                              r"|\b(?:it|its|they|them|their|this|that|these|those)\b", re.IGNORECASE)
# Where an English question starts asking another thing: 「…?」, 「…, and what share…」.
_ENGLISH_PARTS = re.compile(
    r"[?;]\s*|,?\s+and\s+(?=(?:what|how|which|who|when|where|whether|did|does|do|is|are|was|were|has|have)\b)",
    re.IGNORECASE)
# A figure, of the kind the part before asked: 「什么水平」, 「跟…定的目标比怎么样」 (the goal's, to compare).
_ASKS_LEVEL = re.compile(r"什么水平|什么目标|多高|多低|目标比|比目标|目标相比")
# A question for a subset of a whole: 「行政复议案件中通过调解结案的有多少件」 (group 1 names the subset).
_ASKS_SUBSET = re.compile(r"中[，,]?([^，,。？?的]{2,12})的(?:有|共有|一共有)?(?:多少|几)")
# A question for how much a thing changed (「比上年增长了百分之多少」, 「变化有多大」, "by how much did … fall"),
# not for the level it changed to (「提高到多少」).
_CHANGE_ASKED = r"增长|增加|增幅|增速|提高|提升|上升|下降|降低|减少|降幅|变化|变动|幅度|减下来|压减|削减|缩减"
_ASKS_CHANGE = re.compile(
    rf"(?:{_CHANGE_ASKED})(?![至到])[^，,。？?]{{0,4}}(多少|几|多大)"
    r"|增长率|增幅|降幅|增速|\bby (?:how much|what (?:percentage|percent|share))\b|\bgrowth rate\b"
    r"|\bhow much (?:did|has|have|was|were)\b.{0,60}\b(?:increase|grow|rise|fall|drop|decline|decrease|change)",
    re.IGNORECASE)
# Any word of a change in a question (「受理多少件，同比增长多少」 asks a level and a change at once).
_MENTIONS_CHANGE = re.compile(
    _CHANGE_ASKED + r"|缩短|同比|比上|多了还是少了|还是少了|还是减少|还是下降"
    r"|\b(?:growth|grow|grew|increase|rise|rose|fall|fell|drop|decline|decrease|change|compared)", re.IGNORECASE)
# A name a question quotes: 「借“周一职工夜校”组织学法」, 《行政处罚法》.
_QUOTED = re.compile(r"[“\"「『《]([^”\"」』》]{3,24})[”\"」』》]")
_CLAUSE_END = re.compile(r"[，,；;。：:！!？?]")


def _carries_subject(c: str) -> bool:
    """True for a Chinese character that is not a stop character."""
    return bool(_CJK.match(c)) and c not in _STOP


def content_bigrams(text: str, drop: tuple[str, ...] = ()) -> set[str]:
    """Two-character windows of the Chinese text (folded), skipping stop characters and `drop` words."""
    folded = fold(text)
    for word in drop:
        folded = folded.replace(fold(word), " ")
    chars = [c if _carries_subject(c) else " " for c in folded]
    return {a + b for a, b in zip(chars, chars[1:]) if a != " " and b != " "}


def weighted_share(part: set[str], whole: set[str], weights: dict[str, float]) -> float:
    """Like share, each bigram counted by its weight (1.0 where it has none)."""
    total = sum(weights.get(b, 1.0) for b in part)
    return sum(weights.get(b, 1.0) for b in part & whole) / total if total else 1.0


def rarity_weights(documents: list[set[str]]) -> dict[str, float]:
    """Each bigram's weight by its inverse frequency over documents (their bigram sets): a word found in
    every sentence tells them apart less than a rare one."""
    frequency = Counter(b for bigrams in documents for b in bigrams)
    return {b: math.log(1 + len(documents) / n) for b, n in frequency.items()}


def share(part: set[str], whole: set[str]) -> float:
    """Share of `part` found in `whole` (1.0 when part is empty)."""
    return len(part & whole) / len(part) if part else 1.0


def is_english(text: str) -> bool:
    """True when Latin letters outnumber Chinese characters."""
    return len(_LATIN.findall(text)) > 2 * len(_CJK.findall(text))


def report_terms(question: str, path=None) -> list[str]:
    """The reports' own terms for the everyday phrasings a Chinese question uses (config/paraphrases.yaml:
    第一选择 → 首选率), each once, leaving out those the question already writes.

    A phrasing is used when it is written whole, or when each of its words is, two or more words
    that between them hold every character of it that carries a subject (「当事人把申请复议当作第一选择」
    uses 「第一选择复议」): people put the words of a phrase in their own order. Words that only ask
    (多少) name nothing, and a phrasing with a character outside its words (「新申请的复议」: 新) is
    used only whole. Written whole allows what people slip into a phrase: characters that carry no
    subject (「派到镇街的执法」 in 「派到镇街去的执法人员」), and one more character between two of a
    phrasing of four or more that do, two at most in all."""
    folded = fold(question)
    clauses = [_content(c) for c in re.split(r"[，,。？?！!；;、：:\s]", folded)]
    return list(dict.fromkeys(
        term for phrasing, words, term, loose in _phrasing_words(path or PARAPHRASES)
        if term not in folded and (phrasing in folded or len(words) >= 2 and all(w in folded for w in words)
                                   or loose is not None and any(_slipped_in(loose, c) for c in clauses))))


def _slipped_in(loose: tuple[re.Pattern, int], clause: str) -> bool:
    """True when the phrasing's n characters that carry a subject stand in the clause in order, two
    characters slipped in at most."""
    pattern, n = loose
    if pattern.pattern[0] not in clause:  # most phrasings: no regex search on the hot path
        return False
    match = pattern.search(clause)
    return bool(match) and len(match.group()) <= n + 2


@lru_cache(maxsize=4)
def _phrasing_words(path) -> tuple[tuple[str, tuple[str, ...], str, tuple[re.Pattern, int] | None], ...]:
    """(phrasing, its naming words, term, loose) of each line of the paraphrase table; no words when
    they leave a character of the phrasing that carries a subject out; loose: a pattern of those
    characters with one slipped in between any two, and their count (None under four)."""
    found = []
    for phrasing, term in paraphrases(path):
        words = {w for w in tokenize(phrasing) if len(w) >= 2 and w not in QUESTION_WORDS
                 and any(map(_carries_subject, w))}  # 挨个 names, though 个 alone would not
        covered = "".join(words)
        whole = all(c in covered for c in phrasing if _carries_subject(c))
        content = _content(phrasing)
        loose = (re.compile(".?".join(map(re.escape, content))), len(content)) if len(content) >= 4 else None
        found.append((phrasing, tuple(sorted(words)) if whole else (), term, loose))
    return tuple(found)


@dataclass
class Ask:
    """What a question asks for, read once."""

    question: str
    search: str = ""                                # the question, with the Chinese terms of an English one
    terms: set[str] = field(default_factory=set)    # bigrams of the reports' terms for its everyday phrasings
    term_names: tuple[str, ...] = ()                # those terms whole (免罚, 全员轮训)
    kinds: set[str] = field(default_factory=set)   # quantity kinds asked for; empty: no figure asked
    counts: set[str] = field(default_factory=set)  # what its counts count, by measure word (件 → matter)
    wants_figure: bool = False
    years: list[int] = field(default_factory=list)  # years the question names
    districts: list[str] = field(default_factory=list)  # places it names (canonical; 北京市朝阳区 when shared)
    comparison: bool = False
    wants_list: bool = False
    plan: bool = False                              # asks for a goal the report sets
    change: bool = False                            # asks only how much a thing changed: a level is no answer
    level: bool = False                             # asks a figure and no change: a change is no answer
    borrowed: set[str] = field(default_factory=set)  # a part's words of the part it refers back to (labels only)
    english: bool = False
    quoted: tuple[str, ...] = ()                    # the names it quotes (folded), which say what it is about
    subset: set[str] = field(default_factory=set)   # bigrams naming the part of a whole it asks for (调解结案)
    measures: set[str] = field(default_factory=set)  # what the rates it names measure (纠错, 满意)
    parts: list["Ask"] = field(default_factory=list)  # the sub-questions of one that asks several things

    def writes_quoted(self, text: str) -> bool:
        """True when text writes a name the question quotes."""
        folded = fold(text)
        return any(name in folded for name in self.quoted)

    def year_ok(self, year: int) -> bool:
        """True when the question (or one of its parts) asks about that year, or names none."""
        return any(not ask.years or year in ask.years for ask in self.parts or [self])

    @property
    def bigrams(self) -> set[str]:
        """The question's content bigrams: without its places (and their cities) and the words that only ask."""
        names = tuple(n for d in self.districts for n in (d, *re.split(r"(?<=[省市区县])", d), re.sub(r"[区县镇]$", "", d)) if n)
        return content_bigrams(self.search or self.question, names + QUESTION_WORDS)

    @classmethod
    def read(cls, question: str, districts: list[str] | None = None, comparison: bool = False,
             search: str = "") -> "Ask":
        folded = fold(question).lower()
        kinds = {kind for kind, pattern in _ASKS.items() if pattern.search(folded)}
        # 「覆盖率达到了多少」 asks a rate; 「多少件？同比增长多少？」 a count and a change; 「变化有多大」
        # the size of a change, not an area.
        change_size = _ASKS_CHANGE.search(folded)
        if change_size:
            kinds.add("rate")
            if change_size.group(1) == "多大" and not _ASKS_AREA.search(folded):
                kinds.discard("area")
        if _ASKS_DIRECTION.search(folded):  # 「多了还是少了」: a change, by a count or a share
            kinds |= {"count", "rate"}
        asks_figure = bool(_ASKS_SOME_FIGURE.search(folded) or _ASKS_WHICH_MOST.search(folded))
        if not asks_figure and any(q.kind != "date" for q in quantities(folded)):
            kinds = set()  # 「综合率达到77.42%的是哪个区」 gives its figure and asks whose it is
        english = is_english(question)
        named_terms = () if english else tuple(report_terms(question))
        return cls(
            question=question,
            search=search if english and search else question,
            # 「第一选择的比例」 is checked with the reports' 首选率 as well (never against: see Binder.fits)
            terms=content_bigrams(" ".join(named_terms)),
            term_names=named_terms,
            kinds=kinds,
            counts={thing for m in _COUNTS_IN.finditer(folded) if (thing := counted_by(m.group(1) or m.group(2)))},
            wants_figure=bool(kinds) or asks_figure,
            years=sorted({int(y) for y in _YEAR.findall(folded) + _ENGLISH_YEAR.findall(folded)}),
            districts=list(find_districts(question) if districts is None else districts),
            comparison=comparison,
            wants_list=asks_for_list(question),
            plan=bool(_ASKS_PLAN.search(folded)),
            # 「受理多少件，同比增长多少」 asks a level as well
            change=bool(change_size or _ASKS_DIRECTION.search(folded)) and len(_ASKS_SOME_FIGURE.findall(folded)) <= 1,
            level=bool(kinds) and not (change_size or _MENTIONS_CHANGE.search(folded)),
            english=english,
            quoted=tuple(dict.fromkeys(_QUOTED.findall(folded))),
            subset={b for m in _ASKS_SUBSET.finditer(folded) for b in content_bigrams(m.group(1), QUESTION_WORDS)},
            measures={m for match in _MEASURE.finditer(fold(search) if english else folded)
                      if (m := next(g for g in match.groups() if g)) and all(map(_carries_subject, m))},
            parts=_read_parts(cls, _parts(question), districts, comparison),
        )


def asks_for_list(question: str) -> bool:
    """True for a question for the items of a part of a report (「有哪些打算」, "what were the main problems")."""
    return bool(_ASKS_LIST.search(fold(question).lower()))


def _read_parts(cls, parts: list[str], districts, comparison: bool) -> list[Ask]:
    """The parts read one by one; a part that leans on the one before (「…比例是多少？下一步打算让这个比例
    保持在什么水平？」, 「…有多少？跟前一年比是多了还是少了？」) borrows its words for the labels of its
    figures (not for how well a sentence covers it), and its kinds when it asks a figure naming no
    kind (「又定了什么目标」); not its year (「下一步」 asks another). One that names nothing the part
    before does not ("how many did each select" after "…select legal-savvy residents…") asks about
    the same thing in fewer words: it takes them for the cover too, or a sentence sharing only
    遴选 (「遴选64余名律师」) would cover it."""
    asks: list[Ask] = []
    for part in parts:
        ask = cls.read(part, districts, comparison, search=" ".join([part, *chinese_terms(part)]))
        if asks and (_LEANS_ON_BEFORE.search(fold(part)) or len(content_bigrams(part, QUESTION_WORDS)) < 2):
            before = asks[-1]
            ask.borrowed = before.bigrams | before.terms | before.borrowed
            if ask.bigrams <= ask.borrowed:
                ask.search, ask.terms = " ".join([ask.search, before.search]), ask.terms | before.terms
            if not ask.kinds and (ask.wants_figure or _ASKS_LEVEL.search(fold(part))):  # not 「其中有…吗」
                ask.kinds = set(before.kinds)
                ask.wants_figure = True
        asks.append(ask)
    return asks


def _parts(question: str) -> list[str]:
    """The sub-questions of 「…多少家？2026年计划…？」 or "How many…, and what share…?", or [] for a
    question that asks one thing."""
    if is_english(question):
        parts = [p for p in _ENGLISH_PARTS.split(question) if p and len(re.findall(r"[A-Za-z]{3,}", p)) >= 3]
    else:
        parts = [p for p in re.split(r"[？?；;]", question)
                 if len(content_bigrams(p, QUESTION_WORDS)) >= 2 or _asks_on_its_own(p)]
    return parts if len(parts) > 1 else []


def _asks_on_its_own(part: str) -> bool:
    """True for a short part that asks a kind of figure, or a change, of what the part before names
    (「一年办了几次」, 「罚没的钱是多了还是少了」, 「变化有多大」): too few words of its own to be a
    question apart, it is one all the same. 「具体是多少」 only asks for the figure the part before
    asks about: it is that part's."""
    folded = fold(part)
    return any(p.search(folded) for p in (*_ASKS.values(), _ASKS_DIRECTION, _ASKS_CHANGE))


@dataclass(eq=False)
class Evidence:
    """One sentence an answer may cite, with the figures it states."""

    chunk: object     # langchain Document
    start: int        # offsets into the report text
    end: int
    text: str
    excerpt: int      # 0-based number of the prompt excerpt it stands in; -1: in none
    quantities: list[Quantity] = field(default_factory=list)
    lead_in: str = ""  # for a list item run on in a paragraph, the paragraph's words before the items

    @property
    def meta(self) -> dict:
        return self.chunk.metadata

    @property
    def district(self) -> str:
        return self.meta[schema.DISTRICT]

    @property
    def place(self) -> str:
        """The report's place as written for people: 荣昌区, 北京市朝阳区."""
        return meta_label(self.meta)

    @property
    def report_year(self) -> int:
        return int(self.meta[schema.YEAR])

    @property
    def is_heading(self) -> bool:
        """True for a sentence that is only a heading of its own section path (「三、2026年…目标举措」):
        it names what the part is about and says none of it."""
        words = heading_text(fold(self.text))
        return bool(words) and heading_only(self.text) and words in fold(self.meta.get(schema.SECTION) or "")

    def label(self, q: Quantity) -> tuple[set[str], set[str]]:
        """What a figure measures: the content bigrams of the few words right before it
        (「直接纠错率22.22%」) and right after it (「500㎡实体平台」), each up to the nearest
        punctuation. Other figures and the words of a change (「履行率由94.9%提升至99%」,
        「时间由半天缩短到5分钟」) are passed over; a change with no words of its own
        (「1004人、增长21%」) measures what the figure before it does."""
        before, after = measured_words(self.text, self.quantities, q)
        words_before = _content(before)
        if not words_before and q.change:
            earlier = [p for p in self.quantities if p.end <= q.start]
            if earlier:
                return self.label(earlier[-1])
        return _nearest_bigrams(before, last=True), _nearest_bigrams(after, last=False)

    def measures_term(self, q: Quantity, terms: tuple[str, ...]) -> bool:
        """True when a report term the question asks for in everyday words is written whole in what the
        figure measures (「轻微免罚1722件」 for 「不予处罚」 → 免罚; 「1190名行政执法人员的全员轮训」 for 「挨个
        培训了一遍」): its words up to the nearest punctuation either side, not only the label's few."""
        if not terms:
            return False
        before, after = (_content(words) for words in measured_words(self.text, self.quantities, q))
        return any((t := _content(term)) and (t in before or t in after) for term in terms)

    def counted(self, q: Quantity) -> set[str]:
        """What a count may count: the last two characters carrying a subject right before it
        (「法制审查1件」 → 审查, 「社区矫正对象312人」 → 矫正) and the first two right after it
        (「建成3个实体平台」 → 实体; 「161个村（居）法律顾问」 → 村, never the 法律 beyond it), never joined
        across a stop character; empty for other kinds."""
        if q.kind != "count":
            return set()
        before, after = measured_words(self.text, self.quantities, q)
        before, after = _subject_runs(before), _subject_runs(after, 1)
        return {run for run in (before[-1][-2:] if before else "", after[0][:2] if after else "") if run}

    def rate_head(self, q: Quantity) -> str:
        """The bigram ending in 率 written right before a rate (「直接纠错率22.22%」 → 错率) or ending the
        name it stands for in turn (「败诉率、纠错率分别为2.7%、4.2%」), or "" (also for one no
        question's words can hold: 送达率's 达 is a stop character)."""
        if q.kind != "rate":
            return ""
        in_turn = named_in_turn(self.text, self.quantities, q)
        match = re.search(r"([\u4e00-\u9fff]率)[为是达到了约：:\s]{0,3}$",
                          fold(self.text[: in_turn[1] if in_turn else q.start]))
        return match.group(1) if match and match.group(1)[0] not in _STOP else ""

    def is_target(self, q: Quantity) -> bool:
        """A figure the report sets as a goal: under a plan heading (「三、下一步工作打算」) or after a word
        of intent in its clause (「力争…达96%以上」)."""
        clause = re.split(r"[，,；;]", fold(self.text[: q.start]))[-1]
        return bool(PLAN_HEADING.search(fold(self.meta.get(schema.SECTION) or "")) or TARGET_WORDS.search(clause))

    def years_of(self, q: Quantity) -> set[int]:
        """The years a figure answers for: the year it is about, and the report's own when a later year
        is written over what the report says was done (「2025年新收复议案件98件」 in a report on 2024: the
        time of writing, or a slip), not over a goal."""
        year = self.about_year(q)
        return {year, self.report_year} if year > self.report_year and not self.is_target(q) else {year}

    def about_year(self, q: Quantity | None = None) -> int:
        """The year a figure is about: a year written before it in the sentence, else the
        year of its section heading (「二、2025年…工作思路」), else the report's year."""
        before = fold(self.text[: q.start] if q else self.text)
        years = _YEAR.findall(before)
        if years:
            return int(years[-1])
        section = _YEAR.findall(fold(self.meta.get(schema.SECTION) or ""))
        return int(section[0]) if section else self.report_year


# The lead of a list item at the second level of a report: 一是… （一）… (一)…
_ITEM_LEAD = re.compile(r"\s*(?:[一二三四五六七八九十]{1,3}是|[(（][一二三四五六七八九十]{1,3}[)）])")
_SUBITEM_LEAD = re.compile(r"\s*\d{1,2}[.．、](?!\d)")
_INLINE_ITEM = re.compile(r"(?<=[：:；;。])\s*([一二三四五六七八九十]{1,3}是[^；;。\n]*[；;。]?)")
_PAREN_LEAD = re.compile(r"\s*[(（][一二三四五六七八九十]{1,3}[)）]")


def report_items(text: str, sections, meta: dict) -> list[Evidence]:
    """The list-item sentences of a whole report (its text, parsed sections and any chunk's
    metadata for file, district and year), each with the heading path it stands under."""
    from langchain_core.documents import Document

    found = []
    for section in sections:
        chunk = Document(page_content="", metadata={**meta, schema.SECTION: section.path})
        starts = set()
        for s, e in sentence_spans(text, section.start, section.end, clauses=False):
            sentence = text[s:e]
            if _ITEM_LEAD.match(fold(sentence)) or _SUBITEM_LEAD.match(fold(sentence)):
                found.append(Evidence(chunk, s, e, sentence, -1, quantities(sentence)))
                starts.add(s)
        # items run on inside a paragraph: 「…存在一定不足。主要表现在：一是…；二是…；三是…。」
        lead_ins: dict[int, str] = {}
        for match in _INLINE_ITEM.finditer(fold(text), section.start, section.end):
            s, e = match.span(1)
            paragraph = text.rfind("\n", section.start, s) + 1 or section.start
            lead_in = lead_ins.setdefault(paragraph, text[paragraph:s])
            if s in starts:  # the sentence opened by the first item: the item alone stands for it
                found = [x for x in found if x.start != s]
            found.append(Evidence(chunk, s, e, text[s:e], -1, quantities(text[s:e]), lead_in))
    found.sort(key=lambda x: x.start)
    return found


# The parts of a report a list question asks for, by the words their headings use.
_SECTION_KINDS = (
    ("不足", "不够", "不到位", "欠缺", "问题", "短板", "差距", "薄弱", "困难"),
    ("打算", "安排", "计划", "思路", "目标", "任务", "下一步", "展望"),
)


def _top_level(items: list[Evidence]) -> list[Evidence]:
    """The items of the highest level with two or more: （一）…, else 一是…, else 1．…"""
    for level in (_PAREN_LEAD, _ITEM_LEAD, _SUBITEM_LEAD):
        leads = [e for e in items if level.match(fold(e.text))]
        if len(leads) >= 2:
            return leads
    return []


def _unfold(pool: list[Evidence], leads: list[Evidence]) -> list[Evidence]:
    """Each lead that is only a heading repeating its parent's words (「三、工作思路、目标举措」 split into
    「（一）工作思路」 and 「（二）目标举措」) followed by the items under it: those hold what it names."""
    unfolded = []
    for lead in leads:
        levels = (lead.meta.get(schema.SECTION) or "").split(schema.SECTION_SEPARATOR)
        unfolded.append(lead)
        folded = fold(lead.text)
        lead_number = next((m for level in (_PAREN_LEAD, _ITEM_LEAD, _SUBITEM_LEAD) if (m := level.match(folded))), None)
        words = heading_text(folded[lead_number.end():] if lead_number else folded)
        if len(levels) < 2 or not heading_only(lead.text) or not words or words not in fold(levels[-2]):
            continue
        path = schema.SECTION_SEPARATOR.join(levels)
        unfolded += _top_level([e for e in pool if e.meta[schema.FILE] == lead.meta[schema.FILE]
                                and e.meta.get(schema.SECTION) == path and e.start > lead.start])
    return unfolded


def _within(path: str, scope: str) -> bool:
    return path == scope or path.startswith(scope + schema.SECTION_SEPARATOR)


def evidence_sentences(excerpts, chunks=()) -> list[Evidence]:
    """The sentences of the prompt excerpts, in prompt order; then those of the other retrieved
    chunks that overlap none taken yet (excerpt -1: no marker names them, a claim or a quote may)."""
    found = []
    for n, excerpt in enumerate(excerpts):
        for s, e in sentence_spans(excerpt.text, clauses=False):
            text = excerpt.text[s:e]
            found.append(Evidence(excerpt.chunk, excerpt.start + s, excerpt.start + e, text, n, quantities(text)))
    for chunk in chunks:
        offset, file = chunk.metadata[schema.START], chunk.metadata[schema.FILE]
        for s, e in sentence_spans(chunk.page_content, clauses=False):
            start, end = offset + s, offset + e
            if any(x.meta[schema.FILE] == file and x.start < end and start < x.end for x in found):
                continue
            text = chunk.page_content[s:e]
            found.append(Evidence(chunk, start, end, text, -1, quantities(text)))
    return found


def _names_another_thing(claim: str, q: Quantity, e: Evidence, p: Quantity) -> bool:
    """For an English claim: True when the words right after its figure name a thing of the glossary
    ("served 118 foreign-trade companies": 外资外贸企业) that the report's words around the figure do
    not name (「办理涉外案件118件」): the figure is put on another thing than the one it counts."""
    after = " ".join(re.split(r"[,.;:()\[\]]", claim[q.end:], maxsplit=1)[0].split()[:5])
    terms = chinese_terms(after)
    if not terms:
        return False
    measured = _content(" ".join(measured_words(e.text, e.quantities, p)))
    return not any(_content(t) in measured or content_bigrams(t) & content_bigrams(measured) for t in terms)


def _anchored(e: Evidence, q: Quantity, words: set[str]) -> bool:
    """True when the label of figure q shares a word with words."""
    before, after = e.label(q)
    return bool((before | after) & words)


def _one_word_apart(e: Evidence, q: Quantity, words: set[str], ask: Ask) -> bool:
    """True when figure q's label shares one word with words and its sentence says no more of the
    question (`_says_more`): 「人民调解组织…调解成功10498件」 for 「行政复议案件中通过调解结案的有多少件」
    shares 调解 alone, and one word in common is another thing's figure."""
    return len(set().union(*e.label(q)) & words) == 1 and not _says_more(e, q, ask)


def _says_more(e: Evidence, q: Quantity, ask: Ask) -> bool:
    """True when figure q's sentence writes a word of the question beyond its label's, or whole a
    report term the question asks in other words."""
    text = fold(e.text)
    return bool((ask.bigrams | ask.borrowed) & content_bigrams(text) - set().union(*e.label(q))) or any(
        t in text for t in ask.term_names)


def _claimed_years(claim: str) -> set[int]:
    """The years a claim says its figures are of: 「2024年…履行率96%」 and "In 2024, … 96%" are about 2024;
    「比2023年增长」 and "up from 2023" name the year compared with."""
    if is_english(claim):
        return {int(m.group(1)) for m in _ENGLISH_YEAR.finditer(claim)
                if not _ENGLISH_SINCE.search(claim, 0, m.start())}
    return {int(m.group(1)) for m in _YEAR.finditer(claim) if claim[max(0, m.start() - 1):m.start()] not in _SINCE}


def _nearest_bigrams(words: str, last: bool) -> set[str]:
    """The bigrams of the _LABEL_CHARS characters carrying a subject nearest a figure (the last of
    the words before it, the first of those after), never joined across a stop character: 「年末在册」
    holds no bigram 末册."""
    folded = fold(words)
    at = [i for i, c in enumerate(folded) if _carries_subject(c)]
    if not at:
        return set()
    return content_bigrams(folded[at[-_LABEL_CHARS:][0]:] if last else folded[: at[:_LABEL_CHARS][-1] + 1])


def _subject_runs(words: str, shortest: int = 2) -> list[str]:
    """The runs of `shortest` or more characters that carry a subject, in order."""
    runs = "".join(c if _carries_subject(c) else " " for c in fold(words)).split()
    return [run for run in runs if len(run) >= shortest]


def _content(words: str) -> str:
    """The characters of a figure's measured words that carry a subject."""
    return "".join(c for c in fold(words) if c not in _STOP and not c.isspace())


def label_fit(label: tuple[set[str], set[str]], context: set[str], head: str = "") -> float:
    """How well a figure's label fits words (0..1): the better side's share, 0.0 when it has no
    label words at all (「年末在册272人」: nothing says what it measures, so it fits nothing asked);
    three shared bigrams fit whatever the share. A rate's head (错率 of
    直接纠错率) must be among the words: 审结率 and 纠错率 share 行政复议, not what they measure."""
    if head and head not in context and "率" in "".join(context):  # a question for 比例 names no head
        return 0.0
    before, after = label
    if not before and not after:
        return 0.0
    if len((before | after) & context) >= 3:
        return 1.0
    return max(share(side, context) for side in (before, after) if side)


@dataclass
class Support:
    """The sentences that state a claim, best first, and whether its figures answer the question."""

    sentences: list[Evidence]
    figures: list[tuple[Quantity, Evidence, Quantity]]  # (claim figure, sentence, the sentence's figure)


class Binder:
    """Finds, for each claim of an answer, the evidence sentence that states it."""

    def __init__(self, ask: Ask, evidence: list[Evidence], outline: list[Evidence] | None = None,
                 report_items=None):
        self.ask = ask
        self.evidence = evidence
        self._report_items = report_items  # file -> the list items of the whole report (see report_items)
        self.outline = outline or []  # list items found for list questions, which claims may cite
        # A word found in every sentence retrieved (法治, 建设) tells them apart less than a rare one (不足):
        # question words are weighed by their inverse frequency over these sentences.
        documents = [content_bigrams(e.text + (e.meta.get(schema.SECTION) or "")) for e in evidence + self.outline]
        self.weights = rarity_weights(documents)
        self._documents = dict(zip(map(id, evidence + self.outline), documents))
        self.question_bigrams = ask.bigrams | ask.terms
        self._peer_words: dict[int, set[str]] = {}  # id(ask) -> see peer_words
        self._borrowing: dict[int, bool] = {}        # id(ask) -> see borrows
        self._pinned: set[str] | None = None           # see in_pinned_report

    def bind(self, claim: str, markers: list[int]) -> Support | None:
        """The support of a claim (markers name prompt excerpts, 1-based), or None when nothing states it."""
        named = list(dict.fromkeys(mention_label(m) for m in district_mentions(claim)))
        pool = [e for e in self.evidence + self.outline
                if (not named or any(names_label(d, e.place) for d in named)) and self.in_pinned_report(e)]
        stated = [q for q in quantities(claim) if not self._context_figure(q)]
        preferred = {m - 1 for m in markers}
        if stated:
            return self._bind_figures(claim, stated, pool, preferred)
        return self._bind_text(claim, pool, preferred, named)

    def in_pinned_report(self, e: Evidence) -> bool:
        """False for a sentence of another report than those writing a name the question quotes
        (「借“周一职工夜校”组织学法」): the name pins what is asked about, and a sentence elsewhere that
        fits its other words answers some other thing. Comparisons are not pinned."""
        if self._pinned is None:
            self._pinned = set() if self.ask.comparison else {
                e.meta[schema.FILE] for e in self.evidence if self.ask.writes_quoted(e.text)}
        return not self._pinned or e.meta[schema.FILE] in self._pinned

    def _context_figure(self, q: Quantity) -> bool:
        """A year the question or a report names (「荣昌区2024年…」, "(2024 report)") needs no sentence."""
        if q.unit not in ("年", "") or not re.fullmatch(r"(19|20)\d{2}", q.value):
            return False
        year = int(q.value)
        return year in self.ask.years or any(year == e.report_year for e in self.evidence)

    def _bind_figures(self, claim: str, stated: list[Quantity], pool: list[Evidence], preferred: set[int]):
        context = content_bigrams(claim, tuple(self.ask.districts)) | self.question_bigrams
        claimed_years = _claimed_years(claim)
        covered: list[tuple[Quantity, Evidence, Quantity]] = []
        for q in stated:
            options = []
            for order, e in enumerate(pool):  # prompt sentences first
                for p in e.quantities:
                    if not q.matches(p):
                        continue
                    fit = label_fit(e.label(p), context, e.rate_head(p))
                    if (self.question_bigrams and fit < LABEL_FIT and not e.measures_term(p, self.ask.term_names)
                            and not self._loosely_labelled(e, p, self.ask, chosen=True)):
                        continue
                    if self.ask.wants_figure and not any(map(self.ask.year_ok, e.years_of(p))):
                        continue
                    if claimed_years and not claimed_years & e.years_of(p):
                        continue  # a 2025 goal stated as what 2024 achieved
                    if self.ask.english and _names_another_thing(claim, q, e, p):
                        continue
                    options.append((e.excerpt in preferred, fit, -order, e, p))
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
        # A claim that repeats the question as its subject (「…专门张贴了“导引图”和“路线图”」) stands on
        # what it adds; the sentence must still share a word with the question.
        added = words - self.question_bigrams
        restates = len(added) >= 2 and len(words & self.question_bigrams) >= 2
        documents = [(e, content_bigrams(e.text + (e.meta.get(schema.SECTION) or ""))) for e in pool]
        scored = [(max(share(words, doc), share(added, doc) if restates and doc & self.question_bigrams else 0.0),
                   e.excerpt in preferred, e) for e, doc in documents]
        scored = [s for s in scored if s[0] >= TEXT_SUPPORT]
        if not scored:
            return None
        scored.sort(key=lambda s: (round(s[0], 1), s[1]), reverse=True)
        best = scored[0][2]
        if (restates and not any(ask.wants_list and self.items(ask) for ask in self.ask.parts or [self.ask])
                and share(added, content_bigrams(best.text)) < TEXT_SUPPORT):
            return None  # what it adds is only the heading it cites (「…工作安排：三、2026年…工作思路」)
        return Support([best], [])

    def answers_question(self, support: Support, claim: str = "") -> bool:
        """True when a bound figure answers the question or one of its parts (`answers`).

        A writer's claim lends its own words to the label check: a model that maps
        「用手机办理的比例」 onto 「掌上可办率」 says so in its claim, whose figure the sentence states
        under that label; kind and year are still the question's.
        """
        words = content_bigrams(claim, tuple(self.ask.districts)) if claim else set()
        return any(self.answers(ask, support, words, chosen=bool(claim)) for ask in self.ask.parts or [self.ask])

    def answers(self, ask: Ask, support: Support, claim_words: set[str] = frozenset(), peers: bool = True,
                borrow: bool = True, chosen: bool = False, loose: bool = True) -> bool:
        """True when a bound figure is of a kind `ask` asks, for its year, under a label that fits
        its words (with those it borrows, see `borrows`), the claim's or (comparing) a peer's
        (`peer_words`), or, unless not `loose`, loosely (`_loosely_labelled`; `chosen`: a writer's
        claim states the figure); kind and year only when it has no Chinese words."""
        named = ask.bigrams | ask.terms | (ask.borrowed if borrow and self.borrows(ask) else set())
        own = named | (self.peer_words(ask) if peers and ask.comparison else set())
        words = own | claim_words
        for _, e, p in support.figures:
            if not self._of_asked_sort(e, p, ask, named):
                continue
            if (not words or e.measures_term(p, ask.term_names)
                    or p.kind == "rate" and ask.measures and self._measures_asked(e, p, ask)  # 综合满意率 for 满意度
                    or loose and self._loosely_labelled(e, p, ask, chosen) or self._named_in_clause(e, p, ask)
                    or label_fit(e.label(p), words) >= LABEL_FIT and self._counts_what_is_asked(e, p, ask, named)
                    and not _one_word_apart(e, p, words, ask)
                    # a claim lends its words only to a label naming something the question asks about
                    and (not claim_words or not own or not any(e.label(p)) or _anchored(e, p, own))):
                if not self._asked_as_other_kind(e, p, ask, named) and not self._outdone(e, p, ask, named):
                    return True
        return False

    def _of_asked_sort(self, e: Evidence, p: Quantity, ask: Ask, named: set[str]) -> bool:
        """True when a figure is of the kind, year and sort (goal, change, part, rate) the question asks,
        whatever its label."""
        if ask.kinds and p.kind not in ask.kinds and p.kind != "number":
            return False
        if ask.years and not e.years_of(p) & set(ask.years):
            return False
        if ask.plan and not e.is_target(p):
            return False  # a goal is asked: what was done is not it
        if ask.change and not p.change:
            return False  # 「增长了百分之多少」: how many there were is not how much that grew
        if ask.level and p.change and p.kind == "rate":
            return False  # 「再犯罪率是多少」: 「同比下降15%」 is how much a rate fell, not the rate
        if ask.subset and not ask.subset & content_bigrams(" ".join(measured_words(e.text, e.quantities, p))):
            return False  # 「…案件中通过调解结案的有多少件」: all the cases are not those
        head = e.rate_head(p)
        if head and head not in named and "率" in fold(ask.search) + "".join(named):
            return False  # a rate the question names otherwise (审结率 for 纠错率), whatever the claim says
        if not head and ask.measures and p.kind == "rate" and not self._measures_asked(e, p, ask):
            return False  # 「满意度达到多少」: 增长21% of the people aided does not measure satisfaction
        return True

    def _outdone(self, e: Evidence, p: Quantity, ask: Ask, named: set[str]) -> bool:
        """True when another figure of its sentence, of the asked sort as well, has a label holding at
        least twice the question's words, and two more: 「675名党政领导进行述职述法，对134名…进行述职
        测评」 gives 「一共有多少人述职述法」 as 675, whichever the model picks; the question's words tell
        the figures of one sentence apart."""
        own = len(set().union(*e.label(p)) & named)
        return any(q is not p and q.kind == p.kind and q.counts == p.counts and self._of_asked_sort(e, q, ask, named)
                   and len(set().union(*e.label(q)) & named) >= max(2 * own, own + 2) for q in e.quantities)

    @staticmethod
    def _measures_asked(e: Evidence, p: Quantity, ask: Ask) -> bool:
        """True when a rate written without a 率 of its own (「满意度达95%」, 「增长21%」) measures what the
        question's rate does: its measured words hold the characters naming it, or a report term the
        question asks for in other words."""
        before, after = (_content(words) for words in measured_words(e.text, e.quantities, p))
        return any(m in before or m in after for m in ask.measures) or e.measures_term(p, ask.term_names)

    def _named_in_clause(self, e: Evidence, p: Quantity, ask: Ask) -> bool:
        """A count in the clause of a name the question quotes (「借助“周一职工夜校”开展专题学习活动26次」
        for 「借“周一职工夜校”组织干部学法…一年办了几次」): the quoted name says what the count is of,
        in whatever words the question puts the rest. It must count the sort of thing the question's
        measure word asks for (次: an event), and be the one such count in that clause."""
        if p.kind != "count" or not ask.counts or p.counts not in ask.counts or not self.ask.quoted:
            return False
        folded = fold(e.text)
        start = max((m.end() for m in _CLAUSE_END.finditer(folded, 0, p.start)), default=0)
        end = next((m.start() for m in _CLAUSE_END.finditer(folded, p.end)), len(folded))
        if not self.ask.writes_quoted(folded[start:end]):
            return False
        return not any(q is not p and q.kind == "count" and start <= q.start < end for q in e.quantities)

    @staticmethod
    def _counts_what_is_asked(e: Evidence, p: Quantity, ask: Ask, named: set[str]) -> bool:
        """For a figure whose label fits the question's or the claim's words: True unless it is a count
        of another sort of thing than the question's measure word says and counts nothing the
        question names: 「多少件来信」 is not answered by 「事项清单326项」 or 「12个部门」 (whose label the
        model copied into its claim), nor 「行政复议案件有多少件」 by 「行政复议意见书3份」."""
        return not ask.counts or p.kind != "count" or p.counts in ask.counts or bool(e.counted(p) & named)

    @staticmethod
    def _asked_as_other_kind(e: Evidence, p: Quantity, ask: Ask, named: set[str]) -> bool:
        """True when the sentence states what the question names as a figure of a kind it does
        not ask: 「区政府作为单独被告的行政诉讼案件…输了几件」 shares four words with the label of
        「败诉率5.5%」 and one with that of 「复盘案件78件次」. The report gives that subject only as
        a rate, so a count beside it is not the answer (a near miss of kind). The other label must
        hold at least twice the question's words, and two more. A question that asks no kind has no
        other, a change (「比上年增长18%」) is of the figure beside it, and a count beside a rate asked
        is what the rate is a share of ("what share of the claimed items…": 「认领…事项8931项，划转综合率
        已达75%」)."""
        if not ask.kinds or p.change:
            return False
        own = len(set().union(*e.label(p)) & named)
        for q in e.quantities:
            if q is p or q.kind in ask.kinds or q.kind == p.kind or q.kind == "date":
                continue  # a date says when, never how much of the subject
            if q.kind == "count" and "rate" in ask.kinds:
                continue
            other = len(set().union(*e.label(q)) & named)
            if other >= max(2 * own, own + 2):
                return True
        return False

    def borrows(self, ask: Ask) -> bool:
        """True when a part that refers back needs the words it borrows: no figure of the evidence
        answers it in its own (「这个联盟有多少家成员单位」 has its own; 「让这个比例保持在什么水平」 has not)."""
        if not ask.borrowed:
            return False
        if id(ask) not in self._borrowing:
            self._borrowing[id(ask)] = False
            self._borrowing[id(ask)] = not any(
                self.answers(ask, Support([e], [(p, e, p)]), peers=False, borrow=False)
                for e in self.evidence for p in e.quantities)
        return self._borrowing[id(ask)]

    def peer_words(self, ask: Ask) -> set[str]:
        """For a comparison, the labels of the figures that answer `ask` in its own words.

        Reports name one measure alike and questions name it in their own words: once one
        district's 「下沉执法人员75名」 answers 「派到镇街的执法人员各有多少」, another's 「下沉执法力量142人」
        answers as well, by the label words the two figures share."""
        if id(ask) not in self._peer_words:
            self._peer_words[id(ask)] = set()
            self._peer_words[id(ask)] = {
                b for e in self.evidence for p in e.quantities
                if self.answers(ask, Support([e], [(p, e, p)]), peers=False)
                and label_fit(e.label(p), ask.bigrams | ask.terms, e.rate_head(p)) >= LABEL_FIT
                for side in e.label(p) for b in side}
        return self._peer_words[id(ask)]

    def _loosely_labelled(self, e: Evidence, p: Quantity, ask: Ask, chosen: bool = False) -> bool:
        """A figure whose label shares only a few of the question's words (「单个案件平均办理时长缩短40%」
        for 「一个案子平均花的时间减少了多少」) answers when its sentence covers the question (SENTENCE_FIT)
        and it is the one figure of its kind there whose label shares any: the sentence says what the
        question asks in other words, and there is no other figure to choose from. A count must still
        count what the question names, never in a measure word of another sort (「培训2次」 for 「培训了
        多少名」).

        A figure a writer `chosen` to answer with needs no such sentence: the model read the question
        and picked it (「网格员去群众家里走访的比例是97.3%」 for 「入户走访覆盖率达97.3%」), which is the
        other signal; its label must still share a word with the question, be the only one of its
        kind there that does, the sentence must write a word of the question beyond those (「接收行政
        复议申请337件」 shares only 申请 with 「多少件政府信息公开申请」: another thing's), and a count
        must count what the question names (a measure word alone does not say it: 「法制审查1件」 is no
        answer to 「多少件行政复议案件」)."""
        def anchored(q: Quantity) -> bool:
            return _anchored(e, q, ask.bigrams | ask.terms)

        if not anchored(p) or not chosen and self.fits(e, ask) < SENTENCE_FIT:
            return False
        if chosen and not _says_more(e, p, ask):
            return False  # the label's shared word is all the sentence has of the question
        if ask.counts and p.counts and p.counts not in ask.counts:
            return False  # 「培训2次」 for 「培训了多少名」
        counted = e.counted(p)
        if counted and not counted & (ask.bigrams | ask.terms):
            return False  # a count of something else the sentence mentions (法制审查1件 for 复议案件多少件)
        return not any(q is not p and q.kind == p.kind and anchored(q) for q in e.quantities)

    def fits(self, e: Evidence, ask: Ask | None = None) -> float:
        """How well a sentence (with its section heading) covers the words of the question, or
        of one of its parts (0..1)."""
        ask = ask or self.ask
        if not ask.bigrams:
            return 0.0
        document = self._documents.get(id(e)) or content_bigrams(e.text + (e.meta.get(schema.SECTION) or ""))
        # Its own words cover a sentence, or they do with the reports' terms for them and, for a part
        # that refers back, with the words it borrows: words added to a question never count against.
        fit = weighted_share(ask.bigrams, document, self.weights)
        words = ask.bigrams
        for extra in (ask.terms, ask.borrowed if self.borrows(ask) else set()):
            if extra - words:  # most questions add nothing: no share to compute again
                words = words | extra
                fit = max(fit, weighted_share(words, document, self.weights))
        return fit

    def items(self, ask: Ask | None = None) -> list[Evidence]:
        """For a 「有哪些不足/打算…」 question, every list item of the part of the report it asks for.

        The part is the one whose heading, or the lead-in of whose paragraph (「…存在不足和问题。
        一是…；二是…」), names the kind of part asked for and best covers the question's words,
        in the report that best answers the question. Its items are its list leads at the
        highest level with two or more (（一）…, else 一是…, else 1．…); for a question naming one of
        them (「目标举措有哪些」), that item's own. [] unless the question wants a list and such a
        part exists.
        """
        ask = ask or self.ask
        wanted = [w for group in _SECTION_KINDS for w in group if any(x in fold(ask.question) for x in group)]
        if not ask.wants_list or not wanted or not self._report_items:
            return []
        ranked = sorted(self.evidence + self.outline, key=lambda e: -self.fits(e, ask))
        for file in dict.fromkeys(e.meta[schema.FILE] for e in ranked):
            pool = self._report_items(file)
            parts: dict[str, list[Evidence]] = {}  # what names the part → its items
            for e in pool:
                # the outermost heading or lead-in naming the part: one under it that names it again
                # (「三、下一步工作打算 > （一）锚定…目标。一是…」) is one of its items, reached by _descend
                levels = (e.meta.get(schema.SECTION) or "").split(schema.SECTION_SEPARATOR)
                n = next((n for n, heading in enumerate(levels) if any(w in fold(heading) for w in wanted)), None)
                if n is not None:
                    scope = schema.SECTION_SEPARATOR.join(levels[: n + 1])
                    parts.setdefault(scope, [x for x in pool if _within(x.meta.get(schema.SECTION) or "", scope)])
                elif e.lead_in and any(w in fold(e.lead_in) for w in wanted):
                    parts.setdefault(e.lead_in, []).append(e)
            named = {name: _top_level(items) for name, items in parts.items()}
            named = {name: leads for name, leads in named.items() if leads}
            if named:
                best = max(named, key=lambda name: (weighted_share(ask.bigrams, content_bigrams(name), self.weights),
                                                    -name.count(schema.SECTION_SEPARATOR)))
                leads = _unfold(pool, self._descend(ask, pool, named[best]))
                if self._quoted_elsewhere(ask, leads, file):
                    return []
                return self._remember(leads)
        return []

    def _quoted_elsewhere(self, ask: Ask, leads: list[Evidence], file: str) -> bool:
        """True when the question quotes a name (「对“法律明白人”工作有什么安排」) that no item or its
        heading writes and another sentence of the report does: that sentence says what is asked,
        the part's whole list does not."""
        if not ask.quoted or any(ask.writes_quoted(e.text + (e.meta.get(schema.SECTION) or "")) for e in leads):
            return False
        return any(ask.writes_quoted(e.text) for e in self.evidence if e.meta[schema.FILE] == file)

    def _descend(self, ask: Ask, pool: list[Evidence], leads: list[Evidence]) -> list[Evidence]:
        """The items under the one item a question names, when it heads a part of its own (「目标举措有哪些」
        → those of 「（二）目标举措」, 「涉外法治实践探索方面有哪些打算」 → those of 「（四）全力推进涉外法治
        实践探索」), else `leads`."""
        scored = sorted(((weighted_share(ask.bigrams, content_bigrams(e.text), self.weights), n)
                         for n, e in enumerate(leads)), reverse=True)
        if not scored or scored[0][0] < 0.2 or len(scored) > 1 and scored[0][0] < 2 * scored[1][0]:
            return leads
        named = leads[scored[0][1]]
        if not named.is_heading:  # an item that heads no part of its own: the items after it are its siblings
            return leads
        path = named.meta.get(schema.SECTION) or ""
        inner = _top_level([e for e in pool if e is not named and e.meta[schema.FILE] == named.meta[schema.FILE]
                            and _within(e.meta.get(schema.SECTION) or "", path) and e.start > named.start])
        return inner or leads

    def _remember(self, leads: list[Evidence]) -> list[Evidence]:
        """The items, kept among the sentences claims may cite."""
        known = {(e.meta[schema.FILE], e.start) for e in self.outline}
        self.outline += [e for e in leads if (e.meta[schema.FILE], e.start) not in known]
        return leads

    def qualifies(self, e: Evidence, ask: Ask, min_fit: float) -> float | None:
        """The fit of a sentence that answers `ask` (covers enough of its words and, for a figure
        question, states a figure that answers it), or None."""
        fit = self.fits(e, ask)
        if ask.wants_figure:  # the figure's own label speaks for the sentence: half the words will do,
            # and none when it writes the report term the question asks for in its own words, or the
            # name the question quotes in the figure's clause
            answering = [p for p in e.quantities if self.answers(ask, Support([e], [(p, e, p)]))]
            named = any(e.measures_term(p, ask.term_names) or self._named_in_clause(e, p, ask) for p in answering)
            return fit if answering and (not ask.bigrams or fit >= min_fit / 2 or named) else None
        return fit if not ask.bigrams or fit >= min_fit else None
