"""The one pipeline that the CLI, the HTTP API, the UI and the evaluation all call."""

from __future__ import annotations

import concurrent.futures
import os
import threading
import time
from pathlib import Path

from rag import schema
from rag.answering import Answerer, AnswerStream, Composer, ExtractiveAnswerer, build_answerer
from rag.claims import Ask, report_items
from rag.conversations import ConversationStore, SqliteConversations
from rag.errors import ConfigError, IndexMissingError, IndexUnavailableError, QuestionError, QuestionTooLongError
from rag.evidence import Excerpt, select_excerpts
from rag.aggregate import parse_aggregate, parse_fact, table_answer
from rag.districts import meta_label, names_district
from rag.indicator_table import IndicatorTable, MetricSummary, SqliteIndicators
from rag.indicators import Indicator
from rag.ingest import IngestSummary, ReportSource
from rag.kb_check import KbCheck
from rag.loading import SAVE_AS_DOCX
from rag.providers import PROVIDERS
from rag.retrieval import HybridRetriever, Place, Passage, Route, covered_summary, rewrite_follow_up, route_question
from rag.schema import Answer
from rag.sections import parse_sections
from rag.settings import Settings, load_settings
from rag.store import KnowledgeBase
from rag.text import fold
from rag.tokens import count_tokens, ensure_tiktoken_cache

_INDEX_VERSION_ATTEMPTS = 3  # retrievals per question when ingests keep committing meanwhile
_ITEMS_CACHED = 64  # report versions whose list items are kept
HEALTH_READ_S = 5.0  # a health check's read of the store; a store that hangs longer is reported down


