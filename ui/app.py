"""The chat UI: a Chinese Gradio app over the one Pipeline.

问答 tab: a streaming chat whose answers carry citation chips; a click on a chip shows the
passage with the quoted words marked. Filters for district and year come from the knowledge
base. 知识库 tab: the reports, upload with progress, metadata fixes, removal.
"""

from __future__ import annotations

import contextlib
import html
import re
from pathlib import Path
from urllib.parse import quote

import gradio as gr

from rag.errors import QuestionError, RagError
from rag.feedback import FeedbackStore
from rag.pipeline import Pipeline
from rag.providers import PROVIDERS
from rag.report_files import ReportFiles
from rag.schema import SECTION_SEPARATOR, UNKNOWN_DISTRICT_TEXT, UNKNOWN_YEAR_TEXT, Answer, Citation

TITLE = "法治政府建设报告问答"
EXAMPLES = [
    "九龙坡区2025年实施首违不罚、轻微免罚的案件有多少件？",
    "梁平区人民调解的调解成功率是多少？",
    "重庆枢纽港涉外法律服务联盟是哪个区牵头发起设立的？",
    "九龙坡区司法局认为2025年法治政府建设还存在哪些不足？",
]
PASSAGE_HINT = "<div class='fz-passage fz-empty'>点击答案下方的引用〔…〕，在这里查看报告原文。</div>"
PASSAGE_CONTEXT = 400  # characters shown either side of a quote
REPORT_HEADERS = ["文件", "区县", "年份", "标题", "段落数"]
# Gradio deletes its temporary files this old, this often: an upload whose ingest never ran
# (its event failed or was never called) is gone within two of these.
UPLOAD_LIFETIME_S = 3600

CSS = """
.fz-chips { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 10px; }
.fz-chip { display: inline-block; padding: 2px 10px; border-radius: 999px; cursor: pointer;
  background: #eef2ff; border: 1px solid #c7d2fe; color: #3730a3 !important; font-size: 0.85em; line-height: 1.6;
  text-decoration: none !important; }
.fz-chip:hover { background: #e0e7ff; }
.fz-chip.fz-active { background: #c7d2fe; border-color: #6366f1; }
.fz-ref { color: #6366f1; font-size: 0.8em; vertical-align: super; }
.fz-meta, .fz-quiet, .fz-quiet p { color: #9ca3af !important; font-size: 0.78em !important; }
.fz-meta { margin-top: 6px; }
.fz-passage { font-size: 0.95em; line-height: 1.8; }
.fz-passage.fz-empty { color: #9ca3af; padding: 12px 0; }
.fz-passage-head { font-weight: 600; margin-bottom: 2px; }
.fz-passage-file { color: #9ca3af; font-size: 0.8em; margin-bottom: 8px; }
.fz-passage-body { white-space: pre-wrap; max-height: 480px; overflow-y: auto; }
.fz-passage mark { background: #fde68a; color: inherit; padding: 0 2px; border-radius: 2px; }
.fz-error { color: #b91c1c; }
"""

# A click on any chip, wherever the chatbot renders it, fires this component's click event.
# The chatbot's sanitizer drops data-* attributes, so a chip carries its citation in its href.
CHIP_JS = r"""
window.__fzTrigger = trigger;
watch('value', () => {
  const box = element.querySelector('.fz-passage-body');
  const mark = box && box.querySelector('mark');
  if (mark) box.scrollTop += mark.getBoundingClientRect().top - box.getBoundingClientRect().top - 60;
});
if (!window.__fzChipListener) {
  window.__fzChipListener = true;
  document.addEventListener('click', (event) => {
    const chip = event.target.closest && event.target.closest('.fz-chip');
    if (!chip) return;
    event.preventDefault();
    event.stopPropagation();
    document.querySelectorAll('.fz-chip.fz-active').forEach((c) => c.classList.remove('fz-active'));
    chip.classList.add('fz-active');
    const cite = (chip.getAttribute('href') || '').match(/#fz-cite=(\d+)-(\d+)-(.+)$/);
    if (!cite) return;
    window.__fzTrigger('click', {file: decodeURIComponent(cite[3]), start: cite[1], end: cite[2],
                                 label: chip.getAttribute('title') || ''});
  }, true);
}
"""


# ---- rendering (pure functions) ---------------------------------------------------------


