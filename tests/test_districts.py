"""The district gazetteer: full and short names, Traditional script, English and pinyin, towns,
the whole country with codes, names two units share, and no false hits."""

from __future__ import annotations

import pytest

from rag.districts import (
    DISTRICTS, district_english, district_mentions, find_districts, gazetteer, identify, names_district, place_label,
    read_places,
)
from rag.text import fold

CHONGQING = sorted(c.name for c in gazetteer().counties if c.province == "重庆市")


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
        "川南渝西四市四区",
        "建成“甬江北”法律服务驿站",  # 宁波's 甬江北, not 江北
        # short forms and common words of other provinces: 平安区, 合作市, 资源县, 城区, 和县, 兴县, 新城区
        "推进平安建设，深化区域合作市场监管，盘活水资源",
        "城区道路和矿区、郊区的综合治理",
        "省、市和县级政府，乡村振兴县域经济，加快新城区建设",
        "",
    ],
)
def test_no_false_hits(text):
    assert find_districts(text) == []


def test_the_gazetteer_holds_the_whole_country_with_codes():
    counties = gazetteer().counties
    assert len(counties) > 2800 and len({c.code for c in counties}) == len(counties)
    assert all(len(c.code) == 6 and c.code.isdigit() and c.province for c in counties)
    # every unit is found, written after its city (乾县 is folded to 干县 like the text it is sought in)
    assert all(find_districts(c.region + c.name) == [c.name] for c in counties if c.region != c.name)
    assert len(DISTRICTS) == len({c.name for c in counties})
    # Chongqing: the 37 units in force (两江新区 since 2025-11) and the two it replaced, all matched whole
    assert len(CHONGQING) == 39 and {"两江新区", "江北区", "渝北区", "荣昌区", "石柱土家族自治县"} <= set(CHONGQING)
    assert all(find_districts(d) == [d] for d in CHONGQING)
    wuhou = gazetteer().named("武侯区")[0]
    assert (wuhou.code, wuhou.city, wuhou.province) == ("510107", "成都市", "四川省")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("成都市武侯区2024年法治政府建设情况报告", [("武侯区", ["510107"])]),
        ("达州市达川区、大竹县、渠县、开江县等地检察机关", [("达川区", ["511703"]), ("大竹县", ["511724"]),
                                                       ("渠县", ["511725"]), ("开江县", ["511723"])]),
        ("朝阳区", [("朝阳区", ["110105", "220104"])]),                  # two units of one name: both kept
        ("北京市朝阳区和长春市朝阳区", [("朝阳区", ["110105"]), ("朝阳区", ["220104"])]),  # told apart by the city
        ("吉林省长春市朝阳区", [("朝阳区", ["220104"])]),
        ("南京鼓楼区与福州鼓楼区", [("鼓楼区", ["320106"]), ("鼓楼区", ["350102"])]),       # short city names
        ("重庆市江北区", [("江北区", ["500105"])]),                        # the former unit, not 宁波's
        ("阳泉市城区", [("城区", ["140302"])]),                            # a common word, named with its city
        ("忠县、渠县", [("忠县", ["500233"]), ("渠县", ["511725"])]),
        ("武侯的法律援助", []),                                          # 武侯: a short form nobody checked
    ],
)
def test_units_of_the_whole_country_with_their_codes(text, expected):
    assert [(m.name, sorted(m.codes)) for m in district_mentions(text)] == expected


def test_short_forms_of_known_units_count():
    assert find_districts("武侯的法律援助", known={"510107"}) == ["武侯区"]
    assert find_districts("Wuhou legal aid", known={"510107"}) == ["武侯区"]
    assert find_districts("Wuhou District legal aid") == ["武侯区"]  # a full name needs no knowing


def test_regions_named_are_counted_by_full_name():
    _, regions = read_places("北京市朝阳区司法局。首都北京，北京市委。吉林")
    assert regions == {"北京市": 3, "吉林省": 1}


