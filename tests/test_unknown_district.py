"""A report whose district or year was not detected is filed as unknown, never as a wildcard.

The corpus: 荣昌区 and 梁平区 reports of 2024, a 2024 report naming no district (its figures
4321件 and 77个 are its own), and a 璧山区 report naming no year. Before, the blank district
was "contained" in every name: a question on 荣昌区 was answered as a comparison with it, one
on 渝中区 (covered by no report) was answered from it, and refusals listed 「、 2024年」 and 「0年」.
"""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from rag import cli
from rag.answering import NOT_FOUND, format_context
from rag.pipeline import Pipeline
from rag.retrieval import covered_summary, resolve_districts
from rag.schema import Citation
from rag.settings import load_settings
from tests.conftest import make_kb

REPORTS = {
    "rongchang.txt": (
        "荣昌区2024年法治政府建设情况报告\n\n"
        "一、主要举措和成效\n（一）加强公共法律服务\n全年办理法律援助案件865件，行政复议直接纠错率18.5%。\n"
        "（二）深化普法\n全年开展法治宣传活动120场次。\n"
        "（三）维护平安稳定\n与四川泸县、内江等13个市县建立警务合作协调会议机制。\n\n"
        "重庆市荣昌区人民政府\n2025年1月20日\n"
    ),
    "liangping.txt": (
        "梁平区2024年法治政府建设情况报告\n\n"
        "一、主要举措和成效\n（一）加强公共法律服务\n全年办理法律援助案件532件，行政复议直接纠错率9.6%。\n"
        "（二）深化普法\n全年开展法治宣传活动86场次。\n\n"
        "重庆市梁平区人民政府\n2025年1月18日\n"
    ),
    "nameless.txt": (  # no district anywhere: 区司法局 names none
        "关于2024年法治政府建设情况的报告\n\n"
        "一、主要举措和成效\n（一）加强公共法律服务\n全年办理法律援助案件4321件，建成无人机普法站77个。\n"
        "（二）深化普法\n全年开展法治宣传活动4321场次。\n\n"
        "区司法局\n2025年1月10日\n"
    ),
    "bishan.txt": (  # no year anywhere
        "璧山区法治政府建设情况报告\n\n"
        "一、主要举措和成效\n（一）深化行政复议改革\n全年办理行政复议案件321件，直接纠错率7.7%。\n\n"
        "重庆市璧山区人民政府\n"
    ),
}
NAMELESS_FIGURE = "4321"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Pipeline:
    folder = tmp_path_factory.mktemp("reports")
    for name, text in REPORTS.items():
        (folder / name).write_text(text, encoding="utf-8")
    data_dir = tmp_path_factory.mktemp("data")
    settings = load_settings(
        overrides={"data_dir": str(data_dir), "llm.provider": "extractive", "retrieval.dense_weight": 0}
    )
    kb = make_kb(data_dir)
    summary = kb.ingest(sorted(folder.iterdir()))
    assert not summary.failed
    rows = {r["file"]: r for r in kb.reports()}
    assert (rows["nameless.txt"]["district"], rows["nameless.txt"]["year"]) == ("", 2024)
    assert (rows["bishan.txt"]["district"], rows["bishan.txt"]["year"]) == ("璧山区", 0)
    return Pipeline(settings, kb)


def _no_unknown_named(text: str) -> None:
    """No blank district (「、 2024年」, 「为： 2024年」) and no year 0 written in a message."""
    assert not re.search(r"(^|[、：:，,（(在])\s*20\d{2}年", text), text
    assert not re.search(r"(?<!\d)0年", text), text


def test_a_named_district_never_retrieves_or_cites_the_report_without_a_district(pipeline):
    question = "荣昌区2024年办理法律援助案件多少件？"
    route = pipeline.route(question)
    assert route.districts == ["荣昌区"] and not route.comparison
    assert {p.meta["district"] for p in pipeline.retrieve(question)} == {"荣昌区"}
    answer = pipeline.ask(question)
    assert not answer.refused and "865件" in answer.answer
    assert NAMELESS_FIGURE not in answer.answer
    assert answer.citations and {c.district for c in answer.citations} == {"荣昌区"}


def test_an_uncovered_district_is_refused_without_naming_or_quoting_the_report_without_a_district(pipeline):
    answer = pipeline.ask("渝中区2024年办理法律援助案件多少件？")
    assert answer.refused and answer.citations == []
    assert answer.answer.startswith(NOT_FOUND) and "渝中区" in answer.answer
    assert NAMELESS_FIGURE not in answer.answer
    assert "荣昌区 2024年" in answer.answer and "梁平区 2024年" in answer.answer  # what is covered
    _no_unknown_named(answer.answer)


