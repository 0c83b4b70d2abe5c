"""The HTTP API: FastAPI routes over the one Pipeline (stored conversations among them), the
OpenAI-compatible chat route (stateless), offline API docs, and the Gradio UI mounted at "/".
Routes parse, call the pipeline, and format; errors become 4xx/5xx answers carrying the
RagError's own message.

With a key set, every route but the public ones (PUBLIC_PATHS, PUBLIC_PREFIXES) needs it,
whichever framework serves it: in a header, or for the UI's routes a login to the UI. Requests
that do work, and wrong keys, spend the client's rate limit. All of it is checked before a body is read, and no body may exceed
its route's size limit.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Awaitable, Iterable, Iterator
from importlib import resources
from itertools import chain
from pathlib import Path
from typing import Annotated, Any, Callable, Literal
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.routing import iter_route_contexts
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from starlette.exceptions import HTTPException
from starlette.routing import Mount

from rag.answering import AnswerStream
from rag.conversations import Conversation
from rag.errors import (
    QuestionError,
    RagError,
    RateLimitError,
    UnauthorizedError,
    UnknownModelError,
)
from rag.feedback import FeedbackStore
from rag.indicator_table import MetricSummary, citation_of, to_csv
from rag.indicators import Indicator
from rag.metadata import FIRST_YEAR, LAST_YEAR
from rag.pipeline import Pipeline
from rag.providers import PROVIDERS, check_provider
from rag.report_files import ReportFiles
from rag.schema import Answer

DEFAULT_MODEL = "fazhi-qa"
# OpenAI model id → provider (None: the configured default).
MODELS: dict[str, str | None] = {DEFAULT_MODEL: None, **{f"{DEFAULT_MODEL}-{p}": p for p in PROVIDERS}}
SOURCES_HEADING = "来源："
API_PREFIXES = ("/api", "/v1")  # the scripts' routes: the key opens them, a login to the UI does not
# With a key set, only these answer without it: health, the API's docs and their scripts (they hold
# no data), and the UI's login page with what a browser loads before logging in (Gradio's scripts,
# styles, fonts, icons).
PUBLIC_PATHS = frozenset({
    "/healthz", "/openapi.json", "/docs",
    "/", "/login", "/login/", "/logout", "/favicon.ico", "/manifest.json", "/theme.css", "/robots.txt",
})
PUBLIC_PREFIXES = ("/docs/assets/", "/assets/", "/static/")
# Swagger UI as the fastapi-offline package ships it, served from here: /docs works offline. (Its ReDoc
# is left out: ReDoc loads its logo from cdn.redoc.ly.)
DOCS_ASSETS_DIR = Path(str(resources.files("fastapi_offline").joinpath("static")))
DOCS_ASSETS = {"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"}
UPLOAD_PATHS = ("/api/reports", "/gradio_api/upload")  # bodies up to server.max_upload_mb
KEY_USER = "api-key"            # who the UI takes a request carrying the key for
MAX_JSON_BYTES = 1 << 20        # a JSON body: a question, its history, filters or a rated answer
MULTIPART_SLACK = 64 << 10      # an upload's body beyond its file: part headers and boundaries


# ---- request bodies ----------------------------------------------------------------------


def _encodable(value: str) -> str:
    """The value, or ValueError for a lone surrogate ("\\ud800" in JSON), which no UTF-8 encoder takes."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"contains an invalid character at position {err.start} (a lone UTF-16 surrogate)") from err
    return value


Text = Annotated[str, AfterValidator(_encodable)]
Year = Annotated[int, Field(ge=FIRST_YEAR, le=LAST_YEAR)]
Turn = tuple[Text, Text]


class Filters(BaseModel):
    districts: list[Annotated[Text, Field(max_length=60)]] | None = Field(None, max_length=50)
    years: list[Year] | None = Field(None, max_length=50)


def _filters(filters: Filters | None) -> dict | None:
    """The pipeline's filters dict of a request's optional filters."""
    return filters.model_dump(exclude_none=True) if filters else None


Provider = Annotated[str, AfterValidator(check_provider)]
# The constraints before the validator: put after Text's, pydantic strips the title but checks no length.
Title = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), AfterValidator(_encodable)]


class AnswerOptions(BaseModel):
    """How to answer: filters and provider (a regeneration may change them)."""

    filters: Filters | None = None
    provider: Provider | None = None

    def call(self) -> dict:
        return {"filters": _filters(self.filters), "provider": self.provider}


class ConversationQuestion(AnswerOptions):
    """The next question of a stored conversation: its history is the stored one."""

    question: Text

    def call(self) -> dict:
        return {"question": self.question, **super().call()}


