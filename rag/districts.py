"""Gazetteer of Chongqing's 38 districts and counties, and a matcher for them in free text.

Matching runs on ``fold(text)``, so Traditional forms (梁平區) and full-width text match.
Short forms (荣昌, 沙区) are guarded against the common words they hide in (繁荣昌盛,
长江北岸, 联合川渝), because the matcher also routes questions: a false hit there would
narrow a search to the wrong report.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from rag.text import fold

# (full name, short forms). Short forms are matched only where their guards allow.
_GAZETTEER: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("万州区", ("万州",)),
    ("涪陵区", ("涪陵",)),
    ("渝中区", ("渝中",)),
    ("大渡口区", ("大渡口",)),
    ("江北区", ("江北",)),
    ("沙坪坝区", ("沙坪坝", "沙区")),
    ("九龙坡区", ("九龙坡",)),
    ("南岸区", ("南岸",)),
    ("北碚区", ("北碚",)),
    ("綦江区", ("綦江",)),
    ("大足区", ("大足",)),
    ("渝北区", ("渝北",)),
    ("巴南区", ("巴南",)),
    ("黔江区", ("黔江",)),
    ("长寿区", ("长寿",)),
    ("江津区", ("江津",)),
    ("合川区", ("合川",)),
    ("永川区", ("永川",)),
    ("南川区", ("南川",)),
    ("璧山区", ("璧山",)),
    ("铜梁区", ("铜梁",)),
    ("潼南区", ("潼南",)),
    ("荣昌区", ("荣昌",)),
    ("开州区", ("开州",)),
    ("梁平区", ("梁平",)),
    ("武隆区", ("武隆",)),
    ("城口县", ("城口",)),
    ("丰都县", ("丰都",)),
    ("垫江县", ("垫江",)),
    ("忠县", ()),  # 忠 alone is a common word
    ("云阳县", ("云阳",)),
    ("奉节县", ("奉节",)),
    ("巫山县", ("巫山",)),
    ("巫溪县", ("巫溪",)),
    ("石柱土家族自治县", ("石柱县", "石柱")),
    ("秀山土家族苗族自治县", ("秀山县", "秀山")),
    ("酉阳土家族苗族自治县", ("酉阳县", "酉阳")),
    ("彭水苗族土家族自治县", ("彭水县", "彭水")),
)

DISTRICTS: tuple[str, ...] = tuple(full for full, _ in _GAZETTEER)

# Towns known without a gazetteer of their own: those of the bundled reports. Callers that
# know more (the towns of the indexed reports) pass them to find_districts(towns=...).
KNOWN_TOWNS: frozenset[str] = frozenset({"大进镇"})

# Characters that, written just before a short form, make it part of another word, and
# strings that, written just after it, do the same.
_GUARDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "江北": ("长浙沿两大珠松镇锦漓湘赣乌岷沱綦黔垫汉闽湛丽曲清望", ("岸", "部", "侧", "面", "方", "边", "机场", "国际机场")),
    "南岸": ("江河湖海东西", ("线",)),
    "渝中": ("成川", ("线",)),
    "渝北": ("成川", ("线",)),
    "合川": ("联融结整配综符组适混复契磨聚撮闭缝协", ()),
    "南川": ("云湖河海江济", ()),
    "长寿": ("康福延", ("命",)),
    "荣昌": ("繁光尊殊虚共", ("盛",)),
    "开州": ("召展公打分离放敞盛避抛撇拉张揭铺隔解", ()),
    "梁平": ("桥栋脊鼻提", ("稳", "衡", "台")),
    "秀山": ("水", ()),
    "城口": ("进出入", ()),
    "沙区": ("风荒防治泥黄", ("域",)),
    "大足": ("", ("球",)),
    "石柱": ("", ("子", "础")),
}

_ALIASES: dict[str, str] = {}
for _full, _shorts in _GAZETTEER:
    _ALIASES[_full] = _full
    for _short in _shorts:
        _ALIASES[_short] = _full

_ALIAS_RE = re.compile("|".join(re.escape(a) for a in sorted(_ALIASES, key=len, reverse=True)))
# A town written right after its district: 开州区大进镇, 沙坪坝区覃家岗街道. Without a
# gazetteer of towns the name's end is guessed, so the town must be followed by a word that
# ends a name (人民政府, 的, punctuation…): 「江北区推进镇街」 is not a town.
_TOWN_AFTER = re.compile(
    r"([\u4e00-\u9fff]{2,3}?)(镇|乡|街道)"
    r"(?=$|[^\u4e00-\u9fff]|人民政府|政府|党委|委员会|司法所|派出所|综治|调解|法治|[的有在是和与及])"
)
_NOT_YET = object()  # a search not made yet (None: made, and nothing found)
_NOT_IN_TOWN_NAME = set("各所有全等和与及乡镇街区县市村的在了共个是其中内外级我本该两多每")


@dataclass(frozen=True)
class Mention:
    """One place named in a text: the canonical name and its span in the text."""

    name: str       # 荣昌区, or 开州区大进镇 for a town written with its district
    district: str   # the district part: 荣昌区, 开州区; "" for a town named alone
    start: int
    end: int


def _guarded(folded: str, alias: str, start: int, end: int) -> bool:
    """True when the short form at [start, end) is part of another word."""
    if alias not in _GUARDS:
        return False
    before, after = _GUARDS[alias]
    if start > 0 and folded[start - 1] in before:
        return True
    return any(folded.startswith(a, end) for a in after)


def _town_after(folded: str, pos: int) -> tuple[str, int] | None:
    match = _TOWN_AFTER.match(folded, pos)
    if match and not _NOT_IN_TOWN_NAME & set(match.group(1)):
        return match.group(0), match.end()
    return None


def district_mentions(text: str, towns: Iterable[str] = KNOWN_TOWNS) -> list[Mention]:
    """Every district, county or known town named in text, in order, with offsets into text."""
    folded = fold(text)
    town_names = sorted({fold(t) for t in towns}, key=len, reverse=True)
    town_re = re.compile("|".join(re.escape(t) for t in town_names)) if town_names else None
    mentions: list[Mention] = []
    pos = 0
    match = town = _NOT_YET
    while pos < len(folded):
        # Search again only once pos has passed the last hit (or no hit is left): linear in the text.
        if match is _NOT_YET or (match and match.start() < pos):
            match = _ALIAS_RE.search(folded, pos)
        if town is _NOT_YET or (town and town.start() < pos):
            town = town_re.search(folded, pos) if town_re else None
        if town and (not match or town.start() < match.start()):
            mentions.append(Mention(town.group(0), "", town.start(), town.end()))
            pos = town.end()
            continue
        if not match:
            break
        alias, start, end = match.group(0), match.start(), match.end()
        if _ALIASES[alias] != alias and _guarded(folded, alias, start, end):
            pos = start + 1
            continue
        district = _ALIASES[alias]
        # A full name ending in 区/县 may be written short but followed by 区/县 (荣昌县, old name).
        if end < len(folded) and folded[end] in "区县" and alias != district:
            end += 1
        known = town_re.match(folded, end) if town_re else None
        after = (known.group(0), known.end()) if known else _town_after(folded, end)
        if after:
            mentions.append(Mention(district + after[0], district, start, after[1]))
            pos = after[1]
        else:
            mentions.append(Mention(district, district, start, end))
            pos = end
    return mentions


def find_districts(text: str, towns: Iterable[str] = KNOWN_TOWNS) -> list[str]:
    """The districts and towns text names, as full names, in order of first mention.

    A town written with its district comes back whole (开州区大进镇); a known town named
    alone comes back as itself (大进镇), unless the same text also names it with its district.
    """
    names: list[str] = []
    for mention in district_mentions(text, towns):
        if mention.name not in names:
            names.append(mention.name)
    whole = [n for n in names if n not in DISTRICTS]
    return [n for n in names if not any(w != n and w.endswith(n) for w in whole)]
