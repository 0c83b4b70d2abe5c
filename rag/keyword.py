"""BM25 keyword search over folded text, tokenised with jieba; bm25s does the scoring.

bm25s (sparse matrices, numpy) keeps queries fast at 100,000 chunks and saves and
loads its index, so a process never re-tokenises a corpus it has seen.
"""

from __future__ import annotations

import json
import logging
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from rag.text import fold

_WORD = re.compile(r"[\w%.]+")


@lru_cache(maxsize=1)
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def tokenize(text: str) -> list[str]:
    """Search tokens of text: jieba's search-mode words over the folded text, punctuation dropped."""
    return [tok for tok in _jieba().lcut_for_search(fold(text).lower()) if _WORD.fullmatch(tok)]


class KeywordIndex:
    """BM25 over a fixed list of chunks; `search` can be limited by district and year."""

    def __init__(self, ids: list[str], texts: list[str], districts: list[str], years: list[int]):
        import bm25s

        self.ids = list(ids)
        self._districts = np.array(districts, dtype=object)
        self._years = np.array(years, dtype=np.int64)
        self._bm25 = bm25s.BM25()
        if self.ids:
            self._bm25.index([tokenize(t) for t in texts], show_progress=False)

    def __len__(self) -> int:
        return len(self.ids)

    def search(
        self,
        query: str,
        k: int,
        districts: list[str] | None = None,
        years: list[int] | None = None,
    ) -> list[tuple[str, float]]:
        """Best (chunk id, score) pairs for query, best first; only positive scores."""
        if not self.ids:
            return []
        tokens = [t for t in tokenize(query) if t in self._vocab]
        if not tokens:
            return []
        mask = np.ones(len(self.ids), dtype=bool)
        if districts:
            mask &= np.isin(self._districts, districts)
        if years:
            mask &= np.isin(self._years, years)
        if not mask.any():
            return []
        k = min(k, int(mask.sum()))
        docs, scores = self._bm25.retrieve(
            [tokens], k=k, show_progress=False, weight_mask=mask.astype(np.float32), n_threads=1
        )
        return [(self.ids[d], float(s)) for d, s in zip(docs[0], scores[0]) if s > 0]

    @property
    def _vocab(self) -> dict:
        return self._bm25.vocab_dict or {}

    def save(self, folder: Path) -> None:
        """Write the index into folder (which must not exist yet or be empty)."""
        folder.mkdir(parents=True, exist_ok=True)
        if self.ids:
            self._bm25.save(str(folder / "bm25"), show_progress=False)
        meta = {"ids": self.ids, "districts": self._districts.tolist(), "years": self._years.tolist()}
        (folder / "chunks.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> "KeywordIndex":
        """Read an index written by `save`."""
        import bm25s

        meta = json.loads((folder / "chunks.json").read_text(encoding="utf-8"))
        index = cls.__new__(cls)
        index.ids = meta["ids"]
        index._districts = np.array(meta["districts"], dtype=object)
        index._years = np.array(meta["years"], dtype=np.int64)
        index._bm25 = (
            bm25s.BM25.load(str(folder / "bm25"), show_progress=False) if index.ids else bm25s.BM25()
        )
        return index
