"""Reports as they are published (issue 15): PDFs of several pages, scans, Word files with tables.

The files are in tests/data/formats, written by its make_variants.py; this folder is ingested only
here, so the answers of eval/gold/regions.jsonl do not change.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from eval.ocr_check import character_accuracy
from rag import cli, schema
from rag.loading import load_report
from rag.pipeline import Pipeline
from rag.schema import Citation
from rag.settings import PROJECT_ROOT, load_settings
from tests.conftest import bm25_pipeline, make_kb

FORMATS = PROJECT_ROOT / "tests" / "data" / "formats"
REGIONS = PROJECT_ROOT / "tests" / "data" / "regions"
MB = 1_000_000
TEXT_FILES = ["cuiping_2024.docx", "yuecheng_2023.docx", "lusong_2025_table.pdf", "hangzhou_xihu_2023.pdf",
              "wuhan_jianghan_2024.pdf"]


def paragraphs(text: str) -> str:
    """The text one paragraph a line, without blank lines (a PDF has none)."""
    return "\n".join(line for line in text.strip().split("\n") if line.strip())


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Pipeline:
    """The text PDFs and Word files (see bm25_pipeline)."""
    return bm25_pipeline(tmp_path_factory.mktemp("formats"), [FORMATS / name for name in TEXT_FILES])


@pytest.mark.parametrize("name", ["hangzhou_xihu_2023.pdf", "wuhan_jianghan_2024.pdf"])
def test_a_text_pdf_reads_back_as_its_source_paragraph_by_paragraph(name):
    """Lines wrapped at the margin and across page breaks are joined, headings stay on their own
    line, and the page numbers at the foot are left out."""
    report = load_report(FORMATS / name, max_bytes=MB)
    assert report.text == paragraphs((REGIONS / name.replace(".pdf", ".txt")).read_text(encoding="utf-8"))
    assert len(report.pages) == 3 and report.pages[0] == 0


def test_page_starts_point_where_each_page_begins():
    report = load_report(FORMATS / "wuhan_jianghan_2024.pdf", max_bytes=MB)
    second, third = report.pages[1:]
    assert report.text[second:].startswith("全年办理法律援助案件1187件")
    assert report.text[third:].startswith("一是部分部门依法决策意识不强")
    assert [report.page_at(o) for o in (0, second - 1, second, third)] == [1, 1, 2, 3]


def test_every_chunk_carries_the_page_it_starts_on_and_the_pages_starting_inside_it(pipeline):
    chunks = {(c.metadata[schema.FILE], c.metadata[schema.START]): c.metadata for c in pipeline.kb.chunks()}
    wuhan = sorted((start, m) for (file, start), m in chunks.items() if file == "wuhan_jianghan_2024.pdf")
    assert [m[schema.PAGE] for _, m in wuhan] == sorted(m[schema.PAGE] for _, m in wuhan)
    assert {m[schema.PAGE] for _, m in wuhan} == {1, 2, 3}
    crossing = [m for _, m in wuhan if m[schema.PAGE_STARTS]]
    assert crossing and all(m[schema.START] < int(m[schema.PAGE_STARTS]) < m[schema.END] for m in crossing)
    assert {m[schema.PAGE] for (file, _), m in chunks.items() if file.endswith(".docx")} == {0}


def test_a_cited_sentence_carries_its_own_page_when_its_chunk_starts_on_the_page_before(pipeline):
    """「全年办理法律援助案件1187件」 opens page 2 inside a chunk that starts on page 1 under its heading."""
    answer = pipeline.ask("江汉区2024年办理法律援助案件多少件？")
    assert "1187件" in answer.answer
    cited = next(c for c in answer.citations if "1187件" in c.quote)
    assert cited.file == "wuhan_jianghan_2024.pdf" and cited.page == 2
    assert cited.label().endswith(" · 第2页〕")


def test_a_citation_of_a_file_without_pages_shows_none():
    citation = Citation(n=1, file="a.docx", district="翠屏区", year=2024, section="一、成效", start=0, end=5, quote="…")
    assert citation.label() == "〔翠屏区 · 2024 · 一、成效〕"
    assert citation.model_copy(update={"page": 3}).label() == "〔翠屏区 · 2024 · 一、成效 · 第3页〕"


@pytest.mark.parametrize(
    "question, figure, row, column, file, page",
    [
        ("翠屏区2024年行政复议纠错率是多少？", "9.3%", "行政复议纠错率", "2024年", "cuiping_2024.docx", 0),
        ("翠屏区2024年办理法律援助案件多少件？", "1342件", "办理法律援助案件", "2024年", "cuiping_2024.docx", 0),
        ("翠屏区2024年行政诉讼败诉率是多少？", "2.9%", "行政诉讼败诉率", "2024年", "cuiping_2024.docx", 0),
        ("越城区2023年公证办证数量是多少件？", "9820件", "公证办证", "数量", "yuecheng_2023.docx", 0),
        ("芦淞区2025年行政执法案卷优秀率是多少？", "91%", "行政执法案卷优秀率", "2025年", "lusong_2025_table.pdf", 1),
        # no 2023 report of 翠屏区: its 2024 report's previous-year column answers
        ("翠屏区2023年行政复议纠错率是多少？", "8.1%", "行政复议纠错率", "2023年", "cuiping_2024.docx", 0),
    ],
)
def test_a_table_cells_figure_is_answered_and_cited_with_its_row_and_column(pipeline, question, figure, row, column,
                                                                           file, page):
    answer = pipeline.ask(question)
    assert not answer.refused and figure in answer.answer
    cited = next(c for c in answer.citations if figure in c.quote)
    assert cited.file == file and cited.page == page
    assert row + column + figure in cited.quote


@pytest.mark.integration
@pytest.mark.parametrize("name", ["zhengzhou_jinshui_2024_scan.pdf", "ningbo_jiangbei_2024_scan.pdf"])
def test_a_scanned_pdf_is_read_by_ocr_with_nine_in_ten_characters_right(name):
    """150 dpi greyscale JPEG and 200 dpi black-and-white scans of three pages each."""
    pages_read = []
    report = load_report(FORMATS / name, max_bytes=MB, on_page=lambda done, total: pages_read.append((done, total)))
    source = (REGIONS / name.replace("_scan.pdf", ".txt")).read_text(encoding="utf-8")
    assert character_accuracy(report.text, source) >= 0.9
    assert pages_read == [(1, 3), (2, 3), (3, 3)] and len(report.pages) == 3
    assert report.text.count("\n") <= paragraphs(source).count("\n") + 6  # lines joined into paragraphs


@pytest.mark.integration
def test_a_photographed_page_is_read_by_ocr_and_its_headings_found():
    report = load_report(FORMATS / "dali_2024.png", max_bytes=MB)
    assert report.encoding == "ocr" and report.pages == ()
    assert "直接纠错率12.6%" in report.text
    assert [s.path for s in report.sections if s.path].count("一、主要成效 > （一）依法办理复议案件") == 1


def test_an_ingest_reports_the_seconds_spent_reading_each_format(tmp_path, monkeypatch):
    """OCR takes seconds a page and text milliseconds a file: the summary says which format the time went to."""
    pipeline = Pipeline(load_settings(overrides={"data_dir": str(tmp_path)}), make_kb(tmp_path))
    monkeypatch.setattr(Pipeline, "from_settings", classmethod(lambda cls, settings=None, **kw: pipeline))
    files = [str(REGIONS / "hangzhou_xihu_2023.txt"), str(FORMATS / "cuiping_2024.docx")]
    result = CliRunner().invoke(cli.main, ["ingest", "--json", *files])
    assert result.exit_code == 0, result.output
    reading = json.loads(result.stdout)["reading"]
    assert set(reading) == {".txt", ".docx"}
    assert all(r["files"] == 1 and r["ocr_pages"] == 0 and 0 < r["seconds"] < 5 for r in reading.values())
    again = CliRunner().invoke(cli.main, ["ingest", *files])  # unchanged files are read too
    line = next(line for line in again.stdout.splitlines() if line.startswith("读取: "))
    assert ".docx 1 file " in line and ".txt 1 file " in line and "OCR" not in line


@pytest.mark.integration
def test_a_figure_only_in_a_scanned_pdf_is_answered_and_cited_with_its_page(tmp_path):
    """「全区公职律师达到97名」 is on page 2 of a scan, and in no text layer: OCR, chunking and the
    citation keep its page."""
    settings = load_settings(
        overrides={"data_dir": str(tmp_path), "llm.provider": "extractive", "retrieval.dense_weight": 0}
    )
    kb = make_kb(tmp_path)
    summary = kb.ingest([FORMATS / "zhengzhou_jinshui_2024_scan.pdf", FORMATS / "cuiping_2024.docx"])
    assert not summary.failed and summary.reading[".pdf"]["ocr_pages"] == 3
    answer = Pipeline(settings, kb).ask("金水区的公职律师达到多少名？")
    assert not answer.refused and "97名" in answer.answer
    cited = next(c for c in answer.citations if "97名" in c.quote)
    assert cited.file == "zhengzhou_jinshui_2024_scan.pdf" and cited.page == 2
    assert cited.label().endswith(" · 第2页〕")
