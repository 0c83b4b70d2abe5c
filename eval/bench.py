"""`fazhi bench`: what ingest, retrieval and answering cost on this machine, beside baselines.

Figures go into one flat dict: `stage.figure` keys, `@N` for a corpus of N chunks, `@bs=B`
for an embedding batch size. `*_vs_*` figures are ratios against a baseline measured in
the same run (above 1: ours is faster). Corpora and their indexes are built under
`data_dir/bench` and reused by the next run; their build figures are kept beside them.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eval.bench_corpus import SentenceMeanEmbeddings, write_corpus
from eval.goldset import load_gold
from eval.processes import chroma_server, data_dir_sharing_models, free_port
from eval.metrics import percentile
from rag.settings import PROJECT_ROOT, Settings

GOLD = PROJECT_ROOT / "eval" / "gold" / "dev.jsonl"
CHUNKS_PER_REPORT = 35.4  # the seeds: 177 chunks in 5 reports


@dataclass(frozen=True)
class BenchPlan:
    """How much to measure."""

    sizes: tuple[int, ...] = (1_000, 10_000, 100_000)
    batch_sizes: tuple[int, ...] = (8, 16, 32, 64)
    embed_passages: int = 128
    questions: int | None = None        # dev questions for retrieval and extractive; None: all
    local_questions: int | None = None  # for the local LLM; None: all
    naive_questions: int = 3            # naive-prompt baseline for the local LLM (~25 s each)
    reingest_reports: int = 100
    server_size: int = 10_000
    local: bool = True
    langchain_baseline: bool = True


QUICK = BenchPlan(sizes=(1_000,), batch_sizes=(16, 32), embed_passages=48, questions=8, local_questions=3,
                  naive_questions=1, reingest_reports=20, server_size=1_000)

Log = Callable[[str], None]


# ---- small helpers ------------------------------------------------------------------------------


def timed_ms(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def spread(stem: str, values: list[float], at: str = "") -> dict:
    """{stem + "p50_ms" + at: …, stem + "p95_ms" + at: …} from a list of timings in ms."""
    return {f"{stem}p{q}_ms{at}": round(percentile(values, q), 2) for q in (50, 95)}


def rss_mb() -> float:
    """This process's resident memory now, in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def ratio(baseline: float, ours: float) -> float:
    return round(baseline / ours, 2) if ours else float("nan")


# ---- hardware and embedding -----------------------------------------------------------------------


def matmul_gflops(dtype_name: str, n: int = 2048, repeat: int = 5) -> float:
    """Best sustained matrix-multiply speed of this CPU in a dtype: the ceiling for a transformer."""
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = min(timed_ms(lambda: a @ b) for _ in range(repeat)) / 1000
    return round(2 * n**3 / best / 1e9, 1)


def hardware_figures() -> dict:
    import torch

    from rag.components import embedding_dtype

    return {
        "hardware.cpus": os.cpu_count(),
        "hardware.torch_threads": torch.get_num_threads(),
        "hardware.embedding_dtype": str(embedding_dtype("auto")).removeprefix("torch."),
        "hardware.matmul_gflops.float32": matmul_gflops("float32"),
        "hardware.matmul_gflops.bfloat16": matmul_gflops("bfloat16"),
    }


def encoder_gflop(model_folder: str, texts: list[str]) -> tuple[float, float]:
    """(GFLOP to encode texts, mean tokens per text) for a BERT-style encoder folder.

    Counts the matrix multiplies: 2·params·tokens for the dense layers plus 4·L²·hidden per
    layer for attention; layer norms, softmax and the embedding lookup are left out.
    """
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(model_folder)
    tokenizer = AutoTokenizer.from_pretrained(model_folder)
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=512)["input_ids"]]
    h, layers, inner = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    dense_params = layers * (4 * h * h + 2 * h * inner)
    flop = sum(2 * dense_params * n + layers * 4 * n * n * h for n in lengths)
    return flop / 1e9, sum(lengths) / len(lengths)


