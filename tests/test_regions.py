"""Reports of many provinces (tests/data/regions): every report's place identified; two units of
one name (朝阳区 of 北京 and of 长春, 鼓楼区 of 南京 and of 福州) kept apart in routing and answers;
places outside the knowledge base refused; several years of one district."""

from __future__ import annotations

import pytest

from rag.answering import NOT_FOUND
from rag.loading import load_report
from rag.metadata import detect_metadata, report_metadata
from rag.pipeline import Pipeline
from rag.settings import PROJECT_ROOT
from tests.conftest import SEEDS, bm25_pipeline

REGIONS = PROJECT_ROOT / "tests" / "data" / "regions"

# file → (district, year, city, province, code)
IDENTITIES = {
    REGIONS / "beijing_chaoyang_2023.txt": ("朝阳区", 2023, "北京市", "北京市", "110105"),
    REGIONS / "beijing_chaoyang_2024.txt": ("朝阳区", 2024, "北京市", "北京市", "110105"),
    REGIONS / "changchun_chaoyang_2024.txt": ("朝阳区", 2024, "长春市", "吉林省", "220104"),
    REGIONS / "chengdu_wuhou_2022.txt": ("武侯区", 2022, "成都市", "四川省", "510107"),
    REGIONS / "chengdu_wuhou_2023.txt": ("武侯区", 2023, "成都市", "四川省", "510107"),
    REGIONS / "chengdu_wuhou_2024.txt": ("武侯区", 2024, "成都市", "四川省", "510107"),
    REGIONS / "nanjing_gulou_2024.txt": ("鼓楼区", 2024, "南京市", "江苏省", "320106"),  # the title names no city
    REGIONS / "fuzhou_gulou_2024.txt": ("鼓楼区", 2024, "福州市", "福建省", "350102"),
    REGIONS / "guangzhou_tianhe_2024.txt": ("天河区", 2024, "广州市", "广东省", "440106"),
    REGIONS / "hangzhou_xihu_2023.txt": ("西湖区", 2023, "杭州市", "浙江省", "330106"),
    REGIONS / "wuhan_jianghan_2024.txt": ("江汉区", 2024, "武汉市", "湖北省", "420103"),
    REGIONS / "zhengzhou_jinshui_2024.txt": ("金水区", 2024, "郑州市", "河南省", "410105"),
    REGIONS / "ningbo_jiangbei_2024.txt": ("江北区", 2024, "宁波市", "浙江省", "330205"),  # not 重庆's 江北区
    SEEDS / "000_cd1dfdaf8535a5bd.txt": ("九龙坡区", 2025, "重庆市", "重庆市", "500107"),
    SEEDS / "001_467031b72275275f.txt": ("梁平区", 2024, "重庆市", "重庆市", "500155"),
    SEEDS / "002_23abab8cc5084cfd.txt": ("沙坪坝区", 2023, "重庆市", "重庆市", "500106"),
    SEEDS / "003_190862aaa87d2635.txt": ("荣昌区", 2024, "重庆市", "重庆市", "500153"),
    SEEDS / "004_d150b2aa907695eb.txt": ("开州区大进镇", 2025, "重庆市", "重庆市", "500154"),
}


def test_every_report_of_the_corpus_and_the_seeds_is_identified():
    assert sorted(REGIONS.glob("*.txt")) == sorted(p for p in IDENTITIES if p.parent == REGIONS)
    found = {}
    for path in IDENTITIES:
        meta = detect_metadata(path.read_text(encoding="utf-8"), path.name)
        found[path] = (meta.district, meta.year, meta.city, meta.province, meta.district_code)
    assert found == IDENTITIES