class Pipeline:
    """Ingest reports, retrieve passages, and answer questions with citations.

    Components are injected; `from_settings` builds the real ones. `chat_models` maps a
    provider name to a zero-argument factory of its LangChain chat model, so the local
    LLM server starts only when a question first needs it. An answerer whose model stops
    answering is dropped, so the next question builds it again (restarting a dead local server).
    """

    def __init__(self, settings: Settings, kb: KnowledgeBase, chat_models: dict | None = None,
                 conversations: ConversationStore | None = None, indicators: IndicatorTable | None = None):
        self.settings = settings
        self.kb = kb
        self._conversations = conversations
        self._indicators = indicators
        self._own_indicators: SqliteIndicators | None = None  # when neither the caller nor the kb gives one
        self.retriever = HybridRetriever(kb, settings.retrieval)
        self._chat_model_factories = chat_models or {}
        self._answerers: dict[str, Answerer] = {}
        self._quoter = ExtractiveAnswerer(settings.answer.extractive_sentences)
        self._items_cache: dict = {}  # report version → its list items (a server answers in threads)
        self._items_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings | None = None, embeddings=None, **overrides) -> "Pipeline":
        """Build the pipeline with the real embedder (or `embeddings`, one already loaded), Chroma client and chat models."""
        from rag.components import build_chat_model_factories, build_chroma_client, build_embeddings

        settings = settings or load_settings(overrides=overrides or None)
        ensure_tiktoken_cache(settings.models_dir / "tiktoken")  # chunking counts tokens offline
        kb = KnowledgeBase(
            build_chroma_client(settings),
            embeddings or build_embeddings(settings),
            collection=settings.chroma.collection,
            index_dir=settings.data_dir / "search",
            lock_path=settings.data_dir / "ingest.lock",
            max_file_bytes=int(settings.ingest.max_file_mb * 2**20),
            chunk_tokens=settings.ingest.chunk_tokens,
            overlap_tokens=settings.ingest.overlap_tokens,
            embed_batch_size=settings.embedding.batch_size,
            max_chunks_per_file=settings.ingest.max_chunks_per_file,
            min_free_bytes=int(settings.ingest.min_free_mb * 2**20),
            indicators=SqliteIndicators.in_data_dir(settings.data_dir),
            indicator_aliases=settings.indicators.aliases,
        )
        return cls(settings, kb, build_chat_model_factories(settings))

    # ---- knowledge base -------------------------------------------------------------

    def ingest(self, paths: list[Path | ReportSource] | None = None, progress=None) -> IngestSummary:
        """Ingest report files or folders (default: the bundled seeds), named as report_files() names
        them; a ReportSource names its file itself."""
        given = list(paths or [self.settings.seeds_dir])
        named = [p for p in given if isinstance(p, ReportSource)]
        plain = [p for p in given if not isinstance(p, ReportSource)]
        sources = named + (report_files(plain, self.settings.ingest.extensions) if plain else [])
        return self.kb.ingest(sources, progress=progress)

    def reports(self) -> list[dict]:
        return self.kb.reports()

    def remove_report(self, file: str) -> None:
        self.kb.remove(file)

    def kb_check(self, repair: bool = False) -> KbCheck:
        """Check (and with repair=True mend) the knowledge base and the uploads folder (data_dir/reports)."""
        return self.kb.check(repair=repair, uploads=self.settings.data_dir / "reports")  # ReportFiles.folder

    # ---- questions ------------------------------------------------------------------

    def check_question(self, question: str) -> str:
        """The question stripped, or QuestionError when empty, not encodable text or over the length limit."""
        if not isinstance(question, str) or not question.strip():
            raise QuestionError("问题为空：请输入一个问题。")
        question = question.strip()
        try:
            question.encode("utf-8")
        except UnicodeEncodeError as err:
            raise QuestionError(f"问题含有无效字符（位置 {err.start}）：请重新输入。") from err
        limit = self.settings.answer.max_question_chars
        if len(question) > limit:
            raise QuestionTooLongError(f"问题过长（{len(question)} 字，上限 {limit} 字）：请缩短后再问。")
        return question

    def check_history(self, history) -> None:
        """QuestionTooLongError when a question of the history is over the limit (a follow-up is
        rewritten from the question before it, so that one must fit as well)."""
        limit = self.settings.answer.max_question_chars
        for n, (question, _) in enumerate(history or [], 1):
            if len(question) > limit:
                raise QuestionTooLongError(
                    f"history 第 {n} 轮的问题过长（{len(question)} 字，上限 {limit} 字，"
                    "answer.max_question_chars）：请删去这轮历史或开始新的对话。"
                )

    def route(self, question: str, history=None, filters: dict | None = None, manifest: dict | None = None) -> Route:
        """Where a question should be looked up (follow-ups made standalone first).

        Pass the manifest already read for this question, so routing and search see one index version.
        """
        question = self.check_question(question)
        self.check_history(history)
        manifest = manifest or self.kb.require_reports()
        filters = filters or {}
        return route_question(
            rewrite_follow_up(question, history), list(manifest["reports"].values()),
            districts=filters.get("districts") or None, years=filters.get("years") or None,
        )

    def retrieve(self, question: str, history=None, filters: dict | None = None, k: int | None = None) -> list[Passage]:
        """Ranked passages for a question, as the answerer would see them."""
        return self._retrieve(question, history, filters, k)[2]

    def _retrieve(self, question, history, filters, k=None) -> tuple[dict, Route, list[Passage]]:
        """(manifest, route, passages), all of one index version.

        An ingest that commits meanwhile may collect chunks of the manifest read first, so
        the manifest is read again afterwards and the search redone on a change.
        """
        for _ in range(_INDEX_VERSION_ATTEMPTS):
            manifest = self.kb.require_reports()
            route = self.route(question, history, filters, manifest)
            passages = self.retriever.retrieve(route, manifest, k)
            if self.kb.still_valid(manifest, self.kb.manifest()):
                return manifest, route, passages
        raise IndexUnavailableError(
            f"知识库正在更新: the index changed {_INDEX_VERSION_ATTEMPTS} times during this question; ask again."
        )

    def excerpts(self, question: str, history=None, filters: dict | None = None,
                 provider: str | None = None) -> list[Excerpt]:
        """The numbered excerpts an answer by `provider` would be written from (the prompt's context)."""
        _, route, passages = self._retrieve(question, history, filters)
        return self._excerpts(route, passages, provider or self.settings.llm.provider)

    def _excerpts(self, route: Route, passages: list[Passage], provider: str) -> list[Excerpt]:
        budget = (self.settings.llm.context_tokens if PROVIDERS[provider].uses_llm
                  else self.settings.answer.extractive_context_tokens)
        return select_excerpts(route.query, passages, budget, count_tokens, per_district=route.comparison)

    def ask(self, question: str, history=None, filters: dict | None = None, provider: str | None = None) -> Answer:
        """Answer a question with citations."""
        return self.stream(question, history, filters, provider).answer

    def stream(self, question: str, history=None, filters: dict | None = None,
               provider: str | None = None) -> AnswerStream:
        """The answer to a question, to iterate for its checked text; `.answer` is the final Answer.

        The question, history, provider and index are checked, and the passages retrieved,
        before this returns: a door turns those errors into its own before showing anything.
        """
        started = time.perf_counter()
        answerer = self.answerer(provider)
        manifest, route, passages = self._retrieve(question, history, filters)
        ask = Ask.read(route.question, route.districts, route.comparison, search=route.query)
        retrieved = time.perf_counter()
        if route.not_covered and not passages:  # passages: those writing a place no report is of
            return AnswerStream(ask, [], answerer, None, started, retrieved, not_covered=route.not_covered)
        # A question of several parts (「…达到77.42%的是哪个区？它认领…多少项？」) is answered part by part from the passages.
        table = None if ask.parts else self._table_answer(route.question, manifest, filters or {})
        if table is not None:
            return AnswerStream(ask, [], answerer, None, started, retrieved, ready=table)
        excerpts = self._excerpts(route, passages, answerer.name)
        composer = Composer(ask, excerpts, _searched(route, manifest), self._quoter, [p.chunk for p in passages],
                            report_items=lambda file: self._report_items(file, manifest))
        return AnswerStream(ask, excerpts, answerer, composer, started, retrieved)

    @property
    def conversations(self) -> ConversationStore:
        """The stored conversations (by default a SQLite file in data_dir, opened on first use)."""
        if self._conversations is None:
            self._conversations = SqliteConversations.in_data_dir(self.settings.data_dir)
        return self._conversations

    def converse(self, conversation_id: str, question: str, filters: dict | None = None,
                 provider: str | None = None, regenerate: bool = False) -> AnswerStream:
        """The next answer of a stored conversation, its history read from the store, never from the
        caller; the finished answer is stored as a new turn (or, regenerating, in place of the last).
        A stream stopped halfway stores nothing."""
        conversation = self.conversations.get(conversation_id)
        history = conversation.history()
        if regenerate:
            if not conversation.turns:
                raise QuestionError("这个对话还没有回答可以重新生成：ask a question first.")
            last = conversation.turns[-1]
            question, filters, history = last.question, filters if filters is not None else last.filters, history[:-1]
        stream = self.stream(question, history, filters, provider)
        store = self.conversations
        stream.on_answer = (
            (lambda answer: store.replace_last(conversation_id, answer)) if regenerate
            else (lambda answer: store.append(conversation_id, question, answer, filters))
        )
        return stream

    def _table_answer(self, question: str, manifest: dict, filters: dict) -> Answer | None:
        """The answer from the 指标库 table to a question over every report (最高, 排名, 超过10%, 各区,
        三年来…) or to a fact one row answers exactly, within the districts and years a caller filters
        to; None: retrieval answers it."""
        query = parse_aggregate(question) or parse_fact(question)
        if query is None:
            return None
        districts, years = filters.get("districts") or [], filters.get("years") or []

        def kept(district: str, year: int) -> bool:
            return (not districts or any(names_district(d, district) for d in districts)) and (not years or year in years)

        reports = [(meta_label(r), r["year"]) for r in manifest["reports"].values() if kept(r["district"], r["year"])]
        if query.shape == "fact":  # every metric of the place: a second metric named must be seen
            found = [r for d in dict.fromkeys(d for d, _ in reports if names_district(query.districts[0], d))
                     for r in self.indicators.rows(district=d)]
        else:
            found = self.indicators.rows(metric_words=[query.head] if query.head else ())
        rows = [r for r in found if kept(r.district, r.report_year)]
        return table_answer(question, rows, reports)

    @property
    def indicators(self) -> IndicatorTable:
        """The 指标库 table: the one given as is; else the knowledge base's, or when it keeps none a SQLite
        file in data_dir, either brought to the live manifest's version first (see current_indicators)."""
        if self._indicators is not None:
            return self._indicators
        if self.kb.indicators is None and self._own_indicators is None:
            self._own_indicators = SqliteIndicators.in_data_dir(self.settings.data_dir)
        return self.kb.current_indicators(self._own_indicators)

    def indicator_rows(self, metric: str | None = None, district: str | None = None,
                       year: int | None = None) -> list[Indicator]:
        """Indicator rows by district, year (that a figure is about) and metric: a metric key, else
        words that the metric phrase must all contain (folded), so 纠错率 finds 行政复议直接纠错率."""
        metric = (metric or "").strip()
        filters = {"district": (district or "").strip() or None, "year": year}
        rows = self.indicators.rows(metric_key=metric or None, **filters)
        if metric and not rows:
            rows = self.indicators.rows(metric_words=fold(metric).split(), **filters)
        return rows

    def indicator_metrics(self) -> list[MetricSummary]:
        """The metrics of the 指标库 table with their units, row counts and districts, most rows first."""
        return self.indicators.metrics()

    def _report_items(self, file: str, manifest: dict) -> list:
        """The list items of a whole report, by heading path, for list questions (cached per version)."""
        row = manifest["reports"].get(file)
        if row is None:
            return []
        with self._items_lock:
            if row["version"] in self._items_cache:
                return self._items_cache[row["version"]]
        try:
            text = self.kb.report_text(file)
        except (KeyError, IndexMissingError):  # removed by an ingest meanwhile: answer without its items
            return []
        items = report_items(text, parse_sections(text), {schema.FILE: file, schema.DISTRICT: row["district"],
                                                          schema.YEAR: row["year"]})
        with self._items_lock:
            if len(self._items_cache) >= _ITEMS_CACHED:
                self._items_cache.pop(next(iter(self._items_cache)))
            self._items_cache[row["version"]] = items
        return items

    def answerer(self, provider: str | None = None) -> Answerer:
        """The answer writer for a provider (default from settings), built on first use."""
        provider = provider or self.settings.llm.provider
        if provider not in PROVIDERS:
            raise ConfigError(f"Unknown provider '{provider}': choose one of {', '.join(PROVIDERS)}.")
        if provider not in self._answerers:
            factory = self._chat_model_factories.get(provider)
            if PROVIDERS[provider].uses_llm and factory is None:
                raise ConfigError(f"Provider '{provider}' is not configured in this pipeline.")
            self._answerers[provider] = build_answerer(
                provider, self.settings, factory, on_failure=lambda: self._answerers.pop(provider, None))
        return self._answerers[provider]

    def health(self) -> dict:
        """Status of the index, Chroma and the default answer writer, for /healthz: `ok` is false
        (and `problems` says why) whenever an ordinary question would fail."""
        status: dict = {"ok": True, "problems": []}
        try:
            self.kb.client.heartbeat()
            manifest = self.kb.manifest()
            _within(HEALTH_READ_S, self.kb.probe)  # a store that lists but cannot be read (a full disk)
            status["chroma"] = {"ok": True, "mode": self.settings.chroma.mode}
            status["index"] = {
                "ok": bool(manifest["reports"]),
                "reports": len(manifest["reports"]),
                "chunks": sum(r["chunks"] for r in manifest["reports"].values()),
            }
            if not manifest["reports"]:
                status["problems"].append("知识库为空：upload a report (POST /api/reports) or run `fazhi ingest`.")
        except Exception as err:  # Chroma down, unreachable or unreadable
            status["chroma"] = {"ok": False, "error": f"{type(err).__name__}: {err}"}
            status["index"] = {"ok": False}
            status["problems"].append(str(err))
        provider = self.settings.llm.provider
        status["llm"] = {"provider": provider, "started": sorted(self._answerers), "ok": True}
        if provider == "openai" and not os.environ.get(self.settings.llm.openai.api_key_env):
            status["llm"]["ok"] = False
            status["problems"].append(
                f"The default provider 'openai' has no API key: set ${self.settings.llm.openai.api_key_env} "
                "(setting llm.openai.api_key_env) or choose another llm.provider.")
        status["ok"] = status["chroma"]["ok"] and status["index"]["ok"] and status["llm"]["ok"]
        return status

    def passage(self, file: str, start: int, end: int, context: int = 200) -> dict:
        """The text around a citation: before, quote and after, `context` characters each side."""
        text = self.kb.report_text(file)
        if not (0 <= start <= end <= len(text)):
            raise ValueError(f"Offsets {start}..{end} are outside {file} (0..{len(text)}).")
        return {
            "file": file,
            "before": text[max(0, start - context) : start],
            "quote": text[start:end],
            "after": text[end : end + context],
        }


