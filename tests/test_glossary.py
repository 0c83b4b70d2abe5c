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
    ("How many foreign-trade companies did it serve?", ["外资外贸企业"]),                   # hyphen, plural in -ies
    # a verb and its particle parted by what they act on ("sent … down" is "sent down")
    ("Which district sent the most law enforcement staff down to the towns?", ["下沉", "执法人员", "镇街"]),
    ("How many rules were cleaned up?", ["清理"]),
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


PARAPHRASES = ("复议首选率: [第一选择复议]\n新收: [新申请的复议]\n调解率: [复议和解比例]\n全员轮训: [挨个培训一遍]\n"
               "下沉执法力量: [派到镇街的执法]\n")


@pytest.mark.parametrize(("question", "terms"), [
    ("当事人把申请行政复议当作第一选择的比例是多少？", ["复议首选率"]),  # its words, in the asker's order
    ("新申请的复议有多少件？", ["新收"]),                                  # written whole
    ("申请行政复议的有多少件？", []),        # 「新申请的复议」's 新 is not there: its other words do not stand for it
    ("复议首选率是多少？第一选择复议的比例呢？", []),                     # the term itself is written
    ("执法人员挨个培训了一遍，培训了多少人？", ["全员轮训"]),  # 挨个 names, though its 个 alone would not
    ("从区级部门派到镇街去的执法人员有多少？", ["下沉执法力量"]),  # 去 slipped into the phrase
    ("派人到镇街处理执法问题的有多少？", []),                      # more than one between 街 and 执
])
def test_everyday_phrasings_become_the_reports_terms(tmp_path, question, terms):
    from rag.claims import report_terms

    table = tmp_path / "paraphrases.yaml"
    table.write_text(PARAPHRASES, encoding="utf-8")
    assert report_terms(question, table) == terms


def test_the_shipped_paraphrase_table_keeps_its_rules():
    """Every term is written in a bundled report (a term no report writes matches nothing), no
    phrasing holds its own term or stands under two terms, and none is a lone generic word."""
    from pathlib import Path

    import yaml

    from rag.glossary import PARAPHRASES
    from rag.text import fold

    reports = "".join(fold(p.read_text(encoding="utf-8")) for p in sorted(Path("seeds").glob("*.txt")))
    table = yaml.safe_load(PARAPHRASES.read_text(encoding="utf-8"))
    owner: dict[str, str] = {}
    for term, phrasings in table.items():
        assert fold(term) in reports, term
        for phrasing in phrasings:
            folded = fold(phrasing)
            assert fold(term) not in folded and 2 <= len(folded) <= 10, (term, phrasing)
            assert owner.setdefault(folded, term) == term, (phrasing, owner[folded], term)
            assert folded not in {"工作", "情况", "比例", "人员", "法治", "建设", "问题", "案件", "数量"}, phrasing


@pytest.mark.parametrize(("question", "term"), [
    ("大进镇2025年下发了多少份公文？", "制文发文"),
    ("九龙坡区罚款和没收的钱比上年是多了还是少了？", "罚没收入"),
    ("对企业头一回违法的就不罚了，有多少件？", "首违不罚"),
])
def test_the_shipped_table_knows_everyday_wordings_of_the_reports_terms(question, term):
    from rag.claims import report_terms

    assert term in report_terms(question)