class AskRequest(ConversationQuestion):
    history: list[Turn] = Field(default_factory=list, description="Earlier (question, answer) pairs.")

    def call(self) -> dict:
        return {**super().call(), "history": self.history}


class ConversationTitle(BaseModel):
    title: Title


class NewConversation(BaseModel):
    title: Title | None = Field(None, description="Left out: the first question titles it.")


class ConversationSummary(BaseModel):
    """A stored conversation without its turns."""

    id: str
    title: str
    created: str
    updated: str
    turn_count: int


class ReportFix(BaseModel):
    """A correction; a field left out keeps its value, a null one drops the correction (detect it again)."""

    district: Annotated[Text, Field(max_length=60)] | None = None
    year: Year | None = None
    title: Annotated[Text, Field(max_length=200)] | None = None
    body: Annotated[Text, Field(max_length=100)] | None = None


class FeedbackRequest(BaseModel):
    rating: Literal["up", "down"]
    question: Text
    answer: Answer
    history: list[Turn] = Field(default_factory=list)
    filters: Filters | None = None


class ContentPart(BaseModel):
    """One part of an OpenAI message's content; only "text" parts are read."""

    model_config = ConfigDict(extra="allow")
    type: str
    text: Text | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: Text | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text or "" for part in self.content if part.type == "text")
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


def indicator_json(row: Indicator) -> dict:
    """A row with its citation label and the passage route that opens its sentence."""
    return {**row.as_dict(), "label": citation_of(row).label(),
            "passage": f"/api/reports/{quote(row.file)}/passage?start={row.start}&end={row.end}"}


def _sse(data: Any, event: str | None = None) -> str:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return (f"event: {event}\n" if event else "") + f"data: {payload}\n\n"


def _started(stream: Iterable[str]) -> Iterator[str]:
    """The stream's text with its first piece already taken, so that a model that fails before
    saying anything becomes an HTTP error rather than a broken event stream."""
    deltas = iter(stream)
    for first in deltas:
        return chain([first], deltas)
    return iter(())


