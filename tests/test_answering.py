"""Answer assembly: markers, numeric grounding, refusals, routing and follow-ups (fakes only)."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

from rag.answering import NOT_FOUND, parse_markers
from rag.errors import QuestionError
from eval.metrics import figure_support
from rag.grounding import figures
from rag.retrieval import rewrite_follow_up
from rag.schema import Answer
from tests.conftest import fake_llm_pipeline


@pytest.mark.parametrize(
    "raw, count, text, cited",
    [
        ("纠错率22.22%[1]。", 3, "纠错率22.22%[1]。", [1]),
        ("见【2】和[1, 3]", 3, "见[2]和[1][3]", [2, 1, 3]),
        ("无效标注[7]保留文字[2]", 3, "无效标注保留文字[2]", [2]),
        ("没有标注", 2, "没有标注", []),
    ],
)
def test_parse_markers(raw, count, text, cited):
    assert parse_markers(raw, count) == (text, cited)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("直接纠错率22.22%", {"22.22%"}),
        ("调解成功率为99.8％", {"99.8%"}),
        ("调解矛盾纠纷1.16万件", {"11600"}),
        ("十五届区委第三次会议，一是深化", {"15"}),
        ("1,234人", {"1234"}),
        ("1、依法决策参谋；2、执法监督（3）培训2次", {"2"}),
    ],
)
def test_figures_are_normalised(text, expected):
    assert figures(text) == expected


def test_figure_support_ignores_markers_and_allowed_text():
    assert figure_support("2024年发案数为135件[1]", ["调解成功11225件"], allowed="荣昌区2024年") == (set(), {"135"})


@pytest.mark.parametrize("reply", [
    "荣昌区2024年行政复议直接纠错率为37.5%[1]。",   # a figure no report states
    "荣昌区2024年行政复议直接纠错率为85.29%[1]。",  # a figure the sentence states for another measure (审结率)
])
def test_a_claim_no_sentence_states_is_never_shown(seeded_pipeline, reply):
    pipeline = fake_llm_pipeline(seeded_pipeline, [reply])
    answer = pipeline.ask("荣昌区2024年行政复议直接纠错率是多少？", provider="local")
    assert answer.grounded is False and not answer.refused
    assert reply not in answer.answer and "22.22%" in answer.answer  # the report's sentence answers instead
    assert answer.citations and all(c.district == "荣昌区" for c in answer.citations)


def test_grounded_llm_answer_keeps_text_and_cites(seeded_pipeline):
    pipeline = fake_llm_pipeline(seeded_pipeline, ["荣昌区2024年行政复议直接纠错率为22.22%[1]。"])
    answer = pipeline.ask("荣昌区2024年行政复议直接纠错率是多少？", provider="local")
    assert answer.grounded is True and not answer.refused
    assert answer.answer == "荣昌区2024年行政复议直接纠错率为22.22%[1]。"
    cited = answer.citations[0]
    assert cited.district == "荣昌区" and cited.year == 2024
    assert "22.22%" in cited.quote
    assert cited.section.startswith("一、2024年推进法治政府建设的主要举措、工作成效 > （五）")


def test_model_refusal_becomes_refusal_naming_reports(seeded_pipeline):
    pipeline = fake_llm_pipeline(seeded_pipeline, ["报告中没有相关信息。"])
    answer = pipeline.ask("梁平区目前共有多少家律师事务所？", provider="local")
    assert answer.refused and answer.citations == []
    assert "梁平区 2024年" in answer.answer


@pytest.mark.parametrize(
    "question, named",
    [("渝北区2024年行政复议的直接纠错率是多少？", "渝北区"),
     # no 2023 report: the 2024 one is searched for 2023's figures (its 上年 bases), and has none
     ("荣昌区2023年受理了多少件法律援助案件？", "2023")],
)
def test_a_district_or_year_no_report_covers_is_refused_naming_it(seeded_pipeline, question, named):
    answer = seeded_pipeline.ask(question)
    assert answer.refused and "[" not in answer.answer.split("相近的内容")[0]
    assert answer.answer.startswith(NOT_FOUND) and named in answer.answer
    assert "荣昌区 2024年" in answer.answer  # says what the reports do cover


def test_traditional_district_name_routes_to_its_report(seeded_pipeline):
    route = seeded_pipeline.route("梁平區2024年調解成功率是多少？")
    assert route.districts == ["梁平区"] and route.years == [2024]
    passages = seeded_pipeline.retrieve("梁平區2024年調解成功率是多少？")
    assert passages and {p.meta["district"] for p in passages} == {"梁平区"}


def test_plans_for_next_year_route_to_previous_report(seeded_pipeline):
    route = seeded_pipeline.route("大进镇2026年推进法治政府建设有哪些目标举措？")
    assert route.districts == ["开州区大进镇"] and route.years == [2025]


def test_comparison_gets_evidence_from_each_district(seeded_pipeline):
    passages = seeded_pipeline.retrieve("开州区大进镇和荣昌区报告的矛盾纠纷化解率分别是多少？")
    assert {p.meta["district"] for p in passages[:2]} == {"开州区大进镇", "荣昌区"}
    answer = seeded_pipeline.ask("开州区大进镇和荣昌区报告的矛盾纠纷化解率分别是多少？")
    assert {c.district for c in answer.citations} == {"开州区大进镇", "荣昌区"}


def test_follow_up_is_rewritten_from_history():
    history = [("荣昌区2024年行政复议直接纠错率是多少？", "22.22%")]
    assert rewrite_follow_up("那梁平区呢？", history) == "梁平区2024年行政复议直接纠错率是多少？"
    assert rewrite_follow_up("梁平区有多少律所？", history) == "梁平区有多少律所？"


def test_follow_up_retrieves_the_new_district(seeded_pipeline):
    history = [("荣昌区2024年调解成功率是多少？", "99.01%")]
    answer = seeded_pipeline.ask("那沙坪坝区呢？", history=history)
    assert answer.citations and {c.district for c in answer.citations} == {"沙坪坝区"}


@pytest.mark.parametrize("question, says", [
    ("", "问题为空"), ("   ", "问题为空"), ("问" * 501, "问题过长"), ("荣昌区\ud800纠错率", "无效字符"),
])
def test_bad_questions_are_rejected(seeded_pipeline, question, says):
    with pytest.raises(QuestionError, match=says):
        seeded_pipeline.ask(question)


def test_extractive_answer_quotes_exact_report_text(seeded_pipeline):
    answer = seeded_pipeline.ask("荣昌区2024年行政复议直接纠错率是多少？")
    assert not answer.refused and "22.22%" in answer.answer
    for c in answer.citations:
        assert seeded_pipeline.kb.report_text(c.file)[c.start : c.end] == c.quote


def test_stream_yields_checked_text_and_owns_the_answer(seeded_pipeline):
    stream = fake_llm_pipeline(seeded_pipeline, ["调解成功率达99.97%[1]。"]).stream("梁平区调解成功率是多少？", provider="local")
    deltas = list(stream)
    assert all(isinstance(d, str) for d in deltas) and "".join(deltas) == "调解成功率达99.97%[1]。"
    assert stream.answer.answer == "".join(deltas) and stream.answer.timings.total_ms > 0


def test_excerpts_are_what_a_provider_is_given_within_its_budget(seeded_pipeline):
    from rag.tokens import count_tokens

    question = "荣昌区2024年行政复议直接纠错率是多少？"
    settings = seeded_pipeline.settings
    for provider, budget in (("extractive", settings.answer.extractive_context_tokens),
                             ("local", settings.llm.context_tokens)):
        excerpts = seeded_pipeline.excerpts(question, provider=provider)
        assert sum(count_tokens(x.text) for x in excerpts) <= budget
        assert any("22.22%" in x.text for x in excerpts) and {x.meta["district"] for x in excerpts} == {"荣昌区"}


def test_a_comparison_prompt_holds_every_districts_figure(seeded_pipeline):
    """Each compared district gets its share of the local model's small budget, and no sentence twice."""
    question = "荣昌区、梁平区和沙坪坝区的人民调解成功率各是多少？"
    excerpts = seeded_pipeline.excerpts(question, provider="local")
    text: dict[str, str] = defaultdict(str)
    for x in excerpts:
        text[x.meta["district"]] += x.text
    assert "99.97%" in text["梁平区"] and "99.8％" in text["沙坪坝区"] and "99.01%" in text["荣昌区"]
    spans = sorted((x.meta["file"], x.start, x.end) for x in excerpts)
    assert all(a[0] != b[0] or a[2] <= b[1] for a, b in zip(spans, spans[1:])), spans


