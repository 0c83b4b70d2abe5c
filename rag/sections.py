"""Heading structure of a Chinese work report: which heading path every character falls under.

Levels, as these reports write them:

- L1 ``一、…``; also an arabic ``3、 …`` line that stands in the place of the next L1
  (a short line numbered one past the last L1, not part of a ``1、 2、 …`` list, and
  followed by the L1 after it, as in 「二、… / 3、 存在不足和原因 / 四、…」);
- L2 ``（一）`` / ``(一)``; or, only in a report with no such level anywhere, a run of
  paragraphs opening ``一是…``, ``二是…`` (a lone ``一是`` paragraph that carries ``二是``
  inside it is body text, not a heading);
- L3 ``1．`` / ``1.`` / ``1、`` / ``（1）`` items, kept as ``subheading``, never in the path.

Every heading is numbered one past its predecessor at its level (a gap of one is
tolerated), so a stray 「三、」 inside a list of 「一、二、三、」 items is not a heading.
A heading is the text of its line up to the first 。；： and without trailing punctuation,
exactly as written (script and width kept), so a path equals the gold ``section`` strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.schema import SECTION_SEPARATOR
from rag.text import fold, instruction_spans

_CN_DIGITS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CN_NUM = "[一二三四五六七八九十]{1,3}"
_LEAD = r"^[ \t\u3000]*(?:#{1,6}[ \t]+)?"

_L1 = re.compile(_LEAD + rf"({_CN_NUM})、")
_L1_ARABIC = re.compile(_LEAD + r"(\d{1,2})、")
_L2_PAREN = re.compile(_LEAD + rf"[(（]({_CN_NUM})[)）]")
_L2_SHI = re.compile(_LEAD + rf"({_CN_NUM})是")
_L3 = re.compile(_LEAD + r"(?:(\d{1,2})[.．、](?![\d.．])|[(（](\d{1,2})[)）])")

_HEADING_END = re.compile(r"[。；;：:！!？?]")
_TRAILING = "，,、；;：:。．.！!？?…— \t\u3000"
_SENTENCE_DONE = tuple("。！？!?；;")
# 「2024年，…取得了一些成效，但…仍然存在不足和问题。」: a closing paragraph about the
# whole part, not about the last sub-heading before it.
_CLOSING = re.compile(r"但[^。]*(不足|问题|短板|差距|薄弱|弱项)|(存在|仍有|还有)[^。]{0,8}(不足|问题|短板|差距)")


@dataclass(frozen=True)
class Section:
    """A span of the text under one heading path; text[start:end] is the section."""

    path: str        # "一、… > （二）…", "" before the first heading
    subheading: str  # L3 item heading ("1．…"), "" when none
    start: int
    end: int


def cn_number(numeral: str) -> int:
    """一 → 1, 十二 → 12, 二十 → 20."""
    if "十" not in numeral:
        return sum(_CN_DIGITS[c] * 10**i for i, c in enumerate(reversed(numeral)))
    tens, _, ones = numeral.partition("十")
    return (_CN_DIGITS.get(tens, 1) if tens else 1) * 10 + (_CN_DIGITS.get(ones, 0) if ones else 0)


def heading_text(line: str) -> str:
    """The heading a line opens with: up to the first 。；：, without trailing punctuation."""
    text = re.sub(_LEAD, "", line).strip()
    match = _HEADING_END.search(text)
    if match:
        text = text[: match.start()]
    return text.rstrip(_TRAILING)


def heading_only(line: str) -> bool:
    """True when line (one line, white space around it ignored) is a heading with no text after it."""
    text = re.sub(_LEAD, "", line.strip())
    if not text or "\n" in text:
        return False
    match = _HEADING_END.search(text)
    return not match or not text[match.start() :].strip(_TRAILING)


def _next(ordinal: int, previous: int) -> bool:
    return previous < ordinal <= previous + 2


@dataclass
class _Line:
    start: int
    end: int
    text: str    # original, without the newline
    folded: str

    @property
    def blank(self) -> bool:
        return not self.text.strip()


def _lines(text: str, orders: list[tuple[int, int]]) -> list[_Line]:
    """The lines of text; one holding an order to a language model (`orders`, rag.text.instruction_spans)
    gets no folded text, so it is never a heading and its words never reach a section path."""
    lines, pos, n = [], 0, 0
    folded = fold(text)
    for raw in text.splitlines(keepends=True):
        body = raw.rstrip("\r\n")
        while n < len(orders) and orders[n][1] <= pos:
            n += 1
        ordered = n < len(orders) and orders[n][0] < pos + len(body)
        lines.append(_Line(pos, pos + len(raw), body, "" if ordered else folded[pos : pos + len(body)]))
        pos += len(raw)
    return lines


def _l1_indexes(lines: list[_Line]) -> list[int]:
    """Indexes of the L1 heading lines."""
    chinese = [(i, cn_number(m.group(1))) for i, ln in enumerate(lines) if (m := _L1.match(ln.folded))]
    found: list[int] = []
    previous = 0
    list_previous = None  # a 「一、二、…」 list inside a part, once one has started
    arabic_items = set()  # ordinals of 「1、」 lines seen since the last L1
    upcoming = 0          # into chinese: the first L1 line that may still follow a heading

    def later(i: int) -> int | None:
        """The ordinal of the first 「一、」 line after line i numbered past `previous`.

        Both i and previous only grow, so the search resumes where it stopped: linear in all.
        """
        nonlocal upcoming
        while upcoming < len(chinese) and (chinese[upcoming][0] <= i or chinese[upcoming][1] <= previous):
            upcoming += 1
        return chinese[upcoming][1] if upcoming < len(chinese) else None

    for i, line in enumerate(lines):
        if match := _L1.match(line.folded):
            ordinal = cn_number(match.group(1))
            if list_previous is not None and ordinal == list_previous + 1:
                list_previous = ordinal
            elif _next(ordinal, previous):
                found.append(i)
                previous, list_previous, arabic_items = ordinal, None, set()
            else:
                list_previous = ordinal
        elif (match := _L1_ARABIC.match(line.folded)) and found:
            ordinal = int(match.group(1))
            heading_like = len(line.text.strip()) <= 40 and not _HEADING_END.search(line.folded)
            if (
                ordinal == previous + 1
                and heading_like
                and ordinal - 1 not in arabic_items
                and later(i) in (None, ordinal + 1)
            ):
                found.append(i)
                previous, list_previous, arabic_items = ordinal, None, set()
            else:
                arabic_items.add(ordinal)
    return found


def _has_paren_level(lines: list[_Line]) -> bool:
    return any((m := _L2_PAREN.match(ln.folded)) and cn_number(m.group(1)) == 1 for ln in lines)


def _part_boundaries(
    lines: list[_Line], first: int, last: int, l1: str, paren_level: bool
) -> list[tuple[int, str, str]]:
    """(line index, path, subheading) of the L2/L3 headings in lines[first:last] of one L1 part."""
    shi = not paren_level and _shi_run(lines, first, last)
    out: list[tuple[int, str, str]] = []
    l2, l2_previous, l3_previous = "", 0, 0
    for i in range(first, last):
        folded = lines[i].folded
        match = _L2_PAREN.match(folded) if paren_level else (_L2_SHI.match(folded) if shi else None)
        if match and _next(cn_number(match.group(1)), l2_previous):
            l2_previous, l3_previous = cn_number(match.group(1)), 0
            l2 = heading_text(lines[i].text)
            out.append((i, _join(l1, l2), ""))
            continue
        match = _L3.match(folded)
        if match and _next(int(match.group(1) or match.group(2)), l3_previous):
            l3_previous = int(match.group(1) or match.group(2))
            out.append((i, _join(l1, l2), heading_text(lines[i].text)))
    if out:
        closing = _closing_paragraph(lines, first, last, {i for i, _, _ in out})
        if closing is not None:
            out.append((closing, l1, ""))
    return out


def _shi_run(lines: list[_Line], first: int, last: int) -> bool:
    """True when the part has paragraphs opening 一是 and 二是 (a run of 是-headings)."""
    ordinals = {cn_number(m.group(1)) for ln in lines[first:last] if (m := _L2_SHI.match(ln.folded))}
    return {1, 2} <= ordinals


def _closing_paragraph(lines: list[_Line], first: int, last: int, headings: set[int]) -> int | None:
    """The part's last paragraph, when it sums up the part rather than its last sub-heading."""
    body = [i for i in range(first, last) if not lines[i].blank]
    if len(body) < 2:
        return None
    i, before = body[-1], body[-2]
    line = lines[i]
    if i in headings or _L2_PAREN.match(line.folded) or _L2_SHI.match(line.folded) or _L3.match(line.folded):
        return None
    if not lines[before].folded.rstrip().endswith(_SENTENCE_DONE):
        return None
    first_sentence = _HEADING_END.split(line.folded, maxsplit=1)[0]
    return i if _CLOSING.search(first_sentence) else None


