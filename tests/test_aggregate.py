"""Questions over every report, answered from indicator rows (rag.aggregate)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from eval.goldset import check_gold, load_gold
from eval.metrics import UNANSWERABLE, missing_terms, score_question, summarize
from rag.aggregate import answer_aggregate, fact_answer, match_metric, parse_aggregate, parse_fact, table_answer
from rag.indicators import Indicator, extract_indicators
from rag.loading import load_report
from rag.metadata import detect_metadata
from rag.settings import PROJECT_ROOT

JIULONGPO, LIANGPING, SHAPINGBA, RONGCHANG, DAJIN = "九龙坡区", "梁平区", "沙坪坝区", "荣昌区", "开州区大进镇"
FILES = {JIULONGPO: "000.txt", LIANGPING: "001.txt", SHAPINGBA: "002.txt", RONGCHANG: "003.txt", DAJIN: "004.txt"}
YEARS = {JIULONGPO: 2025, LIANGPING: 2024, SHAPINGBA: 2023, RONGCHANG: 2024, DAJIN: 2025}
REPORTS = [(d, y) for d, y in YEARS.items()] + [(LIANGPING, 2023)]


def row(district, sentence, metric, key, value, unit, quantity, kind="level", from_value=None, year=None,
        about_year=None, section="一、主要举措和成效") -> Indicator:
    year = year or YEARS[district]
    start = 100 + len(sentence)
    return Indicator(
        file=FILES[district] if year == YEARS[district] else f"{district}{year}.txt", district=district,
        district_code="", city="重庆市", province="重庆市", report_year=year, about_year=about_year or year,
        metric=metric, metric_key=key, value=value, unit=unit, quantity=quantity, kind=kind,
        from_value=from_value, section=section, start=start, end=start + len(sentence), sentence=sentence)


APPEARANCE_K = "区政府负责人出庭应诉率100%，区级部门和镇街负责人出庭应诉率99.3%。"
ROWS = [
    row(JIULONGPO, APPEARANCE_K, "区政府负责人出庭应诉率", "出庭应诉率", 100, "%", "rate"),
    row(JIULONGPO, APPEARANCE_K, "区级部门和镇街负责人出庭应诉率", "出庭应诉率", 99.3, "%", "rate"),
    row(SHAPINGBA, "2023年我区行政机关负责人出庭应诉率达100%。", "行政机关负责人出庭应诉率", "出庭应诉率", 100, "%", "rate"),
    row(RONGCHANG, "严格落实行政机关负责人出庭制度，区政府负责人出庭应诉率达100%。", "区政府负责人出庭应诉率",
        "出庭应诉率", 100, "%", "rate"),
    row(RONGCHANG, "全年受理各类法律援助案件991件，受援人满意度达95%以上。", "受理各类法律援助案件", "法律援助案件",
        991, "件", "count"),
    row(SHAPINGBA, "全年受理法律援助案件660件，同比增长39%。", "受理法律援助案件", "法律援助案件", 660, "件", "count"),
    row(SHAPINGBA, "全年受理法律援助案件660件，同比增长39%。", "受理法律援助案件", "法律援助案件", 39, "%", "rate",
        kind="change"),
    row(LIANGPING, "形成法律服务网，累计受理法律援助案件627件。", "累计受理法律援助案件", "法律援助案件", 627, "件", "count"),
    row(JIULONGPO, "全年援助对象1004人、增长21%，法律援助案件质量优良率由24%提升到40.2%。", "援助对象", "援助对象",
        1004, "人", "count"),
    row(JIULONGPO, "全年援助对象1004人、增长21%，法律援助案件质量优良率由24%提升到40.2%。",
        "法律援助案件质量优良率", "法律援助案件质量优良率", 40.2, "%", "rate", kind="from_to", from_value=24),
    row(LIANGPING, "審結98件,其中糾正違法和不當行政行為12件,直接糾錯率12.24%,實質性化解率85.71%。", "直接糾錯率",
        "行政复议直接纠错率", 12.24, "%", "rate"),
    row(RONGCHANG, "全年接收行政复议申请337件，审结283件，直接纠错58件，审结率为85.29%、直接纠错率22.22%。",
        "直接纠错率", "行政复议直接纠错率", 22.22, "%", "rate"),
    row(RONGCHANG, "全年接收行政复议申请337件，审结283件，直接纠错58件，审结率为85.29%、直接纠错率22.22%。",
        "直接纠错", "行政复议直接纠错", 58, "件", "count"),
    row(JIULONGPO, "区政府作为单独被告的行政诉讼案件败诉率5.5%，行政复议被纠错率4.5%。", "行政复议被纠错率",
        "行政复议被纠错率", 4.5, "%", "rate"),
    row(LIANGPING, "全年辦理公證880件，採購並上線“行本公證鏈管理平台”。", "辦理公證", "办理公证", 880, "件", "count"),
    row(RONGCHANG, "推广“公证+”涉企服务新模式，办理涉企公证52件。", "办理涉企公证", "办理公证", 52, "件", "count"),
    row(JIULONGPO, "改革薪酬制度、激发“拼搏力”，公证营收年增长30.2%。", "公证营收", "公证营收", 30.2, "%", "rate",
        kind="change"),
    row(JIULONGPO, "做实“重庆调解在线”数字应用，全年调解案件12069件。", "调解案件", "调解案件", 12069, "件", "count"),
    row(JIULONGPO, "调解协议履行率由94.9%提升至99%，基层调解率由35%提升至66%。", "调解协议履行率", "调解协议履行率",
        99, "%", "rate", kind="from_to", from_value=94.9),
    row(JIULONGPO, "推动行政检查减量25%，行政检查规范率达92.8%。", "行政检查减量", "行政检查减量", 25, "%", "rate",
        kind="change"),
    row(JIULONGPO, "推动行政检查减量25%，行政检查规范率达92.8%。", "行政检查规范率", "行政检查规范率", 92.8, "%", "rate"),
    row(LIANGPING, "調解成功11225件,調解成功率達99.97%。", "調解成功率", "调解成功率", 99.97, "%", "rate"),
    row(LIANGPING, "调解成功率为99.5%。", "调解成功率", "调解成功率", 99.5, "%", "rate", year=2023),
    row(LIANGPING, "力争2025年人民调解协议履行率达96%以上。", "人民调解协议履行率", "调解协议履行率", 96, "%", "rate",
        kind="target", about_year=2025),
    row(SHAPINGBA, "全年调解矛盾纠纷1.16万件，调解成功率为99.8％。", "调解成功率", "调解成功率", 99.8, "%", "rate"),
    row(SHAPINGBA, "全年调解矛盾纠纷1.16万件，调解成功率为99.8％。", "调解矛盾纠纷", "调解矛盾纠纷", 11600, "件",
        "count"),
    row(DAJIN, "共排查化解矛盾纠纷356起,化解率达100%。", "化解矛盾纠纷", "化解矛盾纠纷",
        356, "起", "count"),
]


# ---- parsing ---------------------------------------------------------------------------------

@pytest.mark.parametrize("question, shape, kind, words, districts, descending", [
    ("哪个区县的行政机关负责人出庭应诉率最高？", "superlative", "rate", "行政机关负责人出庭应诉率", [], True),
    ("哪個區縣的行政機關負責人出庭應訴率最高？", "superlative", "rate", "行政机关负责人出庭应诉率", [], True),
    ("调解成功率最低的是哪个区？", "superlative", "rate", "调解成功率", [], False),
    ("哪个地方调解的矛盾纠纷最多？", "superlative", "count", "调解的矛盾纠纷", [], True),
    ("梁平区和荣昌区谁的直接纠错率更高？", "superlative", "rate", "直接纠错率", [LIANGPING, RONGCHANG], True),
    ("各地法律援助案件数排名", "ranking", "count", "法律援助案件", [], True),
    ("各區法律援助案件數從低到高排序", "ranking", "count", "法律援助案件", [], False),
    ("哪些地方的行政复议纠错率超过10%？", "threshold", "rate", "行政复议纠错率", [], True),
    ("哪些区县的法律援助案件不足700件？", "threshold", "count", "法律援助案件", [], True),
    ("九龙坡区的调解数字三年来怎么变？", "trend", "", "调解", [JIULONGPO], True),
    ("九龍坡區的調解數字近幾年有什麼變化？", "trend", "", "调解", [JIULONGPO], True),
    ("列出各区的公证办理量", "list", "count", "公证", [], True),
    ("所有区县的调解成功率分别是多少？", "list", "rate", "调解成功率", [], True),
    ("Which district has the highest court appearance rate?", "superlative", "rate", "出庭应诉率", [], True),
    ("Rank the districts by number of legal aid cases", "ranking", "count", "法律援助案件", [], True),
    ("Which districts have a direct correction rate above 10%?", "threshold", "rate", "直接纠错率", [], True),
    ("How has mediation changed in Jiulongpo over the years?", "trend", "", "调解", [JIULONGPO], True),
])
def test_parses_each_shape(question, shape, kind, words, districts, descending):
    query = parse_aggregate(question)
    assert query is not None
    assert (query.shape, query.kind, query.metric_words, query.districts, query.descending) == (
        shape, kind, words, districts, descending)


def test_threshold_is_read_with_its_comparison():
    above = parse_aggregate("哪些地方的行政复议纠错率超过10%？").threshold
    at_least = parse_aggregate("哪些区的出庭应诉率在99%以上？").threshold
    below = parse_aggregate("哪些区县的法律援助案件不足700件？").threshold
    assert (above.op, above.value, above.written, above.kind) == ("gt", 10, "10%", "rate")
    assert (at_least.op, at_least.value) == ("ge", 99)
    assert (below.op, below.value, below.kind) == ("lt", 700, "count")
    assert not above.holds(10) and at_least.holds(99) and below.holds(699)


def test_years_named_are_kept():
    assert parse_aggregate("2024年各区法律援助案件数排名").years == [2024]


@pytest.mark.parametrize("question", [
    "荣昌区2024年行政复议直接纠错率是多少？",
    "梁平区2024年办理公证多少件？",
    "九龙坡区有哪些问题？",
    "各区存在哪些不足？",
    "荣昌区哪个镇街的执法人员最多？",
    "What was the direct correction rate of Rongchang District in 2024?",
    "沙坪坝区的行政争议实质性化解率达到了多少？",
])
def test_plain_questions_are_not_aggregate(question):
    assert parse_aggregate(question) is None


# ---- metrics ---------------------------------------------------------------------------------

def test_matches_the_metric_asked_for():
    assert match_metric(parse_aggregate("各地法律援助案件数排名"), ROWS) == ["法律援助案件"]
    assert match_metric(parse_aggregate("哪个区县的行政机关负责人出庭应诉率最高？"), ROWS) == ["出庭应诉率"]


def test_unit_kind_must_agree():
    # 法律援助案件 are counts: a 10% threshold finds no rate of them
    assert match_metric(parse_aggregate("哪些地方的法律援助案件超过10%？"), ROWS) == []
    # 直接纠错 58件 is a count, not the rate asked for
    assert "行政复议直接纠错" not in match_metric(parse_aggregate("哪些地方的行政复议纠错率超过10%？"), ROWS)


def test_unlike_metrics_are_not_matched():
    assert match_metric(parse_aggregate("哪个区的社区矫正人数最多？"), ROWS) == []
    # 援助对象 (persons helped) is not 法律援助案件, though its sentence mentions 法律援助案件
    assert "援助对象" not in match_metric(parse_aggregate("各地法律援助案件数排名"), ROWS)


def test_a_passive_metric_is_not_the_active_one():
    """被纠错率 (how often a district's own acts were corrected) is not 直接纠错率 (how often its
    reconsideration organ corrected others): one word, the opposite side."""
    rows = [row("荣昌区", "全年办结行政复议案件283件，直接纠错率22.22%。", "直接纠错率", "直接纠错率", 22.22, "%", "rate"),
            row("九龙坡区", "行政复议被纠错率4.5%。", "行政复议被纠错率", "行政复议被纠错率", 4.5, "%", "rate")]
    assert match_metric(parse_aggregate("哪个区的行政复议纠错率最高？"), rows) == ["直接纠错率"]
    assert match_metric(parse_aggregate("哪个区的行政复议被纠错率最低？"), rows) == ["行政复议被纠错率"]
    sued = [row("九龙坡区", "区政府作为单独被告的行政诉讼案件败诉率5.5%。", "区政府作为单独被告的行政诉讼案件败诉率",
                "区政府作为单独被告的行政诉讼案件败诉率", 5.5, "%", "rate")]
    assert match_metric(parse_aggregate("哪个区的行政诉讼案件败诉率最高？"), sued) != []  # 被告 is no passive


def test_a_rate_is_told_by_the_word_before_its_last_two_characters():
    """出庭应诉率 and 败诉率 both end in 诉率: what they measure is 应诉 and 败诉."""
    rows = [row("荣昌区", "区政府负责人出庭应诉率100%。", "区政府负责人出庭应诉率", "出庭应诉率", 100.0, "%", "rate"),
            row("梁平区", "行政诉讼败诉率3.5%。", "行政诉讼败诉率", "行政诉讼败诉率", 3.5, "%", "rate")]
    assert match_metric(parse_aggregate("各区的行政诉讼败诉率分别是多少？"), rows) == ["行政诉讼败诉率"]
    assert match_metric(parse_aggregate("哪些区的出庭应诉率低于100%？"), rows) == ["出庭应诉率"]


def test_a_comparison_takes_levels_not_changes():
    answer = ask("各区法律援助案件排名")
    assert "991件" in answer.answer and "39%" not in answer.answer  # 同比增长39% is not a number of cases


def test_a_topic_is_not_compared_by_a_figure_about_it():
    # 行政检查规范率 and 行政检查减量 measure something about inspections, not inspections
    assert match_metric(parse_aggregate("各区的行政检查排名"), ROWS) == []
    assert match_metric(parse_aggregate("各区的行政检查规范率排名"), ROWS) == ["行政检查规范率"]


# ---- answers ---------------------------------------------------------------------------------

def ask(question):
    return answer_aggregate(parse_aggregate(question), ROWS, REPORTS)


def test_superlative_names_all_tied_leaders_with_citations_quoting_their_sentences():
    answer = ask("哪个区县的行政机关负责人出庭应诉率最高？")
    lead = answer.answer.split("\n")[0]
    assert all(d in lead for d in (JIULONGPO, SHAPINGBA, RONGCHANG)) and "并列" in lead
    assert "99.3%" not in lead and "99.3%" in answer.answer  # shown in the table, not a leader
    assert not answer.refused
    by_n = {c.n: c for c in answer.citations}
    for line in answer.answer.splitlines():
        if line.startswith("| ") and "[" in line:
            n = int(line.rsplit("[", 1)[1].split("]")[0])
            cited = by_n[n]
            assert cited.district in line and cited.quote in {r.sentence for r in ROWS}
            assert line.split(" | ")[-2] in cited.quote  # the value shown is in the quoted sentence
    assert [c.label() for c in answer.citations][0].startswith("〔")


def test_reports_without_the_figure_are_named():
    answer = ask("哪个区县的行政机关负责人出庭应诉率最高？")
    missing = next(line for line in answer.answer.splitlines() if line.startswith("未报告该指标"))
    assert "梁平区2024年报告" in missing and "梁平区2023年报告" in missing and "开州区大进镇2025年报告" in missing
    assert RONGCHANG not in missing


def test_unlike_figures_are_said_to_be_so():
    answer = ask("哪个区县的行政机关负责人出庭应诉率最高？")
    assert "注：各区数据年份不同" in answer.answer     # 2023, 2024, 2025
    assert "指标的表述" in answer.answer             # 区政府负责人 vs 行政机关负责人


def test_ranking_orders_by_value_and_leaves_out_changes_and_other_metrics():
    answer = ask("各地法律援助案件数排名")
    text = answer.answer
    assert text.index("991件") < text.index("660件") < text.index("627件")
    assert "39%" not in text.split("\n\n")[1] and "1004人" not in text  # the change and the persons count
    assert [c.district for c in answer.citations] == [RONGCHANG, SHAPINGBA, LIANGPING]
    ascending = ask("各区法律援助案件数从低到高排序").answer
    assert ascending.index("627件") < ascending.index("660件") < ascending.index("991件")


def test_threshold_compares_rates_only_and_names_those_above():
    answer = ask("哪些地方的行政复议纠错率超过10%？")
    lead = answer.answer.split("\n")[0]
    assert LIANGPING in lead and RONGCHANG in lead and JIULONGPO not in lead
    assert "12.24%" in lead and "22.22%" in lead and "58件" not in answer.answer
    below = ask("哪些区县的法律援助案件不足700件？").answer.split("\n")[0]
    assert SHAPINGBA in below and LIANGPING in below and RONGCHANG not in below


def test_threshold_no_one_meets_is_said():
    answer = ask("哪些地方的调解成功率超过99.99%？")
    assert answer.answer.startswith("报告中没有调解成功率超过99.99%的地区")
    assert not answer.refused and answer.citations


def test_trend_orders_by_year_and_gives_the_direction():
    answer = ask("梁平区的调解成功率近几年有什么变化？")
    text = answer.answer
    assert text.index("2023年99.5%") < text.index("2024年99.97%") and "上升" in text
    assert "96%" not in text  # a target is not a figure of a year


def test_trend_of_one_year_shows_the_change_it_states():
    answer = ask("九龙坡区的调解数字三年来怎么变？")
    assert "只有2025年的数字" in answer.answer
    assert "94.9%→99%" in answer.answer and "上升" in answer.answer
    assert "12069件" in answer.answer and SHAPINGBA not in answer.answer


def test_list_shows_every_report_that_gives_the_figure():
    answer = ask("列出各区的公证办理量")
    assert "880件" in answer.answer and "52件" in answer.answer and "30.2%" not in answer.answer
    missing = next(line for line in answer.answer.splitlines() if line.startswith("未报告该指标"))
    assert JIULONGPO in missing and SHAPINGBA in missing
    assert "指标的表述" in answer.answer  # 办理公证 vs 办理涉企公证


def test_no_matching_metric_is_an_honest_refusal_naming_nearby_metrics():
    answer = ask("哪些地方的法律援助案件超过10%？")
    assert answer.refused and answer.answer.startswith("报告中没有相关信息") and not answer.citations
    assert "法律援助案件" in answer.answer.split("相近的指标有：")[1]


def test_english_gets_the_same_figures():
    english = ask("Which district has the highest court appearance rate?")
    chinese = ask("哪个区县的行政机关负责人出庭应诉率最高？")
    assert [c.quote for c in english.citations] == [c.quote for c in chinese.citations]
    assert english.answer.split("\n")[0].count("100%") == 3


def test_a_change_is_compared_only_when_the_question_asks_for_one():
    query = parse_aggregate("哪个区的法律援助案件增长最快？")
    assert query.change and query.metric_words == "法律援助案件"
    answer = answer_aggregate(query, ROWS, REPORTS)
    assert answer.answer.startswith("法律援助案件增幅最高的是沙坪坝区（39%[1]）") and "991件" not in answer.answer


def test_figures_in_other_units_are_compared_with_a_note():
    answer = ask("哪个地方调解的矛盾纠纷最多？")
    assert answer.answer.startswith("调解的矛盾纠纷最多的是沙坪坝区（1.16万件[1]）")
    assert "356起" in answer.answer and "注：各行数字的单位不同" in answer.answer


def test_table_answer_leaves_to_retrieval_what_the_table_cannot_answer():
    assert table_answer("荣昌区2024年行政复议审结率是多少？", ROWS, REPORTS) is None   # a fact no row states
    assert table_answer("哪个区的社区矫正人数最多？", ROWS, REPORTS) is None            # no metric fits
    # 九龙坡区 is named but states no 调解成功率 in the table: retrieval searches it apart
    assert table_answer("九龙坡区和梁平区谁的调解成功率更高？", ROWS, REPORTS) is None
    assert "99.97%" in table_answer("梁平区和沙坪坝区谁的调解成功率更高？", ROWS, REPORTS).answer.split("\n")[0]


def test_a_key_brings_every_phrase_grouped_under_it():
    grouped = [replace(r, metric_key="调解矛盾纠纷") if r.metric == "调解案件" else r for r in ROWS]
    lead = table_answer("哪个地方调解的矛盾纠纷最多？", grouped, REPORTS).answer.split("\n")[0]
    assert lead.startswith("调解的矛盾纠纷最多的是九龙坡区（12069件[1]）")
    lead = table_answer("哪个地方调解的矛盾纠纷最多？", ROWS, REPORTS).answer.split("\n")[0]
    assert JIULONGPO not in lead  # 调解案件 alone is another metric


# ---- one figure ------------------------------------------------------------------------------

RESOLVED = row(DAJIN, "共排查化解矛盾纠纷356起,化解率达100%。", "化解率", "化解率", 100, "%", "rate")
CLOSED = row(RONGCHANG, "全年接收行政复议申请337件，审结283件，直接纠错58件，审结率为85.29%、直接纠错率22.22%。",
             "审结率", "行政复议审结率", 85.29, "%", "rate")


def test_a_fact_one_row_states_exactly_is_answered_from_it_with_its_sentence():
    answer = table_answer("荣昌区2024年行政复议直接纠错率是多少？", ROWS, REPORTS)
    assert answer.answer == "荣昌区2024年行政复议直接纠错率为22.22%[1]。"
    assert answer.provider == "indicators" and not answer.refused
    [cited] = answer.citations
    stated = next(r for r in ROWS if r.value == 22.22)
    assert (cited.n, cited.file, cited.start, cited.end, cited.quote) == (
        1, stated.file, stated.start, stated.end, stated.sentence)
    # no year named: the place's only report, its own year
    assert fact_answer("沙坪坝区的调解成功率是多少？", ROWS, REPORTS).answer == "沙坪坝区2023年调解成功率为99.8％[1]。"
    # a change asked for is a change row
    assert fact_answer("沙坪坝区2023年受理法律援助案件同比增长了多少？", ROWS, REPORTS).answer == (
        "沙坪坝区2023年受理法律援助案件上升39%[1]。")
    # a town named alone is its report's place
    assert fact_answer("大进镇2025年化解率是多少？", [*ROWS, RESOLVED], REPORTS).answer == (
        "开州区大进镇2025年化解率为100%[1]。")


def test_a_change_row_answers_only_a_question_for_a_change():
    stated = "新收行政复议案件542件，比上年增加103件。"
    level = row(JIULONGPO, stated, "新收行政复议案件", "新收行政复议案件", 542, "件", "count")
    change = row(JIULONGPO, stated, "新收行政复议案件", "新收行政复议案件", 103, "件", "count", kind="change")
    assert fact_answer("九龙坡区2025年新收行政复议案件多少件？", [level, change], REPORTS).answer == (
        "九龙坡区2025年新收行政复议案件为542件[1]。")
    assert fact_answer("九龙坡区2025年新收行政复议案件比上年增加了多少件？", [level, change], REPORTS).answer == (
        "九龙坡区2025年新收行政复议案件上升103件[1]。")
    assert fact_answer("九龙坡区2025年新收行政复议案件多少件？", [change], REPORTS) is None


def test_a_target_answers_only_a_question_for_a_plan():
    assert fact_answer("梁平区2025年人民调解协议履行率是多少？", ROWS, REPORTS) is None
    assert fact_answer("梁平区2025年人民调解协议履行率的目标是多少？", ROWS, REPORTS).answer == (
        "梁平区计划2025年人民调解协议履行率达到96%以上[1]（2024年报告）。")


@pytest.mark.parametrize("question", [
    "荣昌区2024年行政复议审结率和直接纠错率是多少？",     # two metrics named
    "荣昌区2024年涉企行政复议直接纠错率是多少？",         # narrower than the sentence says
    "荣昌区2024年纠错的比例是多少？",                     # a loose wording: no metric named in full
    "荣昌区2023年行政复议直接纠错率是多少？",             # a year with no row
    "梁平区的调解成功率是多少？",                         # two reports and no year: which one is a guess
    "沙坪坝区2023年受理法律援助案件是多少？",             # kind unsaid (no 件, no 率)
    "九龙坡区2025年出庭应诉率是多少？",                   # two rows of one key
    "开州区2025年化解率是多少？",                         # the town's figure is not the district's
    "What was the direct correction rate of Rongchang District in 2024?",  # English: left to retrieval
    "荣昌区和梁平区的直接纠错率分别是多少？",             # two places
])
def test_a_fact_the_table_does_not_state_exactly_is_left_to_retrieval(question):
    assert fact_answer(question, [*ROWS, CLOSED, RESOLVED], REPORTS) is None


def test_a_shared_name_is_told_apart_by_its_code():
    rate = next(r for r in ROWS if r.value == 22.22)
    beijing = replace(rate, file="bj.txt", district="朝阳区", district_code="110105", city="北京市", province="北京市")
    changchun = replace(beijing, file="cc.txt", district_code="220104", city="长春市", province="吉林省", value=10.5,
                        sentence="全年直接纠错率10.5%。")
    rows, reports = [beijing, changchun], [("朝阳区", 2024)]
    assert fact_answer("北京市朝阳区2024年行政复议直接纠错率是多少？", rows, reports).answer == (
        "北京市朝阳区2024年行政复议直接纠错率为22.22%[1]。")
    assert fact_answer("朝阳区2024年行政复议直接纠错率是多少？", rows, reports) is None  # which 朝阳区 is a guess


def test_a_fact_question_is_read_for_its_metric_kind_and_year():
    query = parse_fact("荣昌区2024年行政复议直接纠错率是多少？")
    assert (query.shape, query.metric_words, query.kind, query.years, query.districts) == (
        "fact", "行政复议直接纠错率", "rate", [2024], [RONGCHANG])
    assert parse_fact("荣昌区2024年办理公证多少件？2025年计划办理多少件？") is None  # two parts


# ---- the seeds, end to end without Chroma ------------------------------------------------------

GOLD = PROJECT_ROOT / "eval" / "gold" / "aggregate.jsonl"


@pytest.fixture(scope="module")
def seed_table() -> tuple[list[Indicator], list[tuple[str, int]]]:
    """Indicator rows of the five seeds, and their (district, year), as ingest extracts them."""
    rows, reports = [], []
    for path in sorted((PROJECT_ROOT / "seeds").glob("*.txt")):
        report = load_report(path, max_bytes=2**24)
        meta = detect_metadata(report.text, report.file, report.sections)
        rows += extract_indicators(report, meta)
        reports.append((meta.district, meta.year))
    return rows, reports


def gold_accuracy(rows, reports, path=GOLD) -> tuple[float, list[str]]:
    """Share of the gold aggregate questions the table answers right (every must_include present; an
    unanswerable one refused or left to retrieval), and the ids answered wrong."""
    wrong = []
    items = load_gold(path)
    for item in items:
        answer = table_answer(item["question"], rows, reports)
        if item["type"] == UNANSWERABLE:
            right = answer is None or answer.refused
        else:
            right = answer is not None and not answer.refused and not missing_terms(answer.answer, item["must_include"])
        if not right:
            wrong.append(item["id"])
    return 1 - len(wrong) / len(items), wrong


@pytest.mark.parametrize("question, leader, figure", [
    ("哪个区县的行政机关负责人出庭应诉率最高？", "沙坪坝区", "100%"),
    ("各地法律援助案件数排名", "荣昌区", "991件"),
    ("調解成功率最高的是哪個區？", "梁平区", "99.97%"),
    ("Which district handled the most legal aid cases?", "荣昌区", "991件"),
])
def test_seed_reports_answer_from_the_table(seed_table, question, leader, figure):
    rows, reports = seed_table
    answer = table_answer(question, rows, reports)
    lead = answer.answer.split("\n")[0]
    assert leader in lead and figure in lead
    assert all(c.quote == next(r.sentence for r in rows if (r.file, r.start) == (c.file, c.start))
               for c in answer.citations)
    texts = {p.name: p.read_text(encoding="utf-8") for p in (PROJECT_ROOT / "seeds").glob("*.txt")}
    assert all(texts[c.file][c.start:c.end] == c.quote for c in answer.citations)


def test_seed_threshold_and_refusal(seed_table):
    rows, reports = seed_table
    above = table_answer("哪些地方的行政复议直接纠错率超过10%？", rows, reports).answer.split("\n")[0]
    assert "22.22%" in above and "12.24%" in above and "九龙坡区" not in above
    only_a_target = "哪个区刑满释放人员重新犯罪率最低？"
    assert table_answer(only_a_target, rows, reports) is None  # retrieval answers (and refuses)
    assert answer_aggregate(parse_aggregate(only_a_target), rows, reports).refused


def test_gold_aggregate_questions_are_answered_from_the_table(seed_table, capsys):
    accuracy, wrong = gold_accuracy(*seed_table)
    with capsys.disabled():
        print(f"\neval/gold/aggregate.jsonl from the table: accuracy {accuracy:.2f}; wrong: {wrong}")
    assert accuracy >= 0.9, wrong


def test_aggregate_gold_is_valid_and_reported_by_type():
    items = load_gold(GOLD)
    texts = {p.name: p.read_text(encoding="utf-8") for p in (PROJECT_ROOT / "seeds").glob("*.txt")}
    assert check_gold(items, texts).errors == []
    timings = {"retrieve_ms": 0, "first_token_ms": 0, "total_ms": 0}
    records = [score_question(item, [], [], {"answer": item["answer"], "refused": item["type"] == UNANSWERABLE,
                                             "citations": [], "timings": timings}) for item in items]
    by_type = summarize(records)["by_type"]
    assert list(by_type) == ["aggregate", UNANSWERABLE]
    assert by_type["aggregate"]["answer.accuracy"] == 1.0  # the reference answers hold their must_include


def test_head_prefilters_the_rows_without_changing_the_answer():
    query = parse_aggregate("各地法律援助案件数排名")
    assert query.head == "案件"
    kept = [r for r in ROWS if query.head in r.metric + r.metric_key]
    assert answer_aggregate(query, kept, REPORTS).answer == answer_aggregate(query, ROWS, REPORTS).answer