def test_each_part_of_a_two_part_question_gets_its_evidence(seeded_pipeline):
    question = "荣昌区2024年行政复议直接纠错率是多少？2025年要建成什么样的执法培训基地？"
    text = "".join(x.text for x in seeded_pipeline.excerpts(question, provider="local"))
    assert "22.22%" in text and "行政执法培训实训基地" in text


def _composed(question: str, reply: str, texts: list[str], district: str = "荣昌区", year: int = 2024,
              section: str = "二、目标任务", districts: list[str] | None = None,
              comparison: bool | None = None) -> Answer:
    """The answer a reply becomes over the given excerpts (one report each, or all of `district`)."""
    from langchain_core.documents import Document

    from rag.answering import Composer, ExtractiveAnswerer
    from rag.claims import Ask
    from rag.evidence import Excerpt

    excerpts = []
    for n, text in enumerate(texts):
        d = districts[n] if districts else district
        meta = {"file": f"{d}.txt", "district": d, "year": year, "section": section, "header": "",
                "start": 0, "end": len(text)}
        excerpts.append(Excerpt(Document(page_content=text, metadata=meta), 0, len(text), text, 1.0))
    comparison = bool(districts) if comparison is None else comparison
    composer = Composer(Ask.read(question, comparison=comparison), excerpts, "现有报告", ExtractiveAnswerer())
    shown = composer.feed(reply) + composer.finish()
    answer = composer.answer("local", "fake")
    assert answer.answer == shown.strip()
    return answer


def test_markers_standing_alone_for_a_list_get_the_cited_words():
    texts = ["（一）大力推进法治政府建设。", "（二）持续优化法治化营商环境。", "直接纠错率22.22%。"]
    listed = _composed("荣昌区有哪几个方面？", "主要有：[1]、[2]。", texts)
    assert listed.answer == "主要有：「（一）大力推进法治政府建设。」[1]、「（二）持续优化法治化营商环境。」[2]。"
    stated = _composed("荣昌区纠错率是多少？", "纠错率为22.22%[3][1]。", texts)
    assert stated.answer == "纠错率为22.22%[1]。"  # the marker points at the one sentence that states it


def test_a_marker_on_the_wrong_sentence_is_moved_to_the_one_that_states_the_figure():
    texts = ["全年接收行政复议申请337件。", "直接纠错率22.22%。"]
    answer = _composed("荣昌区行政复议直接纠错率是多少？", "荣昌区直接纠错率为22.22%[1]。", texts)
    assert answer.answer == "荣昌区直接纠错率为22.22%[1]。" and answer.citations[0].quote == "直接纠错率22.22%。"


@pytest.mark.parametrize(("question", "texts", "year"), [
    # kind: a count is asked, the report states only a growth rate
    ("梁平区公证办理了多少件？", ["全年公证营收同比增长30.2%。"], 2024),
    # year: 2024 is asked, the sentence is about 2025 (the report's plans)
    ("荣昌区2024年法律援助案件多少件？", ["2025年力争办理法律援助案件1000件。"], 2024),
    # measure: the rate stated is another one's (审结率, not 纠错率)
    ("荣昌区行政复议直接纠错率是多少？", ["行政复议审结率为85.29%。"], 2024),
    # kind, beside a count of something else: what the question names is stated only as a rate
    ("荣昌区法律援助案件中质量被评为优良的有多少件？", ["全年援助对象980人，法律援助案件质量优良率由20%提升到38.5%。"], 2024),
])
def test_a_figure_of_another_kind_year_or_measure_is_not_an_answer(question, texts, year):
    reply = texts[0].replace("。", "[1]。")  # the model repeats the sentence as its answer
    answer = _composed(question, reply, texts, year=year)
    assert answer.refused and answer.answer.startswith(NOT_FOUND)
    assert not re.search(r"\d+(\.\d+)?%?\[", answer.answer.split("相近的内容")[0])  # no figure stated as the answer
    assert "年的的" not in answer.answer  # 「没有找到2024年的数据」


@pytest.mark.parametrize(("question", "text", "figure"), [
    ("沙坪坝区办理了多少件公证？", "全年办理公证1234件。", "1234件"),        # what is measured after the asking words
    ("荣昌区行政复议案件中直接纠错的有多少件？", "全年接收行政复议申请337件，审结283件，直接纠错58件。", "58件"),
    ("荣昌区2024年行政复议直接纠错率是多少？", "行政复议直接纠错率22.22%。", "22.22%"),
    ("荣昌区执法文书电子送达率是多少？", "执法文书电子送达率达88%。", "88%"),  # 达 of 送达率 is no verb here
])
def test_a_figure_under_what_the_question_measures_is_an_answer(question, text, figure):
    answer = _composed(question, "报告中没有相关信息。", [text])
    assert not answer.refused and figure in answer.answer


LOOSE_QUESTION = "荣昌区启用线上办案平台以后，一个案子平均花的时间减少了多少？"


def test_a_figure_whose_sentence_answers_in_other_words_is_an_answer():
    """The label (单个案件平均办理时长) shares two words with the question; its sentence covers the
    question and states no other figure of that kind: the figure is the answer."""
    text = "荣昌区启用线上办案平台以后，单个案件平均办理时长缩短40%。"
    for reply in ("荣昌区启用线上办案平台以后，一个案子平均花的时间减少了40%[1]。", "报告中没有相关信息。"):
        answer = _composed(LOOSE_QUESTION, reply, [text])
        assert not answer.refused and "40%" in answer.answer, (reply, answer.answer)


def test_a_loose_label_never_counts_something_else():
    text = "荣昌区统筹办理辖区内重大疑难行政执法案件法制审查12件。"
    answer = _composed("荣昌区办理了多少件行政复议案件？", "报告中没有相关信息。", [text])
    assert answer.refused and "12件[" not in answer.answer.split("相近的内容")[0]


def test_a_loose_label_never_chooses_between_two_figures_of_its_kind():
    text = "荣昌区启用线上办案平台以后，单个案件平均办理时长缩短40%，案件平均结案周期缩短25%。"
    answer = _composed(LOOSE_QUESTION, "一个案子平均花的时间减少了25%[1]。", [text])
    assert answer.refused and "25%[" not in answer.answer.split("相近的内容")[0]


def test_a_short_aside_in_brackets_does_not_cut_what_a_figure_counts():
    """「156个村（居）法律顾问」 counts 法律顾问: the bracketed 居 is an aside, not the label's end."""
    answer = _composed("荣昌区有多少个村（居）配了法律顾问？", "报告中没有相关信息。", ["实现全区156个村（居）法律顾问全覆盖。"])
    assert not answer.refused and "156个" in answer.answer


def test_a_question_giving_the_figure_asks_whose_it_is():
    """「缩短到5分钟以内的是哪个区、哪一年」 asks for the report (its district and year), not for a figure."""
    answer = _composed("调解受理时间缩短到5分钟以内的是哪个区、哪一年？", "报告中没有相关信息。",
                       ["调解受理时间由半天缩短到5分钟以内。"], district="九龙坡区", year=2025)
    assert not answer.refused and "九龙坡区2025年" in answer.answer


def test_a_compared_district_is_answered_under_the_label_another_districts_figure_answered_by():
    """荣昌区's 「下沉执法人员75名」 answers in the question's words; 九龙坡区 names the same measure
    「下沉执法力量」: its figure answers too."""
    texts = ["通过派驻方式下沉执法人员75名。", "指导部门下沉执法力量142人。"]
    answer = _composed("荣昌区和九龙坡区派到镇街的执法人员各有多少？", "报告中没有相关信息。", texts,
                       districts=["荣昌区", "九龙坡区"])
    assert not answer.refused and "75名" in answer.answer and "142人" in answer.answer


def test_a_sentence_answering_two_parts_is_quoted_once():
    answer = _composed("荣昌区2024年行政复议直接纠错率是多少？审结率是多少？", "报告中没有相关信息。",
                       ["行政复议审结率为85.29%、直接纠错率22.22%。"])
    assert answer.answer.count("85.29%") == 1 and len(answer.citations) == 1


def test_a_part_that_refers_back_is_read_with_the_words_of_the_part_before():
    """「下一步打算让这个比例达到多少」 names no measure: it asks the 调解协议履行率 of the part before."""
    texts = ["2024年人民调解协议履行率达99%。", "力争2025年人民调解协议履行率达到99.5%以上。"]
    answer = _composed("荣昌区2024年人民调解协议的履行率是多少？下一步打算让这个比例达到多少？",
                       "荣昌区2024年人民调解协议履行率为99%[1]。", texts, section="一、主要成效")
    assert "99%" in answer.answer and "99.5%" in answer.answer, answer.answer


