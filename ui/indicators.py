"""指标 tab: one metric of the 指标库 across districts and years, as a bar chart and a table whose
every row is cited; a click on a row opens the sentence that states it, highlighted in its passage
(as an answer's citation opens), and the rows export as CSV and .xlsx.

CSV is written UTF-8 with a BOM, which Excel needs to read Chinese. The .xlsx is written with
openpyxl: pure Python with one small dependency, and it reads the file back (tests do);
xlsxwriter only writes, and pandas' Excel export is only a wrapper over one of the two.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import gradio as gr
import pandas as pd

from rag.errors import RagError
from rag.indicator_table import CSV_COLUMNS, MetricSummary, citation_of, to_csv, value_text
from rag.indicators import Indicator
from rag.pipeline import Pipeline
from rag.report_files import ReportFiles
from rag.schema import UNKNOWN_DISTRICT_TEXT
from ui.chat import PASSAGE_CONTEXT, render_passage
from ui.knowledge_base import UPLOAD_LIFETIME_S
from ui.render import notice

ROW_HEADERS = ["区县", "年份", "数值", "单位", "类型", "原句", "章节", "文件", "位置"]
KIND_NAMES = {"level": "现值", "change": "变化", "from_to": "由…到…", "target": "目标"}
CHART_X, CHART_Y = "区县 · 年份", "数值"
EMPTY_HINT = "还没有指标：在「知识库」上传报告（或运行 fazhi ingest）后，这里按指标列出各区县各年的数字。"
PASSAGE_HINT = "<div class='fz-passage fz-empty'>点击表中一行，在这里查看说出这个数字的原句。</div>"
EXPORTS = Path(tempfile.gettempdir()) / "fazhi-indicator-exports"  # Gradio copies each into its own cache


# ---- rendering (pure functions) ---------------------------------------------------------


def metric_choices(metrics: list[MetricSummary]) -> list[tuple[str, str]]:
    """(「直接纠错率（%）· 5 条 · 3 个区县」, metric key) choices of the metric picker."""
    return [(m.label(), m.metric_key) for m in metrics]


def location(row: Indicator) -> str:
    """「812–850」: where the row's sentence is in its report, as the 位置 column shows it."""
    return f"{row.start}–{row.end}"


def table_rows(rows: list[Indicator]) -> list[list]:
    """Table rows in ROW_HEADERS order: the figure, where it is from, and the sentence that states it."""
    return [[r.district or UNKNOWN_DISTRICT_TEXT, r.about_year, value_text(r), r.unit, KIND_NAMES.get(r.kind, r.kind),
             r.sentence, r.section, r.file, location(r)] for r in rows]


def charted(rows: list[Indicator]) -> list[Indicator]:
    """The rows a bar chart can compare: of one kind and unit (levels when there are any, else the
    most stated), one per district and year, the first the report states."""
    if not rows:
        return []
    stated = Counter((r.kind, r.unit) for r in rows)
    kind_unit = max(stated, key=lambda ku: (ku[0] == "level", stated[ku]))
    first: dict[tuple[str, int], Indicator] = {}
    for r in rows:
        if (r.kind, r.unit) == kind_unit:
            first.setdefault((r.district, r.about_year), r)
    return list(first.values())


def chart_frame(rows: list[Indicator]) -> pd.DataFrame:
    """The bar chart's data: a bar per district and year, labelled with both."""
    return pd.DataFrame({
        CHART_X: [f"{r.district or UNKNOWN_DISTRICT_TEXT} {r.about_year}" for r in rows],
        CHART_Y: [r.value for r in rows],
    })


def chart_note(rows: list[Indicator], shown: list[Indicator]) -> str:
    """What the chart shows of the rows, and what it leaves to the table."""
    if not rows:
        return ""
    kind = KIND_NAMES.get(shown[0].kind, shown[0].kind)
    unit = f"（{shown[0].unit}）" if shown[0].unit else ""
    left = len(rows) - len(shown)
    rest = f"；其余 {left} 条（其他类型、单位或同一区县年份的重复）见下表" if left else ""
    return f"共 {len(rows)} 条。图中为{kind}{unit}，每个区县每年一条{rest}。点表中一行查看原句。"


def write_exports(rows: list[Indicator], metric_key: str, folder: Path = EXPORTS) -> tuple[Path, Path]:
    """The rows as 指标-<metric>.csv and .xlsx in a folder named by their content; older exports
    (over UPLOAD_LIFETIME_S) are deleted."""
    from openpyxl import Workbook

    text = to_csv(rows)
    name = "指标-" + (re.sub(r"[^\w\-()（）]+", "_", metric_key).strip("_") or "全部")
    here = folder / hashlib.sha256(f"{name}\n{text}".encode()).hexdigest()[:16]
    _prune(folder)
    here.mkdir(parents=True, exist_ok=True)
    csv_path, xlsx_path = here / f"{name}.csv", here / f"{name}.xlsx"
    csv_path.write_text("\ufeff" + text, encoding="utf-8")
    book = Workbook()
    sheet = book.active
    sheet.title = "指标"
    sheet.append(list(CSV_COLUMNS))
    for row in rows:
        sheet.append([*(getattr(row, c) for c in CSV_COLUMNS[:-1]), citation_of(row).label()])
    book.save(xlsx_path)
    return csv_path, xlsx_path