def embedding_figures(settings: Settings, model, passages: list[str], plan: BenchPlan, peak: dict,
                      log: Log) -> dict:
    """Passages embedded per second by batch size and dtype, and the share of the CPU's matmul peak.

    `model` is the configured embedder; a float32 one is built beside it as the baseline.
    """
    from rag.components import build_embeddings, embedding_dtype
    from rag.models import resolve_embedding_model

    e = settings.embedding
    dtype = str(embedding_dtype(e.dtype)).removeprefix("torch.")
    folder = resolve_embedding_model(e.model, settings.models_dir)
    gflop, tokens = encoder_gflop(folder, [e.passage_prompt + p for p in passages])
    figures = {"ingest.embed_tokens_per_passage": round(tokens, 1), "ingest.embed_dtype": dtype}
    rates: dict[tuple[str, int], float] = {}
    models = {dtype: model}
    if dtype != "float32":
        models["float32"] = build_embeddings(
            settings.model_copy(update={"embedding": e.model_copy(update={"dtype": "float32"})}))
    for name, embedder in models.items():
        sizes = sorted({*plan.batch_sizes, e.batch_size}) if name == dtype else [e.batch_size]  # float32: baseline
        embedder.embed_documents(passages[:8])  # warm-up
        for bs in sizes:
            embedder.encode_kwargs = {**embedder.encode_kwargs, "batch_size": bs}
            seconds = timed_ms(lambda: embedder.embed_documents(passages)) / 1000
            rates[name, bs] = len(passages) / seconds
            log(f"  embed {name} batch {bs}: {rates[name, bs]:.1f} passages/s")
            if name == dtype:
                figures[f"ingest.embed_passages_per_s@bs={bs}"] = round(rates[name, bs], 1)
    model.encode_kwargs = {**model.encode_kwargs, "batch_size": e.batch_size}
    del models
    rate = rates[dtype, e.batch_size]
    achieved = gflop / len(passages) * rate
    figures.update({
        "ingest.embed_passages_per_s": round(rate, 1),
        "ingest.embed_passages_per_s.float32": round(rates["float32", e.batch_size], 1),
        "ingest.embed_vs_float32": ratio(rate, rates["float32", e.batch_size]),
        "ingest.embed_gflops": round(achieved, 1),
        "ingest.embed_share_of_peak": round(achieved / peak[f"hardware.matmul_gflops.{dtype}"], 3),
        "ingest.embed_share_of_float32_peak": round(achieved / peak["hardware.matmul_gflops.float32"], 3),
    })
    return figures


def seed_passages(settings: Settings, limit: int) -> list[str]:
    """The seeds' chunks as they are embedded (header and text), up to limit."""
    from rag.chunking import chunk_report
    from rag.loading import load_report
    from rag.metadata import report_metadata
    from rag.store import indexed_text

    passages = []
    for path in sorted(settings.seeds_dir.glob("*.txt")):
        report = load_report(path, max_bytes=settings.ingest.max_file_mb * 2**20)
        chunks = chunk_report(report, report_metadata(report), chunk_tokens=settings.ingest.chunk_tokens,
                              overlap_tokens=settings.ingest.overlap_tokens)
        passages += [indexed_text(c) for c in chunks]
    return passages[:limit]


# ---- ingest ---------------------------------------------------------------------------------------


def ingest_figures(settings: Settings, workdir: Path, log: Log) -> dict:
    """Ingest the seeds with the real model in a fresh data folder, twice, in a child process each.

    A child process gives a clean peak memory (its rusage) and includes the model load in wall time.
    """
    shutil.rmtree(workdir / "ingest-seeds", ignore_errors=True)
    data = data_dir_sharing_models(workdir / "ingest-seeds", settings.models_dir)
    runs = []
    for attempt in ("first", "again"):
        command = [sys.executable, "-m", "rag.cli", "--set", f"data_dir={data}", "ingest", "--json"]
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        out = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        if child.returncode != 0:
            raise RuntimeError(f"`{' '.join(command)}` failed with exit code {child.returncode}")
        runs.append((json.loads(out), wall, usage.ru_maxrss / 1024))
        log(f"  ingest seeds ({attempt}): {runs[-1][0]['seconds']} s, peak {runs[-1][2]:.0f} MB")
    (first, wall, peak), (again, again_wall, _) = runs
    return {
        "ingest.chunks": first["chunks_total"],
        "ingest.chunks_per_s": first["chunks_per_s"],
        "ingest.seconds": first["seconds"],
        "ingest.wall_s": round(wall, 1),
        "ingest.peak_rss_mb": round(peak),
        "ingest.reingest_unchanged_s@5": again["seconds"],
        "ingest.reingest_embedded_chunks@5": again["chunks_embedded"],
    }


# ---- retrieval at scale ---------------------------------------------------------------------------