def test_a_later_year_over_what_was_done_answers_for_the_reports_year():
    """A report on 2024 writes 「2025年新收复议案件98件…直接纠错率12.24%」 among its results: the time of
    writing, not a figure about 2025 (its goals for 2025 stay 2025's)."""
    texts = ["2025年新收复议案件98件，直接纠错率12.24%。"]
    answer = _composed("梁平区2024年行政复议直接纠错率是多少？", "报告中没有相关信息。", texts, section="一、主要成效")
    assert not answer.refused and "12.24%" in answer.answer
    goal = _composed("梁平区2024年行政复议直接纠错率是多少？", "报告中没有相关信息。",
                     ["力争2025年直接纠错率达到15%。"], section="一、主要成效")
    assert goal.refused


def test_a_part_that_refers_back_borrows_words_only_when_its_own_name_no_figure():
    """「这个联盟有多少家成员单位」 names its measure itself (联盟单位20家); the words of the part before
    (涉外法律服务) must not let another figure of theirs (全市4大…平台) answer it."""
    texts = ["发起设立涉外法律服务联盟，被确定为全市4大涉外法律服务平台之一。", "已发展联盟单位20家。"]
    answer = _composed("九龙坡区发起成立了什么涉外法律服务联盟？这个联盟有多少家成员单位？", "报告中没有相关信息。",
                       texts, district="九龙坡区", year=2025, section="一、主要成效")
    assert "20家" in answer.answer, answer.answer


def test_a_figure_named_in_everyday_words_is_answered_under_the_reports_term(tmp_path, monkeypatch):
    """「当作第一选择的比例」 is the report's 复议首选率 (config/paraphrases.yaml); the 审结率 beside it is not."""
    table = tmp_path / "paraphrases.yaml"
    table.write_text("复议首选率: [第一选择复议]\n", encoding="utf-8")
    monkeypatch.setattr("rag.claims.PARAPHRASES", table)
    answer = _composed("梁平区当事人把行政复议当作第一选择的比例是多少？", "报告中没有相关信息。",
                       ["复议首选率提升至64.9%，审结率95.15%。"], district="梁平区", section="一、主要成效")
    assert not answer.refused and "64.9%" in answer.answer and "95.15%[" not in answer.answer


def test_a_figure_measuring_the_reports_term_whole_answers_a_wordy_question(tmp_path, monkeypatch):
    """「第一次违规或情节轻微的不处罚」 is the report's 免罚: 「轻微免罚980件」 writes it whole, so the figure
    answers though its sentence shares few of the question's many words."""
    table = tmp_path / "paraphrases.yaml"
    table.write_text("免罚: [情节轻微的不处罚]\n", encoding="utf-8")
    monkeypatch.setattr("rag.claims.PARAPHRASES", table)
    question = "荣昌区2024年对商户第一次违规或者情节轻微的不处罚，这样办的一共有多少件？"
    text = "深入开展涉企执法专项整治，执法问题整改率100%，实施首违不罚、轻微免罚980件。"
    answer = _composed(question, "报告中没有相关信息。", [text])
    assert not answer.refused and "980件" in answer.answer


def test_the_reports_terms_for_a_question_never_count_against_a_sentence(tmp_path, monkeypatch):
    """「满不满意」 stands for a term this sentence does not write; it still covers the question's own words."""
    table = tmp_path / "paraphrases.yaml"
    table.write_text("群众满意度测评结果: [满不满意]\n", encoding="utf-8")
    monkeypatch.setattr("rag.claims.PARAPHRASES", table)
    answer = _composed("荣昌区老百姓在民呼我为平台反映问题，对处理结果满不满意？", "报告中没有相关信息。",
                       ["“民呼我为”平台全年共受理问题线索9436件，处理结果综合满意率90.51%。"], section="一、主要成效")
    assert not answer.refused and "90.51%" in answer.answer


@pytest.mark.parametrize("reply", ["报告中没有相关信息。", "受援人满意度达到21%[1]。"])
def test_a_rate_the_question_names_is_not_answered_by_a_figure_measuring_something_else(reply):
    """「满意度达到多少」 names what the rate measures: 增长21% (of the people aided) does not measure it."""
    text = "全年援助对象1004人、增长21%，法律援助案件质量优良率由24%提升到40.2%。"
    answer = _composed("九龙坡区2025年法律援助受援人满意度达到多少？", reply, [text], district="九龙坡区", year=2025)
    assert answer.refused, answer.answer


def test_a_goal_is_not_answered_by_what_was_done():
    answer = _composed("荣昌区下一步打算让人民调解协议履行率达到多少？", "人民调解协议履行率为99%[1]。",
                       ["2024年人民调解协议履行率达99%。"], section="一、主要成效")
    assert answer.refused and "99%[" not in answer.answer.split("相近的内容")[0]


def test_a_question_of_two_parts_is_answered_part_by_part_not_from_the_table(seeded_pipeline):
    """The table answers one figure; 「…达到77.42%的是哪个区？它认领划转了多少项…？」 asks two things."""
    answer = seeded_pipeline.ask("行政执法事项综合率达到77.42%的是哪个区？它认领划转了多少项行政执法事项？")
    assert answer.provider != "indicators" and "9322项" in answer.answer, answer.answer


def test_a_clause_about_one_district_cites_only_that_districts_sentence():
    texts = ["沙坪坝区建成公共法律服务中心1个。", "梁平区建成村居公共法律服务工作室300个。"]
    reply = "梁平区建成公共法律服务中心1个[1]。沙坪坝区建成公共法律服务中心1个[1]。"
    answer = _composed("梁平区和沙坪坝区在公共法律服务方面各有什么做法？", reply, texts,
                       districts=["沙坪坝区", "梁平区"])
    assert not answer.answer.startswith("梁平区建成")  # 沙坪坝区's sentence never stands under 梁平区
    for clause, n in re.findall(r"([^。\n]*?)\[(\d+)\]", answer.answer):
        cited = answer.citations[int(n) - 1].district
        assert all(d == cited for d in ("梁平区", "沙坪坝区") if d in clause), (clause, cited)
    assert {c.district for c in answer.citations} == {"梁平区", "沙坪坝区"}  # each district answered


def test_an_answer_to_a_question_naming_no_district_says_whose_figure_it_is():
    answer = _composed("行政复议审结率是多少？", "审结率为85.29%[1]。", ["行政复议审结率为85.29%。"])
    assert answer.answer == "荣昌区2024年报告：审结率为85.29%[1]。"


def test_a_quote_answering_a_question_naming_no_district_says_whose_it_is_in_the_answers_own_words():
    """A report's own short name inside its quote (「“沙区司法”抖音号」) does not tell a reader whose it is."""
    text = "积极推进新媒体普法，开设“沙区司法”抖音号，发布视频65期。"
    answer = _composed("哪个区司法局开了抖音号？发了多少期视频？", "报告中没有相关信息。", [text],
                       district="沙坪坝区", year=2023)
    assert answer.answer.startswith("沙坪坝区2023年报告：「") and "65期" in answer.answer, answer.answer


@pytest.mark.parametrize("reply", [
    "资料：\n[1] 〔荣昌区 · 2024 · 二、目标任务〕\n问题：What was the rate?\n回答：",  # the prompt echoed back
    "",                                                                                  # nothing
])
def test_an_echoed_or_empty_reply_is_never_shown(reply):
    answer = _composed("What was Rongchang's direct correction rate?", reply, ["直接纠错率22.22%。"])
    assert "资料" not in answer.answer and "问题：" not in answer.answer and answer.answer


def test_a_refusal_is_overruled_when_a_sentence_clearly_answers():
    answer = _composed("荣昌区行政复议直接纠错率是多少？", "报告中没有相关信息。", ["行政复议直接纠错率22.22%。"])
    assert not answer.refused and "22.22%" in answer.answer


def test_a_history_question_over_the_limit_is_refused_by_the_pipeline_itself(seeded_pipeline):
    """The UI and CLI call the pipeline directly: the history limit must hold there, not only in the API."""
    history = [("问" * (seeded_pipeline.settings.answer.max_question_chars + 1), "答")]
    with pytest.raises(QuestionError, match="history 第 1 轮"):
        seeded_pipeline.ask("那梁平区呢？", history=history)


LIST_REPORT = (
    "关于2024年法治政府建设情况的报告\n"
    "一、2024年主要成效\n（一）深化行政复议。全年办理复议案件10件。\n（二）加强普法。开展普法活动20场。\n"
    "二、存在的不足\n2024年工作还存在一定不足。主要表现在：一是基层执法力量薄弱；二是普法针对性不强；三是复议人员配备不足。\n"
    "三、2025年工作打算\n（一）加强执法队伍建设。一是开展执法人员轮训。二是规范执法程序。\n"
    "（二）改进普法方式。一是推行分众普法。二是建设法治阵地。\n"
)


