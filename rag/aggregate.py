"""Questions over every report, answered from the indicator table (指标库).

「哪个区县的行政机关负责人出庭应诉率最高？」 needs one figure from each report; six retrieved
passages cannot hold them all. `parse_aggregate` tells such a question (superlative, ranking,
threshold, list across districts, trend of one district) from a plain fact question,
`match_metric` finds the metric it asks for among the table's rows, and `answer_aggregate`
writes the answer: a sentence and a table, every value cited to the sentence that states it,
the reports that do not give the figure named, and a note whenever the figures compared are
not alike. Nothing matching well enough means nothing is compared: the caller retrieves instead.
A plain fact question (「荣昌区2024年行政复议直接纠错率是多少？」) is answered from the table only
when exactly one row matches its place, year and metric strictly (`parse_fact`, `fact_answer`).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from rag import schema
from rag.answering import NOT_FOUND, report_name
from rag.claims import QUESTION_WORDS, Ask, content_bigrams, share
from rag.districts import Mention, district_mentions, names_label, place_label
from rag.glossary import chinese_terms
from rag.grounding import UNITS, quantities
from rag.indicator_table import citation_of
from rag.indicators import Indicator
from rag.retrieval import OVER_YEARS, PREVIOUS_YEAR, RECENT_YEARS
from rag.schema import Answer, Citation
from rag.text import fold

PROVIDER = "indicators"   # the provider of an answer from the table, whichever writer was asked
PROVIDER_LABEL = "指标库"
# Kinds of figure a question may compare (rag.grounding kinds).
COMPARABLE_KINDS = ("rate", "count", "amount", "area", "duration")
MIN_FIT = 0.5      # share of the question's metric bigrams a metric must cover
MIN_OVERLAP = 0.3  # for a comparison: share of a metric phrase's bigrams, or the question's, the other holds
CONTEXT_WEIGHT = 0.5  # a question word found only in the figure's sentence or section counts this much

_SUPERLATIVE = re.compile(
    r"(?:最|更|较)(?:(?P<count>多)|(?P<count_low>少)|高|大|长|快|(?P<low>低|小|短|慢))"
    r"|\b(?:(?P<count_en>most)|(?P<count_low_en>fewest)|highest|largest|biggest|greatest|top"
    r"|(?P<low_en>lowest|least|smallest))\b"
)
_RANKING = re.compile(
    r"(?P<low>(?:从|由)(?:低到高|少到多|小到大)|\bascending\b)|(?:从|由)(?:高到低|多到少|大到小)"
    r"|排名|排序|排行|名次|\brank(?:ed|ing|s)?\b|\bsort(?:ed)?\b|\border(?:ed)? by\b"
)
# A comparison word before a figure (超过10%), or after it (10%以上).
_COMPARE_BEFORE = re.compile(
    r"(?P<ge>不低于|不少于|至少|达到|\bat least\b|\bno less than\b)"
    r"|(?P<le>不超过|不高于|不多于|至多|\bat most\b|\bno more than\b)"
    r"|(?P<gt>超过|高于|大于|多于|超出|\babove\b|\bover\b|\bmore than\b|\bgreater than\b|\bhigher than\b"
    r"|\bexceed(?:s|ing)?\b)"
    r"|(?P<lt>低于|少于|小于|不足|不到|不满|\bbelow\b|\bunder\b|\bless than\b|\bfewer than\b"
    r"|\blower than\b)"
)
_COMPARE_AFTER = re.compile(r"(?P<ge>及以上|以上|\bor (?:more|above)\b)|(?P<le>及以下|以下|\bor (?:less|below)\b)")
_OPERATORS = {"gt": (operator.gt, "超过"), "ge": (operator.ge, "达到"), "lt": (operator.lt, "低于"),
              "le": (operator.le, "不超过")}
_ACROSS = re.compile(
    r"各(?:个)?(?:区县|县区|区|县|地区|地方|地|镇街|单位|报告)"
    r"|(?:所有|全部|每个|每一个)(?:的)?(?:区县|区|县|地区|地方|报告)|哪些(?:区县|区|县|地区|地方)|列出|列举"
    r"|\b(?:every|each|all)(?: the)? (?:districts?|reports?|places?)\b"
    r"|\bwhich districts\b|\blist\b"
)
_TREND = re.compile(r"怎么变|怎样变|如何变|走势|(?:近|这|最近)几年|近年来|历年来")
# Words that ask for figures without naming their kind.
_ASKS_FIGURES = re.compile(r"数|量|率|多少|几|金额|\bfigures?\b|\bnumbers?\b|\bhow (?:many|much)\b|\brates?\b")
# 「案件数排名」「办理量」 ask a count; 「数字」「指数」「力量」「质量」 do not.
_COUNT = r"(?:数量|数目|总数|(?<![指系分倍])数|(?<![力质能容重])量)"
_COUNT_WORDS = re.compile(
    _COUNT + r"(?=$|[的排最是有多超高低达不从由各，,？?\s])|\b(?:cases|people|persons|times)\b")
_COUNT_SUFFIX = re.compile(r"(?:办理|受理|处理|开展)?(?:[人次]数|" + _COUNT + "|"
                           + "|".join(u for u in UNITS["count"] if len(u) > 1) + ")$")  # 普法活动场次 → 普法活动
_AMOUNT_WORDS = re.compile(r"金额|资金|经费|万元|\bamount\b|\byuan\b")
# Words around the metric that name neither it nor a place: 「哪个区县的…」「…的数字」.
_FILLER = ("区县", "县区", "地方", "地区", "哪里", "哪儿", "依次", "数字", "数据", "指标", "给出", "一下", "对比",
           "比较", "相比", "排在", "前列", "分别", "请", "谁")
_FILLER_EDGE = "的之是有在各为了和与及按其区县这那中"
_REPORTS_COUNTED = re.compile(r"[一二两三四五六七八九十几\d]+份")  # 「三份报告中」
_CHANGE_ASKED = re.compile(
    r"增长|增加|增幅|增速|降幅|下降|减少|\bgrowth\b|\bgr[eo]w\b|\bincrease[sd]?\b|\bdecrease[sd]?\b")
_RISE = re.compile(r"增长|增加|上升|提高|提升|增幅")
_FALL = re.compile(r"下降|减少|降低|缩短|下滑|降幅|减量")
_PERSONS = {"名": "人", "位": "人", "余人": "人"}  # units that count the same thing: people
_YEAR = re.compile(r"(?<!\d)20\d{2}\s*年?(?:度)?")
_CJK_RUN = re.compile(r"[\u4e00-\u9fff]+")


@dataclass(frozen=True)
class Threshold:
    """「超过10%」: the comparison and the figure, with its grounding kind."""

    op: str        # gt | ge | lt | le
    value: float
    written: str   # as the question writes it: 10%
    kind: str

    def holds(self, value: float) -> bool:
        return _OPERATORS[self.op][0](value, self.value)

    @property
    def word(self) -> str:
        return _OPERATORS[self.op][1]


@dataclass
class AggregateQuery:
    """A question the table may answer (over every report, or one fact): its shape, what it measures, where and when."""

    question: str
    shape: str                    # threshold | ranking | superlative | trend | list | fact
    metric_words: str             # what is measured, in the reports' words (Chinese terms of an English question)
    kind: str = ""                # the grounding kind asked for: rate | count | amount | …; "" any
    descending: bool = True       # highest first (superlative, ranking)
    threshold: Threshold | None = None
    change: bool = False          # asks how much a figure grew or fell (增长最快), not the figure
    plan: bool = False            # asks for a target (计划, 目标): a fact question only
    districts: list[str] = field(default_factory=list)
    years: list[int] = field(default_factory=list)
    english: bool = False

    @property
    def bigrams(self) -> set[str]:
        return content_bigrams(self.metric_words)

    @property
    def head(self) -> str:
        """The bigram every matching metric's key or phrase holds: a prefilter for a large table,
        `table.rows(metric_words=[query.head])`."""
        return next(iter(_head(self.metric_words)), "")


def parse_aggregate(question: str) -> AggregateQuery | None:
    """The aggregate reading of a question, or None for a question retrieval answers (a plain fact,
    a text question, a superlative within one district)."""
    folded = fold(question).lower()
    ask = Ask.read(question)
    districts = ask.districts
    drop: list[tuple[int, int]] = []

    threshold = _threshold(folded, drop)
    ranking = _RANKING.search(folded)
    superlative = _SUPERLATIVE.search(folded)
    trend = RECENT_YEARS.search(folded) or OVER_YEARS.search(folded) or _TREND.search(folded)
    across = _ACROSS.search(folded)
    descending = True
    if threshold:
        shape = "threshold"
    elif ranking and len(districts) != 1:
        shape, descending = "ranking", not ranking.group("low")
    elif superlative and len(districts) != 1:
        shape = "superlative"
        descending = not any(superlative.group(g) for g in ("low", "low_en", "count_low", "count_low_en"))
    elif trend and len(districts) == 1:
        shape = "trend"
    elif across and not districts and any(p.search(folded) for p in (_ASKS_FIGURES, _COUNT_WORDS)):
        shape = "list"
    else:
        return None
    for pattern in (_RANKING, _SUPERLATIVE, RECENT_YEARS, OVER_YEARS, _TREND, _ACROSS, _CHANGE_ASKED):
        drop += [m.span() for m in pattern.finditer(folded)]
    words = (" ".join(chinese_terms(question)) if ask.english
             else _metric_words(folded, drop, districts))
    kind = threshold.kind if threshold and threshold.kind in COMPARABLE_KINDS else _kind_asked(folded, words, ask)
    if not kind and shape == "superlative" and any(superlative.group(g) for g in (
            "count", "count_low", "count_en", "count_low_en")):  # 最多, most: a count
        kind = "count"
    return AggregateQuery(question=question, shape=shape, metric_words=words, kind=kind, descending=descending,
                          threshold=threshold, change=bool(_CHANGE_ASKED.search(folded)), districts=districts,
                          years=ask.years, english=ask.english)


def _threshold(folded: str, drop: list) -> Threshold | None:
    """The figure a question compares with (超过10%, 10%以上, above 10%), if any."""
    for q in quantities(folded):
        if q.kind == "date":
            continue
        op = None
        for m in _COMPARE_BEFORE.finditer(folded, 0, q.start):
            if not folded[m.end():q.start].strip(" 了"):
                op = m.lastgroup
                drop.append(m.span())
        after = _COMPARE_AFTER.match(folded, q.end)
        if after:
            op = after.lastgroup
            drop.append(after.span())
        if op:
            drop.append((q.start, q.end))
            value = float(re.match(r"[\d.]+", q.value).group())
            return Threshold(op, value, folded[q.start:q.end], q.kind)
    return None


def _metric_words(folded: str, drop: list[tuple[int, int]], districts: list[str]) -> str:
    """The question without its aggregate words, places, years and asking words: what is measured."""
    chars = list(folded)
    for start, end in drop:
        chars[start:end] = " " * (end - start)
    text = "".join(chars)
    names = {part for d in districts for part in (d, *re.split(r"(?<=[省市区县镇])", d)) if part}
    names |= {re.sub(r"[区县镇]$", "", n) for n in names}
    for word in sorted(names | set(QUESTION_WORDS) | set(_FILLER), key=len, reverse=True):
        text = text.replace(word, " " * len(word))
    text = _REPORTS_COUNTED.sub(lambda m: " " * len(m.group()), _YEAR.sub(" ", text))
    runs = []
    for run in _CJK_RUN.findall(text):
        run = run.strip(_FILLER_EDGE)
        run = _COUNT_SUFFIX.sub("", run)  # 案件数 → 案件, 公证办理量 → 公证
        if len(run) >= 2:
            runs.append(run)
    return " ".join(runs)


def _kind_asked(folded: str, words: str, ask: Ask) -> str:
    """rate, count or amount, from the question's words (率, 数/量/件数, 金额…); "" when it does not say."""
    kinds = ask.kinds & set(COMPARABLE_KINDS)
    if "率" in words or kinds == {"rate"}:
        return "rate"
    if _AMOUNT_WORDS.search(folded):
        return "amount"
    if "count" in kinds or _COUNT_WORDS.search(folded):
        return "count"
    return next(iter(kinds)) if len(kinds) == 1 else ""