class BenchIndex:
    """A synthetic corpus of `reports` reports and its knowledge base under data_dir/bench."""

    def __init__(self, settings: Settings, embedder: SentenceMeanEmbeddings, workdir: Path, reports: int):
        self.reports = reports
        self.folder = workdir / f"corpus-{self.reports}"
        self.index_dir = workdir / f"index-{self.reports}"
        self.settings = settings
        self.embedder = embedder

    def open(self, client=None):
        """The knowledge base (embedded Chroma under index_dir unless a client is given)."""
        import chromadb
        from chromadb.config import Settings as ChromaClientSettings

        from rag.store import KnowledgeBase

        client = client or chromadb.PersistentClient(
            path=str(self.index_dir / "chroma"), settings=ChromaClientSettings(anonymized_telemetry=False)
        )
        return KnowledgeBase(
            client, self.embedder, collection="bench", index_dir=self.index_dir / "search",
            lock_path=self.index_dir / "ingest.lock", max_file_bytes=50 * 2**20,
            chunk_tokens=self.settings.ingest.chunk_tokens, overlap_tokens=self.settings.ingest.overlap_tokens,
            embed_batch_size=2000,
        )

    def build(self, seeds: list[Path], log: Log) -> tuple:
        """(knowledge base, build figures), building only what is not on disk yet."""
        stamp = self.index_dir / "build.json"
        paths = write_corpus(seeds, self.folder, self.reports)
        corpus = json.loads((self.folder / "corpus.json").read_text())
        if stamp.exists():
            if json.loads(stamp.read_text()).get("corpus") == corpus:
                return self.open(), json.loads(stamp.read_text())
            shutil.rmtree(self.index_dir, ignore_errors=True)  # built from another corpus
        # no stamp: a fresh build, or an interrupted one that the ingest resumes
        kb = self.open()
        log(f"  building {self.reports} reports …")
        started = time.perf_counter()
        summary = kb.ingest(paths)
        built = {"build_s": round(time.perf_counter() - started, 1), "chunks": summary.chunks_total, "corpus": corpus}
        stamp.write_text(json.dumps(built))
        self.embedder.save()
        return kb, built


def routed_questions(questions: list[str], reports: list[dict]) -> list:
    """Routes of the questions over these reports, leaving out the ones not covered."""
    from rag.retrieval import route_question

    routes = [route_question(q, reports) for q in questions]
    return [r for r in routes if not r.not_covered]


def search_latencies(kb, routes: list, settings: Settings) -> dict[str, list[float]]:
    """Per-question latencies (ms) of dense, keyword and hybrid search, after one warm-up pass."""
    from rag.retrieval import HybridRetriever, Route

    s = settings.retrieval
    manifest = kb.manifest()
    retriever = HybridRetriever(kb, s)
    kinds = {
        "dense": lambda r: kb.dense_search(r.question, s.dense_k, manifest, r.districts or None, r.years or None),
        "keyword": lambda r: kb.keyword_search(r.question, s.keyword_k, manifest, r.districts or None,
                                               r.years or None),
        "hybrid": lambda r: retriever.retrieve(r, manifest),
        "hybrid_unrouted": lambda r: retriever.retrieve(Route(question=r.question), manifest),
    }
    for search in kinds.values():
        search(routes[0])

    def fresh(search, route):  # every timed search embeds its question, as a new question would
        kb.query_vector.cache_clear()
        return timed_ms(lambda: search(route))

    return {kind: [fresh(search, r) for r in routes] for kind, search in kinds.items()}


def langchain_baseline(kb, routes: list, settings: Settings, at: str, log: Log) -> dict:
    """LangChain's EnsembleRetriever over BM25Retriever (rank_bm25) and the Chroma retriever."""
    from langchain_classic.retrievers import EnsembleRetriever
    from langchain_community.retrievers import BM25Retriever

    from rag.keyword import tokenize
    from rag.store import indexed_text

    s = settings.retrieval
    manifest = kb.manifest()
    docs = kb.chunks(manifest)
    started = time.perf_counter()
    bm25 = BM25Retriever.from_texts([indexed_text(d) for d in docs], preprocess_func=tokenize, k=s.keyword_k)
    build_s = time.perf_counter() - started
    log(f"  LangChain BM25Retriever built in {build_s:.1f} s")

    def ensemble(route):
        dense = kb.vectors.as_retriever(search_kwargs={
            "k": s.dense_k, "filter": kb.live_filter(manifest, route.districts or None, route.years or None)})
        return EnsembleRetriever(retrievers=[dense, bm25], weights=[s.dense_weight, s.keyword_weight], c=s.rrf_k)

    ensemble(routes[0]).invoke(routes[0].question)
    keyword = [timed_ms(lambda r=r: bm25.invoke(r.question)) for r in routes]
    hybrid = [timed_ms(lambda r=r: ensemble(r).invoke(r.question)) for r in routes]
    return {
        f"retrieval.langchain.keyword_build_s{at}": round(build_s, 2),
        **spread("retrieval.langchain.keyword.", keyword, at),
        **spread("retrieval.langchain.hybrid.", hybrid, at),
    }


