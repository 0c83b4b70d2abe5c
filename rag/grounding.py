"""Figures with their units: what a text states, and of what kind.

Every figure is parsed into a `Quantity`: its value normalised (１.１６万 = 11600, 十五 = 15,
９９.８％ = 99.8%), its unit as written (件, 人, %, 万元, 平方米…) and the kind of quantity
that unit measures (count, rate, amount, area, score, duration, date). Answers are checked against
the quantities of the sentences they cite, and questions say which kind they ask for: a
sentence that says 「增长30.2%」 does not support a count of cases.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from rag.text import fold

# Units by kind. Matched longest first right after a number (and an optional 余/多 "more than").
UNITS: dict[str, tuple[str, ...]] = {
    "rate": ("个百分点", "百分点", "%", "‰"),
    "amount": ("万美元", "万元", "亿元", "美元", "元"),
    "area": ("平方公里", "平方千米", "平方米", "平米", "㎡", "公顷", "亩"),
    "score": ("分",),
    "duration": ("个工作日", "工作日", "个小时", "小时", "分钟", "个月", "学时", "周", "天"),
    "count": (
        "万人次", "人次", "件次", "户次", "场次", "批次", "余人", "件", "起", "宗", "人", "名", "家", "个", "次",
        "场", "项", "条", "份", "所", "处", "批", "期", "届", "户", "卷", "篇", "部", "支", "座", "类", "套",
        "本", "张", "册", "台", "辆", "块", "位", "单", "村", "例", "堂", "轮", "节", "课", "门", "组",
        "队", "团", "种", "集",
    ),
}
KINDS = tuple(UNITS)
# What a count's measure word says it counts: 326项 lists items, 326件 counts matters. 个 and the
# measure words left out say nothing (「34个部门」, 「几个案件」).
_COUNTED_BY: dict[str, tuple[str, ...]] = {
    "matter": ("件", "件次", "起", "宗", "例", "卷"),
    "person": ("人", "名", "位", "人次", "万人次", "余人"),
    "body": ("家", "所", "处", "座", "村"),
    "household": ("户", "户次"),
    "event": ("次", "场", "场次", "期", "届", "轮", "堂", "节", "课", "批", "批次"),
    "item": ("项", "条", "类", "种", "份", "篇", "部", "本", "册", "套", "张"),
}
_COUNTED = {unit: thing for thing, units in _COUNTED_BY.items() for unit in units}
_UNIT_KIND = {unit: kind for kind, units in UNITS.items() for unit in units}
_UNIT_RE = "|".join(re.escape(u) for u in sorted(_UNIT_KIND, key=len, reverse=True))

# 万/亿 scale a figure (1.16万件 = 11600 件) unless they open the unit (558.82万元 stays 558.82 万元).
_DIGITS = re.compile(
    rf"(?<![\d.])(\d+(?:,\d{{3}})*(?:\.\d+)?)\s*(?:(万|亿)(?!元|美元))?\s*(?:余|多)?\s*(周年|{_UNIT_RE}|年|月|日)?"
)
# 「250人余次」 is 250余人次: the 余 written inside the unit.
_INNER_MORE = re.compile(r"[余多]次")
_LIST_NUMBER = re.compile(r"(?<![\d.])\d{1,2}(?=、|\.(?!\d))|(?<=[(（])\d{1,2}(?=[)）])")
_CN_DIGIT = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CN_UNIT = {"十": 10, "百": 100, "千": 1000}
# A Chinese numeral counts as a figure when it has a unit (十/百/千/万/亿) or a measure word follows.
_CN_NUMBER = re.compile(
    r"[零〇一二两三四五六七八九十百千万亿]+(?=[个项件家次人名条届批场所处起期支年%])"
    r"|[零〇一二两三四五六七八九]*[十百千][零〇一二两三四五六七八九十百千万亿]*"
    r"|(?<=为)[零〇](?![\u4e00-\u9fff])"  # 「败诉案件为零」
)
_ORDINAL_BEFORE = re.compile(r"[第是]$")
_CHANGE_BEFORE = re.compile(r"(?:增长|增加|上升|提高|提升|下降|减少|降低|缩短|压缩|减量|同比|环比|增幅|降幅|增速)(?![至到])[^，。；、\d]{0,4}$")


@dataclass(frozen=True)
class Quantity:
    """One figure stated in a text, with offsets into that text."""

    value: str      # normalised: "22.22%", "11600", "15"
    unit: str       # as written after the number: "件", "%", "万元"; "" when none
    kind: str       # count | rate | amount | area | score | duration | date | number
    start: int
    end: int
    change: bool = False  # stated as a change (增长30%, 同比下降5件), not a level (提升至64.9% is one)

    @property
    def counts(self) -> str:
        """What sort of thing a count counts, by its measure word ("matter" for 件), or ""."""
        return counted_by(self.unit) if self.kind == "count" else ""

    def matches(self, other: "Quantity") -> bool:
        """Same value, and the same kind wherever both say what they measure."""
        if self.value != other.value:
            return False
        kinds = {self.kind, other.kind} - {"number"}
        return len(kinds) <= 1


def _cn_to_int(text: str) -> int | None:
    total, section, digit = 0, 0, None
    for char in text:
        if char in _CN_DIGIT:
            digit = _CN_DIGIT[char]
        elif char in _CN_UNIT:
            section += (digit if digit is not None else 1) * _CN_UNIT[char]
            digit = None
        elif char in "万亿":
            section += digit or 0
            total += section * (10_000 if char == "万" else 100_000_000)
            section, digit = 0, None
        else:
            return None
    return total + section + (digit or 0)


def counted_by(measure: str) -> str:
    """What sort of thing a measure word counts ("person" for 名), or "" (个 counts anything)."""
    return _COUNTED.get(measure, "")


def _kind(unit: str, number: str) -> str:
    if unit == "年":
        return "date" if re.fullmatch(r"(19|20)\d{2}", number) else "duration"
    if unit in ("月", "日", "周年"):
        return "date"
    return _UNIT_KIND.get(unit, "number")


def quantities(text: str) -> list[Quantity]:
    """The figures stated in text, in order, with units and kinds.

    List enumerators (1、 2． (3)) and order words (第三, 一是) are not figures.
    """
    folded = _LIST_NUMBER.sub(lambda m: " " * len(m.group()), fold(text))  # same length: offsets carry over
    found: list[Quantity] = []
    for match in _DIGITS.finditer(folded):
        number, scale, unit = match.groups()
        try:
            value = Decimal(number.replace(",", ""))
        except InvalidOperation:
            continue
        if scale:
            value *= 10_000 if scale == "万" else 100_000_000
        unit = unit or ""
        end = match.end() if unit else match.end(2) if scale else match.end(1)
        if unit + "次" in _UNIT_KIND and _INNER_MORE.match(folded, end):
            unit, end = unit + "次", end + 2
        kind = _kind(unit, number)
        percent = "%" if unit == "%" else ""
        change = kind == "rate" and unit != "%" or bool(_CHANGE_BEFORE.search(folded, 0, match.start()))
        found.append(Quantity(_normal(value) + percent, unit, kind, match.start(), end, change))
    for match in _CN_NUMBER.finditer(folded):
        if _ORDINAL_BEFORE.search(folded[: match.start()]):
            continue  # 第三, 一是: order words, not figures
        word = match.group()
        if not any(c in _CN_DIGIT or c == "十" for c in word) or word in ("一", "两"):
            continue  # 百姓, 千家万户: words, not figures
        value = _cn_to_int(word)
        if value is None:
            continue
        unit_match = re.match(f"周年|{_UNIT_RE}|年", folded[match.end():])
        unit = unit_match.group() if unit_match and unit_match.group() != "分" else ""  # 十分: very
        kind = _kind(unit, "")
        found.append(Quantity(str(value), unit, kind, match.start(), match.end() + len(unit)))
    found.sort(key=lambda q: q.start)
    return found


def figures(text: str) -> set[str]:
    """The figures stated in text, as normalised values ("22.22%", "11600", "15")."""
    return {q.value for q in quantities(text)}


def _normal(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


_LABEL_BOUNDARY = re.compile(r"[，,。；;：:、（()）]")
# A short aside in brackets is part of the words around it (「161个村（居）法律顾问」, 「下沉乡镇(街道)执法力量95名」),
# not a boundary; one with a figure or a clause of its own (「（同比增长7%）」) is.
_ASIDE = re.compile(r"[（(][^（()）\d，,。；;]{1,6}[)）]")
_CHANGE_WORDS = re.compile(
    r"由|从|同比|环比|(?:增长|增加|提升|提高|上升|下降|降低|减少|缩短|压缩|延长)(?:至|到|为|了)?|(?:升|降|减|增)至"
    r"|(?<![送抵表传通下])达到?")  # not the 达 of 送达率
_TIME_BEFORE_CHANGE = re.compile(r"[半一两几数]?[天日年月周]\s*$")  # 「时间由半天缩短到5分钟」: 半天 is the old value


def measured_words(text: str, found: list[Quantity], q: Quantity) -> tuple[str, str]:
    """What figure q of text measures: the words before it back to the clause boundary
    (「直接纠错率22.22%」), or the name it stands for in turn (`named_in_turn`), and those after it
    up to the next boundary or figure (「500㎡实体平台」).

    Both come as written, with other figures, the words of a change (由, 提升至, 同比…) and an
    old value in words (由半天缩短到) blanked to spaces, so their characters keep their offsets:
    the words before end at q.start, those after start at q.end. A short aside in brackets
    (村（居）) is kept as words.
    """
    folded = _ASIDE.sub(lambda m: "〔" + m.group()[1:-1] + "〕", fold(text))
    cut = max((m.end() for m in _LABEL_BOUNDARY.finditer(folded, 0, q.start)), default=0)
    boundary = _LABEL_BOUNDARY.search(folded, q.end)
    stop = min([boundary.start() if boundary else len(text)] + [p.start for p in found if p.start >= q.end])
    in_turn = named_in_turn(text, found, q)
    if in_turn:
        name_start, name_end = in_turn
        before = _blank(folded, name_start, name_end, found) + " " * (q.start - name_end)
        return _as_written(text, name_start, before), _as_written(text, q.end, _blank(folded, q.end, stop, found))
    before = _blank(folded, cut, q.start, found)
    if before[-1:].isspace():
        before = _TIME_BEFORE_CHANGE.sub(lambda m: " " * len(m.group()), before)
    after = _blank(folded, q.end, stop, found)
    return _as_written(text, cut, before), _as_written(text, q.end, after)


_CLAUSE_BOUNDARY = re.compile(r"[，,。；;：:（()）]")  # 、 joins the names of one clause
_FIGURE_LINK = re.compile(r"[\s、和与及为是至到了]*")


def named_in_turn(text: str, found: list[Quantity], q: Quantity) -> tuple[int, int] | None:
    """The span of the name figure q stands for in 「A、B分别降至x、y」: the names before 分别 and the
    figures right after it pair in turn. None when q is not one of those figures or the counts of
    names and figures differ (two names may also be joined by 和, 与 or 及)."""
    if "分" not in text:  # 分别 and 分別 alike: most sentences need no folding here
        return None
    folded = fold(text)
    clause_start = max((m.end() for m in _CLAUSE_BOUNDARY.finditer(folded, 0, q.start)), default=0)
    at = folded.rfind("分别", clause_start, q.start)
    if at < 0:
        return None
    in_turn, position = [], at + 2
    for p in (p for p in found if p.start >= position):
        if not _FIGURE_LINK.fullmatch(_blank(folded, position, p.start, found)):
            break
        in_turn.append(p)
        position = p.end
    if q not in in_turn or len(in_turn) < 2:
        return None
    cuts = [m.start() for m in re.finditer("、", folded[clause_start:at])]
    if not cuts and len(in_turn) == 2:
        cuts = [m.start() for m in re.finditer("[和与及]", folded[clause_start:at])][-1:]
    if len(cuts) + 1 != len(in_turn):
        return None
    edges = [clause_start] + [clause_start + c + 1 for c in cuts] + [at + 1]
    n = in_turn.index(q)
    return edges[n], edges[n + 1] - 1


def _blank(folded: str, start: int, end: int, found: list[Quantity]) -> str:
    """folded[start:end] with the figures of `found` and the words of a change blanked."""
    chars = list(folded[start:end])
    for p in found:
        for i in range(max(p.start, start), min(p.end, end)):
            chars[i - start] = " "
    return _CHANGE_WORDS.sub(lambda m: " " * len(m.group()), "".join(chars))


def _as_written(text: str, start: int, blanked: str) -> str:
    return "".join(" " if b.isspace() else c for c, b in zip(text[start:], blanked))
