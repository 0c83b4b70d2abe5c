"""District (with city, province and code), year, body and title of the seeds; sidecar overrides."""

from __future__ import annotations

import shutil

import pytest
import yaml

from rag.errors import BadFileError
from rag.loading import load_report
from rag.metadata import ReportMeta, detect_metadata, report_metadata, sidecar_path, write_sidecar
from rag.settings import PROJECT_ROOT

SEEDS = PROJECT_ROOT / "seeds"


def chongqing(district: str, year, body: str, title: str, code: str) -> ReportMeta:
    return ReportMeta(district, year, body, title, "重庆市", "重庆市", code)


@pytest.mark.parametrize(
    "name, expected",
    [
        # the district is named only in passing (九龙坡样板)
        ("000_cd1dfdaf8535a5bd.txt", chongqing("九龙坡区", 2025, "区司法局", "区司法局关于2025年法治政府建设情况的报告", "500107")),
        # Traditional script; the body also mentions 2025年新收復議案件, but the report is on 2024
        ("001_467031b72275275f.txt", chongqing("梁平区", 2024, "区司法局", "梁平区2024年法治政府建设情况报告", "500155")),
        # no title line: the title is composed
        ("002_23abab8cc5084cfd.txt", chongqing("沙坪坝区", 2023, "区司法局", "沙坪坝区2023年法治政府建设情况报告", "500106")),
        # the body is in the signature line 重庆市荣昌区人民政府
        ("003_190862aaa87d2635.txt", chongqing("荣昌区", 2024, "区人民政府", "关于2024年法治政府建设情况的报告", "500153")),
        # a town keeps its district; the government, not the party committee, is the body
        ("004_d150b2aa907695eb.txt", chongqing("开州区大进镇", 2025, "大进镇人民政府", "关于2025年度法治政府建设情况的报告", "500154")),
    ],
)
def test_seed_metadata(name, expected):
    text = (SEEDS / name).read_text(encoding="utf-8")
    assert detect_metadata(text, name) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("重庆市江北区司法局关于2023年法治政府建设情况的报告\n2023年，我局……\n一、主要举措\n正文。",
         chongqing("江北区", 2023, "区司法局", "重庆市江北区司法局关于2023年法治政府建设情况的报告", "500105")),
        ("2022年，區司法局堅持……萬州區法治建設……\n一、主要舉措\n萬州區2021-2025年規劃。",
         chongqing("万州区", 2022, "区司法局", "万州区2022年法治政府建设情况报告", "500101")),
        ("# 梁平区2024法治政府建设报告\n一、成效\n正文。", chongqing("梁平区", 2024, "", "梁平区2024法治政府建设报告", "500155")),
        ("一些没有地名和年份的正文。", ReportMeta("", None, "", "report_x")),
    ],
)
def test_detect_metadata_on_other_texts(text, expected):
    assert detect_metadata(text, "report_x.txt") == expected


@pytest.fixture
def report_copy(tmp_path):
    path = tmp_path / "002_23abab8cc5084cfd.txt"
    shutil.copy(SEEDS / path.name, path)
    return path


def test_sidecar_overrides_detection(report_copy):
    sidecar_path(report_copy).write_text("district: 沙坪坝区\nyear: 2022\nbody: 区人民政府\n", encoding="utf-8")
    meta = report_metadata(load_report(report_copy, max_bytes=10**6))
    # the composed title follows the corrected year
    assert meta == chongqing("沙坪坝区", 2022, "区人民政府", "沙坪坝区2022年法治政府建设情况报告", "500106")


@pytest.mark.parametrize(
    "sidecar, expected",
    [
        # a district of another name: its unit is looked up again (the only 北碚区)
        ("district: 北碚区\n", ("北碚区", "重庆市", "重庆市", "500109")),
        # a name two units share: the city given tells which
        ("district: 朝阳区\ncity: 长春市\n", ("朝阳区", "长春市", "吉林省", "220104")),
        ("district: 朝阳区\nprovince: 北京市\n", ("朝阳区", "北京市", "北京市", "110105")),
        # a name the gazetteer does not know keeps what is given, with no code
        ("district: 高新区\ncity: 重庆市\n", ("高新区", "重庆市", "", "")),
    ],
)
def test_sidecar_district_city_and_province_identify_the_unit(report_copy, sidecar, expected):
    sidecar_path(report_copy).write_text(sidecar, encoding="utf-8")
    meta = report_metadata(load_report(report_copy, max_bytes=10**6))
    assert (meta.district, meta.city, meta.province, meta.district_code) == expected


def test_without_sidecar_metadata_is_detected(report_copy):
    assert report_metadata(load_report(report_copy, max_bytes=10**6)).year == 2023


def test_write_sidecar_merges_and_none_removes(report_copy):
    sidecar = write_sidecar(report_copy, year=2022)
    assert sidecar == report_copy.with_name(report_copy.name + ".meta.yaml")
    write_sidecar(report_copy, title="沙坪坝区司法局2022年报告")
    assert yaml.safe_load(sidecar.read_text(encoding="utf-8")) == {"year": 2022, "title": "沙坪坝区司法局2022年报告"}
    write_sidecar(report_copy, year=None)
    meta = report_metadata(load_report(report_copy, max_bytes=10**6))
    assert (meta.year, meta.title) == (2023, "沙坪坝区司法局2022年报告")


@pytest.mark.parametrize(
    "content, reason",
    [
        ("district: [沙坪坝区\n", "cannot be read"),
        ("- 沙坪坝区\n", "not a mapping"),
        ("distrct: 沙坪坝区\n", "unknown keys distrct"),
        ("year: twenty\n", "year must be a whole number"),
        ("district: 12\n", "district must be text"),
    ],
)
def test_malformed_sidecar_is_named(report_copy, content, reason):
    sidecar_path(report_copy).write_text(content, encoding="utf-8")
    with pytest.raises(BadFileError) as err:
        report_metadata(load_report(report_copy, max_bytes=10**6))
    assert str(sidecar_path(report_copy)) in str(err.value)
    assert reason in str(err.value)


def test_write_sidecar_refuses_unknown_fields(report_copy):
    with pytest.raises(BadFileError, match="unknown keys colour"):
        write_sidecar(report_copy, colour="red")
    assert not sidecar_path(report_copy).exists()
