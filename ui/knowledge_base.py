"""知识库 tab: the reports, a preview of one (its heading tree and chunks), a hit test (the chunks a
query retrieves, ranked, with their scores), uploads of several files at once, metadata fixes, and
removal after a confirmation.

After every change the table, the report picker, the chat's filters and the one status line are
all rebuilt from the knowledge base, so none of them shows a report that is gone.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from pathlib import Path

import gradio as gr

from rag import schema
from rag.errors import RagError
from rag.pipeline import Pipeline
from rag.report_files import ReportFiles
from rag.retrieval import Passage
from rag.schema import SECTION_SEPARATOR, UNKNOWN_DISTRICT_TEXT, UNKNOWN_YEAR_TEXT
from rag.sections import Section, parse_sections
from ui.chat import ChatTab
from ui.render import esc, notice, render_lines

REPORT_HEADERS = ["文件", "区县", "年份", "标题", "段落数"]
HIT_HEADERS = ["排名", "融合分", "向量相似度", "关键词分", "区县", "年份", "章节", "文件", "内容"]
HIT_TEXT_CHARS = 160  # of a chunk's text in the hit table
REPORT_START = "（报告开头）"  # the section of the text before the first heading
PREVIEW_HINT = "<div class='fz-quiet'>在上表点一行，或在「报告」中选一份，查看它的标题结构和段落。</div>"
# Gradio deletes its temporary files this old, this often: an upload whose ingest never ran
# (its event failed or was never called) is gone within two of these.
UPLOAD_LIFETIME_S = 3600


# ---- rendering (pure functions) ---------------------------------------------------------


def report_rows(reports: list[dict]) -> list[list]:
    """Table rows; a district or year that was not detected says so, as a cue to correct it."""
    return [[r["file"], r["district"] or UNKNOWN_DISTRICT_TEXT, r["year"] or UNKNOWN_YEAR_TEXT, r["title"], r["chunks"]]
            for r in reports]


def where_when(report: dict) -> str:
    return f"{report['district'] or UNKNOWN_DISTRICT_TEXT} · {report['year'] or UNKNOWN_YEAR_TEXT}"


def report_choices(reports: list[dict]) -> list[tuple[str, str]]:
    """(「title · file」, file) choices of the report picker."""
    return [(f"{r['title']} · {r['file']}", r["file"]) for r in reports]


def _heading_parts(section: str, subheading: str = "") -> tuple[str, ...]:
    return tuple(p for p in section.split(SECTION_SEPARATOR) if p) + ((subheading,) if subheading else ())


def heading_tree(sections: list[Section], chunks: list) -> str:
    """The report's headings as nested lists, each with the number of chunks under it."""
    tree: dict = {}
    for section in sections:
        node = tree
        for part in _heading_parts(section.path, section.subheading):
            node = node.setdefault(part, {})
    counts: Counter = Counter()
    for chunk in chunks:
        parts = _heading_parts(chunk.metadata[schema.SECTION], chunk.metadata[schema.SUBHEADING])
        counts.update(parts[:n] for n in range(1, len(parts) + 1))
    opening = sum(1 for chunk in chunks if not chunk.metadata[schema.SECTION])

    def items(node: dict, above: tuple) -> str:
        return "".join(
            f"<li>{esc(name)}<span class='fz-tree-count'>{counts[above + (name,)]} 段</span>"
            f"{f'<ul>{items(child, above + (name,))}</ul>' if child else ''}</li>"
            for name, child in node.items())

    start = f"<li>{REPORT_START}<span class='fz-tree-count'>{opening} 段</span></li>" if opening else ""
    return f"<ul class='fz-tree'>{start}{items(tree, ())}</ul>"


def render_report(report: dict, text: str, chunks: list) -> str:
    """A report's preview: what it is, its heading tree, and its chunks in order."""
    listed = "".join(
        "<div class='fz-chunk'><div class='fz-chunk-head'>"
        f"#{n} · {esc(c.metadata[schema.SECTION].split(SECTION_SEPARATOR)[-1] or REPORT_START)} · "
        f"字符 {c.metadata[schema.START]}–{c.metadata[schema.END]}</div>"
        f"<div class='fz-chunk-text'>{esc(c.page_content)}</div></div>"
        for n, c in enumerate(chunks, 1))
    return (
        f"<div class='fz-report-head'>{esc(report['title'])}</div>"
        f"<div class='fz-quiet'>{esc(where_when(report))} · {esc(report['file'])} · {len(text)} 字 · "
        f"{len(chunks)} 段</div>"
        f"<h4>标题结构</h4>{heading_tree(parse_sections(text), chunks)}"
        f"<h4>段落</h4><div class='fz-chunks'>{listed}</div>"
    )