# ---- metrics ------------------------------------------------------------------------------


def _groups(rows: Iterable[Indicator]) -> dict[str, list[Indicator]]:
    groups: dict[str, list[Indicator]] = {}
    for row in rows:
        groups.setdefault(row.metric_key, []).append(row)
    return groups


def metric_fit(words: str, rows: Sequence[Indicator], kind: str = "", compared: bool = False) -> float:
    """How well a metric's rows name what the question measures (`words`): the share of the words'
    bigrams its key or phrases hold, those found only in a row's sentence or section counting
    CONTEXT_WEIGHT. 0 unless a phrase holds the words' last bigram, the thing a Chinese noun phrase
    names (「援助对象」 is not 「法律援助案件」, whatever its sentence says besides); unless, for words
    that say what they measure (a kind of figure, or more than one bigram), the words hold a phrase's
    own last bigram (「法律援助案件」 asks no 「质量优良率」); and, for figures to be `compared`,
    unless a phrase as written and the words share MIN_OVERLAP of either's bigrams (「新收行政复议案件」
    is not 「受理案件数」, whatever its key)."""
    wanted = content_bigrams(words)
    phrases = [rows[0].metric_key, *dict.fromkeys(r.metric for r in rows)]
    named = set().union(*(content_bigrams(p) for p in phrases))
    if not wanted or not _head(words) <= named:
        return 0.0
    if (kind or len(wanted) > 1) and not any(_head(p) <= wanted for p in phrases):
        return 0.0
    if compared and not any(max(share(b, wanted), share(wanted, b)) >= MIN_OVERLAP
                            for b in (content_bigrams(r.metric) for r in rows)):
        return 0.0
    around = max(len(wanted & content_bigrams(r.sentence + r.section) - named) for r in rows)
    return (len(wanted & named) + CONTEXT_WEIGHT * around) / len(wanted)


