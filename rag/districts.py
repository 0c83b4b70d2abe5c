"""Gazetteer of Chongqing's 38 districts and counties, and a matcher for them in free text.

Matching runs on ``fold(text)``, so Traditional forms (梁平區) and full-width text match.
Short forms (荣昌, 沙区) are guarded against the common words they hide in (繁荣昌盛,
长江北岸, 联合川渝), because the matcher also routes questions: a false hit there would
narrow a search to the wrong report.

Names are also matched in pinyin and English (Rongchang, Sha Ping Ba, Jiulongpo District,
Dajin Town, Kaizhou), spelled by pypinyin from the same gazetteer, as whole words only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

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

# The same, for a name written in pinyin or English: what may follow it and make it another thing.
_LATIN_GUARDS: dict[str, tuple[str, ...]] = {
    "江北": ("international airport", "airport"),  # Chongqing Jiangbei International Airport is in 渝北区
}

# Levels of a name, as written after it in English: 荣昌区 → Rongchang District. Longest first.
_LEVELS: dict[str, str] = {
    "自治县": "Autonomous County",
    "街道": "Subdistrict",
    "区": "District",
    "县": "County",
    "镇": "Town",
    "乡": "Township",
}
_TOWN_LEVELS = ("街道", "镇", "乡")
# Readings pypinyin gets wrong in these names (it reads 丰都 as feng dou), in its own format.
_READINGS = {"丰都": [["fēng"], ["dū"]]}

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
    latin_names = _latin_names(tuple(sorted(town_names)))
    mentions: list[Mention] = []
    pos = 0
    match = town = latin = _NOT_YET
    while pos < len(folded):
        # Search again only once pos has passed the last hit (or no hit is left): linear in the text.
        if match is _NOT_YET or (match and match.start() < pos):
            match = _ALIAS_RE.search(folded, pos)
        if town is _NOT_YET or (town and town.start() < pos):
            town = town_re.search(folded, pos) if town_re else None
        if latin is _NOT_YET or (latin and latin.start() < pos):
            latin = latin_names.search(folded, pos)
        if latin and not any(hit and hit.start() < latin.start() for hit in (match, town)):
            mention = latin_names.mention(folded, latin)
            mentions.append(mention)
            pos = mention.end
            continue
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


def names_district(named: str, district: str) -> bool:
    """True when a place named in a question or claim names a report's district: the same name;
    a district names its towns' reports (开州区 → 开州区大进镇), and a town named alone its own (大进镇).

    A blank on either side never matches: a report whose district was not detected is stored
    with district "", which every name would otherwise "contain".
    """
    a, b = fold(named).strip(), fold(district).strip()
    return bool(a and b) and (a in b or b in a)


# ---- pinyin and English -----------------------------------------------------------------------

_SEP = "[ '\u2019-]?"  # between syllables: Shapingba, Sha Ping Ba, sha-ping-ba, Nan'an
_TOWN_THEN_DISTRICT = re.compile(r"[ \t]*,[ \t]*|[ \t]+")  # Dajin Town, Kaizhou
_DISTRICT_THEN_TOWN = re.compile(r"[ \t]+")                # Kaizhou Dajin Town


@lru_cache(maxsize=1)
def _pinyin():
    from pypinyin import Style, lazy_pinyin, load_phrases_dict  # imported on first use: 0.3 s

    load_phrases_dict(_READINGS)
    return lambda text: lazy_pinyin(text, style=Style.NORMAL)


def _syllables(chinese: str) -> tuple[str, ...]:
    """Toneless pinyin syllables of a name: 沙坪坝 → (sha, ping, ba); () if any part is not Chinese."""
    syllables = tuple(_pinyin()(chinese))
    return syllables if syllables and all(re.fullmatch("[a-z]+", s) for s in syllables) else ()


def _word(syllables: Iterable[str]) -> str:
    """Syllables written as one capitalised word, with an apostrophe before a, o, e: Nan'an."""
    word = "".join("'" + s if i and s[:1] in ("a", "o", "e") else s for i, s in enumerate(syllables))
    return word[:1].upper() + word[1:]


