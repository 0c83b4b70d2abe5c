"""The HTTP API: FastAPI routes over the one Pipeline, the OpenAI-compatible chat route, and
the Gradio UI mounted at "/". Routes parse, call the pipeline, and format; errors become
4xx/5xx answers carrying the RagError's own message.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Iterator
from itertools import chain
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, BinaryIO, Literal

from fastapi import APIRouter, Depends, FastAPI, File, Query, Request, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from rag.errors import BadFileError, QuestionError, RagError
from rag.feedback import FeedbackStore
from rag.metadata import sidecar_path, write_sidecar
from rag.pipeline import PROVIDERS, Pipeline
from rag.schema import Answer

DEFAULT_MODEL = "fazhi-qa"
# OpenAI model id → provider (None: the configured default).
MODELS: dict[str, str | None] = {DEFAULT_MODEL: None, **{f"{DEFAULT_MODEL}-{p}": p for p in PROVIDERS}}
SOURCES_HEADING = "来源："


class BadRequestError(RagError):
    """A request the API cannot act on as given."""

    http_status = 400


class UnsafePathError(BadRequestError):
    """A report name that points outside the reports folder."""


class ReportNotFoundError(RagError):
    """No report of that name in the knowledge base."""

    http_status = 404


class UploadTooLargeError(RagError):
    """An upload over server.max_upload_mb."""

    http_status = 413


class UnauthorizedError(RagError):
    """A missing or wrong API key."""

    http_status = 401


class RateLimitError(RagError):
    """More requests than server.requests_per_minute from one client."""

    http_status = 429


class UnknownModelError(RagError):
    """An OpenAI-style request for a model this server does not serve."""

    http_status = 404


# ---- report files: uploads, metadata fixes, removal (shared with the UI) ---------------


class ReportFiles:
    """Report files on disk: uploads saved under data_dir/reports and ingested, sidecar fixes, removal."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline
        settings = pipeline.settings
        self.folder = settings.data_dir / "reports"
        self.seeds = settings.seeds_dir
        self.max_bytes = int(settings.server.max_upload_mb * 2**20)
        self.max_mb = settings.server.max_upload_mb
        self.extensions = [e.lower() for e in settings.ingest.extensions]

    def check_name(self, file: str) -> str:
        """The report name unchanged, or UnsafePathError when it could leave the reports folder."""
        parts = PurePosixPath(file.replace("\\", "/")).parts if file else ()
        if not parts or "\x00" in file or file.startswith(("/", "\\")) or ".." in parts or re.match(r"^[A-Za-z]:", file):
            raise UnsafePathError(
                f"报告名 '{file}' 不合法：不能包含 ..、绝对路径或盘符。Use a report name as listed by GET /api/reports."
            )
        return file

    def upload_name(self, filename: str | None) -> str:
        """A safe file name for an upload: no folders, odd characters replaced, a known extension."""
        name = PurePosixPath(self.check_name((filename or "").strip()).replace("\\", "/")).name
        name = re.sub(r"[^\w.\-()（）·]+", "_", name).lstrip("._")
        suffix = PurePosixPath(name).suffix.lower()
        if suffix not in self.extensions:
            raise BadFileError(
                f"不支持的文件类型 '{suffix or filename}'：请上传 {' '.join(self.extensions)} 文件。"
            )
        stem = name[: -len(suffix)][:120] or "report"
        return stem + suffix

    def add(self, filename: str | None, source: BinaryIO, progress=None) -> dict:
        """Save an upload under the reports folder and ingest it; a rejected file is not kept."""
        name = self.upload_name(filename)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / name
        partial = path.with_name(name + ".upload")
        size = 0
        try:
            with partial.open("wb") as out:
                while block := source.read(1 << 20):
                    size += len(block)
                    if size > self.max_bytes:
                        raise UploadTooLargeError(
                            f"{name} 太大：超过上限 {self.max_mb:g} MB（server.max_upload_mb）。请拆分或压缩后再上传。"
                        )
                    out.write(block)
            previous = path.with_name(name + ".previous")
            had_previous = path.exists()
            if had_previous:
                os.replace(path, previous)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        try:
            summary = self.pipeline.ingest([path], progress=progress)
            if name in summary.failed:
                raise BadFileError(summary.failed[name])
        except BaseException:
            path.unlink(missing_ok=True)
            if had_previous:
                os.replace(previous, path)
            raise
        if had_previous:
            previous.unlink(missing_ok=True)
        return {"file": name, "report": self.report(name), "summary": summary.as_dict()}

    def report(self, file: str) -> dict:
        """The knowledge base's row of one report."""
        row = next((r for r in self.pipeline.reports() if r["file"] == file), None)
        if row is None:
            raise ReportNotFoundError(f"知识库中没有报告 '{file}'：see GET /api/reports for the names.")
        return row

    def path_of(self, file: str) -> Path:
        """The file on disk of a report: an upload, else a seed."""
        self.check_name(file)
        self.report(file)
        for folder in (self.folder, self.seeds):
            if (folder / file).is_file():
                return folder / file
        raise ReportNotFoundError(f"报告 '{file}' 在 {self.folder} 和 {self.seeds} 中都找不到原文件，无法修改。")

    def fix(self, file: str, **fields) -> dict:
        """Write the report's metadata sidecar (district, year, title, body) and ingest it again."""
        path = self.path_of(file)
        write_sidecar(path, **fields)
        summary = self.pipeline.ingest([path])
        if path.name in summary.failed:
            raise BadFileError(summary.failed[path.name])
        return {"file": file, "report": self.report(file), "summary": summary.as_dict()}

    def remove(self, file: str) -> None:
        """Take a report out of the index; an uploaded file is deleted too (seeds stay on disk)."""
        self.check_name(file)
        try:
            self.pipeline.remove_report(file)
        except KeyError:
            raise ReportNotFoundError(f"知识库中没有报告 '{file}'：see GET /api/reports for the names.") from None
        upload = self.folder / file
        if upload.is_file():
            upload.unlink()
            sidecar_path(upload).unlink(missing_ok=True)

    def passage(self, file: str, start: int, end: int, context: int = 200) -> dict:
        """The text around a citation: before, quote, after."""
        self.check_name(file)
        try:
            return self.pipeline.passage(file, start, end, context)
        except KeyError:
            raise ReportNotFoundError(f"知识库中没有报告 '{file}'：see GET /api/reports for the names.") from None
        except ValueError as err:
            raise BadRequestError(str(err)) from err


# ---- request bodies ----------------------------------------------------------------------


class Filters(BaseModel):
    districts: list[str] | None = None
    years: list[int] | None = None


class AskRequest(BaseModel):
    question: str
    history: list[tuple[str, str]] = Field(default_factory=list, description="Earlier (question, answer) pairs.")
    filters: Filters | None = None
    provider: Literal["local", "openai", "extractive"] | None = None

    def call(self) -> dict:
        filters = self.filters.model_dump(exclude_none=True) if self.filters else None
        return {"question": self.question, "history": self.history, "filters": filters, "provider": self.provider}


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
    filters = request.filters.model_dump(exclude_none=True) if request.filters else None
    return {"question": turns[-1].text(), "history": history, "filters": filters, "provider": MODELS[request.model]}


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
        filters = body.filters.model_dump(exclude_none=True) if body.filters else None
        return feedback.add(body.rating, body.question, body.answer, body.history, filters)

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
