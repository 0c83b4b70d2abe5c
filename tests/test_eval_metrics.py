"""Evaluation metrics on small hand-made cases: folding, span hits, citations, refusals, trust, aggregates."""

from __future__ import annotations

import pytest

from eval.metrics import (
    Span,
    aggregate,
    check_floors,
    citation_matches,
    clause_districts,
    evidence_recall,
    failure_categories,
    figure_precision,
    figure_support,
    first_hit,
    hit_at,
    is_english,
    list_completeness,
    locate,
    lookup,
    marker_segments,
    missing_terms,
    passage_hits,
    percentile,
    reciprocal_rank,
    score_question,
    section_matches,
    summarize,
)

L1 = "一、2024年推进法治政府建设的主要举措和成效"
L2 = "（五）维护平安稳定"
FILE = "002_x.txt"


def gold(qid="q1", kind="fact_number", must=("99.8%",), sources=None):
    if sources is None:
        sources = [] if kind == "unanswerable" else [
            {"file": FILE, "district": "沙坪坝区", "year": 2023, "section": f"{L1} > {L2}", "evidence": "调解成功率99.8%"}
        ]
    return {"id": qid, "type": kind, "question": "沙坪坝区2023年调解成功率是多少？", "answer": "99.8%",
            "must_include": list(must), "sources": sources}


def citation(n=1, district="沙坪坝区", section=f"{L1} > {L2}", quote="全年调解成功率99.8%。", file=FILE):
    return {"n": n, "file": file, "district": district, "year": 2023, "section": section,
            "start": 100, "end": 120, "quote": quote}


def answer(text="调解成功率为99.8％[1]。", refused=False, citations=None, total=100.0, retrieve=10.0):
    return {"answer": text, "refused": refused, "grounded": True, "provider": "extractive", "model": "extractive",
            "citations": [citation()] if citations is None else citations,
            "timings": {"retrieve_ms": retrieve, "first_token_ms": retrieve + 1, "total_ms": total}}


def row(start, end, file=FILE):
    return {"file": file, "district": "沙坪坝区", "year": 2023, "section": L1, "start": start, "end": end}


EVIDENCE = [Span(FILE, 105, 113)]


# ---- folding ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, must, missing",
    [
        ("调解成功率为99.8％", ["99.8%"], []),          # full-width percent
        ("梁平區人民調解", ["梁平区"], []),              # Traditional script
        ("共１７２２件", ["1722件"], []),                # full-width digits
        ("调解1.16 万件", ["1.16万"], []),               # white space ignored
        ("覆盖率82.4", ["82.4%", "100%"], ["82.4%", "100%"]),
        ("九龙坡区、梁平区", ["九龙坡", "沙坪坝"], ["沙坪坝"]),
    ],
)
def test_missing_terms_compares_after_folding(text, must, missing):
    assert missing_terms(text, must) == missing


def test_locate_finds_evidence_verbatim_or_after_folding():
    text = "前言。梁平區人民調解成功率99.97%。"
    assert locate("人民調解成功率", text) == (6, 13)
    assert locate("人民调解成功率", text) == (6, 13)   # Simplified evidence in a Traditional report
    assert locate("调解成功率88%", text) is None


# ---- retrieval -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "passage, hit",
    [
        (Span(FILE, 0, 106), True),           # overlaps the start of the evidence
        (Span(FILE, 112, 300), True),         # overlaps its last character
        (Span(FILE, 106, 110), True),         # inside it
        (Span(FILE, 0, 105), False),          # ends where the evidence starts
        (Span(FILE, 113, 200), False),        # starts where it ends
        (Span("001_y.txt", 100, 120), False),  # same offsets, other file
    ],
)
def test_passage_hits_by_span_overlap(passage, hit):
    assert passage_hits([passage], EVIDENCE) == [hit]


def test_hit_at_k_and_reciprocal_rank():
    hits = [False, False, True, False]
    assert first_hit(hits) == 3
    assert [hit_at(hits, k) for k in (1, 2, 3, 10)] == [0.0, 0.0, 1.0, 1.0]
    assert reciprocal_rank(hits) == pytest.approx(1 / 3)
    assert reciprocal_rank([]) == 0.0 and first_hit([False]) is None and hit_at([], 5) == 0.0


def test_evidence_recall_counts_gold_spans_covered():
    evidence = [Span(FILE, 0, 10), Span(FILE, 500, 510)]
    assert evidence_recall([Span(FILE, 5, 50)], evidence) == 0.5
    assert evidence_recall([Span(FILE, 5, 50), Span(FILE, 505, 600)], evidence) == 1.0
    assert evidence_recall([Span(FILE, 5, 50)], []) is None


