"""The HTTP API: FastAPI routes over the one Pipeline, the OpenAI-compatible chat route, and
the Gradio UI mounted at "/". Routes parse, call the pipeline, and format; errors become
4xx/5xx answers carrying the RagError's own message.
"""

from __future__ import annotations

import hmac
import json
import os
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Iterator
from itertools import chain
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, File, Query, Request, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from rag.errors import QuestionError, RagError, RateLimitError, UnauthorizedError, UnknownModelError
from rag.feedback import FeedbackStore
from rag.pipeline import PROVIDERS, Pipeline
from rag.report_files import ReportFiles
from rag.schema import Answer

DEFAULT_MODEL = "fazhi-qa"
# OpenAI model id → provider (None: the configured default).
MODELS: dict[str, str | None] = {DEFAULT_MODEL: None, **{f"{DEFAULT_MODEL}-{p}": p for p in PROVIDERS}}
SOURCES_HEADING = "来源："


# ---- request bodies ----------------------------------------------------------------------


class Filters(BaseModel):
    districts: list[str] | None = None
    years: list[int] | None = None


def _filters(filters: Filters | None) -> dict | None:
    """The pipeline's filters dict of a request's optional filters."""
    return filters.model_dump(exclude_none=True) if filters else None


class AskRequest(BaseModel):
    question: str
    history: list[tuple[str, str]] = Field(default_factory=list, description="Earlier (question, answer) pairs.")
    filters: Filters | None = None
    provider: Literal["local", "openai", "extractive"] | None = None

    def call(self) -> dict:
        return {"question": self.question, "history": self.history, "filters": _filters(self.filters),
                "provider": self.provider}


class ReportFix(BaseModel):
    district: str | None = None
    year: int | None = None
    title: str | None = None
    body: str | None = None


class FeedbackRequest(BaseModel):
    rating: Literal["up", "down"]
    question: str
    answer: Answer
    history: list[tuple[str, str]] = Field(default_factory=list)
    filters: Filters | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.get("text", "") for part in self.content if part.get("type") == "text")
        return self.content or ""


