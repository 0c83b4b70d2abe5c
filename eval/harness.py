"""Run a gold set through the Pipeline and write metrics.json, results.jsonl, report.md and plots."""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from pathlib import Path

from eval.goldset import load_gold
from eval.metrics import RETRIEVE_K, UNANSWERABLE, Span, locate, score_question, summarize
from rag import schema
from rag.settings import PROJECT_ROOT

METRICS_FILE = "metrics.json"
RESULTS_FILE = "results.jsonl"
REPORT_FILE = "report.md"


def run_eval(pipeline, gold_path: Path, provider: str | None, out_dir: Path, *, progress: bool = True,
             limit: int | None = None) -> dict:
    """Ask every gold question through `pipeline`, score it, write the run into out_dir; return the metrics.

    A question whose retrieval or answer raises is recorded as a failure with its error;
    the run goes on. A missing index or an unusable provider stops the run at once.
    """
    from tqdm import tqdm

    gold = load_gold(Path(gold_path))[:limit]
    pipeline.kb.require_reports()
    answerer = pipeline.answerer(provider)  # fails fast on an unknown or unavailable provider
    texts = _ReportTexts(pipeline.kb)
    started = time.perf_counter()
    records = []
    bar = tqdm(gold, unit="q", desc=f"eval {answerer.name}", disable=not progress)
    for item in bar:
        bar.set_postfix_str(item["id"])
        records.append(evaluate_question(pipeline, item, answerer.name, texts))
    metrics = summarize(records)
    metrics.update(run_info(pipeline, answerer, records, gold_path, time.perf_counter() - started))
    write_run(Path(out_dir), metrics, records)
    return metrics


def evaluate_question(pipeline, item: dict, provider: str, texts: "_ReportTexts") -> dict:
    """Retrieve (answerable questions) and ask one gold question; the scored record."""
    evidence = [texts.span(s["file"], s["evidence"]) for s in item.get("sources", [])]
    errors, retrieved, answer = [], [], None
    if item["type"] != UNANSWERABLE:
        try:
            retrieved = [passage_row(p) for p in pipeline.retrieve(item["question"], k=RETRIEVE_K)]
        except Exception as err:  # recorded, the run goes on
            errors.append(f"retrieve: {type(err).__name__}: {err}")
    try:
        answer = pipeline.ask(item["question"], provider=provider).model_dump(mode="json")
    except Exception as err:  # recorded, the run goes on
        errors.append(f"ask: {type(err).__name__}: {err}")
    return score_question(item, retrieved, evidence, answer, "; ".join(errors) or None)


def passage_row(passage) -> dict:
    m = passage.chunk.metadata
    return {
        "file": m[schema.FILE], "district": m[schema.DISTRICT], "year": m[schema.YEAR],
        "section": m[schema.SECTION], "start": m[schema.START], "end": m[schema.END],
        "score": round(float(passage.score), 6),
    }


class _ReportTexts:
    """Original report texts from the knowledge base, fetched once each."""

    def __init__(self, kb):
        self.kb = kb
        self.texts: dict[str, str | None] = {}

    def span(self, file: str, evidence: str) -> Span | None:
        if file not in self.texts:
            try:
                self.texts[file] = self.kb.report_text(file)
            except KeyError:
                self.texts[file] = None
        text = self.texts[file]
        found = locate(evidence, text) if text is not None else None
        return Span(file, *found) if found else None


def run_info(pipeline, answerer, records: list[dict], gold_path: Path, seconds: float) -> dict:
    models = Counter(r["answer"]["model"] for r in records if r["answer"] and r["answer"].get("model"))
    return {
        "provider": answerer.name,
        "model": models.most_common(1)[0][0] if models else answerer.model,
        "embedding": _embedding_name(pipeline),
        "gold": _shown_path(Path(gold_path)),
        "git": git_info(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(seconds, 1),
        "settings": pipeline.settings.model_dump(mode="json"),
    }


def _shown_path(path: Path) -> str:
    """path relative to the project when inside it, so kept reports do not name one machine's folders."""
    try:
        return path.resolve().relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return str(path)


def _embedding_name(pipeline) -> str:
    kind = type(pipeline.kb.embeddings).__name__
    return pipeline.settings.embedding.model if kind == "HuggingFaceEmbeddings" else kind


def git_info() -> dict:
    """{"commit": sha or None, "dirty": bool or None} of the project checkout."""

    def git(*args) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def write_run(out_dir: Path, metrics: dict, records: list[dict]) -> None:
    """metrics.json, results.jsonl, report.md and the PNG plots in out_dir."""
    from eval.report import write_plots, write_report

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, ensure_ascii=False, indent=2), encoding="utf-8")
    with open(out_dir / RESULTS_FILE, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    plots = write_plots(out_dir, metrics, records)
    write_report(out_dir / REPORT_FILE, metrics, records, plots)


def load_run(run_dir: Path) -> tuple[dict, list[dict]]:
    """(metrics, records) of a run folder written by run_eval."""
    run_dir = Path(run_dir)
    try:
        metrics = json.loads((run_dir / METRICS_FILE).read_text(encoding="utf-8"))
        lines = (run_dir / RESULTS_FILE).read_text(encoding="utf-8").splitlines()
    except (OSError, ValueError) as err:
        raise FileNotFoundError(f"{run_dir} is not an evaluation run ({err}): run `fazhi eval --out {run_dir}`.") from err
    return metrics, [json.loads(line) for line in lines if line.strip()]