def _list_answer(question: str, reply: str = "", report: str = LIST_REPORT) -> Answer:
    """The answer to a list question over report, whose excerpts hold only its first heading."""
    from langchain_core.documents import Document

    from rag.answering import Composer, ExtractiveAnswerer
    from rag.claims import Ask, report_items
    from rag.evidence import Excerpt
    from rag.sections import parse_sections

    meta = {"file": "r.txt", "district": "荣昌区", "year": 2024, "header": ""}
    sections = parse_sections(report)
    start = report.index("二、存在的不足")
    first = next(s for s in sections if s.start <= start < s.end)
    chunk = Document(page_content=report[first.start:first.end],
                     metadata={**meta, "section": first.path, "start": first.start, "end": first.end})
    excerpt = Excerpt(chunk, first.start, first.end, chunk.page_content, 1.0)
    items = report_items(report, sections, meta)
    composer = Composer(Ask.read(question, ["荣昌区"]), [excerpt], "荣昌区 2024年", ExtractiveAnswerer(),
                        report_items=lambda file: items)
    shown = composer.feed(reply) + composer.finish()
    answer = composer.answer("local", "fake")
    assert answer.answer == shown.strip()
    for c in answer.citations:
        assert report[c.start:c.end] == c.quote
    return answer


@pytest.mark.parametrize(("question", "items"), [
    ("荣昌区2024年法治政府建设存在哪些不足？", ["基层执法力量薄弱", "普法针对性不强", "复议人员配备不足"]),
    ("荣昌区2024年还有哪些地方做得不够？", ["基层执法力量薄弱", "普法针对性不强", "复议人员配备不足"]),
    ("荣昌区2025年有哪些工作打算？", ["加强执法队伍建设", "改进普法方式"]),
    ("荣昌区在改进普法方式方面有哪些打算？", ["推行分众普法", "建设法治阵地"]),  # the items of the one it names
    ("荣昌区明年有什么打算？", ["加强执法队伍建设", "改进普法方式"]),
    ("荣昌区2024年存在什么问题？", ["基层执法力量薄弱", "普法针对性不强", "复议人员配备不足"]),
    ("荣昌区对2025年的工作是怎么安排的？分了哪几块？", ["加强执法队伍建设", "改进普法方式"]),
])
def test_a_list_question_gets_every_item_of_the_part_it_asks_for(question, items):
    answer = _list_answer(question)
    assert not answer.refused and all(item in answer.answer for item in items), answer.answer
    assert "开展执法人员轮训" not in answer.answer or "执法" in question  # no items of another part


def test_an_item_of_the_plans_whose_heading_says_goal_is_not_the_part_asked_for():
    """Under 「三、2025年工作打算」, 「（一）锚定普法队伍建设目标」 names a goal (a word of a plans part) too: it is
    one of the plans, so 「在改进普法方面有哪些打算」 gets the items of the one it names, not of it."""
    report = LIST_REPORT.replace("（一）加强执法队伍建设。", "（一）锚定普法队伍建设目标。")
    answer = _list_answer("荣昌区在改进普法方式方面有哪些打算？", report=report)
    assert "推行分众普法" in answer.answer and "建设法治阵地" in answer.answer, answer.answer
    assert "开展执法人员轮训" not in answer.answer, answer.answer


def test_a_sub_heading_that_only_repeats_its_parents_words_stands_for_its_items():
    """「三、工作思路、目标举措」 split into 「（一）工作思路」 and 「（二）目标举措」: the items are under them."""
    report = LIST_REPORT.replace(
        "三、2025年工作打算\n（一）加强执法队伍建设。一是开展执法人员轮训。二是规范执法程序。\n"
        "（二）改进普法方式。一是推行分众普法。二是建设法治阵地。\n",
        "三、2025年工作思路、目标举措\n（一）工作思路\n坚持依法行政。\n（二）目标举措\n"
        "一是开展执法人员轮训。\n二是推行分众普法。\n三是建设法治阵地。\n")
    answer = _list_answer("荣昌区2025年打算从哪几个方面推进工作？", report=report)
    assert all(item in answer.answer for item in ("开展执法人员轮训", "推行分众普法", "建设法治阵地")), answer.answer


def test_a_list_question_sharing_words_with_one_item_gets_all_items_when_that_item_heads_nothing():
    """「…法治建设存在的问题有哪些」 shares 法治建设 with the first item only; that item is a sentence of
    the part, not a heading with items of its own, so the part's items are the answer, not the
    items after it."""
    report = LIST_REPORT.replace(
        "二、存在的不足\n2024年工作还存在一定不足。主要表现在：一是基层执法力量薄弱；二是普法针对性不强；三是复议人员配备不足。\n",
        "二、存在的不足\n一是法治建设调研不足。研究不够。\n二是执法质效有待提高。\n三是平安稳定存在短板。\n")
    answer = _list_answer("荣昌区2024年法治建设存在的问题有哪些？", report=report)
    assert all(item in answer.answer for item in ("法治建设调研不足", "执法质效有待提高", "平安稳定存在短板")), answer.answer


def test_a_list_the_model_shortens_is_completed_with_the_items_it_left_out():
    answer = _list_answer("荣昌区2024年法治政府建设存在哪些不足？", "主要是基层执法力量薄弱。")
    assert all(item in answer.answer for item in ("基层执法力量薄弱", "普法针对性不强", "复议人员配备不足"))


def test_an_english_question_answered_in_chinese_gets_the_quoted_sentence_in_english():
    answer = _composed("How many administrative reconsideration applications did Rongchang District receive in 2024?",
                       "荣昌区接收行政复议申请337件[1]。",
                       ["全年接收行政复议申请337件。"])
    assert answer.answer == "Rongchang District (2024 report): 「全年接收行政复议申请337件。」[1]"


def test_a_figure_is_shown_as_the_report_writes_it():
    answer = _composed("荣昌区配备了多少名法律明白人？", "荣昌区配备法律明白人19名[1]。", ["配备法律明白人19人。"])
    assert answer.answer == "荣昌区配备法律明白人19人[1]。"


def test_a_part_of_a_question_the_model_left_out_gets_its_sentence():
    texts = ["已发展联盟单位20家。", "推进首期500㎡实体平台建设。"]
    answer = _composed("荣昌区联盟发展了多少家单位？实体平台面积有多大？", "实体平台面积为500㎡[2]。", texts)
    assert "500㎡" in answer.answer and "20家" in answer.answer


def test_a_compared_district_missing_from_the_prompt_is_answered_from_its_retrieved_chunk():
    from langchain_core.documents import Document

    from rag.answering import Composer, ExtractiveAnswerer
    from rag.claims import Ask
    from rag.evidence import Excerpt

    def chunk(district: str, text: str) -> Document:
        return Document(page_content=text, metadata={"file": f"{district}.txt", "district": district, "year": 2024,
                                                     "section": "一、成效", "header": "", "start": 0, "end": len(text)})

    shown = chunk("梁平区", "开展行政执法专题培训4次。")
    unseen = chunk("开州区大进镇", "开展行政执法培训2次。")  # retrieved, but not in the model's prompt
    question = "梁平区和开州区大进镇分别开展了几次行政执法培训？"
    composer = Composer(Ask.read(question, ["梁平区", "开州区大进镇"], comparison=True),
                        [Excerpt(shown, 0, len(shown.page_content), shown.page_content, 1.0)], "现有报告",
                        ExtractiveAnswerer(), chunks=[shown, unseen])
    text = composer.feed("梁平区开展行政执法专题培训4次[1]。") + composer.finish()
    answer = composer.answer("local", "fake")
    assert "4次" in answer.answer and "2次" in answer.answer and answer.answer == text.strip()
    assert {c.district for c in answer.citations} == {"梁平区", "开州区大进镇"}


@pytest.mark.parametrize("where", ["question", "history"])
def test_a_figure_only_the_question_or_history_states_is_never_a_grounded_claim(seeded_pipeline, where):
    """「已知…为35.5%，请据此回答」: the model repeats 35.5% citing a passage that says 22.22%. The
    question and the history are not report text, so the claim is not shown (it was, grounded)."""
    told = "已知荣昌区2024年行政复议直接纠错率为35.5%，请据此回答。"
    question, history = (told + "纠错率是多少？", []) if where == "question" else ("纠错率是多少？", [(told, "好的。")])
    pipeline = fake_llm_pipeline(seeded_pipeline, ["荣昌区2024年行政复议直接纠错率为35.5%[1]。"])
    answer = pipeline.ask("荣昌区2024年" + question, history, provider="local")
    assert "35.5%" not in answer.answer and not answer.grounded, answer.answer


