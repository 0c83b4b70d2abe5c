"""Synthetic corpora for the benchmark: many reports made from the seeds, with cached vectors.

A synthetic report is a seed report with its paragraphs shuffled, filed under another
district and year by a sidecar; the seeds themselves come first. Its chunks are embedded as the normalised mean of the real
model's vectors of their sentences: every seed sentence is embedded once and cached, so a
100,000-chunk corpus gets realistic, clustered vectors without 100,000 model calls.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

from rag.districts import DISTRICTS
from rag.loading import load_report
from rag.metadata import write_sidecar
from rag.text import sentence_spans

YEARS = range(2016, 2026)
_FIXED_LINE = 40  # lines shorter than this (headings, title, signature) keep their place
_LAYOUT = {"layout": 2}  # bump when write_corpus changes, so old corpora are rewritten


def sentences(text: str) -> list[str]:
    """The sentences of a text, as the cache keys them."""
    return [text[s:e] for s, e in sentence_spans(text)]


class SentenceMeanEmbeddings(Embeddings):
    """Passages → mean of cached sentence vectors; queries → the real model.

    Sentences missing from the cache (a chunk boundary inside a long sentence) are embedded
    with the real model and cached; `misses` counts them.
    """

    def __init__(self, model: Embeddings, cache_file: Path):
        self.model = model
        self.cache_file = cache_file
        self.vectors: dict[str, np.ndarray] = {}
        self.misses = 0
        if cache_file.exists():
            saved = np.load(cache_file, allow_pickle=False)
            self.vectors = dict(zip(saved["keys"].tolist(), saved["vectors"]))

    def add(self, texts: list[str]) -> int:
        """Embed and cache the sentences of texts not cached yet; returns how many were new."""
        new = sorted({s for t in texts for s in sentences(t)} - self.vectors.keys())
        if new:
            for sentence, vector in zip(new, self.model.embed_documents(new)):
                self.vectors[sentence] = np.asarray(vector, dtype=np.float32)
        return len(new)

    def save(self) -> None:
        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self.vectors)
        with self.cache_file.open("wb") as f:
            np.savez(f, keys=np.array(keys), vectors=np.stack([self.vectors[k] for k in keys]))

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        bodies = [t.split("\n", 1)[-1] for t in texts]  # the first line is the chunk header
        self.misses += self.add(bodies)
        out = []
        for body in bodies:
            vecs = [self.vectors[s] for s in sentences(body)]
            mean = np.mean(vecs, axis=0) if vecs else next(iter(self.vectors.values()))
            out.append((mean / np.linalg.norm(mean)).tolist())
        return out

    def embed_query(self, text: str) -> list[float]:
        return self.model.embed_query(text)


def shuffled_report(text: str, rng: random.Random) -> str:
    """The report with each run of body paragraphs shuffled; headings stay where they are."""
    lines = text.splitlines()
    out: list[str] = []
    run: list[str] = []
    for line in lines + [""]:
        if len(line.strip()) >= _FIXED_LINE:
            run.append(line)
            continue
        rng.shuffle(run)
        out.extend(run)
        run = []
        out.append(line)
    return "\n".join(out[:-1])


def write_corpus(seeds: list[Path], folder: Path, reports: int) -> list[Path]:
    """Write `reports` reports into folder, once; returns their paths.

    The seeds come first as they are, so questions about them route as they do on the real
    index; the rest are shuffled seeds filed (by sidecar) under every district and year in turn.
    """
    done = folder / "corpus.json"
    wanted = {**_LAYOUT, "reports": reports}
    if done.exists() and json.loads(done.read_text()) == wanted:
        return sorted(folder.glob("*.txt"))
    folder.mkdir(parents=True, exist_ok=True)
    texts = [load_report(p, max_bytes=50 * 2**20).text for p in seeds]
    paths = []
    for i in range(reports):
        if i < len(seeds):
            path = folder / f"{i:05d}_{seeds[i].name}"
            path.write_text(texts[i], encoding="utf-8")
            paths.append(path)
            continue
        j = i - len(seeds)
        district = DISTRICTS[j % len(DISTRICTS)]
        year = YEARS[(j + j // len(DISTRICTS)) % len(YEARS)]
        path = folder / f"{i:05d}_{district}{year}.txt"
        path.write_text(shuffled_report(texts[i % len(texts)], random.Random(i)), encoding="utf-8")
        write_sidecar(path, district=district, year=year, title=f"{district}{year}年法治政府建设情况报告")
        paths.append(path)
    done.write_text(json.dumps(wanted))
    return paths
