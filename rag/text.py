"""Text helpers shared by ingest, retrieval and answering: folding and sentence spans."""

from __future__ import annotations

import re
from functools import lru_cache

_SENTENCE_END = re.compile(r"[^。；！？!?;\n]*(?:[。；！？!?;]+[”’」』）)]*|\n|$)")


@lru_cache(maxsize=1)
def _t2s():
    from opencc import OpenCC  # opencc-python-reimplemented

    return OpenCC("t2s")


class _FoldTable(dict):
    """str.translate table built on demand: Traditional→Simplified, full-width→half-width."""

    def __missing__(self, code: int) -> int:
        char = chr(code)
        if 0xFF01 <= code <= 0xFF5E:
            folded = chr(code - 0xFEE0)
        elif code == 0x3000:
            folded = " "
        elif code < 0x2E80:
            folded = char
        else:
            converted = _t2s().convert(char)
            folded = converted if len(converted) == 1 else char
        self[code] = ord(folded)
        return self[code]


_FOLD_TABLE = _FoldTable()


def fold(text: str) -> str:
    """Fold script and width for matching: 梁平區→梁平区, ９９.８％→99.8%.

    The result has exactly the length of the input, so offsets carry over.
    """
    return text.translate(_FOLD_TABLE)


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """(start, end) spans of the sentences in text[start:end], ending at 。；！？ or a newline.

    Leading and trailing white space is left out of each span; empty sentences are dropped.
    """
    end = len(text) if end is None else end
    spans = []
    for match in _SENTENCE_END.finditer(text, start, end):
        s, e = match.span()
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            spans.append((s, e))
    return spans