def test_a_question_naming_no_district_may_cite_it_and_its_citation_carries_no_district(pipeline):
    question = "全年建成无人机普法站多少个？"
    prompt = format_context(pipeline.excerpts(question, provider="local"))
    assert "〔区县未识别 · 2024 · （一）加强公共法律服务〕" in prompt  # the model is told, not left to guess
    answer = pipeline.ask(question)
    assert not answer.refused and "77个" in answer.answer
    (cited,) = answer.citations
    assert cited.file == "nameless.txt" and cited.district == ""
    assert cited.label() == "〔2024 · 一、主要举措和成效 > （一）加强公共法律服务〕"
    assert answer.answer.startswith("区县未识别的2024年报告：「")  # whose figure it is, honestly
    _no_unknown_named(answer.answer)


def test_a_refusal_naming_no_district_lists_only_reports_of_known_districts(pipeline):
    answer = pipeline.ask("全年建成海上法庭多少个？")
    assert answer.refused and answer.citations == []
    assert "荣昌区 2024年" in answer.answer
    _no_unknown_named(answer.answer)


def test_an_unknown_year_is_never_a_wildcard_nor_written_as_year_0(pipeline):
    asked_2024 = pipeline.ask("璧山区2024年办理行政复议案件多少件？")
    assert asked_2024.refused and asked_2024.citations == []
    assert "璧山区（年份未识别）" in asked_2024.answer
    _no_unknown_named(asked_2024.answer)
    any_year = pipeline.ask("璧山区办理行政复议案件多少件？")
    assert "321件" in any_year.answer
    assert any_year.citations[0].label() == "〔璧山区 · 一、主要举措和成效 > （一）深化行政复议改革〕"


def test_a_blank_district_filter_filters_nothing(pipeline):
    route = pipeline.route("全年办理法律援助案件多少件？", filters={"districts": ["", " "]})
    assert route.districts == [] and not route.comparison and not route.not_covered


def test_blank_metadata_matches_and_names_nothing():
    reports = [{"file": "a.txt", "district": "", "year": 2024}, {"file": "b.txt", "district": "荣昌区", "year": 2024},
               {"file": "c.txt", "district": "璧山区", "year": 0}]
    assert resolve_districts(["荣昌区"], ["", "荣昌区"]) == (["荣昌区"], [])
    assert resolve_districts(["渝中区"], ["", "荣昌区"]) == ([], ["渝中区"])
    assert covered_summary(reports) == "荣昌区 2024年、璧山区（年份未识别）"
    quote = {"n": 1, "file": "a.txt", "start": 0, "end": 2, "quote": "正文"}
    assert Citation(district="", year=2024, section="一、成效", **quote).label() == "〔2024 · 一、成效〕"
    assert Citation(district="荣昌区", year=0, section="", **quote).label() == "〔荣昌区〕"


def test_kb_list_marks_the_reports_that_need_a_district_or_year(pipeline, monkeypatch):
    monkeypatch.setattr(cli._Context, "pipeline", property(lambda self: pipeline))
    result = CliRunner().invoke(cli.main, ["kb", "list"])
    assert result.exit_code == 0, result.output
    lines = {line.split("\t")[0]: line.split("\t") for line in result.stdout.splitlines()}
    assert lines["nameless.txt"][1:3] == ["区县未识别", "2024"]
    assert lines["bishan.txt"][1:3] == ["璧山区", "年份未识别"]
    assert lines["rongchang.txt"][1:3] == ["荣昌区", "2024"]
    assert "区县未识别：nameless.txt；年份未识别：bishan.txt" in result.stderr
    assert "PATCH /api/reports/" in result.stderr and ".meta.yaml" in result.stderr


def test_the_ui_table_marks_an_undetected_district_or_year():
    from ui.app import report_rows

    rows = report_rows([{"file": "a.txt", "district": "", "year": 0, "title": "t", "chunks": 3}])
    assert rows == [["a.txt", "区县未识别", "年份未识别", "t", 3]]


def test_a_place_no_report_is_of_but_one_names_is_answered_from_the_sentences_writing_it(pipeline):
    """「哪个区和泸县…建了警务合作…」: 泸县 has no report, but 荣昌区's names it as a partner: the
    answer comes from what writes it. Its own figures are still not covered."""
    answer = pipeline.ask("请问是哪个区和泸县、内江等地建了警务合作协调会议机制？")
    assert not answer.refused and "荣昌区" in answer.answer and "13个" in answer.answer, answer.answer
    assert {c.district for c in answer.citations} == {"荣昌区"}
    own = pipeline.ask("泸县2024年办理法律援助案件多少件？")
    assert own.refused and own.citations == [] and "865" not in own.answer, own.answer