def _head(words: str) -> set[str]:
    """The last content bigram of a phrase: what a Chinese noun phrase names (法律援助案件 → 案件); for a
    rate the bigram before it too, as 率 alone says only that it is a rate (出庭应诉率 → 应诉, 诉率: not
    败诉率's 败诉, 诉率)."""
    folded = fold(words)
    for end in range(len(folded), 1, -1):
        found = content_bigrams(folded[end - 2:end])
        if found:
            return found | (content_bigrams(folded[end - 3:end - 1]) if folded[end - 1] == "率" else set())
    return set()


def match_metric(query: AggregateQuery, rows: Iterable[Indicator]) -> list[str]:
    """The metric keys the question asks for, best first; [] when none fits well enough.

    A key qualifies with a fit of MIN_FIT over its rows that can answer (`answers`): of the kind
    asked (a 10% threshold compares rates only), and for a comparison levels, or changes when the
    question asks how much something grew. A comparison also needs the question and a metric phrase to
    overlap (MIN_OVERLAP): only what is asked is compared, while a trend or a list of 「调解数字」 takes
    every figure of 调解.
    """
    groups = _groups(r for r in rows if answers(query, r))
    compared = query.shape not in ("trend", "list")
    scored = sorted(((metric_fit(query.metric_words, group, query.kind, compared), key)
                     for key, group in groups.items()), reverse=True)
    return [key for fit, key in scored if fit >= MIN_FIT]


