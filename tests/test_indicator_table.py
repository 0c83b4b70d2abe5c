"""The 指标库 table and its doors: the SQLite store (atomic writes, filters, version, rebuild), the
pipeline's metric matching, `fazhi indicators`, /api/indicators and the 指标 tab's pure parts.

Rows are made by hand from sentences of the seed reports, so each one opens a real passage."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import textwrap
from dataclasses import replace
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from rag import cli
from rag.api import create_app
from rag.indicator_table import CSV_COLUMNS, SqliteIndicators, StaleTableError, to_csv, value_text
from rag.indicators import Indicator
from rag.pipeline import Pipeline
from rag.settings import PROJECT_ROOT
from rag.text import sentence_spans
from tests.conftest import SEEDS

JIULONGPO, SHAPINGBA, RONGCHANG = "000_cd1dfdaf8535a5bd.txt", "002_23abab8cc5084cfd.txt", "003_190862aaa87d2635.txt"
PLACES = {JIULONGPO: ("九龙坡区", "500107", 2025), SHAPINGBA: ("沙坪坝区", "500106", 2023),
          RONGCHANG: ("荣昌区", "500153", 2024)}
# (file, words of the figure in its sentence, metric phrase, metric key, value, unit, kind)
FIGURES = [
    (JIULONGPO, "区政府负责人出庭应诉率100%", "区政府负责人出庭应诉率", "出庭应诉率", 100.0, "%", "level"),
    (JIULONGPO, "镇街负责人出庭应诉率99.3%", "区级部门和镇街负责人出庭应诉率", "出庭应诉率(部门和镇街负责人)", 99.3, "%", "level"),
    (JIULONGPO, "行政复议被纠错率4.5%", "行政复议被纠错率", "行政复议被纠错率", 4.5, "%", "level"),
    (SHAPINGBA, "出庭应诉率达100%", "行政机关负责人出庭应诉率", "出庭应诉率", 100.0, "%", "level"),
    (SHAPINGBA, "调解成功率为99.8％", "调解成功率", "调解成功率", 99.8, "%", "level"),
    (SHAPINGBA, "调解矛盾纠纷1.16万件", "调解矛盾纠纷", "调解矛盾纠纷数", 11600.0, "件", "level"),
    (RONGCHANG, "区政府负责人出庭应诉率达100%", "区政府负责人出庭应诉率", "出庭应诉率", 100.0, "%", "level"),
    (RONGCHANG, "调解成功率99.01%", "调解成功率", "调解成功率", 99.01, "%", "level"),
    (RONGCHANG, "直接纠错率22.22%", "行政复议直接纠错率", "直接纠错率", 22.22, "%", "level"),
]


def indicator(file: str, words: str, metric: str, metric_key: str, value: float, unit: str, kind: str,
              **fields) -> Indicator:
    """A row for the seed sentence holding `words`, with its true offsets."""
    text = (SEEDS / file).read_text(encoding="utf-8")
    at = text.index(words)
    start, end = next((s, e) for s, e in sentence_spans(text, clauses=False) if s <= at < e)
    district, code, year = PLACES[file]
    return Indicator(**{
        "file": file, "district": district, "district_code": code, "city": "重庆市", "province": "重庆市",
        "report_year": year, "about_year": year, "metric": metric, "metric_key": metric_key, "value": value,
        "unit": unit, "quantity": "rate" if unit == "%" else "count", "kind": kind, "from_value": None,
        "section": "一、主要成效", "start": start, "end": end, "sentence": text[start:end], **fields})


def seed_rows() -> dict[str, list[Indicator]]:
    rows: dict[str, list[Indicator]] = {}
    for figure in FIGURES:
        rows.setdefault(figure[0], []).append(indicator(*figure))
    return rows


@pytest.fixture
def table(tmp_path):
    table = SqliteIndicators(tmp_path / "indicators.sqlite3")
    table.rebuild(seed_rows().items(), "v1")
    yield table
    table.close()


@pytest.fixture
def pipeline(seeded_pipeline, table, monkeypatch):
    """The seeded knowledge base with this test's indicator table; every `fazhi` command gets it."""
    pipeline = Pipeline(seeded_pipeline.settings, seeded_pipeline.kb, indicators=table)
    monkeypatch.setattr(Pipeline, "from_settings", classmethod(lambda cls, settings=None, **kw: pipeline))
    return pipeline