class ChatRequest(BaseModel):
    """OpenAI's chat completion request; sampling options are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    model: str = DEFAULT_MODEL
    messages: list[ChatMessage]
    stream: bool = False
    filters: Filters | None = None


# ---- formatting ----------------------------------------------------------------------------


def sources_text(answer: Answer) -> str:
    """The citations as plain text lines under a 来源： heading, or "" when there are none."""
    if not answer.citations:
        return ""
    lines = [f"[{c.n}] {c.label()}「{c.quote}」" for c in answer.citations]
    return f"\n\n{SOURCES_HEADING}\n" + "\n".join(lines)


def chat_call(request: ChatRequest) -> dict:
    """Pipeline arguments from OpenAI messages: the last user message asks, earlier turns are history."""
    if request.model not in MODELS:
        raise UnknownModelError(f"The model '{request.model}' does not exist: use one of {', '.join(MODELS)}.")
    turns = [m for m in request.messages if m.role in ("user", "assistant")]
    if not turns or turns[-1].role != "user":
        raise QuestionError("问题为空：messages 的最后一条必须是 user 消息。")
    history, pending = [], None
    for message in turns[:-1]:
        if message.role == "user":
            pending = message.text()
        elif pending is not None:
            history.append((pending, message.text().split(f"\n\n{SOURCES_HEADING}")[0]))
            pending = None
    return {"question": turns[-1].text(), "history": history, "filters": _filters(request.filters),
            "provider": MODELS[request.model]}


def _sse(data: Any, event: str | None = None) -> str:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return (f"event: {event}\n" if event else "") + f"data: {payload}\n\n"


def _started(items: Iterator):
    """The stream with its first item already taken, so errors before any output become HTTP errors."""
    for first in items:
        return chain([first], items)
    return iter(())


def _guarded(events: Iterator[str], on_error) -> Iterator[str]:
    """An event stream that ends with an error event instead of a broken connection."""
    try:
        yield from events
    except RagError as err:
        yield on_error(err.http_status, str(err), type(err).__name__)
    except Exception as err:  # noqa: BLE001 - the client gets the reason, the server goes on
        yield on_error(500, f"Internal error: {type(err).__name__}: {err}", "InternalError")


def _openai_error(status: int, message: str, kind: str) -> dict:
    return {"error": {"message": message, "type": kind, "code": status}}


# ---- guards --------------------------------------------------------------------------------


def _api_key_guard(env_name: str):
    expected = os.environ.get(env_name) or ""

    def check(request: Request) -> None:
        if not expected:
            return
        given = request.headers.get("x-api-key") or ""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            given = given or token.strip()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise UnauthorizedError(
                f"API key missing or wrong: send it as 'Authorization: Bearer KEY' or 'X-API-Key: KEY' "
                f"(the server reads it from ${env_name})."
            )

    return check


def _rate_guard(per_minute: int):
    seen: dict[str, deque] = defaultdict(deque)
    lock = threading.Lock()

    def check(request: Request) -> None:
        client = request.client.host if request.client else "?"
        now = time.monotonic()
        with lock:
            times = seen[client]
            while times and now - times[0] > 60:
                times.popleft()
            if len(times) >= per_minute:
                raise RateLimitError(
                    f"请求过于频繁：每分钟最多 {per_minute} 次（server.requests_per_minute），请稍后再试。"
                )
            times.append(now)

    return check


# ---- the app -------------------------------------------------------------------------------


def create_app(pipeline: Pipeline, *, ui: bool = True) -> FastAPI:
    """The FastAPI app: /api, /v1, /healthz and /docs, with the Gradio UI at "/" (unless ui=False)."""
    settings = pipeline.settings
    files = ReportFiles(pipeline)
    feedback = FeedbackStore.in_data_dir(settings.data_dir)
    guards = [Depends(_api_key_guard(settings.server.api_key_env)), Depends(_rate_guard(settings.server.requests_per_minute))]
    app = FastAPI(
        title="fazhi-qa",
        description="Cited answers over 法治政府建设 reports. The chat UI is at /.",
        version="0.1.0",
    )
    api = APIRouter(prefix="/api", dependencies=guards, tags=["api"])
    v1 = APIRouter(prefix="/v1", dependencies=guards, tags=["openai"])

    @app.exception_handler(RagError)
    async def rag_error(request: Request, err: RagError):
        return _error_response(request, err.http_status, str(err), type(err).__name__)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, err: Exception):
        return _error_response(request, 500, f"Internal error: {type(err).__name__}: {err}", "InternalError")

    @app.get("/healthz", tags=["health"])
    def healthz():
        """Index, Chroma and LLM status; 503 when the index or Chroma is not ready."""
        status = pipeline.health()
        return JSONResponse(status, status_code=200 if status["ok"] else 503)

    @api.post("/ask", response_model=Answer)
    def ask(body: AskRequest):
        """Answer a question with citations."""
        return pipeline.ask(**body.call())

    @api.post("/ask/stream", response_class=StreamingResponse)
    def ask_stream(body: AskRequest):
        """Server-sent events: `delta` events {text}, then one `answer` event with the Answer."""
        items = _started(pipeline.stream(**body.call()))
        events = (
            _sse({"text": item}, "delta") if isinstance(item, str) else _sse(item.model_dump(), "answer")
            for item in items
        )
        stream = _guarded(events, lambda status, detail, kind: _sse({"status": status, "detail": detail}, "error"))
        return StreamingResponse(stream, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @api.get("/reports")
    def list_reports():
        """The reports in the knowledge base: file, district, year, title, body, chunks."""
        return pipeline.reports()

    @api.post("/reports", status_code=201)
    def upload_report(file: Annotated[UploadFile, File(description="A .txt, .md, .docx or .pdf report.")]):
        """Upload a report (.txt, .md, .docx, .pdf) and ingest it."""
        return files.add(file.filename, file.file)

    @api.patch("/reports/{file:path}")
    def fix_report(file: str, body: ReportFix):
        """Correct a report's detected metadata (writes its .meta.yaml sidecar) and ingest it again."""
        return files.fix(file, **body.model_dump(exclude_unset=True))

    @api.delete("/reports/{file:path}")
    def remove_report(file: str):
        """Remove a report from the knowledge base."""
        files.remove(file)
        return {"removed": file}

    @api.get("/reports/{file:path}/passage")
    def passage(file: str, start: int = Query(..., ge=0), end: int = Query(..., ge=0),
                context: int = Query(200, ge=0, le=5000)):
        """The text around a citation: before, quote, after."""
        return files.passage(file, start, end, context)

    @api.post("/feedback", status_code=201)
    def add_feedback(body: FeedbackRequest):
        """Store a 👍/👎 with its question, answer and citations."""
        return feedback.add(body.rating, body.question, body.answer, body.history, _filters(body.filters))

    @v1.get("/models")
    def list_models():
        """OpenAI-compatible model list: one model per answer provider."""
        return {"object": "list", "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "fazhi-qa"} for name in MODELS
        ]}

    @v1.post("/chat/completions")
    def chat_completions(body: ChatRequest):
        """OpenAI-compatible chat: citations in the message text and in the extra field `citations`."""
        call = chat_call(body)
        completion_id, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if not body.stream:
            answer = pipeline.ask(**call)
            return {
                "id": completion_id, "object": "chat.completion", "created": created, "model": body.model,
                "choices": [{"index": 0, "finish_reason": "stop", "message": {
                    "role": "assistant", "content": answer.answer + sources_text(answer)}}],
                "citations": [c.model_dump() for c in answer.citations],
                "fazhi_answer": answer.model_dump(),
            }

        def chunk(delta: dict, finish: str | None = None, **extra) -> str:
            return _sse({"id": completion_id, "object": "chat.completion.chunk", "created": created,
                         "model": body.model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                         **extra})

        def events(items) -> Iterator[str]:
            yield chunk({"role": "assistant", "content": ""})
            for item in items:
                if isinstance(item, str):
                    yield chunk({"content": item})
                    continue
                if item.citations:
                    yield chunk({"content": sources_text(item)})
                yield chunk({}, "stop", citations=[c.model_dump() for c in item.citations],
                            fazhi_answer=item.model_dump())
            yield _sse("[DONE]")

        stream = _guarded(events(_started(pipeline.stream(**call))), lambda *e: _sse(_openai_error(*e)))
        return StreamingResponse(stream, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    app.include_router(api)
    app.include_router(v1)
    if ui:
        _mount_ui(app, pipeline, files, feedback)
    return app


def _error_response(request: Request, status: int, message: str, kind: str) -> JSONResponse:
    if request.url.path.startswith("/v1/"):
        return JSONResponse(_openai_error(status, message, kind), status_code=status)
    return JSONResponse({"detail": message, "error": kind}, status_code=status)


def _mount_ui(app: FastAPI, pipeline: Pipeline, files: ReportFiles, feedback: FeedbackStore) -> None:
    import gradio as gr

    from ui.app import CSS, build_ui

    gr.mount_gradio_app(
        app, build_ui(pipeline, files=files, feedback=feedback), path="/", css=CSS,
        footer_links=["gradio", "settings"],
        max_file_size=f"{int(pipeline.settings.server.max_upload_mb * 4)}mb",
    )