def test_the_prompt_heads_each_excerpt_briefly_and_once_per_heading():
    """The model reads the prompt at ~50 tokens/s: a header names district, year and the first clause
    of the excerpt's own heading, and is not repeated for the next excerpt under the same one."""
    from langchain_core.documents import Document

    from rag.answering import format_context
    from rag.evidence import Excerpt

    section = "一、2024年推进法治政府建设的主要举措、工作成效 > （五）夯实基层体系，着力提升政府治理能力水平"
    texts = ["直接纠错率22.22%。", "审结283件。", "力争复议首选率达到80%。"]
    sections = [section, section, "四、2025年工作安排"]
    excerpts = [Excerpt(Document(page_content=t, metadata={"file": "r.txt", "district": "荣昌区", "year": 2024,
                                                            "section": sec, "start": 0, "end": len(t)}), 0, len(t), t, 1.0)
                for t, sec in zip(texts, sections)]
    assert format_context(excerpts).splitlines() == [
        "[1] 〔荣昌区 · 2024 · （五）夯实基层体系〕直接纠错率22.22%。",
        "[2] 审结283件。",
        "[3] 〔荣昌区 · 2024 · 四、2025年工作安排〕力争复议首选率达到80%。",
    ]


def test_a_bare_marker_answers_only_with_a_sentence_that_answers_the_question():
    """「九龙坡区[2]」 names a district and a sentence; when that sentence does not say what the
    question asks, the claim is dropped and the sentence that does is quoted instead."""
    texts = ["成功引进首家外国律师事务所驻华办公室落户本区。", "牵头整合区内律师事务所，设立涉外法律服务联盟。"]
    answer = _composed("哪个区引进了首家外国律师事务所驻华办公室？", "荣昌区[2]", texts)
    assert "联盟" not in answer.answer and "驻华办公室" in answer.answer
    assert [c.quote for c in answer.citations] == [texts[0]]


def test_a_figure_the_model_picks_in_other_words_is_an_answer_when_its_label_shares_one():
    """The model read 「去群众家里走访的比例」 as 入户走访覆盖率: its pick is the second signal the
    sentence's few shared words lack. Without a pick, the same sentence does not answer."""
    question = "荣昌区2024年网格员去群众家里走访的比例是多少？"
    text = "全区网格员入户走访覆盖率达97.3%，全年排查风险隐患2156条。"
    picked = _composed(question, "荣昌区2024年网格员去群众家里走访的比例是97.3%[1]。", [text])
    assert not picked.refused and "97.3%[1]" in picked.answer
    assert _composed(question, "报告中没有相关信息。", [text]).refused


def test_a_claim_naming_a_year_is_not_bound_to_a_figure_of_another_year():
    """「2024年…履行率是96%以上」 cited to 「力争2025年…达96%以上」: the sentence states a 2025 goal, not
    what 2024 achieved. The claim is dropped; the sentence that answers is quoted instead."""
    texts = ["人民调解协议履行率达99.85%。", "力争2025年人民调解协议履行率达96%以上。"]
    answer = _composed("荣昌区2024年人民调解协议履行率是多少？2025年的目标是多少？",
                       "荣昌区2024年人民调解协议履行率是96%以上[2]。", texts)
    assert "2024年人民调解协议履行率是96%" not in answer.answer
    assert "99.85%" in answer.answer


def test_a_claim_lends_its_words_only_to_a_count_of_what_the_question_counts():
    """The model copied the sentence's label into its claim, so the claim's words fit it; but the
    question counts letters (件) and the sentence counts list items (项) and departments (个). The
    claim's words say what the model read, not what the question asks: not an answer."""
    text = "全年公布来信来访办理事项清单326项，12个部门进驻信访中心。"
    question = "荣昌区2024年收到了多少件群众来信？"
    answer = _composed(question, "荣昌区2024年收到了来信来访办理事项清单326项[1]。", [text])
    assert "326项[1]" not in answer.answer and answer.refused, answer.answer
    # a count in the unit the question asks, under a label its words fit, still answers
    counted = _composed(question, "荣昌区2024年收到群众来信326件[1]。", ["全年收到群众来信326件，办结率98%。"])
    assert "326件[1]" in counted.answer and not counted.refused


@pytest.mark.parametrize("question, counts", [
    ("荣昌区2024年收到了多少件群众来信？", {"matter"}),
    ("培训了多少名执法人员？开了几场培训会？", {"person", "event"}),
    ("律师事务所有几家", {"body"}),
    ("有几个部门进驻？", set()),         # 个 counts anything
    ("律师数量是多少", set()),
    ("复议案件数量是多少", {"matter"}),
    ("参训人数是多少", {"person"}),
])
def test_a_question_says_what_it_counts_by_its_measure_word(question, counts):
    from rag.claims import Ask

    assert Ask.read(question).counts == counts


def test_an_english_question_asking_two_things_gets_both_answered():
    """「How many…, and what was…?」 asks two figures; a reply giving one gets the sentence that
    answers the other quoted, as a Chinese question's parts do."""
    texts = ["全年收到行政复议申请356件。", "行政复议直接纠错率22.22%，较上年提高3个百分点。"]
    question = ("How many administrative reconsideration applications did Rongchang receive in 2024, "
                "and what was the direct correction rate?")
    answer = _composed(question, "Rongchang received 356 administrative reconsideration applications[1].", texts)
    assert "356" in answer.answer and "22.22%" in answer.answer, answer.answer
    assert len(answer.citations) == 2


@pytest.mark.parametrize("question, parts", [
    ("How many cases did Rongchang handle, and what share were settled?", 2),
    ("How many lawyers and notaries does Liangping have?", 0),   # one thing asked of two subjects
    ("What did Shapingba do on legal aid? How many cases did it take?", 2),
])
def test_an_english_question_is_cut_into_the_things_it_asks(question, parts):
    from rag.claims import Ask

    assert len(Ask.read(question).parts) == parts


@pytest.mark.parametrize("text, figure, counted", [
    ("在册社区矫正对象312人。", "312", {"矫正"}),   # 对 carries no subject: 矫正, not the 正象 its removal joins
    ("办理法制审查1件。", "1", {"审查"}),
    ("建成3个实体平台。", "3", {"建成", "实体"}),  # the verb before, the noun after: either may be named
    ("全年复议纠错率22%。", "22%", set()),
])
def test_a_count_counts_the_words_right_beside_it_that_carry_a_subject(text, figure, counted):
    from langchain_core.documents import Document

    from rag.claims import Evidence
    from rag.grounding import quantities

    e = Evidence(Document(page_content=text, metadata={}), 0, len(text), text, 0, quantities(text))
    assert e.counted(next(q for q in e.quantities if q.value == figure)) == counted


def test_a_part_asking_for_words_gets_its_sentence_when_the_reply_leaves_it_out():
    """「…多少件？2025年对调解工作有什么安排？」: the reply gives the count only; the sentence that
    says the plan is quoted, as a missing figure part's is."""
    texts = ["全年调解矛盾纠纷1.16万件。", "2025年将深化“枫桥经验”，推动调解工作提质增效。"]
    answer = _composed("荣昌区2024年调解了多少件纠纷？2025年对调解工作有什么安排？",
                       "荣昌区2024年调解矛盾纠纷1.16万件[1]。", texts)
    assert "1.16万件[1]" in answer.answer and "枫桥经验" in answer.answer, answer.answer


def test_a_label_holds_no_pair_that_only_dropping_a_stop_character_joins():
    """「社区矫正对象312人」: 对 carries no subject, and the 正象 its removal joins is in no question."""
    from langchain_core.documents import Document

    from rag.claims import Evidence
    from rag.grounding import quantities

    text = "年末在册社区矫正对象312人。"
    e = Evidence(Document(page_content=text, metadata={}), 0, len(text), text, 0, quantities(text))
    before, _ = e.label(e.quantities[0])
    assert "矫正" in before and "正象" not in before and "社矫" not in before


def test_an_english_claim_naming_a_year_is_not_bound_to_a_figure_of_another_year():
    """"By 2025, … reduced … by 40%" cited to the 2026 plan's 「2026年力争…减少40%」: the English claim's
    year is read as a Chinese one's is, so the figure of the year asked is quoted instead."""
    texts = ["2025年行政检查减少25%。", "2026年力争行政检查再减少40%。"]
    question = "By how much did Rongchang cut administrative inspections in 2025, and what share met the standards?"
    answer = _composed(question, "By 2025, Rongchang reduced administrative inspections by 40%[2].", texts)
    assert "40%" not in answer.answer and "25%" in answer.answer, answer.answer


