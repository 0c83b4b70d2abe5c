"""English questions in the reports' words (config/glossary.yaml)."""

from __future__ import annotations

import pytest

from rag.glossary import chinese_terms
from rag.retrieval import route_question


@pytest.mark.parametrize(("question", "terms"), [
    ("How many legal aid cases did Rongchang District accept in 2024?", ["法律援助案件", "受理"]),
    ("What was the direct correction rate of administrative reconsideration?", ["直接纠错率", "行政复议"]),
    ("How many documents did the town draft and issue?", ["文件", "镇街", "制文发文"]),  # the reports' phrase
    ("Which regulations were drafted by the town?", ["起草", "镇街"]),                    # inflected forms
    ("How many disputes were mediated?", ["纠纷", "调解"]),
    ("What is the weather like?", []),                                                     # nothing of the domain
])
def test_english_phrases_become_the_reports_terms(question, terms):
    assert chinese_terms(question) == terms


def test_an_english_question_is_searched_with_its_chinese_terms_and_districts():
    reports = [{"file": "r.txt", "district": "荣昌区", "year": 2024}]
    route = route_question("How many legal aid cases did Rongchang District accept in 2024?", reports)
    assert route.districts == ["荣昌区"] and route.years == [2024]
    assert "法律援助案件" in route.query and "荣昌区" in route.query
    assert route.question.startswith("How many")  # answered in the question's own words


PARAPHRASES = "复议首选率: [第一选择复议]\n新收: [新申请的复议]\n调解率: [复议和解比例]\n全员轮训: [挨个培训一遍]\n"


@pytest.mark.parametrize(("question", "terms"), [
    ("当事人把申请行政复议当作第一选择的比例是多少？", ["复议首选率"]),  # its words, in the asker's order
    ("新申请的复议有多少件？", ["新收"]),                                  # written whole
    ("申请行政复议的有多少件？", []),        # 「新申请的复议」's 新 is not there: its other words do not stand for it
    ("复议首选率是多少？第一选择复议的比例呢？", []),                     # the term itself is written
    ("执法人员挨个培训了一遍，培训了多少人？", ["全员轮训"]),  # 挨个 names, though its 个 alone would not
])
def test_everyday_phrasings_become_the_reports_terms(tmp_path, question, terms):
    from rag.claims import report_terms

    table = tmp_path / "paraphrases.yaml"
    table.write_text(PARAPHRASES, encoding="utf-8")
    assert report_terms(question, table) == terms