@pytest.mark.parametrize(
    "district, regions, city, expected",
    [
        ("武侯区", {}, "", "510107"),                                # the only one of its name
        ("朝阳区", {"长春市": 2, "北京市": 1}, "", "220104"),         # the prefecture the report names most
        ("朝阳区", {"吉林省": 1}, "", "220104"),                      # or its province
        ("朝阳区", {}, "北京市", "110105"),                           # a city given (a sidecar) decides
        ("朝阳区", {"北京市": 1, "长春市": 1}, "", None),              # a tie tells nothing
        ("开州区大进镇", {}, "", "500154"),                          # a town: its district's unit
        ("某某新区", {}, "", None),
    ],
)
def test_identify_a_reports_unit(district, regions, city, expected):
    county = identify(district, regions, city=city)
    assert (county.code if county else None) == expected


def test_a_name_two_units_share_is_written_with_its_city():
    assert place_label("朝阳区", "北京市", "北京市") == "北京市朝阳区"
    assert place_label("鼓楼区", "南京市", "江苏省") == "南京市鼓楼区"
    assert place_label("荣昌区", "重庆市", "重庆市") == "荣昌区"
    assert place_label("朝阳区") == "朝阳区"  # a report whose city is unknown keeps its bare name


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


# ---- English and pinyin ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("How many legal aid cases did Rongchang District accept in 2024?", ["荣昌区"]),
        ("What did Shapingba do on foreign-related rule of law?", ["沙坪坝区"]),
        ("Jiulongpo District's mediation success rate", ["九龙坡区"]),
        ("Compare Liangping and Rongchang", ["梁平区", "荣昌区"]),
        ("rongchang qu", ["荣昌区"]),
        ("Shapingba Qu", ["沙坪坝区"]),
        ("Sha Ping Ba", ["沙坪坝区"]),
        ("sha-ping-ba district", ["沙坪坝区"]),
        ("SHAPINGBA", ["沙坪坝区"]),
        ("Sha Qu", ["沙坪坝区"]),                  # 沙区
        ("Rongchang County", ["荣昌区"]),          # like 荣昌县, the old name
        ("Nan'an District and Beibei", ["南岸区", "北碚区"]),
        ("Yuzhong, Yubei and Jiangbei", ["渝中区", "渝北区", "江北区"]),
        ("Zhong County", ["忠县"]),
        ("Zhongxian", ["忠县"]),
        ("zhong xian", ["忠县"]),
        ("Fengdu County", ["丰都县"]),              # pypinyin reads 丰都 as feng dou
        ("Changshou, Fuling, Qijiang, Dadukou, Bishan, Tongnan, Wuxi",
         ["长寿区", "涪陵区", "綦江区", "大渡口区", "璧山区", "潼南区", "巫溪县"]),
        ("Shizhu Tujia Autonomous County", ["石柱土家族自治县"]),
        ("Xiushan, Youyang and Pengshui", ["秀山土家族苗族自治县", "酉阳土家族苗族自治县", "彭水苗族土家族自治县"]),
        ("the changshou", ["长寿区"]),             # a whole word, so it names 长寿区
        ("荣昌区和Liangping的调解", ["荣昌区", "梁平区"]),
        ("Ｒｏｎｇｃｈａｎｇ", ["荣昌区"]),             # full-width letters
        ("What did Dajin Town do?", ["大进镇"]),
        ("dajin zhen", ["大进镇"]),
        ("Dajin Town, Kaizhou", ["开州区大进镇"]),
        ("Dajin Town, Kaizhou District", ["开州区大进镇"]),
        ("Kaizhou Dajin Town", ["开州区大进镇"]),
        ("Dajin Town, Kaizhou and Liangping", ["开州区大进镇", "梁平区"]),
    ],
)
def test_find_districts_in_english_and_pinyin(text, expected):
    assert find_districts(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "How many cases were handled in total?",
        "Which district has the highest mediation success rate?",
        "Kaixian",                      # the old name of 开州区 is not matched
        "Kai Xian",
        "Sha Xian snacks",              # 沙县 is in Fujian
        "Zhong",                        # 忠 alone is a common word
        "Zhongguo",
        "Rongchangsheng",               # pinyin only as a whole word
        "xShapingba",
        "bananas",                      # banan
        "Dajin",                        # a town needs Town or Zhen after it
        "Guchang Town",                 # not a known town
        "Chongqing Jiangbei International Airport",  # in 渝北区, not 江北区
        "Qu County District",            # a one-syllable name (渠县) only where checked
    ],
)
def test_no_false_hits_in_english(text):
    assert find_districts(text) == []