FORMATS = PROJECT_ROOT / "tests" / "data" / "formats"
# the same, for the reports published as Word, PDF, scans and a photo (tests/data/formats)
FORMAT_IDENTITIES = {
    "cuiping_2024.docx": ("翠屏区", 2024, "宜宾市", "四川省", "511502"),
    "yuecheng_2023.docx": ("越城区", 2023, "绍兴市", "浙江省", "330602"),
    "hangzhou_xihu_2023.pdf": ("西湖区", 2023, "杭州市", "浙江省", "330106"),
    "wuhan_jianghan_2024.pdf": ("江汉区", 2024, "武汉市", "湖北省", "420103"),
    "lusong_2025_table.pdf": ("芦淞区", 2025, "株洲市", "湖南省", "430203"),
    "ningbo_jiangbei_2024_scan.pdf": ("江北区", 2024, "宁波市", "浙江省", "330205"),
    "zhengzhou_jinshui_2024_scan.pdf": ("金水区", 2024, "郑州市", "河南省", "410105"),
    "dali_2024.png": ("大理市", 2024, "大理白族自治州", "云南省", "532901"),
}
_OCR = ("ningbo_jiangbei_2024_scan.pdf", "zhengzhou_jinshui_2024_scan.pdf", "dali_2024.png")


@pytest.mark.parametrize("name", [
    *(n for n in FORMAT_IDENTITIES if n not in _OCR),
    *(pytest.param(n, marks=pytest.mark.integration) for n in _OCR),  # read by OCR: seconds a page
])
def test_every_report_of_the_formats_corpus_is_identified(name):
    report = load_report(FORMATS / name, max_bytes=20 * 2**20)
    meta = report_metadata(report)
    assert (meta.district, meta.year, meta.city, meta.province, meta.district_code) == FORMAT_IDENTITIES[name]


def test_the_formats_corpus_is_listed_whole():
    assert sorted(p.name for p in FORMATS.iterdir() if p.suffix != ".py") == sorted(FORMAT_IDENTITIES)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Pipeline:
    """The corpus (see bm25_pipeline)."""
    return bm25_pipeline(tmp_path_factory.mktemp("regions"), sorted(REGIONS.glob("*.txt")))


def _codes(passages) -> set[str]:
    return {p.meta["district_code"] for p in passages}


def test_manifest_rows_carry_city_province_and_code(pipeline):
    rows = {r["file"]: r for r in pipeline.reports()}
    assert {k: rows["changchun_chaoyang_2024.txt"][k] for k in ("district", "city", "province", "district_code")} == {
        "district": "朝阳区", "city": "长春市", "province": "吉林省", "district_code": "220104"}


@pytest.mark.parametrize(
    "question, label, code, figure, other",
    [
        ("北京市朝阳区2024年办理法律援助案件多少件？", "北京市朝阳区", "110105", "3698件", "1265件"),
        ("长春市朝阳区2024年办理法律援助案件多少件？", "长春市朝阳区", "220104", "1265件", "3698件"),
        ("长春朝阳区2024年办理法律援助案件多少件？", "长春市朝阳区", "220104", "1265件", "3698件"),
        ("福州市鼓楼区2024年行政复议直接纠错率是多少？", "福州市鼓楼区", "350102", "7.2%", "15.1%"),
    ],
)
def test_a_city_tells_the_unit_and_only_its_reports_answer(pipeline, question, label, code, figure, other):
    route = pipeline.route(question)
    assert route.districts == [label] and not route.comparison
    assert _codes(pipeline.retrieve(question)) == {code}
    answer = pipeline.ask(question)
    assert not answer.refused and figure in answer.answer and other not in answer.answer


@pytest.mark.parametrize(
    "question, figures",
    [
        ("朝阳区2024年办理法律援助案件多少件？", {"北京市朝阳区": "3698件", "长春市朝阳区": "1265件"}),
        ("鼓楼区2024年行政复议直接纠错率是多少？", {"南京市鼓楼区": "15.1%", "福州市鼓楼区": "7.2%"}),
    ],
)
def test_a_name_two_units_share_is_answered_for_each_labelled_with_its_city(pipeline, question, figures):
    route = pipeline.route(question)
    assert sorted(route.districts) == sorted(figures) and route.comparison
    answer = pipeline.ask(question)
    assert not answer.refused
    for label, figure in figures.items():
        assert label in answer.answer and figure in answer.answer
    assert len({c.file for c in answer.citations}) == 2