# 被 before a verb turns a metric around (被纠错率, 被撤销); 被告 (the defendant) is a noun.
_PASSIVE = re.compile(r"被(?!告)")


def answers(query: AggregateQuery, row: Indicator) -> bool:
    """Whether a row is the kind of figure the question asks: a target (力争…) only for a plan asked and
    then only a target; a rate for a rate; in a comparison or a fact a level (or a from_to's end), or a
    change for 「增长最快」「增长了多少」 and only then."""
    if (row.kind == "target") != query.plan or (query.kind and row.quantity != query.kind):
        return False
    if bool(_PASSIVE.search(fold(row.metric))) != bool(_PASSIVE.search(fold(query.metric_words))):
        return False  # 被纠错率 measures the other side of 纠错率: corrected, not correcting
    return query.shape in ("trend", "list") or query.plan or (row.kind == "change") == query.change


def nearby_metrics(query: AggregateQuery, rows: Iterable[Indicator], limit: int = 3) -> list[str]:
    """The metric phrases that share most words with the question's, whatever their kind: for a refusal."""
    wanted = query.bigrams
    scored = sorted(((len(wanted & content_bigrams(r.metric)), fold(r.metric)) for r in rows), reverse=True)
    return list(dict.fromkeys(metric for shared, metric in scored if shared))[:limit]


# ---- answers ------------------------------------------------------------------------------


