"""The Chinese Gradio app over the one Pipeline: the 问答 tab (ui.chat), the 指标 tab (ui.indicators),
the 知识库 tab (ui.knowledge_base), and three named endpoints for gradio_client.

The endpoints /ask, /passage and /reports take plain values and return JSON (the Answer, a
passage, the report rows); every event of the UI itself is private, so it is no API to keep.
"""

from __future__ import annotations

from contextlib import contextmanager

import gradio as gr

from rag.errors import RagError
from rag.feedback import FeedbackStore
from rag.pipeline import Pipeline
from rag.report_files import ReportFiles
from ui.chat import PASSAGE_CONTEXT, chat_tab, chip_label, render_answer, render_passage
from ui.indicators import indicators_tab
from ui.knowledge_base import UPLOAD_LIFETIME_S, knowledge_base_tab, report_rows
from ui.render import CSS

# rag.api mounts the app with CSS; tests render with the rest.
__all__ = ["CSS", "TITLE", "build_ui", "chip_label", "render_answer", "render_passage", "report_rows"]

TITLE = "法治政府建设报告问答"
MAX_PASSAGE_CONTEXT = 5000  # characters either side, as GET /api/reports/{file}/passage allows


@contextmanager
def _as_gradio_error():
    """A RagError as gr.Error, whose message gradio_client shows (other errors' it hides)."""
    try:
        yield
    except RagError as err:
        raise gr.Error(str(err), print_exception=False) from err


def build_ui(pipeline: Pipeline, files: ReportFiles | None = None, feedback: FeedbackStore | None = None) -> gr.Blocks:
    """The Gradio Blocks of the chat, 指标 and 知识库 tabs, calling `pipeline` for everything."""
    files = files or ReportFiles(pipeline)
    feedback = feedback or FeedbackStore.in_data_dir(pipeline.settings.data_dir)

    def ask(question: str, districts: list[str] | None = None, years: list[int] | None = None,
            provider: str | None = None, conversation_id: str | None = None) -> dict:
        """Answer a question with citations: the Answer as JSON. With a conversation id, its stored
        turns are the history and the answer is stored as its next turn."""
        filters = {"districts": districts or None, "years": years or None}
        with _as_gradio_error():
            if conversation_id:
                return pipeline.converse(conversation_id, question, filters, provider or None).answer.model_dump()
            return pipeline.ask(question, None, filters, provider or None).model_dump()

    def passage(file: str, start: int, end: int, context: int = PASSAGE_CONTEXT) -> dict:
        """The text around a citation: file, before, quote and after (`context` characters each side)."""
        with _as_gradio_error():
            return files.passage(file, int(start), int(end), max(0, min(int(context), MAX_PASSAGE_CONTEXT)))

    def reports() -> list[dict]:
        """The reports in the knowledge base: file, district, year, title, body, chunks."""
        with _as_gradio_error():
            return pipeline.reports()

    with gr.Blocks(title=TITLE, delete_cache=(UPLOAD_LIFETIME_S, UPLOAD_LIFETIME_S)) as demo:
        gr.Markdown(f"## {TITLE}")
        gr.Markdown(
            "根据知识库中的区县法治政府建设报告回答，每句话标明出处。HTTP API 文档：[/docs](/docs)",
            elem_classes="fz-quiet",
        )
        with gr.Tabs():
            with gr.Tab("问答", id="chat"):
                chat = chat_tab(demo, pipeline, files, feedback)
            with gr.Tab("指标", id="indicators") as indicators_page:
                indicators_tab(demo, pipeline, files, indicators_page)
            with gr.Tab("知识库", id="kb"):
                knowledge_base_tab(demo, pipeline, files, chat)
        gr.api(ask, api_name="ask")
        gr.api(passage, api_name="passage")
        gr.api(reports, api_name="reports")
    demo.queue(default_concurrency_limit=4)
    return demo
