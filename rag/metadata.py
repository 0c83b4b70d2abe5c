"""Report metadata: district (with its city, province and code), year, issuing body and title,
detected from the text.

A sidecar ``<file name>.meta.yaml`` beside the report (e.g. ``003_….txt.meta.yaml``)
overrides district, year, body, title, city or province; the UI's "fix metadata" button writes it.
The district's code is never written by hand: it follows from the name, the city or province
given, and the prefectures and provinces the report names (北京市 or 长春市 for a 朝阳区).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from rag.districts import gazetteer, identify, read_places
from rag.errors import BadFileError
from rag.loading import LoadedReport
from rag.sections import Section, parse_sections
from rag.text import fold

SIDECAR_SUFFIX = ".meta.yaml"
FIELDS = ("district", "year", "body", "title", "city", "province")
_PLACE_FIELDS = {"district", "city", "province"}  # a fix of any of them identifies the unit again
FIRST_YEAR, LAST_YEAR = 1900, 2099  # a report's year; Chroma stores it as a 64-bit integer

_YEAR = re.compile(r"(?<![\d\-–—~～至到])((?:19|20)\d{2})\s*年")
_TITLE_YEAR = re.compile(r"(?<![\d\-–—~～至到])((?:19|20)\d{2})(?![\d\-–—~～至到])")  # 「2024法治政府…」
_TITLE = re.compile(r"(关于.*(报告|情况)|.*报告)$")
_ORG_SUFFIX = ("人民政府", "政府", "司法局", "局", "委员会", "办公室")
# An issuing body inside running text: 区司法局, 区人民政府, 大进镇人民政府.
_BODY_IN_TEXT = re.compile(r"(?:[区县]|(?<![\u4e00-\u9fff])[\u4e00-\u9fff]{2,3}(?:镇|乡|街道))(?:司法局|人民政府)")
_HEAD_WEIGHT = 3  # a district named in the title, letterhead or signature counts this much more


@dataclass
class ReportMeta:
    """Who issued a report, for which district and year, under what title."""

    district: str      # 荣昌区, 开州区大进镇; "" when unknown
    year: int | None   # the year the report covers
    body: str          # issuing body: 区司法局, 区人民政府, 大进镇人民政府; "" when unknown
    title: str
    city: str = ""           # the district's prefecture: 重庆市, 长春市; "" when unknown
    province: str = ""       # 重庆市, 吉林省; "" when unknown
    district_code: str = ""  # the county-level unit's code: 500153, 220104; "" when not identified


def _is_short_line(line: str) -> bool:
    return len(line) <= 40 and not re.search(r"[，,。；;：:！!？?]", line)


def _head_and_tail(text: str, sections: list[Section]) -> tuple[list[str], list[str]]:
    """Non-blank lines before the first heading; short lines among the last three (a signature)."""
    head_end = next((s.start for s in sections if s.path), len(text))
    head = [_clean(ln) for ln in text[:head_end].splitlines() if _clean(ln)]
    tail = [_clean(ln) for ln in text[head_end:].splitlines() if _clean(ln)][-3:]
    return head, [ln for ln in tail if _is_short_line(ln)]


def _clean(line: str) -> str:
    return line.strip().lstrip("#").strip()  # a Markdown heading mark is not part of the title


def _title_line(head: list[str]) -> str:
    return next((ln for ln in head if _is_short_line(ln) and _TITLE.match(fold(ln))), "")


def _detect_year(title: str, head: list[str], text: str) -> int | None:
    """The year in the title, else the first 「NNNN年」 of the opening lines, else of the text."""
    match = _TITLE_YEAR.search(fold(title))
    if match:
        return int(match.group(1))
    for candidate in (*head[:3], text):
        match = _YEAR.search(fold(candidate))
        if match:
            return int(match.group(1))
    return None


def _org_lines(head: list[str], tail: list[str]) -> list[str]:
    """Letterhead and signature lines: short lines naming an organisation."""
    lines = [fold(ln) for ln in (*head, *tail) if _is_short_line(ln)]
    return [ln for ln in lines if ln.endswith(_ORG_SUFFIX) and "关于" not in ln]


def _detect_district(text: str, head: list[str], tail: list[str]) -> tuple[str, Counter[str]]:
    """The district the title, letterhead or signature names (a town there wins), else the
    district named most often, head mentions counting more; with the prefectures and provinces
    the report names, weighed alike (they tell two units of one name apart)."""
    short = "\n".join(ln for ln in (*head, *tail) if _is_short_line(ln))
    head_mentions, head_regions = read_places("\n".join((*head, *tail)))
    text_mentions, text_regions = read_places(text)
    regions = Counter({r: n * _HEAD_WEIGHT for r, n in head_regions.items()}) + text_regions
    towns = [m.name for m in read_places(short)[0] if m.district and m.name != m.district]
    if towns:
        return towns[0], regions
    scores: Counter[str] = Counter()
    first: dict[str, int] = {}
    for weight, mentions in ((_HEAD_WEIGHT, head_mentions), (1, text_mentions)):
        for mention in mentions:
            if mention.district:
                scores[mention.district] += weight
                first.setdefault(mention.district, mention.start if weight == 1 else -1)
    if not scores:
        return "", regions
    return max(scores, key=lambda d: (scores[d], -first[d])), regions


def _place(district: str, regions: Counter[str], city: str = "", province: str = "") -> tuple[str, str, str]:
    """(city, province, code) of a report's district: the unit identified, else what was given."""
    county = identify(district, regions, city, province) if district else None
    return (county.city, county.province, county.code) if county else (city, province, "")