def _split_level(name: str, levels: Iterable[str] = _LEVELS) -> tuple[str, str]:
    """(body, level): 荣昌区 → (荣昌, 区), 大进镇 → (大进, 镇); a name with no level → (name, "")."""
    for level in levels:
        if name.endswith(level) and len(name) > len(level):
            return name[: -len(level)], level
    return name, ""


def _district_parts(full: str, shorts: tuple[str, ...]) -> tuple[str, str, str]:
    """(stem, peoples, level): 荣昌区 → (荣昌, "", 区), 石柱土家族自治县 → (石柱, 土家族, 自治县)."""
    body, level = _split_level(full, ("自治县", "区", "县"))
    stems = [s for s in shorts if body.startswith(s)]
    stem = min(stems, key=len) if stems else body
    return stem, body[len(stem) :], level


_PARTS: dict[str, tuple[str, str, str]] = {full: _district_parts(full, shorts) for full, shorts in _GAZETTEER}


def _peoples_english(peoples: str) -> str:
    """土家族苗族 → Tujia and Miao."""
    return " and ".join(_word(_syllables(p)) for p in peoples.split("族") if p)


def _level_words(level: str) -> set[tuple[str, ...]]:
    """What may write a level after a name: 区 → District or Qu."""
    return {tuple(_LEVELS[level].lower().split()), _syllables(level)}


def _tokens(words: Iterable[str], sep: str = _SEP) -> str:
    return sep.join(re.escape(w) for w in words)


def _alternative(stem: tuple[str, ...], suffixes: set[tuple[str, ...]], required: bool,
                 guards: tuple[str, ...] = ()) -> str:
    """A regex for the stem followed by one of the suffixes (optionally, unless required)."""
    ends = "|".join(_tokens(s) for s in sorted(suffixes, key=lambda s: (-len("".join(s)), s)))
    guard = ""
    if guards:
        guard = "(?![ -]+(?:" + "|".join(_tokens(g.split(), "[ -]+") for g in guards) + ")(?![a-z]))"
    return f"{_tokens(stem)}{guard}(?:[ -]?(?:{ends})){'' if required else '?'}"


@dataclass
class _Form:
    """A stem in pinyin, the name it stands for, and what may be written after it."""

    full: str
    required: bool                   # a level must follow: the stem alone names nothing (忠, 沙)
    suffixes: set[tuple[str, ...]]   # (district,), (qu,), (tujia, autonomous, county)…
    guards: tuple[str, ...]          # what may not follow: airport


@lru_cache(maxsize=1)
def _district_alternatives() -> tuple[tuple[str, str], ...]:
    """(full name, regex) for the pinyin and English forms of every name of the gazetteer.

    A name matched alone in Chinese (荣昌) is matched alone in pinyin too (Rongchang), and may
    be followed by District, County, Qu or Xian; one that is not (忠, 沙 of 沙区) needs its
    own level after it (Zhong County, Zhongxian, Sha Qu).
    """
    forms: dict[tuple[str, ...], _Form] = {}
    any_level = _level_words("区") | _level_words("县")

    def add(full: str, stem: str, required: bool, suffixes: set[tuple[str, ...]]) -> None:
        form = forms.setdefault(_syllables(stem), _Form(full, required, set(), _LATIN_GUARDS.get(stem, ())))
        form.required = form.required and required
        form.suffixes |= suffixes

    for full, shorts in _GAZETTEER:
        stem, peoples, level = _PARTS[full]
        alone = stem in _ALIASES
        suffixes = set(any_level) if alone else _level_words(level)
        if peoples:
            suffixes |= _level_words(level) | {
                tuple(f"{_peoples_english(peoples)} {_LEVELS[level]}".lower().split()),
                _syllables(peoples + level),
            }
        add(full, stem, not alone, suffixes)
        for short in shorts:
            body, short_level = _split_level(short, ("区", "县"))
            if short_level:  # 沙区, 石柱县
                add(full, body, body not in _ALIASES, _level_words(short_level))
            else:
                add(full, short, False, set(any_level))
    ordered = sorted(forms.items(), key=lambda item: (-len("".join(item[0])), item[0]))
    return tuple((f.full, _alternative(stem, f.suffixes, f.required, f.guards)) for stem, f in ordered)


