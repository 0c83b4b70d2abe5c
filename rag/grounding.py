"""Numeric grounding: every figure an answer states must appear in a passage it cites.

Figures are compared by value after folding width (９９.８％ = 99.8%), so 1.16万 equals
11600 and 十五 equals 15. Percent signs are kept apart: 22.22% is not 22.22.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from rag.text import fold

_DIGITS = re.compile(r"(?<![\d.])(\d+(?:,\d{3})*(?:\.\d+)?)\s*(万|亿)?\s*(%)?")
_LIST_NUMBER = re.compile(r"(?<![\d.])\d{1,2}(?=、|\.(?!\d))|(?<=[(（])\d{1,2}(?=[)）])")
_CN_DIGIT = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CN_UNIT = {"十": 10, "百": 100, "千": 1000}
# A Chinese numeral counts as a figure when it has a unit (十/百/千/万/亿) or a measure word follows.
_CN_NUMBER = re.compile(r"[零〇一二两三四五六七八九十百千万亿]+(?=[个项件家次人名条届批场所处起期年%])|[零〇一二两三四五六七八九]*[十百千][零〇一二两三四五六七八九十百千万亿]*")
_ORDINAL_BEFORE = re.compile(r"[第是]$")
_MARKER = re.compile(r"\[\d+\]")


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


def figures(text: str) -> set[str]:
    """The figures stated in text, as normalised values ("22.22%", "11600", "15")."""
    folded = _LIST_NUMBER.sub(" ", fold(text))  # 1、 2． (1) enumerate items: not figures
    found: set[str] = set()
    for match in _DIGITS.finditer(folded):
        number, scale, percent = match.groups()
        try:
            value = Decimal(number.replace(",", ""))
        except InvalidOperation:
            continue
        if scale:
            value *= 10_000 if scale == "万" else 100_000_000
        found.add(_normal(value) + (percent or ""))
    for match in _CN_NUMBER.finditer(folded):
        if _ORDINAL_BEFORE.search(folded[: match.start()]):
            continue  # 第三, 一是: order words, not figures
        word = match.group()
        if not any(c in _CN_DIGIT or c in _CN_UNIT for c in word) or word in ("一", "两"):
            continue
        value = _cn_to_int(word)
        if value is not None:
            found.add(str(value))
    return found


def _normal(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def ungrounded_figures(answer: str, evidence: list[str], allowed: str = "") -> set[str]:
    """Figures in answer found neither in any evidence text nor in `allowed` (question, headers)."""
    known: set[str] = set()
    for text in [*evidence, allowed]:
        known |= figures(text)
    return {f for f in figures(_MARKER.sub("", answer)) if f not in known}