def _within(seconds: float, call) -> None:
    """call(), or IndexUnavailableError when it has not returned within `seconds` (it may hang on)."""
    done = concurrent.futures.Future()

    def run():
        try:
            done.set_result(call())
        except BaseException as err:  # noqa: BLE001 - handed to the waiting caller
            done.set_exception(err)

    threading.Thread(target=run, daemon=True, name="health-read").start()
    try:
        done.result(timeout=seconds)
    except concurrent.futures.TimeoutError:
        raise IndexUnavailableError(f"Chroma did not answer a read within {seconds:g} s.") from None


def _searched(route: Route, manifest: dict) -> str:
    """「荣昌区 2024年、梁平区 2024年的报告」: the reports a question was searched in, for a refusal;
    those whose district was not detected are not named (「、 2024年」), and none named reads 「现有报告」."""
    reports = [
        r for r in manifest["reports"].values()
        if (not route.places or Place.of(r) in route.places) and (not route.years or r["year"] in route.years)
    ]
    summary = covered_summary(reports)
    return f"{summary}的报告" if summary else "现有报告"


def report_files(paths: list[Path], extensions: list[str]) -> list[ReportSource]:
    """The report files under the given files and folders, each named by its path relative to the
    given paths' common folder (a folder given: itself; a file: the folder it is in), in order.

    One folder or files of one folder name reports as before ("a.txt", "sub/b.txt"); folders a/
    and b/ give "a/x.txt" and "b/x.txt", never two "x.txt". A file given twice is listed once.
    """
    found: list[Path] = []
    bases: list[str] = []
    for path in map(Path, paths):
        if path.is_dir():
            # Old Word/WPS files are listed too, so that the summary says how to convert them.
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (*extensions, *SAVE_AS_DOCX))
            bases.append(os.path.abspath(path))
        elif path.exists():
            found.append(path)
            bases.append(os.path.dirname(os.path.abspath(path)))
        else:
            raise FileNotFoundError(f"No such file or folder: {path}")
    if not found:
        return []
    root = os.path.commonpath(bases)
    sources, seen = [], set()
    for path in found:
        if os.path.realpath(path) in seen:
            continue
        seen.add(os.path.realpath(path))
        sources.append(ReportSource(Path(os.path.relpath(os.path.abspath(path), root)).as_posix(), path))
    return sources