def places(rows: list[Indicator]) -> list[tuple[str, str, int]]:
    return [(r.metric_key, r.district, r.about_year) for r in rows]


# ---- the store ------------------------------------------------------------------------------------


def test_rows_come_back_as_written_with_their_types(table):
    written = indicator(RONGCHANG, "直接纠错率22.22%", "行政复议直接纠错率", "直接纠错率", 22.22, "%", "from_to",
                        from_value=18.5, about_year=2023)
    table.replace({RONGCHANG: [written]}, [], "v2")
    (read,) = table.rows(file=RONGCHANG)
    assert read == written and isinstance(read.about_year, int) and read.from_value == 18.5
    assert table.rows(file=JIULONGPO)[0].from_value is None


@pytest.mark.parametrize(("filters", "expected"), [
    ({"metric_key": "出庭应诉率"}, [("出庭应诉率", "九龙坡区", 2025), ("出庭应诉率", "沙坪坝区", 2023),
                                    ("出庭应诉率", "荣昌区", 2024)]),
    ({"metric_key": "出庭应诉率", "year": 2024}, [("出庭应诉率", "荣昌区", 2024)]),
    ({"district": "沙坪坝区", "kind": "level"}, [("出庭应诉率", "沙坪坝区", 2023), ("调解成功率", "沙坪坝区", 2023),
                                                ("调解矛盾纠纷数", "沙坪坝区", 2023)]),
    ({"file": RONGCHANG, "metric_key": "直接纠错率"}, [("直接纠错率", "荣昌区", 2024)]),
    ({"metric_words": ["纠错率"]}, [("直接纠错率", "荣昌区", 2024), ("行政复议被纠错率", "九龙坡区", 2025)]),
    # folded: Traditional script and full-width letters match the Simplified phrase
    ({"metric_words": ["糾錯率", "行政復議"]}, [("直接纠错率", "荣昌区", 2024), ("行政复议被纠错率", "九龙坡区", 2025)]),
    ({"metric_words": ["镇街", "应诉"]}, [("出庭应诉率(部门和镇街负责人)", "九龙坡区", 2025)]),
    ({"metric_key": "出庭应诉率", "district": "梁平区"}, []),
    ({"kind": "target"}, []),
])
def test_rows_filter_on_every_field_given(table, filters, expected):
    assert places(table.rows(**filters)) == expected


def test_metrics_count_rows_and_name_their_districts(table):
    metrics = {m.metric_key: m for m in table.metrics()}
    assert table.metrics()[0].metric_key == "出庭应诉率"  # most rows first
    assert metrics["出庭应诉率"].count == 3 and metrics["出庭应诉率"].districts == ("九龙坡区", "沙坪坝区", "荣昌区")
    assert (metrics["调解矛盾纠纷数"].unit, metrics["调解矛盾纠纷数"].count) == ("件", 1)
    assert metrics["调解成功率"].label() == "调解成功率（%） · 2 条 · 2 个区县"


def test_replace_puts_a_files_rows_in_place_drops_removed_files_and_records_the_version(table):
    new = indicator(RONGCHANG, "调解成功率99.01%", "调解成功率", "调解成功率", 99.5, "%", "level")
    table.replace({RONGCHANG: [new]}, [SHAPINGBA], "v2")
    assert table.version() == "v2"
    assert [r.value for r in table.rows(file=RONGCHANG)] == [99.5]
    assert table.rows(file=SHAPINGBA) == []
    assert len(table.rows(file=JIULONGPO)) == 3  # untouched


def test_a_replace_that_fails_midway_leaves_the_old_rows_and_version(table):
    before = table.rows()
    stray = indicator(JIULONGPO, "行政复议被纠错率4.5%", "行政复议被纠错率", "行政复议被纠错率", 4.5, "%", "level")
    good = [replace(r, value=0.0) for r in seed_rows()[RONGCHANG]]
    with pytest.raises(ValueError, match="given as the rows of"):  # the second file's rows are another file's
        table.replace({RONGCHANG: good, SHAPINGBA: [stray]}, [JIULONGPO], "v2")
    assert table.version() == "v1" and table.rows() == before