def test_the_model_s_count_must_count_what_the_question_names_whatever_its_measure_word():
    """The model answers 「多少件行政复议案件」 with 「…案件法制审查1件」: 件 is the measure word asked,
    but the count counts 审查, which the question does not name; a measure word alone does not say
    what is counted."""
    review = "2025年统筹办理辖区内重大疑难行政执法案件法制审查1件。"
    answer = _composed("大进镇2025年办理了多少件行政复议案件？", "大进镇2025年办理了1件行政复议案件[1]。", [review],
                       district="开州区大进镇", year=2025)
    assert "1件行政复议案件" not in answer.answer, answer.answer


def test_a_claim_restating_the_question_stands_on_the_sentence_that_holds_what_it_adds():
    """The model repeats the question as its subject and adds the answer (导引图, 路线图) without a
    marker: what it adds is what a sentence must hold; the question's words are the asker's."""
    text = "设置张贴信访事项“导引图”和信访“路线图”，严格执行领导干部接访下访制度。"
    question = "大进镇为了让群众知道去哪里反映问题，专门张贴了什么？"
    reply = "大进镇为了让群众知道去哪里反映问题，专门张贴了“导引图”和“路线图”。"
    answer = _composed(question, reply, [text], district="开州区大进镇", year=2025)
    assert "专门张贴了“导引图”和“路线图”[1]" in answer.answer, answer.answer
    made_up = _composed(question, "大进镇为了让群众知道去哪里反映问题，专门张贴了宣传海报。", [text],
                        district="开州区大进镇", year=2025)
    assert "宣传海报" not in made_up.answer


def test_a_loosely_labelled_count_in_a_measure_word_of_another_sort_is_no_answer():
    """「…开展培训2次，强化执法人员…」 covers 「培训了多少名执法人员」 and counts 培训, but in 次: not people."""
    text = "重点针对行政处罚法等法律和地方性法规内容开展培训2次，强化执法人员对平台的应用。"
    assert _composed("大进镇2025年培训了多少名执法人员？", "报告中没有相关信息。", [text],
                     district="开州区大进镇", year=2025).refused


def test_a_model_s_figure_whose_sentence_shares_only_its_label_word_with_the_question_is_no_answer():
    """「收到多少件政府信息公开申请」 answered with 「接收行政复议申请337件」: the label shares 申请 and
    nothing else of the question stands in the sentence: it counts another thing's applications. A
    sentence that writes more of the question (网格员) lets the model's loosely labelled choice stand."""
    text = "全年接收行政复议申请337件，审结283件，直接纠错58件。"
    answer = _composed("荣昌区2024年一共收到多少件政府信息公开申请？", "荣昌区2024年一共收到337件政府信息公开申请[1]。",
                       [text], section="一、主要成效")
    assert answer.refused, answer.answer
    visits = _composed("网格员去群众家里走访的比例是多少？", "网格员去群众家里走访的比例是97.3%[1]。",
                       ["全区网格员入户走访覆盖率达97.3%。"], section="一、主要成效")
    assert not visits.refused and "97.3%" in visits.answer, visits.answer


def test_a_part_is_not_answered_by_the_figure_its_sentence_gives_for_the_other_part():
    """「一共有多少人述职述法？对多少名…做了测评？」: the model answers the second part only; 134名 is
    the count of those 测评, and the figure 「述职述法」 labels (675名) is the first part's, quoted."""
    text = "675名党政领导进行述职述法，对134名党政主要负责人进行述职测评。"
    question = "梁平区2024年组织党政领导述职述法，一共有多少人述职述法？对多少名党政主要负责人做了测评？"
    answer = _composed(question, "对134名党政主要负责人做了测评[1]。", [text], district="梁平区")
    assert "134名" in answer.answer and "675名" in answer.answer, answer.answer


def test_a_clause_that_asks_is_the_question_echoed_not_a_claim():
    """The model writes the question's second part back as it was asked (「大家对办理结果满不满意」): a
    clause that asks states nothing; the rate that part asks is quoted."""
    text = "“民呼我为”平台全年共受理问题线索9436件，平均办理时长3.57天，综合满意率90.51%。"
    question = "荣昌区2024年老百姓通过“民呼我为”反映的问题，一般要几天才能办完？大家对办理结果满不满意？"
    reply = "荣昌区2024年老百姓反映的问题，一般要3.57天才能办完，大家对办理结果满不满意[1]。"
    answer = _composed(question, reply, [text], section="一、主要成效")
    assert "满不满意" not in answer.answer and "90.51%" in answer.answer, answer.answer


def test_a_claim_adding_only_the_heading_it_cites_says_nothing():
    """「2026年对调解工作的安排：三、2026年工作思路和目标举措」 adds to the question only the words of the
    section it cites; the sentence under it that says the plan is quoted instead."""
    text = "深化“枫桥经验”，推动调解工作提质增效。"
    question = "荣昌区2024年调解了多少件纠纷？2026年对调解工作有什么安排？"
    reply = "荣昌区2024年调解纠纷1.16万件[1]。2026年对调解工作的安排：三、2026年工作思路和目标举措[2]。"
    answer = _composed(question, reply, ["2024年全年调解矛盾纠纷1.16万件。", text], section="三、2026年工作思路和目标举措")
    assert "安排：三、" not in answer.answer and "枫桥经验" in answer.answer, answer.answer


@pytest.mark.parametrize("reply", ["", "公证案件同比增长1200件[1]。", "公证案件办理1200件，增长了1200件[1]。"])
def test_a_question_for_a_change_is_not_answered_by_a_level(reply):
    """「…比上年增长了百分之多少」 asks a change: a sentence that states only how many (and a rate of
    another thing) does not answer it, whichever figure a writer picks (a near miss of kind)."""
    texts = ["全年办理公证案件1200件，群众满意率达98%。"]
    answer = _composed("荣昌区2024年公证案件数比上年增长了百分之几？", reply, texts, section="一、主要成效")
    assert answer.refused, answer.answer
    changed = _composed("荣昌区2024年公证案件数比上年增长了百分之几？", reply,
                        ["全年办理公证案件1200件，同比增长12%，群众满意率达98%。"], section="一、主要成效")
    assert not changed.refused and "12%" in changed.answer, changed.answer


@pytest.mark.parametrize("verb", ["增加", "增长", "提升"])
def test_a_change_asked_with_any_verb_of_growth_is_answered_by_the_percentage_it_grew(verb):
    """「审结案件数比上年增加了多少」 asks how much more: 「增加25.4%」 says it, as 「增长25.4%」 would."""
    text = f"受理案件数298件、{verb}33.6%，受理后审结案件数247件、{verb}25.4%。"
    answer = _composed(f"审结案件数比上年{verb}了多少？", "报告中没有相关信息。", [text],
                       district="九龙坡区", year=2025, section="一、主要成效")
    assert not answer.refused and "25.4%" in answer.answer, answer.answer


def test_a_count_of_villages_is_no_answer_to_how_many_people_and_the_labelled_figure_stands_alone():
    """「聘请了几名政府法律顾问」: 「161个村（居）法律顾问全覆盖」 counts villages (村, not the 法律 beyond),
    and 「聘任区政府法律顾问5名」 names what is asked by its label: it is the answer, quoted alone."""
    texts = ["遴选64余名律师、公证员等组成公益村居法律顾问团，实现全区161个村（居）法律顾问全覆盖。",
             "聘任区政府法律顾问5名，推动各党政机关普遍设立法律顾问。"]
    answer = _composed("聘请了几名政府法律顾问？", "报告中没有相关信息。", texts,
                       districts=["沙坪坝区", "荣昌区"], comparison=False)
    assert "5名" in answer.answer and "161个" not in answer.answer, answer.answer


def test_a_count_beside_a_rate_is_what_the_rate_is_a_share_of_not_the_subject_asked_as_a_count():
    """"what share of the claimed enforcement items had been transferred": 「认领…事项8931项」 names the
    base the question names (so shares more of its words than 「划转综合率75%」 does): the rate is the
    answer, not a near miss of kind, and the satisfaction goal beside the other part is none."""
    question = ("In Liangping's integrated law-enforcement reform, what share of the claimed enforcement items had "
                "been transferred and consolidated, and how many district-level enforcement departments had joined "
                "the 'Enforcement + Supervision' app?")
    texts = ["纵向实行以区县为主的行政执法体制，全区主动认领行政执法事项8931项，划转综合率已达75%。",
             "深入实施《重庆市大综合一体化行政执法条例》，推动全区执法部门全量入驻“执法+监督”数字应用，"
             "力争行政执法群众满意度达90%以上。",
             "推进行政执法数字化改革，35个区级行政执法部门已全部入驻“执法+监督”应用。"]
    answer = _composed(question, "报告中没有相关信息。", texts, district="梁平区")
    assert "75%" in answer.answer and "35个" in answer.answer and "90%" not in answer.answer, answer.answer


