"""The 指标库 table follows the knowledge base: written in every commit, never ahead of or behind
the live reports, and questions over every report are answered from it with cited values."""

from __future__ import annotations

import shutil

import pytest

from rag.errors import IngestError
from rag.indicator_table import SqliteIndicators
from rag.pipeline import Pipeline
from rag.settings import load_settings
from tests.conftest import SEEDS, UPLOAD_REPORT, make_kb

RONGCHANG = next(p.name for p in SEEDS.glob("003_*.txt"))


@pytest.fixture
def kb(tmp_path):
    kb = make_kb(tmp_path, indicators=SqliteIndicators(tmp_path / "indicators.sqlite3"))
    yield kb
    kb.indicators.close()


def _districts(table) -> set[str]:
    return {r.district for r in table.rows()}


def test_an_ingest_writes_the_rows_of_its_reports_in_its_commit(kb, tmp_path):
    kb.ingest(sorted(SEEDS.glob("*.txt")))
    assert kb.indicators.version() == kb.manifest()["version"]
    assert _districts(kb.indicators) == {"九龙坡区", "梁平区", "沙坪坝区", "荣昌区", "开州区大进镇"}
    rate = [r for r in kb.indicators.rows(district="荣昌区") if r.value == 22.22]
    assert rate and kb.report_text(RONGCHANG)[rate[0].start:rate[0].end] == rate[0].sentence

    kb.remove(RONGCHANG)
    assert "荣昌区" not in _districts(kb.indicators) and kb.indicators.version() == kb.manifest()["version"]

    report = tmp_path / "璧山区2024年法治政府建设情况报告.txt"
    report.write_text(UPLOAD_REPORT, encoding="utf-8")
    kb.ingest([report])
    assert {r.value for r in kb.indicators.rows(district="璧山区")} >= {321, 18.5, 865}


def test_a_failed_ingest_leaves_the_rows_of_the_reports_still_live(kb, tmp_path):
    kb.ingest([SEEDS / RONGCHANG])
    report = tmp_path / "璧山区2024年法治政府建设情况报告.txt"
    report.write_text(UPLOAD_REPORT, encoding="utf-8")

    live, swap = kb.manifest()["version"], kb._commit_manifest

    def fail_at_the_swap(manifest):  # after the table was written for the new manifest
        if manifest["version"] != live:
            raise OSError("disk gone")
        swap(manifest)

    kb._commit_manifest = fail_at_the_swap
    with pytest.raises((IngestError, OSError)):
        kb.ingest([report])
    del kb._commit_manifest
    assert kb.manifest()["version"] == live
    assert _districts(kb.current_indicators()) == {"荣昌区"}  # the table written ahead is not the live one


def test_a_table_deleted_or_left_stale_is_rebuilt_when_read(kb, tmp_path):
    kb.ingest([SEEDS / RONGCHANG])
    kb.indicators.close()
    (tmp_path / "indicators.sqlite3").unlink()
    kb.indicators = SqliteIndicators(tmp_path / "indicators.sqlite3")
    assert kb.indicators.rows() == []
    assert _districts(kb.current_indicators()) == {"荣昌区"}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("indicator-answers")
    settings = load_settings(overrides={"data_dir": str(data_dir), "llm.provider": "extractive",
                                        "retrieval.dense_weight": 0})  # fake embeddings rank noise: BM25 alone
    kb = make_kb(data_dir, indicators=SqliteIndicators.in_data_dir(data_dir),
                 indicator_aliases=settings.indicators.aliases)
    kb.ingest(sorted(SEEDS.glob("*.txt")))
    return Pipeline(settings, kb)


def test_a_question_over_every_report_is_answered_from_the_table_each_value_cited(pipeline):
    stream = pipeline.stream("各区的调解成功率从高到低怎么排？")
    shown = "".join(stream)
    answer = stream.answer
    assert shown == answer.answer and answer.provider == "indicators" and not answer.refused
    assert answer.answer.index("梁平区") < answer.answer.index("沙坪坝区") < answer.answer.index("荣昌区")
    for c in answer.citations:
        assert pipeline.kb.report_text(c.file)[c.start:c.end] == c.quote and f"[{c.n}]" in answer.answer


def test_a_filter_keeps_a_table_answer_within_its_districts(pipeline):
    answer = pipeline.ask("各区的调解成功率从高到低怎么排？", filters={"districts": ["荣昌区", "梁平区"]})
    assert answer.provider == "indicators" and {c.district for c in answer.citations} == {"荣昌区", "梁平区"}


def test_a_fact_one_row_states_exactly_is_answered_from_the_table_quoting_its_sentence(pipeline):
    stream = pipeline.stream("荣昌区2024年行政复议直接纠错率是多少？")
    shown = "".join(stream)
    answer = stream.answer
    assert shown == answer.answer and answer.provider == "indicators" and not answer.refused
    assert answer.answer.startswith("荣昌区2024年") and "22.22%[1]" in answer.answer
    [cited] = answer.citations
    assert (cited.file, cited.district, cited.year) == (RONGCHANG, "荣昌区", 2024)
    assert pipeline.kb.report_text(cited.file)[cited.start:cited.end] == cited.quote and "22.22%" in cited.quote


def test_a_fact_question_asking_two_figures_is_still_answered_from_the_passages(pipeline):
    answer = pipeline.ask("荣昌区2024年行政复议审结率和直接纠错率是多少？")
    assert answer.provider == "extractive" and "22.22%" in answer.answer and "85.29%" in answer.answer