def table_answer(question: str, rows: Sequence[Indicator], reports: Iterable[tuple[str, int]]) -> Answer | None:
    """The answer from the table, or None when retrieval should answer instead: neither an aggregate
    question nor a fact one row answers exactly (`fact_answer`), no metric fits, no row answers, or a
    place the question names has no figure of the metric (retrieval searches each named place apart
    and may find it in other words)."""
    query = parse_aggregate(question)
    if query is None:
        return fact_answer(question, rows, reports)
    keys = match_metric(query, rows)
    chosen = _chosen_rows(query, rows, keys)
    if not chosen or any(not any(names_label(d, _place(r)) for r in chosen) for d in query.districts):
        return None
    return answer_aggregate(query, rows, reports, keys)


# ---- one figure -----------------------------------------------------------------------------

_PLAN_ASKED = re.compile(r"计划|目标|力争|打算|预计|下一步")
# Words that ask to choose, compare or list, which one figure does not answer.
_CHOOSING = re.compile(r"哪|谁|还是|分别|差距|排名|以及")
_QUALIFIER = re.compile(r"以上|以下|左右|以内")  # 「95%以上」: part of what the figure says
_THAN_BEFORE = re.compile(r"(?:比|较)?(?:" + PREVIOUS_YEAR.pattern + ")")  # 比上年, 同比: what a change is against


def parse_fact(question: str) -> AggregateQuery | None:
    """The one-figure reading of a question (shape "fact"): one place named, at most one year, one
    part, and the kind of figure asked (率, 多少件, 金额…); None otherwise, so retrieval answers it.
    English is left to retrieval: its glossary terms do not name a metric strictly enough."""
    ask = Ask.read(question)
    folded = fold(question).lower()
    if (ask.english or ask.parts or ask.wants_list or not ask.wants_figure or len(ask.districts) != 1
            or len(ask.years) > 1 or _CHOOSING.search(folded)):
        return None
    drop = [m.span() for pattern in (_CHANGE_ASKED, _PLAN_ASKED, _THAN_BEFORE) for m in pattern.finditer(folded)]
    regions = [region for m in district_mentions(question) for p in m.places for region in (p.city, p.province)]
    words = _metric_words(folded, drop, [*ask.districts, *regions])  # 北京市朝阳区: no metric words in 北京市
    kind = _kind_asked(folded, words, ask)
    if not words or kind not in COMPARABLE_KINDS:
        return None
    return AggregateQuery(question=question, shape="fact", metric_words=words, kind=kind,
                          change=bool(_CHANGE_ASKED.search(folded)), plan=bool(_PLAN_ASKED.search(folded)),
                          districts=ask.districts, years=ask.years)


def fact_answer(question: str, rows: Sequence[Indicator], reports: Iterable[tuple[str, int]]) -> Answer | None:
    """The figure a fact question asks, as one sentence naming whose figure it is, cited to its row's
    sentence; None unless exactly one row answers it exactly (`fact_row`)."""
    query = parse_fact(question)
    found = fact_row(query, rows, reports) if query else None
    if found is None:
        return None
    row, name = found
    text = _fact_sentence(row, name)
    if text is None:
        return None
    return Answer(answer=text, citations=[citation_of(row, 1)], provider=PROVIDER, model=PROVIDER)


def fact_row(query: AggregateQuery, rows: Sequence[Indicator],
             reports: Iterable[tuple[str, int]]) -> tuple[Indicator, str] | None:
    """The one row that answers a fact question, with the metric name the question gives it in full;
    None unless every test holds:

    - the place: the report's district is the one named (a code, when the question tells which unit
      of a shared name), not a town within it;
    - the year: the year asked is the row's about_year; none asked, the place must have one report
      only (of several, which is meant is a guess) and the figure be about that report's year;
    - the kind: the unit kind asked; a change only for a change asked; a target only for a plan;
    - the metric: one key only, whose key or a phrase has every bigram in the question's metric
      words and the same head (`metric_fit` as well);
    - one row of that key (two phrases or two sentences: which one is meant is a guess), and the
      question saying no more than it (`_says_more`).
    """
    mentions = district_mentions(query.question)
    if len({m.name for m in mentions}) != 1:
        return None
    place = mentions[0]
    own = [r for r in rows if _same_place(place, r.district, r.district_code)]
    if query.years:
        dated = [r for r in own if r.about_year == query.years[0]]
    else:
        years = {y for d, y in reports if _same_place(place, d)}
        if len(years) != 1:
            return None
        year = years.pop()
        dated = [r for r in own if r.report_year == year and (r.about_year == year or r.kind == "target")]
    named = {}
    for key, group in _groups(r for r in dated if answers(query, r)).items():
        name = _named_in_full(query.metric_words, group)
        if name and metric_fit(query.metric_words, group, query.kind, compared=True) >= MIN_FIT:
            named[key] = (group, name)
    if len(named) != 1:
        return None
    group, name = next(iter(named.values()))
    picked = list({(r.file, r.start, r.end, r.value): r for r in group}.values())
    if len(picked) != 1 or _says_more(query, group, picked[0], own):
        return None
    return picked[0], name