# ---- citations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cited, gold_section, match",
    [
        (f"{L1} > {L2}", f"{L1} > {L2}", True),
        (f"{L1} > {L2}（续）", f"{L1} > {L2}", False),            # a different heading
        (f"{L1} > {L2}", L1, True),                               # a subsection of the gold section
        (L1, f"{L1} > {L2}", True),                               # its parent
        (f"{L1} > （四）推进依法行政", f"{L1} > {L2}", False),      # a sibling
        ("二、存在的問題", "二、存在的问题", True),                 # folded script
        ("3、 存在不足和原因", "3、存在不足和原因", True),          # white space
        ("一、2024年推进", L1, False),                             # a string prefix is not a level
        ("", L1, False),
    ],
)
def test_section_matches(cited, gold_section, match):
    assert section_matches(cited, gold_section) is match


def test_citation_matches_needs_the_gold_file_for_the_section():
    sources = gold()["sources"]
    assert citation_matches(citation(), sources) == (True, True)
    assert citation_matches(citation(district="沙坪壩區"), sources) == (True, True)
    assert citation_matches(citation(file="001_y.txt"), sources) == (True, False)
    assert citation_matches(citation(district="梁平区", file="001_y.txt"), sources) == (False, False)


def test_figure_support_ignores_markers_question_and_width():
    assert figure_support("成功率为99.8％[1]", ["成功率99.8%"]) == ({"99.8%"}, set())
    assert figure_support("受理660件，增长37%[1]", ["受理660件，同比增长39%"]) == ({"660"}, {"37%"})
    assert figure_support("2023年受理660件[2]", ["受理660件"], allowed="沙坪坝区2023年") == ({"660"}, set())


def test_percentile_interpolates():
    assert percentile([4, 1, 3, 2], 50) == 2.5
    assert percentile([10, 20], 95) == pytest.approx(19.5)
    assert percentile([7], 95) == 7 and percentile([], 50) is None


# ---- one question ----------------------------------------------------------------------------


def test_right_answer_with_hit_and_right_citation():
    r = score_question(gold(), [row(0, 50), row(90, 200)], EVIDENCE, answer())
    s = r["scores"]
    assert s["correct"] and not r["failed"] and r["reasons"] == []
    assert s["first_hit"] == 2 and s["hit@1"] == 0.0 and s["hit@3"] == 1.0 and s["rr"] == 0.5
    assert [x["hit"] for x in r["retrieved"]] == [False, True]
    assert s["citations"] == [{"n": 1, "district_ok": True, "section_ok": True}]
    assert s["figures_found"] == ["99.8%"] and s["figures_unsupported"] == []


def test_a_report_named_by_its_year_is_no_unsupported_figure():
    text = "成功率为99.8%[1]。\n\n未报告该指标：九龙坡区2025年报告、荣昌区2021年的报告。"
    r = score_question(gold(), [row(90, 200)], EVIDENCE, answer(text))
    assert r["scores"]["figures_unsupported"] == []
    r = score_question(gold(), [row(90, 200)], EVIDENCE, answer("2021年成功率为99.8%[1]。"))
    assert r["scores"]["figures_unsupported"] == ["2021"]  # a year stated as a figure still needs its passage


def test_refusing_an_answerable_question_fails_even_if_the_refusal_names_the_district():
    item = gold(kind="attribution", must=("沙坪坝",))
    refusal = answer("报告中没有相关信息：在沙坪坝区 2023年的报告中没有找到。", refused=True, citations=[])
    r = score_question(item, [row(0, 50)], EVIDENCE, refusal)
    assert r["failed"] and r["scores"]["missing"] == ["沙坪坝"]
    assert {x["category"] for x in r["reasons"]} == {"false_refusal", "retrieval_miss"}


def test_missing_figure_and_wrong_citations_are_reasons():
    wrong = [citation(1, section=f"{L1} > （四）推进依法行政"), citation(2, district="梁平区", file="001_y.txt")]
    r = score_question(gold(must=("99.8%", "1.16万")), [row(90, 200)], EVIDENCE, answer(citations=wrong))
    assert r["failed"] and r["scores"]["missing"] == ["1.16万"]
    assert [x["category"] for x in r["reasons"]] == ["missing", "wrong_section", "wrong_district"]