def test_an_english_question_on_a_shared_name_gets_both_unless_it_names_the_city(pipeline):
    answer = pipeline.ask("How many legal aid cases did Chaoyang District handle in 2024?")
    assert "3698" in answer.answer and "1265" in answer.answer
    assert "Beijing" in answer.answer and "Changchun" in answer.answer
    answer = pipeline.ask("How many legal aid cases did Chaoyang District, Changchun handle in 2024?")
    assert "1265" in answer.answer and "3698" not in answer.answer


@pytest.mark.parametrize(
    "question, named",
    [
        ("海淀区2024年办理法律援助案件多少件？", "海淀区"),              # another district of 北京
        ("成都市锦江区2024年行政复议直接纠错率是多少？", "锦江区"),
        ("重庆市江北区2024年行政复议直接纠错率是多少？", "重庆市江北区"),  # the knowledge base has 宁波's only
        ("Haidian District legal aid cases in 2024", "海淀区"),
    ],
)
def test_a_place_outside_the_knowledge_base_is_refused_saying_what_is_covered(pipeline, question, named):
    answer = pipeline.ask(question)
    assert answer.refused and answer.citations == []
    assert named in answer.answer
    assert "北京市朝阳区 2024年" in answer.answer and "武侯区 2022年" in answer.answer


def test_short_forms_route_only_to_the_knowledge_bases_units(pipeline):
    route = pipeline.route("武侯2024年办理法律援助案件多少件？")
    assert route.districts == ["武侯区"] and route.years == [2023, 2024]


@pytest.mark.parametrize(
    "question, years, figures",
    [
        ("武侯区近三年办理法律援助案件分别是多少件？", [2022, 2023, 2024], ["1540件", "1712件", "1866件"]),
        ("武侯区近两年办理法律援助案件分别是多少件？", [2023, 2024], ["1712件", "1866件"]),
        ("武侯区2023年和2024年行政复议直接纠错率有什么变化？", [2022, 2023, 2024], ["10.2%", "11.5%"]),
        ("武侯区历年调解成功率的变化趋势如何？", [2022, 2023, 2024], ["97.6%", "98.0%", "98.4%"]),
        ("北京市朝阳区2024年新收行政复议申请比上年增长了多少？", [2023, 2024], ["18%"]),
    ],
)
def test_several_years_of_one_district_are_searched_and_answered_year_by_year(pipeline, question, years, figures):
    route = pipeline.route(question)
    assert route.years == years and route.across_years and route.comparison
    assert {p.meta["year"] for p in pipeline.retrieve(question)} == set(years)
    answer = pipeline.ask(question)
    assert not answer.refused
    for figure in figures:
        assert figure in answer.answer, answer.answer


def test_one_year_of_a_district_with_several_reports_is_not_a_comparison(pipeline):
    route = pipeline.route("武侯区2023年办理法律援助案件多少件？")
    assert route.years == [2022, 2023] and not route.across_years and not route.comparison
    answer = pipeline.ask("武侯区2023年办理法律援助案件多少件？")
    assert "1712件" in answer.answer and "1866件" not in answer.answer


def test_next_years_plans_stay_with_the_report_they_came_in(pipeline):
    question = "武侯区2025年商事调解的目标是什么？"
    route = pipeline.route(question)
    assert route.years == [2024]  # no 2025 report: the 2024 one sets out 2025's work
    answer = pipeline.ask(question)
    assert not answer.refused and "300件" in answer.answer
    assert {(c.file, c.year) for c in answer.citations} == {("chengdu_wuhou_2024.txt", 2024)}


def test_a_year_no_report_of_the_district_covers_is_refused(pipeline):
    answer = pipeline.ask("长春市朝阳区2022年办理法律援助案件多少件？")
    assert answer.refused and answer.answer.startswith(NOT_FOUND)
    assert "长春市朝阳区 2024年" in answer.answer