def _same_place(mention: Mention, district: str, code: str = "") -> bool:
    """True when a report's district is the place named: 荣昌区 is 荣昌区, 大进镇 named alone is
    开州区大进镇; 开州区 is not its town 开州区大进镇, nor 北京市朝阳区 the 朝阳区 of another code."""
    name, district = fold(mention.name).strip(), fold(district).strip()
    town = name.endswith(("镇", "乡", "街道"))
    if not name or not (district == name or (town and district.endswith(name))):
        return False
    return not (code and mention.codes) or code in mention.codes


def _named_in_full(words: str, group: list[Indicator]) -> str:
    """The longest of a metric's key and phrases whose every bigram the words hold, with the words'
    head as its own (「行政复议直接纠错率」 in 「荣昌区2024年行政复议直接纠错率」), or ""."""
    wanted, head = content_bigrams(words), _head(words)
    phrases = [p for p in (group[0].metric_key, *dict.fromkeys(r.metric for r in group))
               if content_bigrams(p) and content_bigrams(p) <= wanted and _head(p) == head]
    return max(phrases, key=len, default="")


def _says_more(query: AggregateQuery, group: list[Indicator], row: Indicator, rows: Sequence[Indicator]) -> bool:
    """True when the question's metric words beyond the metric found are not all in the row's sentence
    or section (「涉企行政复议直接纠错率」 asks a narrower figure), or two of them are in another metric
    of the place: it asks two figures (「审结率和直接纠错率」, 「聘请了多少名社会监督员和村（社区）监督员」)."""
    phrases = (group[0].metric_key, *dict.fromkeys(r.metric for r in group))
    beyond = content_bigrams(query.metric_words, phrases) - set().union(*map(content_bigrams, phrases))
    if not beyond <= content_bigrams(row.sentence + row.section):
        return True
    return any(len(content_bigrams(phrase) & beyond) >= 2
               for other in rows if other.metric_key != row.metric_key for phrase in (other.metric_key, other.metric))


def _fact_sentence(row: Indicator, name: str) -> str | None:
    """「荣昌区2024年行政复议直接纠错率为22.22%[1]。」; None for a change whose direction its sentence
    does not say."""
    who = f"{_place(row)}{row.about_year}年"
    value = _written(row, row.value) + _qualifier(row)
    direction = _direction([row])
    if row.kind == "target":
        text = f"{_place(row)}计划{row.about_year}年{name}达到{value}[1]"
    elif row.kind == "change":
        if direction not in ("上升", "下降"):
            return None
        text = f"{who}{name}{direction}{value}[1]"
    elif row.kind == "from_to" and direction in ("上升", "下降"):
        text = f"{who}{name}由{_written(row, row.from_value)}{direction}至{value}[1]"
    else:
        text = f"{who}{name}为{value}[1]"
    if row.about_year != row.report_year:
        text += f"（{row.report_year}年报告）"
    return text + "。"


def _qualifier(row: Indicator) -> str:
    """以上, 以下, 左右 or 以内 written right after the row's figure, or ""."""
    q = _quantity(row, row.value)
    found = _QUALIFIER.match(row.sentence, q.end) if q else None
    return found.group() if found else ""