@pytest.mark.parametrize(
    "refused, correct, reasons",
    [(True, True, []), (False, False, ["not_refused"])],
)
def test_unanswerable_is_right_only_when_refused(refused, correct, reasons):
    got = answer("报告中没有相关信息", refused=True, citations=[]) if refused else answer()
    r = score_question(gold(kind="unanswerable", must=()), [], [], got)
    assert r["scores"]["correct"] is correct and r["failed"] is not correct
    assert [x["category"] for x in r["reasons"]] == reasons
    assert "hit@1" not in r["scores"]  # no retrieval figures for unanswerable questions


def test_error_and_unlocated_evidence_are_recorded():
    r = score_question(gold(), [], [None], None, error="ask: LLMUnavailableError: down")
    assert r["failed"] and r["answer"] is None and r["scores"]["refused"] is None
    assert [x["category"] for x in r["reasons"]] == ["error", "gold_evidence_missing", "retrieval_miss"]


# ---- a run -----------------------------------------------------------------------------------


@pytest.fixture
def records():
    return [
        score_question(gold("q1"), [row(90, 200)], EVIDENCE, answer(total=100)),                      # right
        score_question(gold("q2", "fact_text", ("1.16万",)), [row(0, 10), row(100, 110)], EVIDENCE,
                       answer("成功率37%[1]", citations=[citation(), citation(2, district="梁平区", file="001_y.txt")],
                              total=300)),                                                          # wrong
        score_question(gold("q3"), [], EVIDENCE, answer("报告中没有相关信息", refused=True, citations=[],
                                                        total=200, retrieve=0.0)),                   # refused
        score_question(gold("q4", "unanswerable", ()), [], [], answer("报告中没有相关信息", refused=True,
                                                                    citations=[], total=50, retrieve=0.0)),
        score_question(gold("q5"), [], EVIDENCE, None, error="ask: RuntimeError: boom"),
    ]


def test_aggregate_over_hand_made_run(records):
    m = aggregate(records)
    assert m["questions"] == 5 and m["answerable"] == 4 and m["errors"] == 1
    assert m["retrieval.hit@1"] == 0.25 and m["retrieval.hit@3"] == 0.5
    assert m["retrieval.mrr"] == pytest.approx((1 + 0.5) / 4)
    assert m["answer.accuracy"] == 0.25
    assert m["refusal.recall"] == 1.0 and m["refusal.false_rate"] == 0.25   # the error is not a refusal
    assert m["citation.district_accuracy"] == pytest.approx(2 / 3)       # pooled over 3 cited passages
    assert m["citation.section_accuracy"] == pytest.approx(2 / 3)
    assert m["faithfulness.numeric"] == 0.5                                # 99.8% found, 37% not
    assert m["latency.total_p50"] == 150 and m["latency.retrieve_p50"] == 10.0
    assert m["latency.total_p95"] == pytest.approx(285)


def test_summarize_breaks_down_by_type_with_none_when_unmeasured(records):
    m = summarize(records)
    assert list(m["by_type"]) == ["fact_number", "fact_text", "unanswerable"]
    assert m["by_type"]["fact_number"]["answer.accuracy"] == pytest.approx(1 / 3)
    assert m["by_type"]["unanswerable"]["answer.accuracy"] is None
    assert m["by_type"]["unanswerable"]["retrieval.hit@5"] is None
    assert m["by_type"]["fact_text"]["refusal.recall"] is None
    assert failure_categories(records)["retrieval_miss"] == 2


def test_check_floors_names_each_figure_missed(records):
    m = summarize(records)
    floors = {
        "min": {"answer.accuracy": 0.5, "refusal.recall": 0.8, "by_type.fact_number.retrieval.hit@10": 0.9,
                "by_type.unanswerable.answer.accuracy": 0.1, "no.such": 1},
        "max": {"refusal.false_rate": 0.1, "latency.total_p50": 1000},
    }
    problems = check_floors(m, floors)
    assert len(problems) == 5
    assert problems[0].startswith("answer.accuracy = 0.250 is below its floor 0.5")
    assert any(p.startswith("by_type.fact_number.retrieval.hit@10 = 0.333") for p in problems)
    assert any("by_type.unanswerable.answer.accuracy: not measured" in p for p in problems)
    assert any(p.startswith("no.such: not in the metrics") for p in problems)
    assert any(p.startswith("refusal.false_rate = 0.250 is above its ceiling") for p in problems)
    assert check_floors(m, {"min": {"refusal.recall": 1.0}, "max": {"latency.total_p95": 300}}) == []


# ---- trust: does each clause's own citation back it? ----------------------------------------

