"""A knowledge-base process for fault tests: ingests, fills the disk, counts chunks, answers.

Run as `python tests/chaos/worker.py DATA_DIR COLLECTION STEP...`, one step an argument:

    chroma=DIR            (first step only) keep Chroma in DIR instead of DATA_DIR/chroma
    server=PORT           (first step only) use the Chroma server on 127.0.0.1:PORT instead
    delay=0.2             later ingests embed slowly: sleep this long per batch
    margin=BYTES          ingests stop before a write when the disk has less free (ingest.min_free_mb)
    ingest=A.txt,B.txt    ingest these files (the fake embedder: no model needed)
    fill=60000            write a filler file into DATA_DIR until only this many bytes are free
    unfill                delete the filler file
    readonly              remount DATA_DIR read-only (it must be a bind mount of this mount namespace)
    census=QUERY          count chunks per file in Chroma and the keyword index; search QUERY
    ask=QUESTION          answer QUESTION through a Pipeline (extractive), then report its health

Each step prints one JSON line (an ingest also one per embedded batch), flushed at once so a
parent can watch progress and kill the process halfway. A RagError becomes an "error" line and
the remaining steps still run. Another process may share the store: tests kill this one, run
two at once, or run it on a tiny filesystem.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from langchain_core.embeddings import DeterministicFakeEmbedding  # noqa: E402

from rag import schema  # noqa: E402
from rag.errors import RagError  # noqa: E402
from rag.pipeline import Pipeline  # noqa: E402
from rag.settings import load_settings  # noqa: E402
from rag.store import KnowledgeBase  # noqa: E402

BATCH = 4  # chunks per embedding batch: many batches, so a kill lands halfway


class SlowFakeEmbedding(DeterministicFakeEmbedding):
    """The fake embedder, sleeping `delay` seconds per batch of documents."""

    delay: float = 0.0

    def embed_documents(self, texts):
        time.sleep(self.delay)
        return super().embed_documents(texts)


def emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, **fields}, ensure_ascii=False), flush=True)


def census(kb: KnowledgeBase, query: str) -> dict:
    """Chunks per file as the manifest, Chroma and the search index count them; orphans; search hits."""
    manifest = kb.manifest()
    got = kb.vectors.get(include=["metadatas"])
    live = {r["version"] for r in manifest["reports"].values()}
    file_of = {i: m[schema.FILE] for i, m in zip(got["ids"], got["metadatas"])}
    spans = Counter((m[schema.FILE], m[schema.START], m[schema.END]) for m in got["metadatas"])
    index = kb.search_index(manifest)
    return {
        "version": manifest["version"],
        "manifest": {f: r["chunks"] for f, r in manifest["reports"].items()},
        "chroma": dict(Counter(file_of.values())),
        "search": dict(Counter(file_of.get(i, "<not in chroma>") for i in index.ids)),
        "search_saved": (kb.index_dir / manifest["version"] / "chunks.json").exists(),
        "orphans": sum(m[schema.FILE_HASH] not in live for m in got["metadatas"]),
        "duplicates": sum(n - 1 for n in spans.values()),
        "keyword_hits": [file_of[i] for i, _ in kb.keyword_search(query, 5, manifest)],
        "dense_hits": [file_of[i] for i, _ in kb.dense_search(query, 5, manifest)],
    }


def fill(folder: Path, leave: int) -> None:
    """Take the free space of folder's filesystem down to `leave` bytes."""
    free = shutil.disk_usage(folder).free
    with open(folder / "filler", "wb") as out:
        try:
            out.write(b"\0" * max(0, free - leave))
        except OSError:  # block rounding: full a few KB early is full enough
            pass
    emit("fill", free=shutil.disk_usage(folder).free)


def chroma_client(data_dir: Path, where: str):
    """A client of Chroma as the first step names it: "chroma=DIR", "server=PORT", else DATA_DIR/chroma."""
    import chromadb
    from chromadb.config import Settings as ChromaClientSettings

    settings = ChromaClientSettings(anonymized_telemetry=False)
    kind, _, value = where.partition("=")
    if kind == "server":
        return chromadb.HttpClient(host="127.0.0.1", port=int(value), settings=settings)
    return chromadb.PersistentClient(path=value if kind == "chroma" else str(data_dir / "chroma"), settings=settings)


def run(data_dir: Path, collection: str, steps: list[str]) -> None:
    embeddings = SlowFakeEmbedding(size=32)
    where = steps.pop(0) if steps and steps[0].startswith(("chroma=", "server=")) else ""
    client = chroma_client(data_dir, where)
    kb = KnowledgeBase(
        client, embeddings, collection=collection, index_dir=data_dir / "search",
        lock_path=data_dir / "ingest.lock", embed_batch_size=BATCH,
    )
    for step in steps:
        name, _, value = step.partition("=")
        try:
            if name == "delay":
                embeddings.delay = float(value)
            elif name == "margin":
                kb.min_free_bytes = int(value)
            elif name == "ingest":
                files = [Path(f) for f in value.split(",")]
                summary = kb.ingest(files, progress=lambda file, done, total: emit("batch", done=done, total=total))
                emit("ingested", **summary.as_dict())
            elif name == "fill":
                fill(data_dir, int(value))
            elif name == "readonly":
                subprocess.run(["mount", "-o", "remount,bind,ro", str(data_dir)], check=True)
                emit("readonly")
            elif name == "unfill":
                (data_dir / "filler").unlink()
                emit("unfill", free=shutil.disk_usage(data_dir).free)
            elif name == "census":
                emit("census", **census(kb, value))
            elif name == "ask":
                pipeline = Pipeline(load_settings(overrides={
                    "data_dir": str(data_dir), "llm.provider": "extractive", "retrieval.dense_weight": 0}), kb)
                try:
                    emit("answer", text=pipeline.ask(value).answer)
                finally:
                    emit("health", **pipeline.health())
            else:
                raise SystemExit(f"unknown step {step!r}")
        except RagError as err:
            emit("error", step=name, kind=type(err).__name__, status=err.http_status, message=str(err))


if __name__ == "__main__":
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    run(Path(sys.argv[1]), sys.argv[2], sys.argv[3:])