def test_a_replace_killed_midway_leaves_the_old_rows(table, tmp_path):
    """A process killed between two files' writes (the integrator's ingest dying) commits nothing."""
    before = table.rows()
    child = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(PROJECT_ROOT)!r})
        from tests.test_indicator_table import RONGCHANG, SHAPINGBA, seed_rows
        from rag.indicator_table import SqliteIndicators

        class DiesOnTheSecondFile(dict):
            def items(self):
                yield RONGCHANG, []
                os._exit(9)

        table = SqliteIndicators({str(table.path)!r})
        table.replace(DiesOnTheSecondFile({{RONGCHANG: [], SHAPINGBA: []}}), [], "v2")
    """)
    assert subprocess.run([sys.executable, "-c", child], cwd=PROJECT_ROOT).returncode == 9
    reopened = SqliteIndicators(table.path)
    assert reopened.version() == "v1" and reopened.rows() == before
    reopened.close()


def test_replace_refuses_a_table_of_another_version_than_the_ingest_started_from(table):
    with pytest.raises(StaleTableError, match="rebuild"):
        table.replace({RONGCHANG: []}, [], "v3", base_version="v2")
    assert table.version() == "v1" and table.rows(file=RONGCHANG)
    table.replace({RONGCHANG: []}, [], "v2", base_version="v1")
    assert table.version() == "v2" and not table.rows(file=RONGCHANG)


def test_rebuild_replaces_everything_and_readers_see_the_old_table_until_it_commits(table):
    before = table.rows()
    seen_meanwhile = []

    def reports():
        yield RONGCHANG, seed_rows()[RONGCHANG]
        reader = SqliteIndicators(table.path)  # another process reading while the rebuild writes
        seen_meanwhile.append((reader.version(), reader.rows()))
        reader.close()

    table.rebuild(reports(), "v2")
    assert seen_meanwhile == [("v1", before)]
    assert table.version() == "v2" and {r.file for r in table.rows()} == {RONGCHANG}


def test_a_rebuild_whose_reports_fail_leaves_the_old_table(table):
    before = table.rows()

    def reports():
        yield JIULONGPO, []
        raise KeyError("a report text went missing")

    with pytest.raises(KeyError):
        table.rebuild(reports(), "v2")
    assert table.version() == "v1" and table.rows() == before


def test_a_new_table_and_one_of_another_indicator_shape_have_no_version_so_they_are_rebuilt(tmp_path):
    import sqlite3

    path = tmp_path / "indicators.sqlite3"
    fresh = SqliteIndicators(path)
    assert fresh.version() == "" and fresh.rows() == [] and fresh.metrics() == []
    fresh.replace({RONGCHANG: seed_rows()[RONGCHANG]}, [], "v1")
    fresh.close()
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE indicators ADD COLUMN confidence")  # written by another version of the code
    db.commit()
    db.close()
    reopened = SqliteIndicators(path)
    assert reopened.version() == "" and reopened.rows() == []
    reopened.close()


def test_csv_has_every_field_and_the_citation_label(table):
    rows = table.rows(metric_key="直接纠错率")
    (read,) = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert list(read) == list(CSV_COLUMNS)
    assert read["value"] == "22.22" and read["sentence"] == rows[0].sentence
    assert read["label"] == "〔荣昌区 · 2024 · 一、主要成效〕"
    assert value_text(replace(rows[0], value=11600.0)) == "11600"
    assert value_text(replace(rows[0], from_value=18.5)) == "18.5→22.22"


# ---- the pipeline ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("metric", "district", "year", "expected"), [
    # a metric key: only its rows, not those of 出庭应诉率(部门和镇街负责人)
    ("出庭应诉率", None, None, [("出庭应诉率", "九龙坡区", 2025), ("出庭应诉率", "沙坪坝区", 2023),
                                ("出庭应诉率", "荣昌区", 2024)]),
    # not a key: the phrases holding the words, as a user types them
    ("纠错率", None, None, [("直接纠错率", "荣昌区", 2024), ("行政复议被纠错率", "九龙坡区", 2025)]),
    (" 部门 应诉 ", None, None, [("出庭应诉率(部门和镇街负责人)", "九龙坡区", 2025)]),
    # a key with no row for that district: its words find the district's own metric
    ("调解成功率", "荣昌区", 2024, [("调解成功率", "荣昌区", 2024)]),
    ("直接纠错率", "九龙坡区", None, []),
    (None, "荣昌区", None, [("出庭应诉率", "荣昌区", 2024), ("直接纠错率", "荣昌区", 2024), ("调解成功率", "荣昌区", 2024)]),
])
def test_pipeline_takes_a_metric_key_else_words_of_its_phrase(pipeline, metric, district, year, expected):
    assert places(pipeline.indicator_rows(metric, district, year)) == expected


def test_the_pipeline_opens_its_table_in_the_data_folder_filled_from_the_reports(seeded_pipeline, tmp_path):
    own = Pipeline(seeded_pipeline.settings.with_overrides({"data_dir": str(tmp_path)}), seeded_pipeline.kb)
    assert own.indicators.version() == seeded_pipeline.kb.manifest()["version"]
    assert (tmp_path / "indicators.sqlite3").exists() and own.indicators is own.indicators
    assert {r.district for r in own.indicator_rows("直接纠错率")} == {"荣昌区", "梁平区"}


# ---- fazhi indicators -----------------------------------------------------------------------------


def fazhi(*args: str):
    return CliRunner().invoke(cli.main, ["indicators", *args])


def test_cli_lists_the_metrics_with_counts_and_districts(pipeline):
    result = fazhi()
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "出庭应诉率\t%\t3\t九龙坡区、沙坪坝区、荣昌区"
    assert "调解矛盾纠纷数\t件\t1\t沙坪坝区" in result.stdout.splitlines()


def test_cli_prints_one_line_per_figure(pipeline):
    result = fazhi("--metric", "纠错率")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["直接纠错率\t荣昌区\t2024\t22.22%\tlevel\t一、主要成效",
                                          "行政复议被纠错率\t九龙坡区\t2025\t4.5%\tlevel\t一、主要成效"]


def test_cli_csv_is_the_rows_with_their_sentences(pipeline):
    result = fazhi("--metric", "出庭应诉率", "--year", "2023", "--csv")
    assert result.exit_code == 0, result.output
    (row,) = list(csv.DictReader(io.StringIO(result.stdout)))
    assert (row["district"], row["value"], row["file"]) == ("沙坪坝区", "100.0", SHAPINGBA)
    assert "出庭应诉率达100%" in row["sentence"]
    everything = fazhi("--csv")
    assert len(list(csv.DictReader(io.StringIO(everything.stdout)))) == len(FIGURES)


def test_cli_says_when_nothing_matches_and_when_the_table_is_empty(pipeline, tmp_path):
    result = fazhi("--district", "梁平区")
    assert result.exit_code == 0 and result.stdout == "" and "no figures match" in result.stderr
    pipeline.indicators.rebuild([], "v2")
    result = fazhi()
    assert result.exit_code == 1 and "no indicators yet: run `fazhi ingest`" in result.stderr


# ---- /api/indicators ------------------------------------------------------------------------------


@pytest.fixture
def client(pipeline):
    return TestClient(create_app(pipeline, ui=False))


def test_api_rows_carry_their_label_and_open_their_passage(client):
    r = client.get("/api/indicators", params={"metric": "纠错率", "district": "荣昌区"})
    assert r.status_code == 200, r.text
    (row,) = r.json()
    assert (row["metric_key"], row["value"], row["unit"], row["about_year"]) == ("直接纠错率", 22.22, "%", 2024)
    assert row["label"] == "〔荣昌区 · 2024 · 一、主要成效〕"
    passage = client.get(row["passage"]).json()
    assert passage["quote"] == row["sentence"] and "直接纠错率22.22%" in passage["quote"]
    link = urlsplit(row["passage"])
    assert unquote(link.path) == f"/api/reports/{RONGCHANG}/passage"
    assert parse_qs(link.query) == {"start": [str(row["start"])], "end": [str(row["end"])]}


def test_api_csv_opens_in_excel_and_metrics_list_the_table(client):
    r = client.get("/api/indicators", params={"metric": "出庭应诉率", "format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    assert r.content.startswith("\ufeff".encode())  # the BOM: Excel reads the Chinese as UTF-8
    assert [row["district"] for row in csv.DictReader(io.StringIO(r.text.lstrip("\ufeff")))] == [
        "九龙坡区", "沙坪坝区", "荣昌区"]
    metrics = client.get("/api/indicators/metrics").json()
    assert metrics[0] == {"metric_key": "出庭应诉率", "unit": "%", "count": 3,
                          "districts": ["九龙坡区", "沙坪坝区", "荣昌区"]}


@pytest.mark.parametrize("params", [{"year": "1899"}, {"format": "pdf"}, {"metric": "率" * 101}])
def test_api_refuses_bad_filters_with_422(client, params):
    r = client.get("/api/indicators", params=params)
    assert r.status_code == 422 and "请求无效" in r.json()["detail"]


# ---- the 指标 tab's pure parts --------------------------------------------------------------------


def test_tab_table_rows_are_cited_and_the_chart_compares_one_kind_and_unit(table):
    from ui.indicators import chart_frame, chart_note, charted, table_rows

    rows = table.rows(metric_key="出庭应诉率")
    assert table_rows(rows)[0][:5] == ["九龙坡区", 2025, "100", "%", "现值"]
    assert table_rows(rows)[0][5:] == [rows[0].sentence, "一、主要成效", JIULONGPO, f"{rows[0].start}–{rows[0].end}"]
    target = replace(rows[2], kind="target", value=100.0, about_year=2025)
    twice = replace(rows[2], value=98.0, start=rows[2].start + 1)  # 荣昌区 2024 stated again: the first one is charted
    shown = charted([*rows, target, twice])
    assert places(shown) == places(rows)
    frame = chart_frame(shown)
    assert frame.to_dict("list") == {"区县 · 年份": ["九龙坡区 2025", "沙坪坝区 2023", "荣昌区 2024"],
                                     "数值": [100.0, 100.0, 100.0]}
    assert chart_note([*rows, target, twice], shown).startswith("共 5 条。图中为现值（%），每个区县每年一条；其余 2 条")
    only_changes = [replace(r, kind="change") for r in rows]
    assert charted(only_changes) == only_changes and charted([]) == []


def test_tab_exports_csv_with_a_bom_and_an_xlsx_that_reads_back(table, tmp_path):
    from openpyxl import load_workbook

    from ui.indicators import write_exports

    rows = table.rows(metric_key="出庭应诉率(部门和镇街负责人)")
    csv_path, xlsx_path = write_exports(rows, "出庭应诉率(部门和镇街负责人)", tmp_path)
    assert csv_path.name == "指标-出庭应诉率(部门和镇街负责人).csv" and xlsx_path.suffix == ".xlsx"
    assert csv_path.read_bytes().startswith("\ufeff".encode()) and csv_path.read_text(encoding="utf-8-sig") == to_csv(rows)
    sheet = load_workbook(xlsx_path).active
    header, first = [[cell.value for cell in line] for line in sheet.iter_rows(max_row=2)]
    assert header == list(CSV_COLUMNS)
    assert dict(zip(header, first))["value"] == 99.3 and dict(zip(header, first))["label"] == "〔九龙坡区 · 2025 · 一、主要成效〕"
    assert write_exports(rows, "出庭应诉率(部门和镇街负责人)", tmp_path) == (csv_path, xlsx_path)  # same rows: same files


# ---- with the real extractor ----------------------------------------------------------------------


def test_the_table_filled_by_the_extractor_answers_纠错率_with_sentences_that_open(seeded_pipeline, tmp_path):
    from rag.indicators import extract_indicators
    from rag.loading import load_report
    from rag.metadata import report_metadata

    table = SqliteIndicators(tmp_path / "indicators.sqlite3")
    reports = [load_report(path, file=path.name, max_bytes=2**24) for path in sorted(SEEDS.glob("*.txt"))]
    table.rebuild(((r.file, extract_indicators(r, report_metadata(r))) for r in reports),
                  seeded_pipeline.kb.manifest()["version"])
    pipeline = Pipeline(seeded_pipeline.settings, seeded_pipeline.kb, indicators=table)
    found = {(r.district, r.value) for r in pipeline.indicator_rows("纠错率")}
    assert {("荣昌区", 22.22), ("梁平区", 12.24)} <= found
    rows = pipeline.indicator_rows("直接纠错率")
    assert rows and all(pipeline.passage(r.file, r.start, r.end)["quote"] == r.sentence for r in rows)
    table.close()


def test_bench_figures_of_the_table(tmp_path, settings):
    from eval.bench import indicator_figures

    figures = indicator_figures(settings, tmp_path, 200, repeat=2)  # over the seeds
    assert figures["indicators.rows@200"] > 200 and figures["indicators.rebuild_s@200"] > 0
    for query in ("metrics", "key", "words", "district_year"):
        assert figures[f"indicators.{query}.p95_ms@200"] >= figures[f"indicators.{query}.p50_ms@200"] > 0