Q660 = "受理法律援助案件660件"
Q39 = "同比增长39%"


@pytest.mark.parametrize(
    "text, segments",
    [
        ("共12件[1]。", [("共12件", [1]), ("。", [])]),
        ("甲12件[1][2]，乙5件 [3] [4]。丙", [("甲12件", [1, 2]), ("，乙5件 ", [3, 4]), ("。丙", [])]),
        ("共12件[1]", [("共12件", [1])]),
        ("没有标注", [("没有标注", [])]),
        ("[1]开头", [("", [1]), ("开头", [])]),
        ("", []),
    ],
)
def test_marker_segments_cut_after_each_group_of_markers(text, segments):
    assert marker_segments(text) == segments


@pytest.mark.parametrize(
    "text, quotes, allowed, precise, imprecise",
    [
        ("调解成功率为99.8％[1]。", {1: "调解成功率99.8%"}, "", ["99.8%"], []),          # width folded
        ("受理660件[1]，增长39%。", {1: f"{Q660}，{Q39}"}, "", ["660"], ["39%"]),         # no marker after 39%
        ("受理660件，增长39%[1][2]。", {1: Q660, 2: Q39}, "", ["39%", "660"], []),         # any quote of the group
        ("受理660件[2]，增长39%[1]。", {1: Q660, 2: Q39}, "", [], ["660", "39%"]),         # markers swapped
        ("受理660件[1]，增长39%[1]。", {1: Q660, 2: Q39}, "", ["660"], ["39%"]),           # [2] is never used
        ("2023年受理660件[1]", {1: Q660}, "沙坪坝区2023年", ["660"], []),                 # a figure of the question
        ("2023年受理660件[1]", {1: Q660}, "", ["660"], ["2023"]),
        ("受理660件[3]", {1: Q660}, "", [], ["660"]),                                     # marker without a passage
        ("报告未提及具体数字[1]", {1: Q660}, "", [], []),
    ],
)
def test_figure_precision_needs_the_quote_of_the_markers_closing_the_figure(text, quotes, allowed, precise, imprecise):
    cited = [citation(n, quote=q) for n, q in quotes.items()]
    assert figure_precision(text, cited, allowed) == (precise, imprecise)


@pytest.mark.parametrize(
    "text, districts, oks",
    [
        ("沙坪坝区调解1.16万件[1]。", {1: "沙坪坝区"}, [True]),
        ("梁平區調解11228件[1]。", {1: "梁平区"}, [True]),                                 # folded script
        ("开州区深化执法改革[1]。", {1: "开州区大进镇"}, [True]),                          # a town of the district
        ("大进镇建成调解室[1]。", {1: "开州区大进镇"}, [True]),                            # the town named alone
        ("开州区大进镇建成调解室[1]。", {1: "开州区"}, [False]),                           # the district is not the town
        ("沙坪坝区调解1.16万件[1]；梁平区调解11228件[2]。", {1: "沙坪坝区", 2: "沙坪坝区"}, [True, False]),
        ("九龙坡区和沙坪坝区都设立了服务站[1][2]。", {1: "九龙坡区", 2: "沙坪坝区"}, [True]),
        ("九龙坡区和沙坪坝区都设立了服务站[1][2]。", {1: "九龙坡区", 2: "梁平区"}, [False]),
        ("沙坪坝区调解1.16万件[3]。", {1: "沙坪坝区"}, [False]),                           # marker without a passage
        ("调解1.16万件[1]。沙坪坝区还建成中心。", {1: "梁平区"}, []),                      # no district before [1]
        ("「与成都市武侯区司法局签署备忘录。」[1]", {1: "沙坪坝区"}, []),               # the report's words, quoted
        ("沙坪坝区：「与成都市武侯区司法局签署备忘录。」[1]", {1: "沙坪坝区"}, [True]),
        ("梁平区：「与成都市武侯区司法局签署备忘录。」[1]", {1: "沙坪坝区"}, [False]),
    ],
)
def test_clause_districts_every_marker_cites_a_district_the_clause_names(text, districts, oks):
    cited = [citation(n, district=d) for n, d in districts.items()]
    assert [check.ok for check in clause_districts(text, cited)] == oks