def _esc(text) -> str:
    return html.escape(str(text), quote=True)


def chip_label(citation: Citation, width: int = 14) -> str:
    """〔荣昌区 · 2024 · （五）夯实基层体系…〕: the innermost heading, shortened."""
    heading = citation.section.split(SECTION_SEPARATOR)[-1].strip()
    if len(heading) > width:
        heading = heading[:width] + "…"
    return f"〔{' · '.join(str(p) for p in (citation.district, citation.year, heading) if p)}〕"


def render_answer(answer: Answer) -> str:
    """An answer as chat HTML: its text with [n] markers, chips for its citations, a quiet meta line."""
    text = re.sub(r"\[(\d+)\]", r"<span class='fz-ref'>[\1]</span>", _esc(answer.answer))
    chips = "".join(
        f"<a class='fz-chip' href='#fz-cite={c.start}-{c.end}-{quote(c.file)}' title='{_esc(c.label())}'>"
        f"[{c.n}] {_esc(chip_label(c))}</a>"
        for c in answer.citations
    )
    t = answer.timings
    meta = (
        f"{_esc(PROVIDERS[answer.provider].label if answer.provider in PROVIDERS else answer.provider)} · {_esc(answer.model)} · "
        f"检索 {t.retrieve_ms:.0f} ms · 首字 {t.first_token_ms:.0f} ms · 总计 {t.total_ms:.0f} ms"
    )
    parts = [text]
    if chips:
        parts.append(f"<div class='fz-chips'>{chips}</div>")
    parts.append(f"<div class='fz-meta'>{meta}</div>")
    return "\n\n".join(parts)


def render_passage(passage: dict, label: str = "", context: int = 400) -> str:
    """The passage around a citation, the quoted words in <mark>; … where the text goes on."""
    before, after = passage["before"], passage["after"]
    if len(before) >= context:
        before = "…" + before
    if len(after) >= context:
        after += "…"
    body = f"{_esc(before)}<mark>{_esc(passage['quote'])}</mark>{_esc(after)}"
    return (
        "<div class='fz-passage'>"
        f"<div class='fz-passage-head'>{_esc(label)}</div>"
        f"<div class='fz-passage-file'>{_esc(passage['file'])}</div>"
        f"<div class='fz-passage-body'>{body}</div></div>"
    )


def report_rows(reports: list[dict]) -> list[list]:
    """Table rows; a district or year that was not detected says so, as a cue to correct it."""
    return [[r["file"], r["district"] or UNKNOWN_DISTRICT_TEXT, r["year"] or UNKNOWN_YEAR_TEXT, r["title"], r["chunks"]]
            for r in reports]


def _where_when(report: dict) -> str:
    return f"{report['district'] or UNKNOWN_DISTRICT_TEXT} · {report['year'] or UNKNOWN_YEAR_TEXT}"


def _error_html(message: str) -> str:
    return f"<div class='fz-passage fz-error'>{_esc(message)}</div>"


def _delete_upload(path: str) -> None:
    """Delete Gradio's copy of an upload, and its folder (named by the file's hash) once empty.

    The report lives on in the reports folder, or was refused; the copy would stay downloadable
    from Gradio's file route, even after the report is removed.
    """
    copy = Path(path)
    copy.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        copy.parent.rmdir()


# ---- the app ----------------------------------------------------------------------------