def retrieval_figures(settings: Settings, embedder: SentenceMeanEmbeddings, workdir: Path, size: int,
                      questions: list[str], plan: BenchPlan, log: Log) -> tuple[dict, "BenchIndex"]:
    """Latencies, build time, memory and disk of one corpus size, and the LangChain baseline."""
    at = f"@{size}"
    index = BenchIndex(settings, embedder, workdir, max(1, math.ceil(size / CHUNKS_PER_REPORT)))
    kb, built = index.build(sorted(settings.seeds_dir.glob("*.txt")), log)
    routes = routed_questions(questions, kb.reports())
    rss_before = rss_mb()
    times = search_latencies(kb, routes, settings)
    figures = {
        f"retrieval.chunks{at}": built["chunks"],
        f"retrieval.reports{at}": index.reports,
        f"retrieval.build_s{at}": built["build_s"],
        f"retrieval.disk_mb{at}": round(folder_mb(index.index_dir), 1),
        f"retrieval.questions{at}": len(routes),
    }
    for kind, values in times.items():
        figures.update(spread(f"retrieval.{kind}.", values, at))
    figures[f"retrieval.rss_mb{at}"] = round(rss_mb())
    figures[f"retrieval.search_rss_growth_mb{at}"] = round(rss_mb() - rss_before)
    started = time.perf_counter()
    kb.build_search_index(kb.manifest())  # what each process does once per index version
    figures[f"retrieval.search_index_build_s{at}"] = round(time.perf_counter() - started, 2)
    if plan.langchain_baseline:
        figures.update(langchain_baseline(kb, routes, settings, at, log))
        for kind in ("keyword", "hybrid"):
            figures[f"retrieval.{kind}.p50_vs_langchain{at}"] = ratio(
                figures[f"retrieval.langchain.{kind}.p50_ms{at}"], figures[f"retrieval.{kind}.p50_ms{at}"])
    log(f"  {built['chunks']} chunks: hybrid p50 {figures[f'retrieval.hybrid.p50_ms{at}']} ms, "
        f"p95 {figures[f'retrieval.hybrid.p95_ms{at}']} ms")
    return figures, index


def reingest_figures(settings: Settings, embedder: SentenceMeanEmbeddings, workdir: Path, reports: int) -> dict:
    """Seconds to re-ingest an unchanged corpus of `reports` reports (nothing to embed)."""
    index = BenchIndex(settings, embedder, workdir, reports)
    kb, _ = index.build(sorted(settings.seeds_dir.glob("*.txt")), lambda _: None)
    summary = kb.ingest(sorted(index.folder.glob("*.txt")))
    return {
        "ingest.reingest_unchanged_s": round(summary.seconds, 2),
        "ingest.reingest_unchanged_reports": len(summary.unchanged),
        "ingest.reingest_embedded_chunks": summary.chunks_embedded,
    }


def server_figures(index: BenchIndex, questions: list[str], settings: Settings, at: str, log: Log) -> dict:
    """The same searches through a Chroma server (`chroma run`) on a copy of the index."""
    import chromadb
    from chromadb.config import Settings as ChromaClientSettings

    copy = index.index_dir.with_name(index.index_dir.name + "-server")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(index.index_dir / "chroma", copy / "chroma")
    port = free_port()
    try:
        with chroma_server(copy / "chroma", port):
            client = chromadb.HttpClient(host="127.0.0.1", port=port,
                                         settings=ChromaClientSettings(anonymized_telemetry=False))
            kb = index.open(client)
            kb.index_dir = copy / "search"
            times = search_latencies(kb, routed_questions(questions, kb.reports()), settings)
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    figures = {}
    for kind in ("dense", "hybrid"):
        figures.update(spread(f"retrieval.server.{kind}.", times[kind], at))
    log(f"  Chroma server: hybrid p50 {figures[f'retrieval.server.hybrid.p50_ms{at}']} ms")
    return figures


# ---- the 指标库 table ----------------------------------------------------------------------------


