"""Keyword tokens for BM25 (scored by `rag.search_index`): jieba words over folded text."""

from __future__ import annotations

import logging
import re
from functools import lru_cache

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