def _answer_events(answer: AnswerStream) -> StreamingResponse:
    """Server-sent events of an answer: `delta` events {text}, then one `answer` event with the Answer,
    or an `error` event {status, detail} when the answer fails halfway."""
    deltas = _started(answer)

    def events() -> Iterator[str]:
        for delta in deltas:
            yield _sse({"text": delta}, "delta")
        yield _sse(answer.answer.model_dump(), "answer")

    stream = _guarded(events(), lambda status, detail, kind: _sse({"status": status, "detail": detail}, "error"))
    return StreamingResponse(stream, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _guarded(events: Iterator[str], on_error) -> Iterator[str]:
    """An event stream that ends with an error event instead of a broken connection."""
    try:
        yield from events
    except RagError as err:
        yield on_error(err.http_status, str(err), _kind(err))
    except Exception as err:  # noqa: BLE001 - the client gets the reason, the server goes on
        yield on_error(500, f"Internal error: {type(err).__name__}: {err}", "InternalError")


def _openai_error(status: int, message: str, kind: str) -> dict:
    return {"error": {"message": message, "type": kind, "code": status}}


# ---- guards --------------------------------------------------------------------------------


def key_matcher(env_name: str) -> Callable[[str], bool] | None:
    """A constant-time test of a given key against $env_name, or None when no key is set.

    The digests are compared, so the comparison takes the same time whatever the key's length.
    """
    expected = os.environ.get(env_name) or ""
    if not expected:
        return None
    expected_digest = hashlib.sha256(expected.encode()).digest()
    return lambda given: hmac.compare_digest(hashlib.sha256(given.encode()).digest(), expected_digest)


def _given_key(request: Request) -> str:
    """The key a request carries as 'X-API-Key: KEY' or 'Authorization: Bearer KEY' ("" if none)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return request.headers.get("x-api-key") or (token.strip() if scheme.lower() == "bearer" else "")


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in prefixes)


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _kind(err: Exception) -> str:
    """The error's type for clients: its first class whose name is public ("_Limited" → "RateLimitError")."""
    return next(cls.__name__ for cls in type(err).__mro__ if not cls.__name__.startswith("_"))


class _Limited(RateLimitError):
    """A RateLimitError that knows when the client may try again."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


def _rate_guard(per_minute: int, window: float = 60.0):
    """A check that allows each client `per_minute` requests in any `window` seconds."""
    seen: dict[str, deque] = defaultdict(deque)
    lock = threading.Lock()

    def check(request: Request) -> None:
        client = request.client.host if request.client else "?"
        now = time.monotonic()
        with lock:
            if len(seen) > 4096:  # forget clients idle for a whole window, so the table stays small
                for idle in [c for c, times in seen.items() if not times or now - times[-1] > window]:
                    del seen[idle]
            times = seen[client]
            while times and now - times[0] > window:
                times.popleft()
            if len(times) >= per_minute:
                wait = max(1, math.ceil(window - (now - times[0])))
                raise _Limited(
                    f"请求过于频繁：每分钟最多 {per_minute} 次（server.requests_per_minute），请 {wait} 秒后再试。",
                    wait,
                )
            times.append(now)

    return check


def _validation_message(err: RequestValidationError) -> str:
    """One line naming each invalid field: "history.0.0: Input should be a valid string"."""
    problems = []
    for e in err.errors():
        if e["type"] == "json_invalid":
            problems.append(f"the body is not valid JSON ({e.get('ctx', {}).get('error', e['msg'])})")
            continue
        # "body" and the union branch tried ("list[ContentPart]") say nothing to the client
        where = ".".join(str(p) for p in e["loc"] if p != "body" and "[" not in str(p)) or "body"
        problems.append(f"{where}: {e['msg']}")
    return "请求无效 (invalid request): " + "; ".join(problems)


# ---- the app -------------------------------------------------------------------------------


def create_app(pipeline: Pipeline, *, ui: bool = True) -> FastAPI:
    """The FastAPI app: /api, /v1, /healthz and /docs, with the Gradio UI at "/" (unless ui=False)."""
    settings = pipeline.settings
    files = ReportFiles(pipeline)
    feedback = FeedbackStore.in_data_dir(settings.data_dir)
    rate_limit = _rate_guard(settings.server.requests_per_minute)
    matches = key_matcher(settings.server.api_key_env)
    app = FastAPI(
        title="fazhi-qa",
        description="Cited answers over 法治政府建设 reports. The chat UI is at /.",
        version="0.1.0",
        docs_url=None,  # served below from local files: FastAPI's own page loads them from a CDN
        redoc_url=None,  # see DOCS_ASSETS
    )
    upload_limit = files.max_bytes + MULTIPART_SLACK
    api = APIRouter(prefix="/api", tags=["api"], max_body_size=MAX_JSON_BYTES)
    v1 = APIRouter(prefix="/v1", tags=["openai"], max_body_size=MAX_JSON_BYTES)

    def too_large(request: Request) -> JSONResponse:
        if request.url.path in UPLOAD_PATHS:
            message = str(files.too_large())
        else:
            message = f"请求体太大：上限 {MAX_JSON_BYTES // 1024} KB。请缩短问题、对话历史或筛选条件。"
        return _error_response(request, 413, message, "RequestTooLargeError")

    @app.exception_handler(RagError)
    async def rag_error(request: Request, err: RagError):
        return _error_response(request, err.http_status, str(err), _kind(err))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, err: RequestValidationError):
        return _error_response(request, 422, _validation_message(err), "ValidationError")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException):
        if err.status_code == 413:  # a route's max_body_size
            return too_large(request)
        message = str(err.detail)
        if err.status_code == 400:  # FastAPI could not parse the body
            message += ": send UTF-8 JSON (Content-Type: application/json), or a file as multipart/form-data."
        return _error_response(request, err.status_code, message, _kind(err), err.headers)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, err: Exception):
        return _error_response(request, 500, f"Internal error: {type(err).__name__}: {err}", "InternalError")

    def checked(call: dict) -> dict:
        """The call, once its history passes (checked before any work, so a bad one is a plain 413)."""
        pipeline.check_history(call["history"])
        return call

    @app.get("/healthz", tags=["health"])
    def healthz():
        """Index, Chroma and LLM status; 503 when the index or Chroma is not ready."""
        status = pipeline.health()
        return JSONResponse(status, status_code=200 if status["ok"] else 503)

    @api.post("/ask", response_model=Answer)
    def ask(body: AskRequest):
        """Answer a question with citations."""
        return pipeline.ask(**checked(body.call()))

    @api.post("/ask/stream", response_class=StreamingResponse)
    def ask_stream(body: AskRequest):
        """Server-sent events: `delta` events {text}, then one `answer` event with the Answer."""
        return _answer_events(pipeline.stream(**checked(body.call())))

    @api.get("/conversations", response_model=list[ConversationSummary])
    def list_conversations():
        """The stored conversations, the last one answered first."""
        return pipeline.conversations.list()

    @api.post("/conversations", status_code=201, response_model=Conversation)
    def create_conversation(body: NewConversation | None = None):
        """Start a conversation; its history is kept here, so a follow-up sends only its question."""
        return pipeline.conversations.create(body.title or "" if body else "")

    @api.get("/conversations/{conversation_id}", response_model=Conversation)
    def get_conversation(conversation_id: str):
        """A conversation with its turns: question, Answer, filters, created."""
        return pipeline.conversations.get(conversation_id)

    @api.patch("/conversations/{conversation_id}", response_model=Conversation)
    def rename_conversation(conversation_id: str, body: ConversationTitle):
        """Rename a conversation."""
        return pipeline.conversations.rename(conversation_id, body.title)

    @api.delete("/conversations/{conversation_id}")
    def delete_conversation(conversation_id: str):
        """Delete a conversation and its turns."""
        pipeline.conversations.delete(conversation_id)
        return {"removed": conversation_id}

    @api.post("/conversations/{conversation_id}/ask", response_model=Answer)
    def converse(conversation_id: str, body: ConversationQuestion):
        """Answer the conversation's next question, read with its stored turns; the answer is stored."""
        return pipeline.converse(conversation_id, **body.call()).answer

    @api.post("/conversations/{conversation_id}/ask/stream", response_class=StreamingResponse)
    def converse_stream(conversation_id: str, body: ConversationQuestion):
        """As /ask/stream; the answer is stored once sent whole (a stream the client stops is not)."""
        return _answer_events(pipeline.converse(conversation_id, **body.call()))

    @api.post("/conversations/{conversation_id}/regenerate", response_model=Answer)
    def regenerate(conversation_id: str, body: AnswerOptions | None = None):
        """Answer the last question again (with other filters or provider, if given), in place of its answer."""
        return pipeline.converse(conversation_id, "", **(body or AnswerOptions()).call(), regenerate=True).answer

    @api.post("/conversations/{conversation_id}/regenerate/stream", response_class=StreamingResponse)
    def regenerate_stream(conversation_id: str, body: AnswerOptions | None = None):
        """As /regenerate, streamed as /ask/stream streams."""
        return _answer_events(
            pipeline.converse(conversation_id, "", **(body or AnswerOptions()).call(), regenerate=True))

    @api.get("/reports")
    def list_reports():
        """The reports in the knowledge base: file, district, year, title, body, chunks."""
        return pipeline.reports()

    @api.post("/reports", status_code=201, max_body_size=upload_limit)
    def upload_report(file: Annotated[UploadFile, File(description="A report: .txt, .md, .docx, .pdf (text or scanned), .png or .jpg.")]):
        """Upload a report (.txt, .md, .docx, .pdf, .png, .jpg) and ingest it; .doc/.wps are refused with how to convert them."""
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

    @api.get("/indicators")
    def indicator_rows(
        metric: str | None = Query(None, max_length=100, description="A metric key, or words its phrase contains."),
        district: str | None = Query(None, max_length=60),
        year: int | None = Query(None, ge=FIRST_YEAR, le=LAST_YEAR, description="The year a figure is about."),
        format: Literal["json", "csv"] = "json",  # noqa: A002 - the query parameter's name
    ):
        """指标库 rows: metric, district, year, value, unit, kind and the sentence that states it, with its
        citation label and file/start/end (JSON), or every field as CSV (UTF-8 with a BOM, for Excel)."""
        rows = pipeline.indicator_rows(metric, district, year)
        if format == "csv":
            return Response("\ufeff" + to_csv(rows), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": 'attachment; filename="indicators.csv"'})
        return [indicator_json(row) for row in rows]

    @api.get("/indicators/metrics", response_model=list[MetricSummary])
    def indicator_metrics():
        """The metrics of the 指标库 with their units, row counts and districts, most rows first."""
        return pipeline.indicator_metrics()

    @api.post("/feedback", status_code=201)
    def add_feedback(body: FeedbackRequest):
        """Store a 👍/👎 with its question, answer and citations."""
        question = pipeline.check_question(body.question)
        pipeline.check_history(body.history)
        return feedback.add(body.rating, question, body.answer, body.history, _filters(body.filters))

    @v1.get("/models")
    def list_models():
        """OpenAI-compatible model list: one model per answer provider."""
        return {"object": "list", "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "fazhi-qa"} for name in MODELS
        ]}

    @v1.post("/chat/completions")
    def chat_completions(body: ChatRequest):
        """OpenAI-compatible chat: citations in the message text and in the extra field `citations`."""
        call = checked(chat_call(body))
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

        answer = pipeline.stream(**call)
        deltas = _started(answer)

        def events() -> Iterator[str]:
            yield chunk({"role": "assistant", "content": ""})
            for delta in deltas:
                yield chunk({"content": delta})
            final = answer.answer
            if final.citations:
                yield chunk({"content": sources_text(final)})
            yield chunk({}, "stop", citations=[c.model_dump() for c in final.citations],
                        fazhi_answer=final.model_dump())
            yield _sse("[DONE]")

        stream = _guarded(events(), lambda *e: _sse(_openai_error(*e)))
        return StreamingResponse(stream, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=None,  # no OAuth here
            swagger_js_url=f"{root}/docs/assets/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/docs/assets/swagger-ui.css",
            swagger_favicon_url=f"{root}/docs/assets/favicon.png",
        )

    @app.get("/docs/assets/{name}", include_in_schema=False)
    def docs_asset(name: str) -> FileResponse:
        if name not in DOCS_ASSETS:
            raise HTTPException(404, f"No docs asset '{name}'.")
        return FileResponse(DOCS_ASSETS_DIR / name)

    app.include_router(api)
    app.include_router(v1)
    ui_user = _mount_ui(app, pipeline, files, feedback, matches) if ui else None  # last: "/" takes the rest

    async def authorized(request: Request) -> bool:
        """No key set, a public path, the key in a header, or (outside /api and /v1) a login to the UI."""
        path = request.scope["path"]
        if matches is None or _is_public(path):
            return True
        if ui_user is None or _under(path, API_PREFIXES):
            return matches(_given_key(request))
        return await ui_user(request) is not None

    @app.middleware("http")
    async def guard(request: Request, call_next):
        """Key, rate limit and a declared body size, all before the body is read.

        Requests that do work (all of /api and /v1, every other POST) and requests without a valid
        key spend the client's budget, so keys cannot be guessed at speed through any route. The
        routes' own max_body_size stops a body sent without Content-Length once it grows too large.
        """
        path = request.scope["path"]
        allowed = await authorized(request)
        try:
            if not allowed or _under(path, API_PREFIXES) or request.method not in ("GET", "HEAD"):
                rate_limit(request)
            if not allowed:
                raise UnauthorizedError(
                    "API key missing or wrong: send it as 'Authorization: Bearer KEY' or 'X-API-Key: KEY' "
                    f"(the server reads it from ${settings.server.api_key_env})."
                )
        except RagError as err:
            headers = {"Retry-After": str(err.retry_after)} if isinstance(err, _Limited) else None
            return _error_response(request, err.http_status, str(err), _kind(err), headers)
        limit = upload_limit if path in UPLOAD_PATHS else MAX_JSON_BYTES if _under(path, API_PREFIXES) else None
        declared = request.headers.get("content-length", "")
        if limit and declared.isdigit() and int(declared) > limit:
            return too_large(request)
        return await call_next(request)

    return app


def _error_response(request: Request, status: int, message: str, kind: str, headers=None) -> JSONResponse:
    if request.url.path.startswith("/v1/"):
        return JSONResponse(_openai_error(status, message, kind), status_code=status, headers=headers)
    return JSONResponse({"detail": message, "error": kind}, status_code=status, headers=headers)


def _mount_ui(
    app: FastAPI, pipeline: Pipeline, files: ReportFiles, feedback: FeedbackStore,
    matches: Callable[[str], bool] | None,
) -> Callable[[Request], Awaitable[str | None]] | None:
    """Mount the Gradio UI at "/"; with a key set, return the UI's check of who a request is (None: nobody).

    The key is the UI's password, and a request carrying it in a header counts as logged in, so that
    scripts and gradio_client can call the UI's named events. Run history is off: its routes would
    be doors to guard, and the UI does not link to it.
    """
    import gradio as gr

    from ui.app import CSS, build_ui

    gr.mount_gradio_app(
        app, build_ui(pipeline, files=files, feedback=feedback), path="/", css=CSS,
        footer_links=["gradio", "settings"], run_history=False, max_file_size=files.max_bytes,
        auth=(lambda _user, password: matches(password)) if matches else None,
        auth_message=f"请输入 API 密钥（${pipeline.settings.server.api_key_env}）作为密码，用户名任意。" if matches else None,
    )
    if matches is None:
        return None
    ui_app = next(route.app for route in app.routes if isinstance(route, Mount))
    # Gradio's own check (its session cookie), which its login_check and pages depend on
    logged_in = next(r.endpoint for r in iter_route_contexts(ui_app.routes) if r.name == "get_current_user")

    async def user(request: Request) -> str | None:
        return KEY_USER if matches(_given_key(request)) else await logged_in(request)

    ui_app.dependency_overrides[logged_in] = user
    return user