def indicator_figures(settings: Settings, workdir: Path, size: int, repeat: int = 20) -> dict:
    """The 指标库 table at a corpus of `size` chunks: extraction per report, rebuild, one report's
    replace, disk, and the doors' queries. Its rows are the seeds' own, filed under a new district
    and year per report (as eval.bench_corpus files its reports), so metrics keep their real spread."""
    from dataclasses import replace

    from rag.districts import DISTRICTS
    from rag.indicator_table import SqliteIndicators
    from rag.indicators import extract_indicators
    from rag.loading import load_report
    from rag.metadata import report_metadata

    at = f"@{size}"
    seeds = [load_report(p, file=p.name, max_bytes=50 * 2**20) for p in sorted(settings.seeds_dir.glob("*.txt"))]
    extract_indicators(seeds[0], report_metadata(seeds[0]))  # warm-up: the district automaton, jieba
    started = time.perf_counter()
    seed_rows = [extract_indicators(r, report_metadata(r)) for r in seeds]
    extract_ms = (time.perf_counter() - started) * 1000 / len(seeds)
    reports = max(1, math.ceil(size / CHUNKS_PER_REPORT))

    def report_rows(i: int) -> tuple[str, list]:
        file, district, year = f"{i:05d}.txt", DISTRICTS[i % len(DISTRICTS)], 2016 + i % 10
        return file, [replace(row, file=file, district=district, report_year=year, about_year=year)
                      for row in seed_rows[i % len(seed_rows)]]

    path = workdir / f"indicators{at}.sqlite3"
    for stale in workdir.glob(f"{path.name}*"):
        stale.unlink()
    table = SqliteIndicators(path)
    started = time.perf_counter()
    table.rebuild(map(report_rows, range(reports)), "bench")
    build_s = time.perf_counter() - started
    file, rows = report_rows(reports // 2)
    replace_ms = timed_ms(lambda: table.replace({file: rows}, [], "bench-2"))
    top = table.metrics()[0].metric_key
    queries = {
        "metrics": lambda: table.metrics(),
        "key": lambda: table.rows(metric_key=top),
        "words": lambda: table.rows(metric_words=["纠错率"]),
        "district_year": lambda: table.rows(district=DISTRICTS[0], year=2016),
    }
    figures = {
        "indicators.extract_ms_per_report": round(extract_ms, 1),
        f"indicators.rows{at}": sum(len(seed_rows[i % len(seed_rows)]) for i in range(reports)),
        f"indicators.rebuild_s{at}": round(build_s, 2),
        f"indicators.rebuild_with_extraction_s{at}": round(build_s + extract_ms * reports / 1000, 1),
        f"indicators.replace_report_ms{at}": round(replace_ms, 1),
        f"indicators.disk_mb{at}": round(sum(p.stat().st_size for p in workdir.glob(f"{path.name}*")) / 2**20, 1),
    }
    for name, query in queries.items():
        figures.update(spread(f"indicators.{name}.", [timed_ms(query) for _ in range(repeat)], at))
    table.close()
    return figures


# ---- answering ------------------------------------------------------------------------------------


def prompt_tokens(question: str, excerpts: list) -> int:
    """tiktoken (cl100k) tokens of the whole prompt the chat model is sent: instructions, excerpts, question."""
    from rag.answering import ANSWER_PROMPT, format_context
    from rag.tokens import count_tokens

    messages = ANSWER_PROMPT.format_messages(context=format_context(excerpts), question=question)
    return count_tokens("".join(m.content for m in messages))


def answer_figures(settings: Settings, model, questions: list[str], plan: BenchPlan, log: Log) -> dict:
    """Time to first token, total time and prompt size per provider on the real index (`model`: e5, loaded)."""
    from rag.answering import format_context
    from rag.pipeline import Pipeline
    from rag.tokens import count_tokens

    pipeline = Pipeline.from_settings(settings, embeddings=model)
    pipeline.kb.require_reports()
    figures: dict = {}
    providers = [("extractive", questions)]
    if plan.local:
        providers.append(("local", questions[: plan.local_questions]))
    for provider, asked in providers:
        started = time.perf_counter()
        pipeline.ask(asked[0], provider=provider)  # warm-up: starts the server, caches the fixed prefix
        figures[f"answer.{provider}.warmup_s"] = round(time.perf_counter() - started, 1)
        answers = [pipeline.ask(q, provider=provider) for q in asked]
        figures.update(spread(f"answer.{provider}.first_token_", [a.timings.first_token_ms for a in answers]))
        figures.update(spread(f"answer.{provider}.total_", [a.timings.total_ms for a in answers]))
        figures[f"answer.{provider}.questions"] = len(asked)
        if provider != "extractive":  # the extractive provider sends no prompt
            excerpts = [pipeline.excerpts(q, provider=provider) for q in asked]
            figures[f"answer.{provider}.prompt_tokens_p50"] = percentile(map(prompt_tokens, asked, excerpts), 50)
            figures[f"answer.{provider}.context_tokens_p50"] = percentile(
                (count_tokens(format_context(x)) for x in excerpts), 50)
        log(f"  {provider}: first token p50 {figures[f'answer.{provider}.first_token_p50_ms']} ms, "
            f"total p50 {figures[f'answer.{provider}.total_p50_ms']} ms")
    if plan.local and plan.naive_questions:
        figures.update(naive_prompt_figures(pipeline, questions[: plan.naive_questions], log))
        figures["answer.local.first_token_vs_naive"] = ratio(
            figures["answer.local_naive.first_token_p50_ms"], figures["answer.local.first_token_p50_ms"])
    return figures


def naive_prompt_figures(pipeline, questions: list[str], log: Log) -> dict:
    """Baseline: the same chain fed four whole chunks, timed to its first token."""
    from rag import schema
    from rag.claims import Ask
    from rag.evidence import Excerpt

    answerer = pipeline.answerer("local")
    firsts, prompts = [], []
    for question in questions:
        passages = pipeline.retrieve(question, k=4)
        excerpts = [Excerpt(p.chunk, p.meta[schema.START], p.meta[schema.END], p.chunk.page_content, p.score)
                    for p in passages]
        prompts.append(prompt_tokens(question, excerpts))
        started = time.perf_counter()
        stream = answerer.stream(Ask.read(question), excerpts)
        next(stream)
        firsts.append((time.perf_counter() - started) * 1000)
        stream.close()
        log(f"  naive prompt ({prompts[-1]} tokens): first token {firsts[-1]:.0f} ms")
    return {**spread("answer.local_naive.first_token_", firsts), "answer.local_naive.prompt_tokens_p50":
            percentile(prompts, 50)}


# ---- the whole run --------------------------------------------------------------------------------


def run_bench(settings: Settings, plan: BenchPlan, log: Log = print) -> dict:
    """Every figure of the plan, in a flat dict."""
    started = time.perf_counter()
    workdir = settings.data_dir / "bench"
    workdir.mkdir(parents=True, exist_ok=True)
    questions = [item["question"] for item in load_gold(GOLD)][: plan.questions]
    figures: dict = {"bench.quick": plan == QUICK, "bench.started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    log("hardware …")
    figures.update(hardware_figures())
    log("ingest of the seeds (real model, child process) …")
    figures.update(ingest_figures(settings, workdir, log))
    log("embedding throughput …")
    from rag.components import build_embeddings

    model = build_embeddings(settings)
    figures.update(embedding_figures(settings, model, seed_passages(settings, plan.embed_passages), plan, figures,
                                     log))
    embedder = SentenceMeanEmbeddings(model, workdir / "sentence-vectors.npz")
    log("re-ingest of an unchanged corpus …")
    figures.update(reingest_figures(settings, embedder, workdir, plan.reingest_reports))
    for size in plan.sizes:
        log(f"retrieval at {size} chunks …")
        found, index = retrieval_figures(settings, embedder, workdir, size, questions, plan, log)
        figures.update(found)
        figures.update(indicator_figures(settings, workdir, size))
        if size == plan.server_size:
            at = f"@{size}"
            figures.update(server_figures(index, questions, settings, at, log))
            for kind in ("dense", "hybrid"):
                figures[f"retrieval.server.{kind}.p50_vs_embedded{at}"] = ratio(
                    figures[f"retrieval.{kind}.p50_ms{at}"], figures[f"retrieval.server.{kind}.p50_ms{at}"])
    log("answering on the dev questions …")
    figures.update(answer_figures(settings, model, questions, plan, log))
    figures["bench.seconds"] = round(time.perf_counter() - started, 1)
    return figures


def table(figures: dict) -> str:
    """The figures as aligned `key  value` lines, grouped by stage."""
    width = max(map(len, figures))
    lines, stage = [], None
    for key, value in figures.items():
        if key.split(".")[0] != stage:
            stage = key.split(".")[0]
            lines.append("")
        lines.append(f"{key:<{width}}  {value}")
    return "\n".join(lines).strip()