def answer_aggregate(query: AggregateQuery, rows: Sequence[Indicator],
                     reports: Iterable[tuple[str, int]] = (), keys: list[str] | None = None) -> Answer:
    """The answer from the table: a sentence, a table of every value (each cited to its sentence),
    the reports of `reports` (district, year) that do not state the figure, and notes on figures
    that are not alike; an honest refusal naming nearby metrics when no row answers."""
    keys = match_metric(query, rows) if keys is None else keys
    chosen = _chosen_rows(query, rows, keys)
    if not chosen:
        return _refusal(query, rows)
    if query.shape == "trend":
        body = _Table(chosen, query, with_place=False).trend()
    else:
        body = _Table(chosen, query, with_place=True).compare()
    lines = [body.text]
    scope = [(d, y) for d, y in dict.fromkeys(reports)
             if (not query.districts or any(names_label(n, d) for n in query.districts))
             and (not query.years or y in query.years)]
    stated = {(_place(r), r.report_year) for r in chosen}  # places as written: two 鼓楼区 apart
    missing = [report_name(d, y) for d, y in scope if (d, y) not in stated]
    if missing:
        lines.append(f"未报告该指标：{'、'.join(missing)}。")
    lines += _notes(query, chosen)
    return Answer(answer="\n\n".join(lines), citations=body.citations, provider=PROVIDER, model=PROVIDER)


def _chosen_rows(query: AggregateQuery, rows: Sequence[Indicator], keys: list[str]) -> list[Indicator]:
    """The rows that answer: of the keys, the places and years asked, each sentence figure once."""
    picked = [r for r in rows if r.metric_key in keys and answers(query, r)
              and (not query.districts or any(names_label(d, _place(r)) for d in query.districts))
              and (not query.years or r.about_year in query.years)]
    return list({(r.file, r.start, r.end, r.value): r for r in picked}.values())


class _Table:
    """The cited rows of an answer, numbered in the order shown."""

    def __init__(self, rows: list[Indicator], query: AggregateQuery, with_place: bool):
        self.query = query
        self.with_place = with_place
        self.rows = rows
        self.citations: list[Citation] = []
        self.text = ""

    def _n(self, row: Indicator) -> int:
        self.citations.append(citation_of(row, len(self.citations) + 1))
        return len(self.citations)

    def _markdown(self, ordered: list[Indicator]) -> tuple[str, dict[int, int]]:
        """The table of ordered rows and the citation number of each row (by id)."""
        numbers = {id(r): self._n(r) for r in ordered}
        head = (["地区"] if self.with_place else []) + ["年份", "指标", "数值", "出处"]
        lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        for r in ordered:
            cells = ([_place(r)] if self.with_place else []) + [
                _year(r), r.metric, _shown(r), f"[{numbers[id(r)]}]"]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines), numbers

    def compare(self) -> "_Table":
        q = self.query
        descending = q.descending if q.shape in ("superlative", "ranking") else (
            q.threshold is None or q.threshold.op in ("gt", "ge"))
        if q.shape == "list":
            ordered = sorted(self.rows, key=lambda r: (r.file, r.about_year, r.start))
        else:
            ordered = sorted(self.rows, key=lambda r: (-r.value if descending else r.value, r.file, r.start))
        table, numbers = self._markdown(ordered)
        name = (q.metric_words.replace(" ", "") or ordered[0].metric) + ("增幅" if q.change else "")

        def items(rs: list[Indicator]) -> str:
            return "、".join(f"{_place(r)}（{_shown(r)}[{numbers[id(r)]}]）" for r in rs)

        if q.shape == "superlative":
            top = [r for r in ordered if r.value == ordered[0].value]
            word = "最高" if descending else "最低"
            if q.kind == "count":
                word = "最多" if descending else "最少"
            lead = (f"{name}{word}的是{items(top)}。" if len(top) == 1 or len({_place(r) for r in top}) == 1
                    else f"{name}{word}的是{items(top)}，并列第一。")
        elif q.shape == "ranking":
            lead = f"{name}{'从高到低' if descending else '从低到高'}依次为：{items(ordered)}。"
        elif q.shape == "threshold":
            t = q.threshold
            meeting = [r for r in ordered if t.holds(r.value)]
            lead = (f"{name}{t.word}{t.written}的有：{items(meeting)}。" if meeting
                    else f"报告中没有{name}{t.word}{t.written}的地区；各地的数字如下。")
        else:
            lead = f"各地报告的{name}如下。"
        self.text = f"{lead}\n\n{table}"
        return self

    def trend(self) -> "_Table":
        place = _place(self.rows[0])
        ordered = sorted(self.rows, key=lambda r: (r.metric_key, r.about_year, r.start))
        table, numbers = self._markdown(ordered)
        by_metric: dict[str, list[Indicator]] = {}
        for r in ordered:
            by_metric.setdefault(r.metric_key, []).append(r)
        sentences = []
        for rows in by_metric.values():
            steps = "，".join(f"{r.about_year}年{_shown(r)}[{numbers[id(r)]}]" for r in rows)
            sentences.append(f"{rows[0].metric}：{steps}（{_direction(rows)}）")
        years = sorted({r.about_year for r in self.rows})
        span = (f"{place}只有{years[0]}年的数字，看不出逐年变化；报告中的变化如下。" if len(years) == 1
                else f"{place}{years[0]}—{years[-1]}年的数字如下。")
        self.text = span + "\n" + "\n".join(f"- {s}" for s in sentences) + f"\n\n{table}"
        return self