def _prune(folder: Path) -> None:
    if not folder.exists():
        return
    for old in folder.iterdir():
        if time.time() - old.stat().st_mtime > UPLOAD_LIFETIME_S:
            shutil.rmtree(old, ignore_errors=True)


# ---- the tab ----------------------------------------------------------------------------


def indicators_tab(demo: gr.Blocks, pipeline: Pipeline, files: ReportFiles, page: gr.Tab) -> None:
    """Build the 指标 tab's components and events inside the current gr.Tab `page`."""

    def pick_list(current):
        """The metric picker from the table now, keeping the picked metric while it is there; the note
        says when the table is empty, and is cleared when the picked metric has gone."""
        metrics = pipeline.indicator_metrics()
        keys = {m.metric_key for m in metrics}
        note = notice("info", "提示", EMPTY_HINT) if not metrics else gr.skip() if current in keys else ""
        return gr.update(choices=metric_choices(metrics), value=current if current in keys else None), note

    def show(metric_key):
        """Chart, table, downloads and the passage hint of one metric; all empty when none is picked."""
        rows = pipeline.indicators.rows(metric_key=metric_key) if metric_key else []  # a key: no word search
        if not rows:  # none picked (the note is pick_list's), or its reports were removed meanwhile
            note = notice("warn", "提示", f"指标「{metric_key}」已没有数据：请重新选择。") if metric_key else gr.skip()
            nothing = gr.update(value=None, interactive=False)
            return note, None, [], [], nothing, nothing, PASSAGE_HINT
        shown = charted(rows)
        csv_path, xlsx_path = write_exports(rows, metric_key)
        unit = f"（{shown[0].unit}）" if shown[0].unit else ""
        chart = gr.BarPlot(chart_frame(shown), title=f"{metric_key}{unit}", y_title=f"数值{unit}",
                           y_lim=[min(0.0, *(r.value for r in shown)), None])  # bars up (or down) from zero
        return (chart_note(rows, shown), chart, table_rows(rows), rows, gr.update(value=csv_path, interactive=True),
                gr.update(value=xlsx_path, interactive=True), PASSAGE_HINT)

    def open_passage(rows: list[Indicator], data: gr.SelectData):
        """The passage of the clicked row's sentence, the sentence in <mark>."""
        picked = data.row_value or []
        row = next((r for r in rows if picked[-2:] == [r.file, location(r)]), None)
        if row is None:
            return gr.skip()
        try:
            passage = files.passage(row.file, row.start, row.end, PASSAGE_CONTEXT)
        except (RagError, KeyError, ValueError) as err:
            return f"<div class='fz-passage'>{notice('bad', '无法显示原文', str(err))}</div>"
        return render_passage(passage, citation_of(row).label(), PASSAGE_CONTEXT)

    with gr.Row():
        metric = gr.Dropdown(label="指标", choices=[], scale=4, elem_id="fz-metric")
        with gr.Column(scale=1, min_width=140):
            csv_button = gr.DownloadButton("导出 CSV", interactive=False, size="md", elem_id="fz-ind-csv")
            xlsx_button = gr.DownloadButton("导出 Excel", interactive=False, size="md", elem_id="fz-ind-xlsx")
    note = gr.HTML(js_on_load=None, elem_id="fz-ind-note")
    with gr.Row():
        with gr.Column(scale=3):
            # no value yet: a plot made with an empty frame keeps that frame's (numeric) column types
            chart = gr.BarPlot(None, x=CHART_X, y=CHART_Y, sort=None, x_label_angle=-30,
                               label="各区县各年", height=380, elem_id="fz-ind-chart")
            table = gr.Dataframe(headers=ROW_HEADERS, value=[], interactive=False, wrap=True, elem_id="fz-ind-rows",
                                 label="各区县各年的数字（点一行查看原句）",
                                 column_widths=["9%", "7%", "8%", "5%", "6%", "31%", "14%", "12%", "8%"])
        with gr.Column(scale=2):
            passage = gr.HTML(PASSAGE_HINT, js_on_load=None, elem_id="fz-ind-passage", container=True, padding=True)
    rows = gr.State([])

    private = {"api_visibility": "private"}
    for trigger in (demo.load, page.select):
        trigger(pick_list, metric, [metric, note], **private)
    metric.change(show, metric, [note, chart, table, rows, csv_button, xlsx_button, passage], **private)
    table.select(open_passage, rows, passage, **private)