def _join(l1: str, l2: str) -> str:
    return SECTION_SEPARATOR.join(p for p in (l1, l2) if p)


def parse_sections(text: str, orders: list[tuple[int, int]] | None = None) -> list[Section]:
    """Contiguous sections covering text in order; each starts at its heading line.

    `orders` are text's instruction_spans, for a caller that has them already.
    """
    if not text:
        return []
    lines = _lines(text, instruction_spans(text) if orders is None else orders)
    l1_lines = _l1_indexes(lines)
    paren_level = _has_paren_level(lines)
    boundaries: list[tuple[int, str, str]] = []
    parts = [(0, l1_lines[0] if l1_lines else len(lines), "")]
    for n, i in enumerate(l1_lines):
        end = l1_lines[n + 1] if n + 1 < len(l1_lines) else len(lines)
        parts.append((i, end, heading_text(lines[i].text)))
    for first, last, l1 in parts:
        if l1:
            boundaries.append((first, l1, ""))
            first += 1
        boundaries.extend(_part_boundaries(lines, first, last, l1, paren_level))
    boundaries.sort(key=lambda b: b[0])

    sections: list[Section] = []
    starts = [(lines[i].start, path, sub) for i, path, sub in boundaries]
    if not starts or starts[0][0] > 0:
        starts.insert(0, (0, "", ""))
    for n, (start, path, sub) in enumerate(starts):
        end = starts[n + 1][0] if n + 1 < len(starts) else len(text)
        if end > start:
            sections.append(Section(path, sub, start, end))
    return sections
