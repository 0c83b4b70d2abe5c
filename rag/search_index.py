"""One index version's live chunks, held for fast filtered search: BM25 and embedding vectors.

Rows are ordered by district and year, so a question routed to some districts and years reads
a few contiguous row ranges. Chroma's own metadata pre-filter costs about 35 ms a query at
100,000 chunks; here a filtered dense search is an exact cosine scan of only the rows it
admits, and one BM25 scoring serves any filter. bm25s (sparse matrices, numpy) saves and
loads its index, so a process never re-tokenises a corpus it has seen; the vectors are saved
as a .npy file and memory-mapped, so processes on one machine share them through the page cache.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from rag.keyword import tokenize

Ranges = list[tuple[int, int]]


class SearchIndex:
    """BM25 and normalised vectors over a fixed list of chunks; searches can be limited by district and year."""

    def __init__(self, ids: list[str], texts: list[str], districts: list[str], years: list[int], vectors):
        import bm25s

        order = sorted(range(len(ids)), key=lambda i: (districts[i], years[i]))
        self.ids = [ids[i] for i in order]
        self._groups = _groups([(districts[i], years[i]) for i in order])
        matrix = np.asarray(vectors, dtype=np.float32)[order] if ids else np.zeros((0, 0), np.float32)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        self._vectors = matrix / np.where(norms > 0, norms, 1.0)
        self._bm25 = bm25s.BM25()
        if self.ids:
            self._bm25.index([tokenize(texts[i]) for i in order], show_progress=False)

    def __len__(self) -> int:
        return len(self.ids)

    def keyword_search(self, query: str, k: int, districts=None, years=None) -> list[tuple[str, float]]:
        """Best (chunk id, BM25 score) pairs for query, best first; only positive scores."""
        if not self.ids:
            return []
        tokens = [t for t in tokenize(query) if t in (self._bm25.vocab_dict or {})]
        if not tokens:
            return []
        scores = self._bm25.get_scores(tokens)
        return [(cid, s) for cid, s in self._best(lambda a, b: scores[a:b], k, districts, years) if s > 0]

    def dense_search(self, vector, k: int, districts=None, years=None) -> list[tuple[str, float]]:
        """Best (chunk id, cosine similarity) pairs for a query vector, best first (exact, not approximate)."""
        if not self.ids:
            return []
        query = np.asarray(vector, dtype=np.float32)
        query = query / (np.linalg.norm(query) or 1.0)
        with _blas().limit(limits=1, user_api="blas"):
            return self._best(lambda a, b: self._vectors[a:b] @ query, k, districts, years)

    def _best(self, score_rows, k: int, districts, years) -> list[tuple[str, float]]:
        """Top k rows among those admitted, scoring each row range with score_rows(start, stop)."""
        ranges = self._ranges(districts, years)
        if not ranges or k <= 0:
            return []
        rows = np.concatenate([np.arange(a, b) for a, b in ranges])
        scores = np.concatenate([score_rows(a, b) for a, b in ranges])
        picked = np.argpartition(-scores, k - 1)[:k] if len(scores) > k else np.arange(len(scores))
        picked = picked[np.argsort(-scores[picked], kind="stable")]
        return [(self.ids[rows[p]], float(scores[p])) for p in picked]

    def _ranges(self, districts, years) -> Ranges:
        """The row ranges of the chunks of these districts and years (None: all), adjacent ones merged."""
        if not districts and not years:
            return [(0, len(self.ids))]
        merged: Ranges = []
        for (district, year), (start, stop) in self._groups.items():
            if (districts and district not in districts) or (years and year not in years):
                continue
            if merged and merged[-1][1] == start:
                merged[-1] = (merged[-1][0], stop)
            else:
                merged.append((start, stop))
        return merged

    def save(self, folder: Path) -> None:
        """Write the index into folder (which must not exist yet or be empty)."""
        folder.mkdir(parents=True, exist_ok=True)
        if self.ids:
            self._bm25.save(str(folder / "bm25"), show_progress=False)
        np.save(folder / "vectors.npy", self._vectors)
        groups = [[district, year, start, stop] for (district, year), (start, stop) in self._groups.items()]
        meta = {"ids": self.ids, "groups": groups}
        (folder / "chunks.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> "SearchIndex":
        """Read an index written by `save`; the vectors stay on disk, memory-mapped."""
        import bm25s

        meta = json.loads((folder / "chunks.json").read_text(encoding="utf-8"))
        index = cls.__new__(cls)
        index.ids = meta["ids"]
        index._groups = {(d, y): (start, stop) for d, y, start, stop in meta["groups"]}
        index._vectors = np.load(folder / "vectors.npy", mmap_mode="r")
        index._bm25 = (
            bm25s.BM25.load(str(folder / "bm25"), show_progress=False) if index.ids else bm25s.BM25()
        )
        return index


@lru_cache(maxsize=1)
def _blas():
    """numpy's BLAS thread pool, kept to one thread for the scan.

    A scan is memory-bound, and OpenBLAS's idle workers spin after a threaded call: on two
    cores they took the CPU from the next question's embedding (p95 22 → 114 ms, measured).
    """
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _groups(keys: list[tuple[str, int]]) -> dict[tuple[str, int], tuple[int, int]]:
    """(district, year) → (start, stop) rows, for keys already sorted."""
    groups: dict[tuple[str, int], tuple[int, int]] = {}
    for row, key in enumerate(keys):
        start = groups[key][0] if key in groups else row
        groups[key] = (start, row + 1)
    return groups