def hit_rows(passages: list[Passage]) -> list[list]:
    """Hit-test rows, best first: rank, the fused score and the dense and keyword scores it was fused
    from (「—」: that search did not find the chunk), where each chunk is from, and its text."""
    rows = []
    for rank, p in enumerate(passages, 1):
        text = " ".join(p.chunk.page_content.split())
        dense, keyword = ("—" if v is None else round(v, 4) for v in (p.dense, p.keyword))
        rows.append([rank, round(p.score, 4), dense, keyword, p.meta[schema.DISTRICT] or UNKNOWN_DISTRICT_TEXT,
                     p.meta[schema.YEAR] or UNKNOWN_YEAR_TEXT, p.meta[schema.SECTION] or REPORT_START,
                     p.meta[schema.FILE], text[:HIT_TEXT_CHARS] + ("…" if len(text) > HIT_TEXT_CHARS else "")])
    return rows


def _delete_upload(path: str) -> None:
    """Delete Gradio's copy of an upload, and its folder (named by the file's hash) once empty.

    The report lives on in the reports folder, or was refused; the copy would stay downloadable
    from Gradio's file route, even after the report is removed.
    """
    copy = Path(path)
    copy.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        copy.parent.rmdir()


# ---- the tab ----------------------------------------------------------------------------