def _only_regions(prefix: str) -> bool:
    """True for what may stand before a district in an organisation's name: 中共, 北京市, 吉林省长春市."""
    rest = prefix.removeprefix("中共")
    regions = gazetteer().regions
    while rest:
        region = next((r for r in regions if regions[r] == r and rest.startswith(r)), "")
        if not region:
            return False
        rest = rest[len(region) :]
    return True


def _short_body(org: str) -> str:
    """重庆市开州区大进镇人民政府 → 大进镇人民政府; 重庆市荣昌区司法局 → 区司法局."""
    mention = next(iter(read_places(org)[0]), None)
    if mention and mention.district and _only_regions(org[: mention.start]):
        org = org[mention.start :]
        mention = next(iter(read_places(org)[0]))
        rest = org[mention.end :]
        if mention.name != mention.district:  # a town keeps its own name
            return mention.name[len(mention.district) :] + rest
        return mention.district[-1] + rest
    return org


def _detect_body(title: str, head: list[str], tail: list[str], text: str) -> str:
    folded_title = fold(title)
    if "关于" in folded_title and folded_title.index("关于") > 0:
        return _short_body(folded_title[: folded_title.index("关于")])
    orgs = _org_lines(head, tail)
    # A government before a party committee: the report is the government's.
    for suffix in ("人民政府", "政府", "局", "办公室", "委员会"):
        for org in orgs:
            if org.endswith(suffix):
                return _short_body(org)
    match = _BODY_IN_TEXT.search(fold("\n".join(head))) or _BODY_IN_TEXT.search(fold(text[:2000]))
    return match.group(0) if match else ""


def compose_title(district: str, year: int | None) -> str:
    """The title of a report that has no title line: 沙坪坝区2023年法治政府建设情况报告."""
    return f"{district}{f'{year}年' if year else ''}法治政府建设情况报告"


def detect_metadata(text: str, file: str, sections: list[Section] | None = None) -> ReportMeta:
    """District (with city, province and code), year, issuing body and title of a report, from its text.

    The title is the report's title line, else composed from district and year, else
    (district unknown) the file's stem. `sections` are text's parse_sections, if the caller has them.
    """
    head, tail = _head_and_tail(text, parse_sections(text) if sections is None else sections)
    title = _title_line(head)
    year = _detect_year(title, head, text)
    district, regions = _detect_district(text, head, tail)
    body = _detect_body(title, head, tail, text)
    if not title:
        title = compose_title(district, year) if district else Path(file).stem
    city, province, code = _place(district, regions)
    return ReportMeta(district=district, year=year, body=body, title=title, city=city, province=province,
                      district_code=code)


def sidecar_path(path: Path) -> Path:
    """Where the metadata sidecar of a report lives: beside it, named <file name>.meta.yaml."""
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _read_sidecar(path: Path) -> dict:
    sidecar = sidecar_path(path)
    if not sidecar.exists():
        return {}
    fix = f"Fix or delete {sidecar}: it must be a YAML mapping with any of the keys {', '.join(FIELDS)}."
    try:
        raw = yaml.safe_load(sidecar.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as err:
        raise BadFileError(f"Metadata sidecar {sidecar} cannot be read ({err}). {fix}") from err
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BadFileError(f"Metadata sidecar {sidecar} is not a mapping. {fix}")
    fields = _validate_fields(raw, f"Metadata sidecar {sidecar}", fix)
    return {k: v for k, v in fields.items() if v is not None}  # null: not overridden


def _validate_fields(raw: dict, origin: str, fix: str) -> dict:
    unknown = sorted(str(k) for k in raw if k not in FIELDS)
    if unknown:
        raise BadFileError(f"{origin} has unknown keys {', '.join(unknown)}. {fix}")
    fields = {}
    for key, value in raw.items():
        if key == "year":
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                if isinstance(value, str) and re.fullmatch(r"[0-9]{4}", value.strip()):
                    value = int(value)
                else:
                    raise BadFileError(f"{origin}: year must be a whole number like 2024, not {value!r}. {fix}")
            if value is not None and not FIRST_YEAR <= value <= LAST_YEAR:
                raise BadFileError(f"{origin}: year {value} is not between {FIRST_YEAR} and {LAST_YEAR}. {fix}")
        elif value is not None and not isinstance(value, str):
            raise BadFileError(f"{origin}: {key} must be text, not {value!r}. {fix}")
        elif value is not None:
            value = value.strip()
        fields[key] = value
    return fields


def report_metadata(report: LoadedReport) -> ReportMeta:
    """Detected metadata of a report, with its sidecar's fields (if any) taking precedence."""
    detected = detect_metadata(report.text, report.file, report.sections)
    overrides = _read_sidecar(report.path)
    meta = replace(detected, **overrides)
    if "title" not in overrides and detected.title == compose_title(detected.district, detected.year):
        meta.title = compose_title(meta.district, meta.year)  # a composed title follows the fix
    if overrides.keys() & _PLACE_FIELDS:
        given = (overrides.get("city", ""), overrides.get("province", ""))
        meta.city, meta.province, meta.district_code = _place(meta.district, read_places(report.text)[1], *given)
    return meta


def write_sidecar(path: Path, **fields) -> Path:
    """Merge fields (district, year, body, title, city, province) into the sidecar of the report at path.

    A field given as None is removed from the sidecar, so detection applies to it again.
    Returns the sidecar's path.
    """
    path = Path(path)
    fix = f"Pass only {', '.join(FIELDS)}."
    given = _validate_fields(fields, "write_sidecar", fix)
    merged = {**_read_sidecar(path), **given}
    merged = {k: merged[k] for k in FIELDS if merged.get(k) is not None}
    sidecar = sidecar_path(path)
    partial = sidecar.with_name(sidecar.name + ".partial")
    partial.write_text(yaml.safe_dump(merged, allow_unicode=True, sort_keys=False), encoding="utf-8")
    os.replace(partial, sidecar)
    return sidecar