@pytest.mark.parametrize(
    "text, items, share",
    [
        ("主要有：甲项、乙项和丙项[1]。", ["甲项", "乙项", "丙项"], 1.0),
        ("一是依法決策參謀作用仍需加強[1]", ["依法决策参谋作用仍需加强", "行政执法监督效能仍需提升"], 0.5),
        ("建成 商事调解中心1个", ["商事调解中心", "1个", "公证处", "仲裁委"], 0.5),            # white space ignored
        ("报告中没有相关信息", ["甲项"], 0.0),
        ("主要有：甲项", [], None),
    ],
)
def test_list_completeness_is_the_share_of_items_given(text, items, share):
    assert list_completeness(text, items) == share


@pytest.mark.parametrize(
    "text, english",
    [
        ("The mediation success rate was 99.8%[1].", True),
        ("Shapingba (沙坪坝区) mediated 11,600 disputes in 2023[1].", True),
        ("The report says 「全年调解矛盾纠纷1.16万件，调解成功率为99.8％，建成商事调解中心1个」[1].", True),
        ("Ｔｈｅ ｒａｔｅ ｗａｓ 99.8%", True),                                          # full-width letters
        ("调解成功率为99.8%[1]。", False),
        ("Answer: 全年调解矛盾纠纷1.16万件[1]", False),
        ("报告中没有相关信息（no info）。", False),
        ("[1]", False),
        ("", False),
    ],
)
def test_is_english_counts_ascii_letters_outside_markers_and_quotes(text, english):
    assert is_english(text) is english


def test_record_carries_style_lang_and_per_question_trust_counts():
    cited = [citation(), citation(2, district="梁平区", file="001_y.txt", quote="受理660件")]
    text = "沙坪坝区调解成功率为99.8％[1]；沙坪坝区受理660件[2]，增长39%。"
    r = score_question({**gold(), "style": "paraphrase"}, [row(90, 200)], EVIDENCE, answer(text, citations=cited))
    assert (r["style"], r["lang"], r["near_miss"]) == ("paraphrase", "zh", None)
    s = r["scores"]
    assert s["citation_precision"] == {"precise": 2, "total": 3, "imprecise": ["39%"]}
    assert s["clause_district"]["right"] == 1 and s["clause_district"]["total"] == 2
    assert len(s["clause_district"]["wrong"]) == 1 and "[2] 梁平区" in s["clause_district"]["wrong"][0]
    assert s["list_completeness"] is None and s["items_missing"] == [] and s["language_ok"] is None
    assert r["expected"]["items"] == []
    plain = score_question(gold(), [], EVIDENCE, answer())
    assert (plain["style"], plain["lang"]) == ("dev", "zh")


def test_record_of_english_list_and_refused_answers():
    en = {**gold(), "style": "english", "lang": "en", "question": "What was the mediation success rate in 2023?"}
    assert score_question(en, [], EVIDENCE, answer("The success rate was 99.8%[1]."))["scores"]["language_ok"] is True
    assert score_question(en, [], EVIDENCE, answer())["scores"]["language_ok"] is False
    assert score_question(en, [], EVIDENCE, None, error="ask: boom")["scores"]["language_ok"] is False

    listed = {**gold(must=("甲项",)), "style": "list", "items": ["甲项", "乙项", "丙项", "丁项"]}
    r = score_question(listed, [], EVIDENCE, answer("有甲项、乙项[1]。"))
    assert r["scores"]["list_completeness"] == 0.5 and r["scores"]["items_missing"] == ["丙项", "丁项"]
    assert r["scores"]["correct"] and r["expected"]["items"] == listed["items"]   # accuracy stays must_include
    refused = score_question(listed, [], EVIDENCE, answer("报告中没有相关信息：甲项", refused=True, citations=[]))
    assert refused["scores"]["list_completeness"] == 0.0
    assert refused["scores"]["citation_precision"] is None and refused["scores"]["clause_district"] is None

    near = score_question({**gold("q9", "unanswerable", ()), "near_miss": "year"}, [], [], answer())
    assert near["near_miss"] == "year"