def knowledge_base_tab(demo: gr.Blocks, pipeline: Pipeline, files: ReportFiles, chat: ChatTab) -> None:
    """Build the 知识库 tab's components and events inside the current gr.Tab."""
    max_mb = pipeline.settings.server.max_upload_mb
    extensions = " ".join(pipeline.settings.ingest.extensions)

    def kb_updates(selected=...) -> tuple:
        """The outputs `kb_outputs` from the knowledge base now: table, report picker, the chat's two
        filters, the view of report `selected` (... keeps the picked one and its view), and the
        hit test emptied (its chunks may be gone)."""
        reports = pipeline.reports()
        names = [r["file"] for r in reports]
        if selected is not ...:
            selected = selected if selected in names else None
        return (
            report_rows(reports),
            gr.update(choices=report_choices(reports), **({} if selected is ... else {"value": selected})),
            gr.update(choices=sorted({r["district"] for r in reports if r["district"]})),
            gr.update(choices=sorted({r["year"] for r in reports if r["year"]}, reverse=True)),
            *((gr.skip(),) * 4 if selected is ... else view(selected)),
            "", [],
        )

    def view(file) -> tuple:
        """Preview, district and year fields of a report (None: none picked); any delete question closed."""
        closed = gr.update(visible=False)
        if not file:
            return PREVIEW_HINT, "", None, closed
        try:
            report = files.report(file)
            text = pipeline.kb.report_text(file)
        except (RagError, KeyError) as err:
            return notice("bad", "无法预览", str(err)), "", None, closed
        chunks = [c for c in pipeline.kb.chunks() if c.metadata[schema.FILE] == file]
        return render_report(report, text, chunks), report["district"], report["year"] or None, closed

    def on_select_row(data: gr.SelectData):
        file = (data.row_value or [None])[0]
        return (file, *view(file)) if file else (gr.skip(),) * 5

    def on_upload(paths, progress=gr.Progress()):  # noqa: B008 - Gradio's way to report progress
        """Ingest each uploaded file in turn; one result line per file, the last one imported picked."""
        lines, imported = [], None
        for number, path in enumerate(paths or [], 1):
            name = Path(path).name

            def report_progress(file, done, total, number=number):
                progress((done, total), desc=f"第 {number}/{len(paths)} 个文件 {file}：{done}/{total} 段")

            progress(0, desc=f"正在读取 {name}")
            try:
                with open(path, "rb") as source:
                    result = files.add(name, source, progress=report_progress)
            except RagError as err:
                lines.append(notice("bad", "未导入", f"{name}：{err}"))
                continue
            finally:
                _delete_upload(path)
            r, s = result["report"], result["summary"]
            imported = r["file"]
            lines.append(notice("ok", "已导入", f"{r['file']}：{where_when(r)} · {r['title']}，{r['chunks']} 段，"
                                               f"用时 {s['seconds']:.1f} 秒"))
        if imported:
            lines.append("<span class='fz-quiet'>区县或年份不对时，可在下方修改。</span>")
        return (render_lines(lines), *kb_updates(imported or ...), None)

    def on_fix(file, district, year):
        if not file:
            return (notice("warn", "提示", "请先选择一份报告。"), *kb_updates())
        fields = {"district": (district or "").strip() or None, "year": int(year) if year else None}
        try:
            r = files.fix(file, **fields)["report"]
        except RagError as err:
            return (notice("bad", "未修改", f"{file}：{err}"), *kb_updates(file))
        return (notice("ok", "已更新", f"{file}：{where_when(r)}，已重新导入。"), *kb_updates(file))

    def ask_remove(file):
        """Ask before removing: the question names the picked report, and is closed whenever the pick changes."""
        if not file:
            return notice("warn", "提示", "请先选择一份报告。"), gr.update(visible=False)
        question = notice("warn", "确认", f"从知识库删除「{file}」？上传的文件会一并删除，种子报告只移出索引。")
        return question, gr.update(visible=True)

    def on_remove(file):
        if not file:
            return (notice("warn", "提示", "请先选择一份报告。"), *kb_updates())
        try:
            files.remove(file)
        except RagError as err:
            return (notice("bad", "未删除", f"{file}：{err}"), *kb_updates(None))
        return (notice("ok", "已删除", f"已从知识库删除 {file}。"), *kb_updates(None))

    def hit_test(query, k):
        """The chunks a question retrieves, as the answer writer would get them, with their scores."""
        try:
            route = pipeline.route(query)
            passages = pipeline.retrieve(query, k=int(k))
        except RagError as err:
            return notice("bad", "无法测试", str(err)), []
        if route.not_covered and not passages:
            return notice("warn", "未检索", route.not_covered), []
        where = "、".join(route.districts) or "全部区县"
        years = "、".join(f"{y}年" for y in route.years)
        summary = f"路由到 {where}{' · ' + years if years else ''}：命中 {len(passages)} 段（融合分：向量与关键词排名的加权倒数和）"
        return notice("info", "命中", summary), hit_rows(passages)

    reports_table = gr.Dataframe(headers=REPORT_HEADERS, value=[], interactive=False, wrap=True,
                                 label="已导入的报告（点一行查看）", elem_id="fz-reports")
    upload = gr.File(label=f"上传报告（可多选；{extensions}，每个不超过 {max_mb:g} MB）", file_count="multiple",
                     type="filepath", height=140, elem_id="fz-upload")
    kb_status = gr.HTML(js_on_load=None, elem_id="fz-kb-status")
    with gr.Row():
        with gr.Column(scale=3):
            pick = gr.Dropdown(label="报告", choices=[], elem_id="fz-pick")
            preview = gr.HTML(PREVIEW_HINT, js_on_load=None, elem_id="fz-preview", label="预览", show_label=True,
                              container=True, padding=True)
        with gr.Column(scale=2):
            gr.Markdown("**修改或删除**：区县、年份识别有误时在此更正（写入 NAME.meta.yaml 并重新导入）。")
            with gr.Row():
                fix_district = gr.Textbox(label="区县", scale=2, elem_id="fz-fix-district")
                fix_year = gr.Number(label="年份", precision=0, value=None, scale=1, elem_id="fz-fix-year")
            with gr.Row():
                save = gr.Button("保存并重新导入", variant="primary", elem_id="fz-save")
                remove = gr.Button("删除报告", variant="stop", elem_id="fz-remove")
            with gr.Column(visible=False, elem_classes="fz-confirm", elem_id="fz-remove-confirm") as confirm:
                confirm_text = gr.HTML(js_on_load=None)
                with gr.Row():
                    confirm_remove = gr.Button("确认删除", size="sm", variant="stop", elem_id="fz-remove-yes")
                    cancel_remove = gr.Button("取消", size="sm", elem_id="fz-remove-no")
    gr.Markdown("**命中测试**：输入一个问题，看检索出哪些段落、得分多少（与问答用的检索相同）。")
    with gr.Row(equal_height=True):
        hit_query = gr.Textbox(label="测试问题", max_lines=2, scale=4, elem_id="fz-hit-query")
        hit_k = gr.Slider(1, 20, value=pipeline.settings.retrieval.top_k, step=1, label="段落数", scale=2)
        hit_button = gr.Button("测试", scale=0, min_width=100, elem_id="fz-hit")
    hit_note = gr.HTML(js_on_load=None, elem_id="fz-hit-note")
    hits = gr.Dataframe(headers=HIT_HEADERS, value=[], interactive=False, wrap=True, label="命中的段落",
                        column_widths=["6%", "8%", "10%", "8%", "22%", "16%", "30%"], elem_id="fz-hits")

    report_view = [preview, fix_district, fix_year, confirm]
    kb_outputs = [reports_table, pick, chat.district_filter, chat.year_filter, *report_view, hit_note, hits]
    private = {"api_visibility": "private"}
    demo.load(kb_updates, None, kb_outputs, **private)
    reports_table.select(on_select_row, None, [pick, *report_view], **private)
    pick.input(view, pick, report_view, **private)
    upload.upload(on_upload, upload, [kb_status, *kb_outputs, upload], **private)
    save.click(on_fix, [pick, fix_district, fix_year], [kb_status, *kb_outputs], **private)
    remove.click(ask_remove, pick, [confirm_text, confirm], **private)
    cancel_remove.click(lambda: gr.update(visible=False), None, confirm, **private)
    confirm_remove.click(on_remove, pick, [kb_status, *kb_outputs], **private)
    for trigger in (hit_button.click, hit_query.submit):
        trigger(hit_test, [hit_query, hit_k], [hit_note, hits], **private)