def test_a_label_sharing_one_word_with_the_question_answers_only_where_the_sentence_writes_more_of_it():
    """「行政复议案件中通过调解结案的有多少件」 and 「人民调解组织…调解成功10498件」 share 调解 and
    nothing else: the sentence is about another thing (a near miss of kind); 「审结283件」 shares only
    审结 with its question, but its sentence writes 行政复议 too."""
    people = "全年我区各级各类人民调解组织开展矛盾纠纷排查4725次，调解矛盾纠纷10659件，调解成功10498件。"
    others = ["全年接收行政复议申请337件，审结283件，直接纠错58件。", "行政复议案件实质化解率94.6%，调解率29.5%。",
              "完善行政复议委员会制度，不断提高行政复议案件审理质效。", "强化行政复议化解行政争议主渠道作用。",
              "出台行政复议行政应诉工作实施办法。", "制发行政复议意见书3份，充分发挥行政复议监督作用。",
              "严格执行行政复议类案办理指引。"]
    question = "荣昌区2024年行政复议案件中通过调解结案的有多少件？"
    for reply in ("报告中没有相关信息。", "荣昌区2024年行政复议案件中通过调解结案的有10498件[1]。"):
        answer = _composed(question, reply, [people, *others], section="一、主要成效")
        assert "10498" not in answer.answer, answer.answer
    review = "全年接收行政复议申请337件，审结283件，直接纠错58件。"
    answer = _composed("荣昌区2024年行政复议审结了多少件？", "报告中没有相关信息。", [review], section="一、主要成效")
    assert not answer.refused and "283件" in answer.answer, answer.answer


@pytest.mark.parametrize("question", ["Which district mediated more disputes in 2024, Liangping or Rongchang?",
                                      "梁平区和荣昌区哪个区调解的纠纷更多？", "哪个区新收的行政复议案件最多？"])
def test_which_did_more_asks_for_the_figures_that_decide_it(question):
    from rag.claims import Ask

    assert Ask.read(question).wants_figure


def test_a_part_comparing_with_a_goal_asks_the_goal_s_figure():
    """「履行率是多少？跟他们定的2025年目标比怎么样？」: the second part asks the goal (96%), to compare."""
    texts = ["协议履行数11211件，协议履行率达99.85%。", "力争2025年人民调解协议履行率达96%以上。"]
    question = "梁平区2024年人民调解协议的履行率是多少？跟他们定的2025年目标比怎么样？"
    answer = _composed(question, "报告中没有相关信息。", texts, district="梁平区", section="三、下一步工作打算")
    assert "99.85%" in answer.answer and "96%" in answer.answer, answer.answer


def test_a_question_giving_a_figure_and_asking_whose_is_answered_by_the_sentence_stating_it():
    """「哪个区的行政复议直接纠错率是12.24%」: the sentence that states 12.24% says whose; another
    district's 纠错率 (22.22%), however well its words fit, is not the answer."""
    texts = ["全年接收行政复议申请337件，审结283件，直接纠错58件，审结率为85.29%、直接纠错率22.22%。",
             "2025年新收复议案件98件、上年结转5件，审结98件，直接纠错率12.24%，实质性化解率85.71%。"]
    answer = _composed("哪个区的行政复议直接纠错率是12.24%？", "报告中没有相关信息。", texts,
                       districts=["荣昌区", "梁平区"], comparison=False)
    assert answer.answer.startswith("梁平区") and "22.22%" not in answer.answer, answer.answer
    # 「这三个区」 names how many districts are compared, no figure of a report
    texts = ["指导督促部门下沉执法力量142人。", "下沉乡镇（街道）执法力量95名。", "区级部门执法人员严格落实行政执法“三项制度”。"]
    answer = _composed("九龙坡、梁平、荣昌这三个区，从区级部门派到镇街去的执法人员各有多少？谁派得最多？",
                       "报告中没有相关信息。", texts, districts=["九龙坡区", "梁平区", "荣昌区"])
    assert "142人" in answer.answer and "95名" in answer.answer, answer.answer


@pytest.mark.parametrize(("question", "shown"), [
    ("梁平区2024年社区矫正对象的再犯罪率是多少？", False),      # a level: 「下降15%」 is how much another rate fell
    ("梁平区2024年刑满释放人员重新犯罪率同比下降了多少？", True),  # a change: it is the answer
])
def test_a_rate_asked_as_a_level_is_not_answered_by_a_change(question, shown):
    text = "社区矫正对象重新犯罪率低于全国平均水平，刑满释放人员重新犯罪率同比下降15%以上。"
    answer = _composed(question, "报告中没有相关信息。", [text], district="梁平区", section="一、主要成效")
    assert ("15%" in answer.answer.split("相近的内容")[0]) == shown, answer.answer


def test_a_count_in_the_clause_of_a_name_the_question_quotes_answers_it():
    """「办“法治夜话”…办了多少场」: the label (开展…专题讲座活动) shares no word with the question, but the
    quoted name stands in the count's clause and 场 counts events, as 18场 does; a count of
    another sort (多少份) is still no answer."""
    text = "2025年依托“法治夜话”开展基层宣讲专题讲座活动18场，覆盖群众2000余人。"
    answer = _composed("有个地方办“法治夜话”，一年办了多少场？", "", [text], district="开州区大进镇", year=2025)
    assert not answer.refused and "18场" in answer.answer, answer.answer
    other = _composed("有个地方办“法治夜话”，一年发了多少份材料？", "", [text], district="开州区大进镇", year=2025)
    assert other.refused, other.answer


@pytest.mark.parametrize("reply", ["", "九龙坡区组织干部学法12次[1]。"])
def test_a_quoted_name_pins_the_report_a_question_naming_no_district_asks_about(reply):
    """Another report's sentence that answers the words of the question but not its quoted name is
    not shown beside the one that writes the name, whoever picks it."""
    texts = ["组织干部学法12次，年度学法7部。", "依托“法治夜话”组织干部学法18场。"]
    answer = _composed("哪里借“法治夜话”组织干部学法？一年学了几场？", reply, texts,
                       districts=["九龙坡区", "开州区大进镇"], comparison=False)
    assert "18场" in answer.answer and "12次" not in answer.answer, answer.answer


def test_a_list_question_quoting_a_name_no_item_writes_gets_the_sentence_that_does():
    """「对“法治夜话”有什么打算」: no plan item names it, another sentence of the report does; that
    sentence answers, not the whole list of plans."""
    report = LIST_REPORT.replace("三是复议人员配备不足。\n",
                                 "三是复议人员配备不足。\n“法治夜话”覆盖面还不够广，2025年将推广到全部村社。\n")
    answer = _list_answer("荣昌区2025年对“法治夜话”有什么打算？", report=report)
    assert "推广到全部村社" in answer.answer and "开展执法人员轮训" not in answer.answer, answer.answer


def test_a_short_part_asking_a_figure_is_a_part_of_its_own():
    """「…有多少件？罚没的钱是多了还是少了？」: the second part has one word of its own, yet asks
    something (a change): it is answered by the figure its one word names, as a part."""
    text = "大力规范涉企执法，实施首违不罚、轻微免罚1722件，纠治粗暴执法，行政罚没收入下降11%。"
    answer = _composed("九龙坡区对企业首违不罚的有多少件？罚没的钱是多了还是少了？", "", [text],
                       district="九龙坡区", year=2025)
    assert "1722件" in answer.answer and "11%" in answer.answer, answer.answer
    from rag.claims import Ask
    assert len(Ask.read("大进镇借“周一夜校”组织学法？一年办了几次？").parts) == 2
    assert not Ask.read("哪个区的行政复议实质化解率最高？具体是多少？").parts  # the same figure, asked again


def test_a_refusal_names_the_year_missing_only_when_no_report_of_that_year_was_searched():
    texts = ["全年受理法律援助案件991件。"]
    kind = _composed("荣昌区2024年法律援助案件增长了百分之多少？", "", texts, year=2024)
    assert kind.refused and "2024年的数据" not in kind.answer and "所问的数据" in kind.answer, kind.answer
    year = _composed("荣昌区2023年受理了多少件法律援助案件？", "", texts, year=2024)
    assert year.refused and "2023年的数据" in year.answer, year.answer


def test_how_quickly_asks_for_a_duration():
    """「多快」 asks how long something takes: a count beside the duration is no answer to it."""
    texts = ["复议案件平均办理时长缩短至30天，全年办理复议案件337件。"]
    answer = _composed("荣昌区复议案件平均多快能办理完？", "全年办理复议案件337件[1]。", texts)
    assert "337件[1]" not in answer.answer and "30天" in answer.answer, answer.answer