def _town_alternatives(towns: Iterable[str]) -> list[tuple[str, str]]:
    """(town, regex) for towns written in pinyin: Dajin Town, dajin zhen (the level is needed)."""
    alternatives = []
    for town in towns:
        body, level = _split_level(town, _TOWN_LEVELS)
        syllables = _syllables(body) if level else ()
        if syllables:
            regex = _alternative(syllables, _level_words(level), required=True)
            alternatives.append((len("".join(syllables)), town, regex))
    return [(town, regex) for _, town, regex in sorted(alternatives, key=lambda a: (-a[0], a[1]))]


def _whole_words(groups: dict[str, str]) -> re.Pattern | None:
    if not groups:
        return None
    alternatives = "|".join(f"(?P<{group}>{regex})" for group, regex in groups.items())
    return re.compile(rf"(?<![a-z])(?:{alternatives})(?![a-z])", re.IGNORECASE | re.ASCII)


class _LatinNames:
    """The districts, and the given towns, written in pinyin or English, found as whole words."""

    def __init__(self, towns: tuple[str, ...]):
        self._names: dict[str, str] = {}  # regex group → Chinese name
        district_groups, town_groups = {}, {}
        for i, (name, regex) in enumerate(_district_alternatives()):
            district_groups[f"d{i}"] = regex
            self._names[f"d{i}"] = name
        for i, (name, regex) in enumerate(_town_alternatives(towns)):
            town_groups[f"t{i}"] = regex
            self._names[f"t{i}"] = name
        self._any = _whole_words({**town_groups, **district_groups})  # a town first: Rongchang Town
        self._districts = _whole_words(district_groups)
        self._towns = _whole_words(town_groups)

    def search(self, folded: str, pos: int) -> re.Match | None:
        return self._any.search(folded, pos)

    def mention(self, folded: str, hit: re.Match) -> Mention:
        """The mention a hit of search() starts: with the district after a town, or the town
        after a district, when one is written there (Dajin Town, Kaizhou; Kaizhou Dajin Town)."""
        name = self._names[hit.lastgroup]
        start, end = hit.span()
        if hit.lastgroup.startswith("t"):
            gap = _TOWN_THEN_DISTRICT.match(folded, end)
            after = self._districts.match(folded, gap.end()) if gap else None
            if after:
                district = self._names[after.lastgroup]
                return Mention(district + name, district, start, after.end())
            return Mention(name, "", start, end)
        gap = _DISTRICT_THEN_TOWN.match(folded, end)
        after = self._towns.match(folded, gap.end()) if gap and self._towns else None
        if after:
            return Mention(name + self._names[after.lastgroup], name, start, after.end())
        return Mention(name, name, start, end)


@lru_cache(maxsize=32)
def _latin_names(towns: tuple[str, ...]) -> _LatinNames:
    return _LatinNames(towns)


def district_english(name: str) -> str:
    """The English form of a full name, for English answers: 荣昌区 → Rongchang District,
    忠县 → Zhong County, 开州区大进镇 → Dajin Town, Kaizhou District."""
    name = fold(name).strip()
    district = next((d for d in DISTRICTS if name.startswith(d)), "")
    if not district:
        return _place_english(name)
    stem, peoples, level = _PARTS[district]
    english = " ".join(filter(None, (_word(_syllables(stem)), _peoples_english(peoples), _LEVELS[level])))
    rest = name[len(district) :]
    return f"{_place_english(rest)}, {english}" if rest else english


def _place_english(name: str) -> str:
    """大进镇 → Dajin Town; a name with no level is only spelled."""
    body, level = _split_level(name)
    return " ".join(filter(None, (_word(_pinyin()(body)), _LEVELS.get(level, ""))))