def _direction(rows: list[Indicator]) -> str:
    """上升, 下降 or 持平 over the rows of one metric: first year to last, a from_to's from and to,
    or a change as its sentence words it."""
    first, last = rows[0], rows[-1]
    if len(rows) == 1 and first.kind == "change":
        before = first.sentence[: _figure_at(first)][-6:]
        return "下降" if _FALL.search(before) else "上升" if _RISE.search(before) else "增减见原文"
    start = first.from_value if len(rows) == 1 else first.value
    if start is None:
        return "仅一个年份"
    return "上升" if last.value > start else "下降" if last.value < start else "持平"


def _notes(query: AggregateQuery, rows: list[Indicator]) -> list[str]:
    """What makes the figures not alike, said outright."""
    notes = []
    if query.shape != "trend" and len({r.about_year for r in rows}) > 1:
        notes.append("注：各区数据年份不同，比较仅供参考。")
    if query.shape != "trend" and len({fold(r.metric) for r in rows}) > 1:
        notes.append("注：各行指标的表述（统计口径）不完全相同，见「指标」一栏。")
    if any(r.kind == "change" for r in rows) and any(r.kind != "change" for r in rows):
        notes.append("注：其中有的数字是增减幅度，不是数值本身，不能直接比较。")
    if query.shape != "trend" and len({_PERSONS.get(r.unit, r.unit) for r in rows}) > 1:
        notes.append("注：各行数字的单位不同，比较仅供参考。")
    if any(r.about_year != r.report_year for r in rows):
        notes.append("注：有的数字所属年份与报告年份不同，见「年份」一栏。")
    return notes


def _refusal(query: AggregateQuery, rows: Sequence[Indicator]) -> Answer:
    what = query.metric_words.replace(" ", "") or "所问的指标"
    where = "、".join(query.districts) + "、".join(f"{y}年" for y in query.years) or "已收录"
    text = f"{NOT_FOUND}：{where}的报告中没有「{what}」这一指标的数字。"
    nearby = nearby_metrics(query, rows)
    if nearby:
        text += f"相近的指标有：{'、'.join(nearby)}。"
    return Answer(answer=text, refused=True, provider=PROVIDER, model=PROVIDER)


def _place(row: Indicator) -> str:
    return place_label(row.district, row.city, row.province) if row.district.strip() else schema.UNKNOWN_DISTRICT_TEXT


def _year(row: Indicator) -> str:
    if row.about_year == row.report_year:
        return f"{row.about_year}年"
    return f"{row.about_year}年（{row.report_year}年报告）"


def _shown(row: Indicator) -> str:
    """The row's figure as its sentence writes it (1.16万件, 99.8％); from_to: 94.9%→99%."""
    value = _written(row, row.value)
    if row.kind == "from_to" and row.from_value is not None:
        return f"{_written(row, row.from_value)}→{value}"
    return value


def _written(row: Indicator, value: float) -> str:
    q = _quantity(row, value)
    return row.sentence[q.start:q.end] if q else f"{value:g}{row.unit}"


def _figure_at(row: Indicator) -> int:
    """Where the row's figure stands in its sentence (0 when not found)."""
    q = _quantity(row, row.value)
    return q.start if q else 0


def _quantity(row: Indicator, value: float):
    for q in quantities(row.sentence):
        number = re.match(r"[\d.]+", q.value)
        if number and abs(float(number.group()) - abs(value)) < 1e-9 and q.unit == row.unit:
            return q
    return None