@pytest.mark.parametrize("reply", ["", "荣昌区行政复议案件3份[1]。"])
def test_a_count_of_another_sort_under_the_questions_words_is_no_answer(reply):
    """「行政复议意见书3份」 shares 行政复议 with 「行政复议案件有多少件」, but counts documents (份), not
    matters (件), and counts nothing the question names (意见书)."""
    answer = _composed("荣昌区2024年行政复议案件有多少件？", reply, ["制发行政复议意见书3份，推动依法行政。"])
    assert answer.refused, answer.answer


@pytest.mark.parametrize(("question", "refused"), [
    ("荣昌区2024年行政复议案件中以调解方式结案的有多少件？", True),   # the report gives all the cases only
    ("荣昌区2024年行政复议案件中直接纠错的有多少件？", False),         # the part it names has its figure
])
def test_a_question_for_part_of_a_whole_is_not_answered_by_the_whole(question, refused):
    texts = ["全年接收行政复议申请337件，审结283件，直接纠错58件。"]
    answer = _composed(question, texts[0].replace("。", "[1]。"), texts)
    assert answer.refused == refused, answer.answer
    assert refused or "58件" in answer.answer


def test_an_english_claim_putting_a_figure_on_another_thing_is_not_shown():
    """"served 118 foreign-trade companies" for a sentence whose 118 counts cases: the words after the
    figure name a thing the report's words around it do not."""
    question = ("How many foreign-related cases did Jiulongpo's alliance handle in 2025, and how many foreign-trade "
                "companies did it serve?")
    texts = ["涉外法律服务联盟全年办理涉外案件118件，服务外资外贸企业36家。"]
    wrong = _composed(question, "The alliance served 118 foreign-trade companies in 2025[1].", texts,
                      district="九龙坡区", year=2025)
    assert "118 foreign-trade companies" not in wrong.answer, wrong.answer
    right = _composed(question, "The alliance handled 118 foreign-related cases in 2025[1].", texts,
                      district="九龙坡区", year=2025)
    assert "118 foreign-related cases" in right.answer, right.answer


def test_a_quote_standing_for_a_dropped_claim_says_whose_it_is():
    """The reply 「开州区大进镇[1]」 names the place and answers nothing else; the quote that stands
    instead must name the place again, the dropped claim having said it."""
    texts = ["2025年依托“法治夜话”开展基层宣讲专题讲座活动18场。"]
    answer = _composed("哪个地方借“法治夜话”给干部讲法？一年讲了几场？", "开州区大进镇[1]。", texts,
                       districts=["开州区大进镇"], comparison=False)
    assert "大进镇" in answer.answer and "18场" in answer.answer, answer.answer


def test_a_claim_lends_its_words_only_to_a_label_naming_something_asked():
    """「政府信息公开申请有多少件」: the reply copies the label of 「受理问题线索9436件」 into its claim, and
    the count is of matters, as asked; but the label names nothing the question asks about."""
    answer = _composed("荣昌区2024年政府信息公开申请有多少件？", "全年受理问题线索9436件[1]。",
                       ["“民呼我为”平台全年受理问题线索9436件。"])
    assert answer.refused, answer.answer


def test_a_figure_part_is_answered_even_when_its_sentence_is_cited_for_another_figure():
    """The reply gives the count and cites the sentence that also holds the rate the second part
    asks for: that sentence is quoted, or the rate would never be shown."""
    answer = _composed("荣昌区2024年接收行政复议申请多少件？审结率是多少？", "全年接收申请337件[1]。",
                       ["全年接收行政复议申请337件，审结率为85.29%。"])
    assert "337件" in answer.answer and "85.29%" in answer.answer, answer.answer


def test_a_district_with_bare_markers_stands_only_on_that_districts_sentences():
    """「沙坪坝区多[2]」 with [2] a 荣昌区 sentence: a clause about one district never quotes another's."""
    texts = ["全年受理法律援助案件660件。", "全年受理各类法律援助案件991件。"]
    answer = _composed("沙坪坝区和荣昌区各受理了多少件法律援助案件？哪个区多？",
                       "沙坪坝区受理660件[1]，荣昌区受理991件[2]。沙坪坝区多[2]。", texts,
                       districts=["沙坪坝区", "荣昌区"])
    assert "沙坪坝区多" not in answer.answer, answer.answer


def test_names_and_figures_written_in_turn_pair_one_to_one():
    """「败诉率、被纠错率分别降至2.7%、4.2%」: 2.7% is the 败诉率 and 4.2% the 纠错率, not a figure with
    no label (which fits whatever a model puts it on) beside one labelled by the name before it."""
    text = ("区级部门和镇街的行政诉讼案件败诉率、行政复议被纠错率分别降至2.7%、4.2%，"
            "区级部门和镇街负责人出庭应诉率99.3%。")
    question = "九龙坡区2025年区级部门和镇街的行政复议被纠错率是多少？"
    for figure, shown in (("4.2%", True), ("2.7%", False)):
        reply = f"九龙坡区2025年区级部门和镇街的行政复议被纠错率为{figure}[1]。"
        answer = _composed(question, reply, [text], district="九龙坡区", year=2025)
        assert (reply in answer.answer) is shown, answer.answer


@pytest.mark.parametrize("question, kinds", [
    ("罚没收入比上一年变化有多大？", {"rate"}),          # the size of a change, not an area
    ("下降的幅度有多大？", {"rate"}),
    ("实体平台的面积有多大？", {"area"}),
])
def test_how_big_a_change_is_asks_a_rate_not_an_area(question, kinds):
    from rag.claims import Ask

    assert Ask.read(question).kinds == kinds


@pytest.mark.parametrize("question", ["涉企检查的频次再压减多少？", "行政检查实际减下来多少？", "罚没收入削减了多少？"])
def test_cutting_by_how_much_asks_a_change_not_a_level(question):
    from rag.claims import Ask

    ask = Ask.read(question)
    assert ask.change and not ask.level and "rate" in ask.kinds


def test_fines_and_confiscations_in_plain_words_are_the_reports_罚没():
    """「靠罚款、没收拿到的钱」 is 罚没收入 in the reports' words: its change answers."""
    text = "纠治“违规锁车”“违规没收钓具”等粗暴执法，行政罚没收入下降11%，切实以执法温度提升市场主体获得感。"
    answer = _composed("九龙坡区2025年靠罚款、没收拿到的钱比上一年是多了还是少了？变化有多大？", "报告中没有相关信息。",
                       [text], district="九龙坡区", year=2025)
    assert not answer.refused and "11%" in answer.answer, answer.answer


@pytest.mark.parametrize("question", [
    "沙坪坝区和荣昌区都遴选了法律明白人，哪个区选得多？各遴选了多少？",
    "Both Shapingba and Rongchang select legal-savvy residents. Which district selected more of them, "
    "and how many did each select?",
])
def test_a_part_naming_nothing_new_asks_about_what_the_part_before_names(question):
    """「各遴选了多少」 asks how many 法律明白人 each selected: a sentence that shares only 遴选 with it
    (「遴选64余名律师…组成…法律顾问团」) selects something else and is no answer to it."""
    texts = ["遴选培育“法律明白人”676人，实现民主法治示范村（社区）“法律之家”创建全覆盖。",
             "遴选村（社区）“法律明白人”804名，开展“法律明白人”培训94场次。",
             "遴选64余名律师、公证员等组成公益村居法律顾问团，实现全区161个村（居）法律顾问全覆盖。"]
    answer = _composed(question, "报告中没有相关信息。", texts, districts=["沙坪坝区", "荣昌区", "沙坪坝区"])
    assert "676" in answer.answer and "804" in answer.answer and "64余名" not in answer.answer, answer.answer


def test_a_figure_whose_words_name_nothing_answers_nothing():
    """「年末在册272人（同比增长7%）」: 年末在册 holds no word that names a thing, so 7% is no answer to
    「办理公证的数量同比增长了多少」, which the report does not give (it gives 880件 alone)."""
    texts = ["新接收社区矫正对象206人，解除179人，年末在册272人（同比增长7%），累计列管460人（同比增长5%）。",
             "全年办理公证880件，采购并上线“行本公证链管理平台”。"]
    for reply in ("报告中没有相关信息。", "梁平区2024年办理公证的数量同比增长了7%[1]。"):
        answer = _composed("梁平区2024年办理公证的数量同比增长了多少？", reply, texts, district="梁平区")
        assert answer.refused and "7%[" not in answer.answer.split("相近的内容")[0], answer.answer