@pytest.fixture
def styled_records():
    refusal = answer("报告中没有相关信息", refused=True, citations=[])
    q660 = citation(2, quote="受理660件")
    items = ["甲项", "乙项", "丙项", "丁项"]
    return [
        score_question(gold("s1"), [row(90, 200)], EVIDENCE, answer("沙坪坝区调解成功率为99.8％[1]，受理660件[1]。")),
        score_question({**gold("s2"), "style": "paraphrase"}, [row(90, 200)], EVIDENCE,
                       answer("调解成功率为99.8％[1]；梁平区受理660件[2]。", citations=[citation(), q660])),
        score_question({**gold("s3"), "style": "paraphrase"}, [], EVIDENCE, refusal),
        score_question({**gold("s4", must=("甲项",)), "style": "list", "items": items}, [], EVIDENCE,
                       answer("有甲项、乙项[1]。")),
        score_question({**gold("s5", "unanswerable", ()), "style": "near_miss", "near_miss": "year"}, [], [], refusal),
        score_question({**gold("s6", "unanswerable", ()), "style": "near_miss", "near_miss": "district"}, [], [],
                       answer("成功率37%[1]")),
        score_question(gold("s7", "unanswerable", ()), [], [], refusal),
        score_question({**gold("s8"), "style": "english", "lang": "en"}, [], EVIDENCE,
                       answer("The success rate was 99.8%[1].")),
        score_question({**gold("s9"), "style": "english", "lang": "en"}, [], EVIDENCE, answer()),
    ]


def test_aggregate_trust_figures(styled_records):
    m = aggregate(styled_records)
    assert m["answer.accuracy"] == pytest.approx(5 / 6)          # must_include only, as before
    assert m["citation.precision"] == pytest.approx(5 / 7)       # pooled: 1/2 + 2/2 + 0/1 + 1/1 + 1/1
    assert m["citation.clause_district"] == 0.5                  # s1 right, s2 names 梁平区 and cites 沙坪坝区
    assert m["list.completeness"] == 0.5
    assert m["answer.language"] == 0.5
    assert m["refusal.recall"] == pytest.approx(2 / 3)
    assert m["refusal.recall_by_kind"] == {"year": 1.0, "kind": None, "district": 0.0, "absent": None, "other": 1.0}


def test_trust_figures_are_none_when_unmeasured(records):
    m = aggregate(records)
    assert m["citation.precision"] == 0.5                        # 99.8% under [1]; 37% under a quote without it
    assert m["citation.clause_district"] is None                 # no clause names a district
    assert m["list.completeness"] is None and m["answer.language"] is None
    assert m["refusal.recall_by_kind"] == {"year": None, "kind": None, "district": None, "absent": None, "other": 1.0}


def test_summarize_breaks_down_by_style_like_by_type(styled_records):
    m = summarize(styled_records)
    by_style = m["by_style"]
    assert list(by_style) == ["dev", "paraphrase", "english", "near_miss", "list"]
    assert by_style["dev"]["questions"] == 2 and by_style["dev"]["answer.accuracy"] == 1.0
    assert by_style["dev"]["citation.precision"] == 0.5 and by_style["dev"]["refusal.recall"] == 1.0
    assert by_style["paraphrase"]["answer.accuracy"] == 0.5 and by_style["paraphrase"]["refusal.false_rate"] == 0.5
    assert by_style["paraphrase"]["refusal.recall"] is None and by_style["paraphrase"]["citation.precision"] == 1.0
    assert by_style["near_miss"]["answer.accuracy"] is None and by_style["near_miss"]["refusal.recall"] == 0.5
    assert by_style["near_miss"]["citation.precision"] == 0.0
    assert by_style["english"]["answer.language"] == 0.5 and by_style["list"]["list.completeness"] == 0.5
    assert by_style["list"]["citation.precision"] is None
    assert m["by_type"]["fact_number"]["questions"] == 6          # by_type unchanged beside it


def test_floors_reach_styles_and_near_miss_kinds(styled_records):
    m = summarize(styled_records)
    assert lookup(m, "refusal.recall_by_kind.year") == 1.0
    assert lookup(m, "by_style.english.answer.language") == 0.5
    assert lookup(m, "by_type.fact_number.questions") == 6
    with pytest.raises(KeyError):
        lookup(m, "by_style.nope.answer.accuracy")
    floors = {"min": {"by_style.paraphrase.answer.accuracy": 0.9, "refusal.recall_by_kind.district": 0.5,
                      "refusal.recall_by_kind.kind": 0.5, "citation.precision": 0.5, "by_style.nope.answer.accuracy": 1,
                      "by_style.list.list.completeness": 1.0}}
    problems = check_floors(m, floors)
    assert len(problems) == 5
    assert any(p.startswith("by_style.paraphrase.answer.accuracy = 0.500 is below its floor 0.9") for p in problems)
    assert any(p.startswith("refusal.recall_by_kind.district = 0.000 is below") for p in problems)
    assert any(p.startswith("refusal.recall_by_kind.kind: not measured") for p in problems)
    assert any(p.startswith("by_style.nope.answer.accuracy: not in the metrics") for p in problems)
    assert any(p.startswith("by_style.list.list.completeness = 0.500") for p in problems)
