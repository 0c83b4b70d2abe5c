"""The district gazetteer: full and short names, Traditional script, towns, and no false hits."""

from __future__ import annotations

import pytest

from rag.districts import DISTRICTS, district_mentions, find_districts
from rag.text import fold


@pytest.mark.parametrize(
    "text, expected",
    [
        ("荣昌区2024年法治政府建设情况如何？", ["荣昌区"]),
        ("沙区司法局开设了抖音号吗", ["沙坪坝区"]),
        ("沙坪坝和九龙坡区哪个调解案件多", ["沙坪坝区", "九龙坡区"]),
        ("梁平區的調解成功率是多少", ["梁平区"]),
        ("沙坪壩區", ["沙坪坝区"]),
        ("大进镇有几个调解委员会", ["大进镇"]),
        ("开州区大进镇人民政府", ["开州区大进镇"]),
        ("开州区大进镇的网格有多少个？大进镇还做了什么", ["开州区大进镇"]),
        ("渝北区", ["渝北区"]),
        ("江北区和渝北区", ["江北区", "渝北区"]),
        ("荣昌县", ["荣昌区"]),  # the old name still names the district
        ("加快打造精准普法九龙坡样板", ["九龙坡区"]),
        ("夯实平安梁平法治根基", ["梁平区"]),
        ("石柱、秀山、酉阳和彭水", ["石柱土家族自治县", "秀山土家族苗族自治县", "酉阳土家族苗族自治县", "彭水苗族土家族自治县"]),
        ("忠县和万州、荣昌，梁平", ["忠县", "万州区", "荣昌区", "梁平区"]),
        ("沙坪坝区覃家岗街道的调解", ["沙坪坝区覃家岗街道"]),
    ],
)
def test_find_districts(text, expected):
    assert find_districts(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "全年调解矛盾纠纷1.16万件，调解成功率为99.8%",
        "经济繁荣昌盛",            # 荣昌 inside 繁荣昌盛
        "长江北岸的码头",           # 江北 inside 长江北岸
        "浙江北部",
        "重庆江北国际机场",         # the airport is in 渝北区, not 江北区
        "联合川渝两地开展执法",      # 合川 inside 联合川渝
        "成渝中线高铁",             # 渝中 inside 成渝中线
        "健康长寿",
        "推进镇街综合执法改革",      # no town named 推进镇
        "全区乡镇和村社",
        "风沙区域治理",
        "桥梁平稳运行",
        "召开州委会议",
        "达州市达川区、大竹县、渠县、开江县等地检察机关",  # Sichuan, not Chongqing
        "川南渝西四市四区",
        "",
    ],
)
def test_no_false_hits(text):
    assert find_districts(text) == []


def test_gazetteer_has_38_simplified_full_names():
    assert len(DISTRICTS) == len(set(DISTRICTS)) == 38
    assert sum(d.endswith("区") for d in DISTRICTS) == 26
    assert all(fold(d) == d for d in DISTRICTS)  # names are matched against folded text
    assert all(find_districts(d) == [d] for d in DISTRICTS)


def test_traditional_full_names_match():
    assert find_districts("九龍坡區、開州區、長壽區、豐都縣、墊江縣") == ["九龙坡区", "开州区", "长寿区", "丰都县", "垫江县"]


def test_towns_passed_in_are_recognised_alone():
    assert find_districts("古昌镇的法律明白人") == []
    assert find_districts("古昌镇的法律明白人", towns=["古昌镇"]) == ["古昌镇"]


def test_mentions_carry_offsets_into_the_original_text():
    text = "據開州區大進鎮報告，梁平區"
    mentions = district_mentions(text)
    assert [(m.name, m.district, text[m.start : m.end]) for m in mentions] == [
        ("开州区大进镇", "开州区", "開州區大進鎮"),
        ("梁平区", "梁平区", "梁平區"),
    ]
