"""Evaluation metrics on small hand-made cases: folding, span hits, citations, refusals, aggregates."""

from __future__ import annotations

import pytest

from eval.metrics import (
    Span,
    aggregate,
    check_floors,
    citation_matches,
    evidence_recall,
    failure_categories,
    figure_support,
    first_hit,
    hit_at,
    locate,
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
