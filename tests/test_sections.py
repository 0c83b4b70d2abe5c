"""Heading paths of the five seeds, and the rules that tell headings from body text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.schema import SECTION_SEPARATOR
from rag.sections import Section, cn_number, heading_only, heading_text, parse_sections
from rag.settings import PROJECT_ROOT

SEEDS = PROJECT_ROOT / "seeds"

# Per seed: the L1 headings in order, each with its L2 headings in order.
EXPECTED = {
    "000_cd1dfdaf8535a5bd.txt": [
        ("一、2025年推进法治政府建设的主要举措和成效", [
            "一是坚持党的绝对领导,整体重塑司法行政工作体系",
            "二是优化依法行政“四率”,切实增强法治政府建设质效",
            "三是高质量办好“三件要事”,全面提高公共法律服务水平",
            "四是打造涉外法律服务联盟,法治助力重庆枢纽港高质量发展",
            "五是深化行政执法一体化改革,加快营造一流法治化营商环境",
            "六是强化数字赋能作用,持续筑牢法治保障坚实基础",
        ]),
        ("二、2025年党政主要负责人履行推进法治建设第一责任人职责,加强法治政府建设的有关情况", []),
        # one paragraph opening 一是 and carrying 二是, 三是 inside it: body text, not headings
        ("三、2025年推进法治政府建设存在的不足和原因", []),
        ("四、2026年推进法治政府建设的主要安排", [
            "一是着力构建“统筹有力、监督有效”的全面依法治区运行机制",
            "二是着力构建“投资放心、创业安心”的法治化营商环境",
            "三是着力构建“国际化、专业化”的涉外法律服务综合平台",
            "四是着力构建“系统集成、整体智治”的数字法治综合场景",
            "五是着力构建“法治保障、多元共治”基层治理体系",
        ]),
    ],
    "001_467031b72275275f.txt": [
        ("一、2024法治政府建設工作情況", [
            "(一)高位統籌謀劃,全面提升依法治區能力",
            "(二)強化改革驅動,持續推進依法行政",
            "(三)踐行法治為民,提升優質公共法律服務",
            "(四)防范化解風險,夯實平安梁平法治根基",
        ]),
        ("二、存在的問題", []),  # its 一是… paragraphs are not headings: the report has (一)
        ("三、下一步工作打算", [
            "(一)錨定法治建設目標,持續抓好法治建設統籌不松勁",
            "(二)聚焦法治建設重點,持續強化法治政府建設不停步",
            "(三)緊抓防范化解關鍵,堅決守牢平安穩定陣地不懈怠",
            "(四)深化法治惠民舉措,持續做好公共法律服務不斷檔",
        ]),
    ],
    "002_23abab8cc5084cfd.txt": [
        ("一、推进法治政府建设的主要举措和成效", [
            "（一）推动法治建设，不断提升法治影响力",
            "（二）统筹法治资源，不断提升法治整合力",
            "（三）践行为民初心，不断提升法治服务力",
            "（四）推进依法行政，不断提升法治规范力",
            "（五）维护平安稳定，不断提升法治治理力",
        ]),
        ("二、党政主要负责人履行推进法治建设第一责任人职责情况", []),
        ("3、 存在不足和原因", []),
        ("四、2024年工作思路及目标举措", [
            "（一）始终坚持党建引领法治建设",
            "（二）持续推进法治改革重点工作",
            "（三）不断夯实法治建设基础条件",
            "（四）全力推进涉外法治实践探索",
        ]),
    ],
    "003_190862aaa87d2635.txt": [
        ("一、2024年推进法治政府建设的主要举措、工作成效", [
            "（一）坚持党建引领，推动法治政府建设决策部署落地见效",
            "（二）强化服务保障，法治护航高质量发展和高水平治理",
            "（三）聚焦公正便民，大力优化法治化营商环境",
            "（四）坚持依法行政，持续深化行政执法体制改革",
            "（五）夯实基层体系，着力提升政府治理能力水平",
        ]),
        ("二、2025年推进法治政府建设的工作思路和目标任务", [
            "（一）大力推进法治政府建设",
            "（二）持续优化法治化营商环境",
            "（三）不断提升行政执法质效",
            "（四）提升法治服务保障水平",
        ]),
    ],
    "004_d150b2aa907695eb.txt": [
        ("一、2025年推进法治政府建设的主要举措和成效", [
            "(一)坚持政治引领,全力夯实法治政府建设责任",
            "(二)聚焦主责主业,依法行政能力得到新提升",
            "(三)聚焦规范公正,行政执法水平迈上新台阶",
            "(四)聚焦治理效能,有力提升社会治理法治化水平",
        ]),
        ("二、2025年推进法治政府建设存在的不足和原因", [
            "(一)依法行政能力有待进一步提升",
            "(二)基层法治力量相对薄弱",
            "(三)普法宣传的精准性和实效性有待增强",
        ]),
        ("三、2026年推进法治政府建设的工作思路、目标举措", ["(一)工作思路", "(二)目标举措"]),
    ],
}

SUBHEADINGS_003 = [
    "1．深入学习贯彻习近平法治思想", "2．全面落实法治政府建设职责", "3．健全完善党建统领工作体系",
    "1．服务保障成渝地区双城经济圈建设", "2．依法保障“三攻坚一盘活”改革突破",
    "1．构建系统完备的制度环境", "2．构建便民利企的政务环境", "3．构建严格规范的执法环境",
    "1．不断完善依法行政制度体系", "2．统筹推进“大综合一体化”行政执法改革", "3．加强行政执法监督机制和能力建设",
    "1．强化行政复议化解行政争议主渠道作用", "2．迭代完善现代化公共法律服务体系", "3．加快构建大调解工作格局",
    "4．精准普法实践创新深化",
]


def _distinct_paths(sections: list[Section]) -> list[str]:
    paths: list[str] = []
    for section in sections:
        if section.path and section.path not in paths:
            paths.append(section.path)
    return paths


def _assert_contiguous(text: str, sections: list[Section]) -> None:
    assert sections[0].start == 0 and sections[-1].end == len(text)
    assert all(a.end == b.start for a, b in zip(sections, sections[1:]))
    assert all(s.end > s.start for s in sections)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_seed_heading_paths(name):
    text = (SEEDS / name).read_text(encoding="utf-8")
    sections = parse_sections(text)
    _assert_contiguous(text, sections)
    expected = []
    for l1, l2s in EXPECTED[name]:
        expected.append(l1)
        expected.extend(l1 + SECTION_SEPARATOR + l2 for l2 in l2s)
    assert _distinct_paths(sections) == expected
    assert sections[0].path == ""  # the title and opening paragraph come before any heading


# Sections that do not open with their own heading: only 003's closing problems paragraph.
NOT_AT_A_HEADING = {"003_190862aaa87d2635.txt": ["2024年，全区法治政府建设工作取得了一些成效"]}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_section_starts_at_its_heading_line(name):
    text = (SEEDS / name).read_text(encoding="utf-8")
    elsewhere = []
    for section in parse_sections(text):
        if not section.path:
            continue
        assert section.start == 0 or text[section.start - 1] == "\n"
        heading = section.subheading or section.path.rsplit(SECTION_SEPARATOR, 1)[-1]
        body = text[section.start : section.end].lstrip()
        if not body.startswith(heading):
            elsewhere.append(body[:23])
    assert elsewhere == NOT_AT_A_HEADING.get(name, [])


def test_003_items_are_subheadings_and_not_in_the_path():
    sections = parse_sections((SEEDS / "003_190862aaa87d2635.txt").read_text(encoding="utf-8"))
    assert [s.subheading for s in sections if s.subheading] == SUBHEADINGS_003
    assert all("1．" not in s.path for s in sections)


def test_003_problems_paragraph_belongs_to_its_part_not_to_the_last_item():
    text = (SEEDS / "003_190862aaa87d2635.txt").read_text(encoding="utf-8")
    where = text.index("2024年，全区法治政府建设工作取得了一些成效")
    section = next(s for s in parse_sections(text) if s.start <= where < s.end)
    assert (section.path, section.subheading) == ("一、2024年推进法治政府建设的主要举措、工作成效", "")
    assert section.start == where


def test_003_item_continuation_line_stays_with_its_item():
    text = (SEEDS / "003_190862aaa87d2635.txt").read_text(encoding="utf-8")
    where = text.index("体系化、常态化学习研讨")
    section = next(s for s in parse_sections(text) if s.start <= where < s.end)
    assert section.subheading == "1．深入学习贯彻习近平法治思想"


@pytest.mark.parametrize(
    "line, heading",
    [
        ("（一）推动法治建设，不断提升法治影响力。一是向内深耕加强自身建设。", "（一）推动法治建设，不断提升法治影响力"),
        ("      四、2024年工作思路及目标举措", "四、2024年工作思路及目标举措"),
        ("(一)高位統籌謀劃,全面提升依法治區能力", "(一)高位統籌謀劃,全面提升依法治區能力"),
        ("三是在增强普法实效上探索新路径:实施精准普法。", "三是在增强普法实效上探索新路径"),
        ("（一）坚持党建引领，推动法治政府建设决策部署落地见效。", "（一）坚持党建引领，推动法治政府建设决策部署落地见效"),
        ("## 二、存在的问题", "二、存在的问题"),
    ],
)
def test_heading_text_is_cut_at_the_first_full_stop(line, heading):
    assert heading_text(line) == heading


@pytest.mark.parametrize(
    "line, expected",
    [("一、2025年推进法治政府建设的主要举措和成效", True), ("（一）大力推进法治政府建设。", True),
     ("（一）大力推进法治政府建设。持续开展学习。", False), ("", False)],
)
def test_heading_only(line, expected):
    assert heading_only(line) is expected


@pytest.mark.parametrize("numeral, value", [("一", 1), ("九", 9), ("十", 10), ("十二", 12), ("二十", 20), ("二十三", 23)])
def test_cn_number(numeral, value):
    assert cn_number(numeral) == value


def _paths(text: str) -> list[tuple[str, str]]:
    return [(s.path, s.subheading) for s in parse_sections(text)]


def test_arabic_item_list_is_not_a_top_level_heading():
    text = "一、成效\n工作如下：\n1、建章立制\n2、强化执法\n3、优化服务\n二、问题\n问题如下。\n"
    paths = [p for p, _ in _paths(text)]
    assert "3、优化服务" not in paths
    assert paths[-1] == "二、问题"


def test_arabic_heading_between_top_level_headings():
    text = "一、成效\n正文。\n二、职责\n正文。\n3、 存在不足\n正文。\n四、打算\n正文。\n"
    assert [p for p, _ in _paths(text) if p] == ["一、成效", "二、职责", "3、 存在不足", "四、打算"]


def test_inline_list_of_chinese_numerals_is_not_a_heading():
    text = "一、成效\n正文。\n二、问题\n一、制度不全。\n二、执法不严。\n三、服务不优。\n三、打算\n正文。\n"
    assert [p for p, _ in _paths(text) if p] == ["一、成效", "二、问题", "三、打算"]


def test_shi_paragraphs_are_level_two_only_without_a_paren_level():
    without = "一、成效\n一是甲。正文。\n二是乙。正文。\n"
    assert [p for p, _ in _paths(without)] == ["一、成效", "一、成效 > 一是甲", "一、成效 > 二是乙"]
    with_paren = "一、成效\n（一）丙。\n一是甲。正文。\n二是乙。正文。\n"
    assert [p for p, _ in _paths(with_paren)] == ["一、成效", "一、成效 > （一）丙"]


def test_lone_shi_paragraph_is_body_text():
    text = "一、问题\n一是甲不足。正文。二是乙不足。正文。\n"
    assert _paths(text) == [("一、问题", "")]


def test_text_without_headings_is_one_section():
    assert parse_sections("只有正文。没有标题。") == [Section("", "", 0, 10)]
    assert parse_sections("") == []


_FRAGMENTS = ["一、", "二、", "三、", "3、", "（一）", "(二)", "一是", "二是", "1．", "2.", "（1）", "。", "，", "：",
              "\n", "\r\n", "法治", "政府", "但存在不足", "2024年", " ", "#", "區", "ａ"]


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.text(max_size=300), st.lists(st.sampled_from(_FRAGMENTS), max_size=120).map("".join)))
def test_sections_always_cover_the_text(text):
    sections = parse_sections(text)
    if not text:
        assert sections == []
        return
    _assert_contiguous(text, sections)
    for section in sections:
        assert section.path == "" or section.path.split(SECTION_SEPARATOR)[0].strip()