def build_ui(pipeline: Pipeline, files: ReportFiles | None = None, feedback: FeedbackStore | None = None) -> gr.Blocks:
    """The Gradio Blocks of the chat and the 知识库 tab, calling `pipeline` for everything."""
    files = files or ReportFiles(pipeline)
    feedback = feedback or FeedbackStore.in_data_dir(pipeline.settings.data_dir)
    max_mb = pipeline.settings.server.max_upload_mb
    extensions = " ".join(pipeline.settings.ingest.extensions)

    def kb_updates(selected=...):
        """Table rows, the report picker (selecting `selected`; ... keeps its choice) and the two
        filters, from the knowledge base now."""
        reports = pipeline.reports()
        names = [r["file"] for r in reports]
        districts = sorted({r["district"] for r in reports if r["district"]})
        years = sorted({r["year"] for r in reports if r["year"]}, reverse=True)
        picked = {} if selected is ... else {"value": selected if selected in names else None}
        return (
            report_rows(reports),
            gr.update(choices=names, **picked),
            gr.update(choices=districts),
            gr.update(choices=years),
        )

    def respond(question, messages, pairs, records, districts, years, provider):
        try:
            question = pipeline.check_question(question)
        except QuestionError as err:
            raise gr.Error(str(err)) from err
        filters = {"districts": list(districts or []) or None, "years": [int(y) for y in years or []] or None}
        messages = list(messages or []) + [
            {"role": "user", "content": _esc(question)},
            {"role": "assistant", "content": "…"},
        ]
        yield messages, "", pairs, records
        text = ""
        try:
            stream = pipeline.stream(question, [tuple(p) for p in pairs], filters, provider)
            for delta in stream:
                text += delta
                messages[-1] = {"role": "assistant", "content": _esc(text) + " ▍"}
                yield messages, "", pairs, records
            answer = stream.answer
        except Exception as err:  # noqa: BLE001 - the reason goes into the chat; the app goes on
            reason = err if isinstance(err, RagError) else f"内部错误（{type(err).__name__}: {err}）"
            messages[-1] = {"role": "assistant", "content": f"<span class='fz-error'>⚠️ {_esc(reason)}</span>"}
            yield messages, "", pairs, records
            return
        messages[-1] = {"role": "assistant", "content": render_answer(answer)}
        records = {**records, str(len(messages) - 1): {
            "question": question, "answer": answer.model_dump(), "history": pairs, "filters": filters,
        }}
        yield messages, "", pairs + [[question, answer.answer]], records

    def on_like(records, data: gr.LikeData):
        index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        record = records.get(str(index))
        if record is None or data.liked not in (True, False):
            return
        feedback.add("up" if data.liked else "down", record["question"], record["answer"],
                     record["history"], record["filters"])
        gr.Info("已记录您的反馈，谢谢！")

    def show_passage(data: gr.EventData):
        try:
            passage = files.passage(data.file, int(data.start), int(data.end), context=PASSAGE_CONTEXT)
        except (RagError, ValueError, AttributeError) as err:
            return _error_html(f"无法显示原文：{err}")
        return render_passage(passage, getattr(data, "label", ""), PASSAGE_CONTEXT)

    def on_upload(path, progress=gr.Progress()):  # noqa: B008 - Gradio's way to report progress
        if not path:
            return ("", *kb_updates(), None)
        name = Path(path).name

        def report_progress(file, done, total):
            progress((done, total), desc=f"正在导入 {file}：{done}/{total} 段")

        progress(0, desc=f"正在读取 {name}")
        try:
            with open(path, "rb") as source:
                result = files.add(name, source, progress=report_progress)
        except RagError as err:
            gr.Warning(f"未导入 {name}：{err}")
            return (f"❌ 未导入 **{_esc(name)}**：{_esc(err)}", *kb_updates(), None)
        finally:
            _delete_upload(path)
        r, s = result["report"], result["summary"]
        status = (
            f"✅ 已导入 **{_esc(r['file'])}**：{_esc(_where_when(r))} · "
            f"{_esc(r['title'])}，{r['chunks']} 个段落，用时 {s['seconds']:.1f} 秒。"
            " 区县或年份不对时，可在下方修改。"
        )
        return (status, *kb_updates(r["file"]), None)

    def on_pick(file):
        try:
            row = files.report(file)
        except RagError:
            return "", None
        return row["district"], row["year"] or None

    def on_fix(file, district, year):
        if not file:
            return ("请先选择一份报告。", *kb_updates())
        fields = {"district": (district or "").strip() or None, "year": int(year) if year else None}
        try:
            r = files.fix(file, **fields)["report"]
        except RagError as err:
            return (f"❌ 未能修改 {_esc(file)}：{_esc(err)}", *kb_updates(file))
        return (f"✅ 已更新 **{_esc(file)}**：{_esc(_where_when(r))}，已重新导入。", *kb_updates(file))

    def on_remove(file):
        if not file:
            return ("请先选择一份报告。", *kb_updates())
        try:
            files.remove(file)
        except RagError as err:
            return (f"❌ 未能删除 {_esc(file)}：{_esc(err)}", *kb_updates())
        return (f"🗑️ 已从知识库删除 **{_esc(file)}**。", *kb_updates(None))

    with gr.Blocks(title=TITLE, delete_cache=(UPLOAD_LIFETIME_S, UPLOAD_LIFETIME_S)) as demo:
        gr.Markdown(f"## {TITLE}")
        gr.Markdown(
            "根据知识库中的区县法治政府建设报告回答，每句话标明出处。HTTP API 文档：[/docs](/docs)",
            elem_classes="fz-quiet",
        )
        pairs = gr.State([])
        records = gr.State({})
        with gr.Tabs():
            with gr.Tab("问答", id="chat"):
                with gr.Row():
                    with gr.Column(scale=3):
                        chatbot = gr.Chatbot(
                            label="对话", elem_id="fz-chat", height=520, buttons=["copy", "copy_all"],
                            placeholder="在下方输入问题，或点击一个示例问题。",
                        )
                        with gr.Row():
                            question = gr.Textbox(
                                show_label=False, placeholder="输入问题，回车发送", scale=5, max_lines=4,
                                elem_id="fz-question",
                            )
                            send = gr.Button("提问", variant="primary", scale=1, elem_id="fz-send")
                        examples = gr.Dataset(
                            components=[question], samples=[[q] for q in EXAMPLES], label="示例问题",
                            elem_id="fz-examples",
                        )
                    with gr.Column(scale=2):
                        with gr.Row():
                            district_filter = gr.Dropdown(label="区县", multiselect=True, choices=[], scale=3)
                            year_filter = gr.Dropdown(label="年份", multiselect=True, choices=[], scale=2)
                        passage = gr.HTML(PASSAGE_HINT, js_on_load=CHIP_JS, elem_id="fz-passage", container=True, padding=True,
                                          label="原文", show_label=True)
                        with gr.Accordion("设置", open=False):
                            provider = gr.Radio(
                                choices=[(p.label, p.name) for p in PROVIDERS.values()],
                                value=pipeline.settings.llm.provider, label="回答方式",
                            )
                        clear = gr.Button("新对话", size="sm")
            with gr.Tab("知识库", id="kb"):
                reports_table = gr.Dataframe(
                    headers=REPORT_HEADERS, value=[], interactive=False, wrap=True, label="已导入的报告",
                    elem_id="fz-reports",
                )
                upload = gr.File(
                    label=f"上传报告（{extensions}，不超过 {max_mb:g} MB）", file_count="single",
                    type="filepath", elem_id="fz-upload",
                )
                upload_status = gr.Markdown(elem_id="fz-upload-status")
                gr.Markdown("**修改或删除一份报告**：区县、年份识别有误时在此更正（写入 NAME.meta.yaml 并重新导入）。")
                with gr.Row():
                    pick = gr.Dropdown(label="报告", choices=[], scale=3, elem_id="fz-pick")
                    fix_district = gr.Textbox(label="区县", scale=2, elem_id="fz-fix-district")
                    fix_year = gr.Number(label="年份", precision=0, scale=1)
                with gr.Row():
                    save = gr.Button("保存并重新导入", variant="primary", elem_id="fz-save")
                    remove = gr.Button("删除报告", variant="stop", elem_id="fz-remove")
                kb_status = gr.Markdown(elem_id="fz-kb-status")

        kb_outputs = [reports_table, pick, district_filter, year_filter]
        ask_inputs = [question, chatbot, pairs, records, district_filter, year_filter, provider]
        ask_outputs = [chatbot, question, pairs, records]

        demo.load(kb_updates, None, kb_outputs)
        question.submit(respond, ask_inputs, ask_outputs)
        send.click(respond, ask_inputs, ask_outputs)
        examples.click(lambda sample: sample[0] if isinstance(sample, list) else sample, examples, question).then(
            respond, ask_inputs, ask_outputs
        )
        chatbot.like(on_like, records, None)
        passage.click(show_passage, None, passage)
        clear.click(lambda: ([], [], {}, PASSAGE_HINT), None, [chatbot, pairs, records, passage])
        chatbot.clear(lambda: ([], {}, PASSAGE_HINT), None, [pairs, records, passage])
        upload.upload(on_upload, upload, [upload_status, *kb_outputs, upload])
        pick.change(on_pick, pick, [fix_district, fix_year])
        save.click(on_fix, [pick, fix_district, fix_year], [kb_status, *kb_outputs])
        remove.click(on_remove, pick, [kb_status, *kb_outputs])
    demo.queue(default_concurrency_limit=4)
    return demo