@pytest.mark.parametrize(
    "text, codes",
    [
        ("Chaoyang District, Beijing", ["110105"]),       # as district_english writes it
        ("Chaoyang District of Changchun", ["220104"]),
        ("Beijing's Chaoyang District", ["110105"]),
        ("Chaoyang County", ["211321"]),                  # 朝阳县, not 朝阳区
    ],
)
def test_english_names_are_narrowed_by_the_region_written_with_them(text, codes):
    assert [sorted(m.codes) for m in district_mentions(text)] == [codes]


def test_towns_passed_in_are_recognised_in_pinyin():
    assert find_districts("Guchang Town", towns=["古昌镇"]) == ["古昌镇"]
    assert find_districts("Guchang Town, Rongchang", towns=["古昌镇"]) == ["荣昌区古昌镇"]


def test_english_mentions_carry_offsets_into_the_original_text():
    text = "Per the Kaizhou District report, Dajin Town, Kaizhou, and 梁平區"
    assert [(m.name, m.district, text[m.start : m.end]) for m in district_mentions(text)] == [
        ("开州区", "开州区", "Kaizhou District"),
        ("开州区大进镇", "开州区", "Dajin Town, Kaizhou"),
        ("梁平区", "梁平区", "梁平區"),
    ]


ENGLISH = {
    "两江新区": "Liangjiang New Area",
    "万州区": "Wanzhou District", "涪陵区": "Fuling District", "渝中区": "Yuzhong District",
    "大渡口区": "Dadukou District", "江北区": "Jiangbei District", "沙坪坝区": "Shapingba District",
    "九龙坡区": "Jiulongpo District", "南岸区": "Nan'an District", "北碚区": "Beibei District",
    "綦江区": "Qijiang District", "大足区": "Dazu District", "渝北区": "Yubei District",
    "巴南区": "Banan District", "黔江区": "Qianjiang District", "长寿区": "Changshou District",
    "江津区": "Jiangjin District", "合川区": "Hechuan District", "永川区": "Yongchuan District",
    "南川区": "Nanchuan District", "璧山区": "Bishan District", "铜梁区": "Tongliang District",
    "潼南区": "Tongnan District", "荣昌区": "Rongchang District", "开州区": "Kaizhou District",
    "梁平区": "Liangping District", "武隆区": "Wulong District", "城口县": "Chengkou County",
    "丰都县": "Fengdu County", "垫江县": "Dianjiang County", "忠县": "Zhong County",
    "云阳县": "Yunyang County", "奉节县": "Fengjie County", "巫山县": "Wushan County",
    "巫溪县": "Wuxi County", "石柱土家族自治县": "Shizhu Tujia Autonomous County",
    "秀山土家族苗族自治县": "Xiushan Tujia and Miao Autonomous County",
    "酉阳土家族苗族自治县": "Youyang Tujia and Miao Autonomous County",
    "彭水苗族土家族自治县": "Pengshui Miao and Tujia Autonomous County",
}


def test_every_district_has_an_english_name_that_routes_back():
    assert set(ENGLISH) == set(CHONGQING)
    for name in CHONGQING:
        english = district_english(name)
        assert english == ENGLISH[name]
        assert find_districts(english) == find_districts(english.lower()) == [name]


@pytest.mark.parametrize(
    "name, english",
    [
        ("开州区大进镇", "Dajin Town, Kaizhou District"),
        ("大进镇", "Dajin Town"),
        ("梁平區", "Liangping District"),
        ("北京市朝阳区", "Chaoyang District, Beijing"),
        ("长春市朝阳区", "Chaoyang District, Changchun"),
        ("", ""),
    ],
)
def test_district_english(name, english):
    assert district_english(name) == english


@pytest.mark.parametrize(
    "named, district, expected",
    [
        ("荣昌区", "荣昌区", True),
        ("开州区", "开州区大进镇", True),   # a district names its towns' reports
        ("大进镇", "开州区大进镇", True),   # and a town named alone its own
        ("荣昌区", "梁平区", False),
        ("荣昌区", "", False),             # a report whose district is unknown is named by nothing
        ("荣昌区", "  ", False),
        ("", "荣昌区", False),             # and a blank name names nothing
        ("", "", False),
    ],
)
def test_names_district_never_takes_a_blank_for_a_wildcard(named, district, expected):
    assert names_district(named, district) is expected
