"""English questions in the reports' words: the Chinese terms of config/glossary.yaml they contain.

The embedder reads English and Chinese poorly side by side (its cosine ranks the headings of
a report above the sentence an English question asks about), and BM25 shares no word with
them at all; so an English question is searched and checked with the Chinese terms of the
domain it names.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import yaml

from rag.settings import PROJECT_ROOT

GLOSSARY = PROJECT_ROOT / "config" / "glossary.yaml"


@lru_cache(maxsize=4)
def _matcher(path: Path) -> tuple[re.Pattern, dict[str, str]]:
    entries = {str(k).lower(): str(v) for k, v in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).items()}
    phrases = sorted(entries, key=len, reverse=True)
    pattern = re.compile(r"\b(" + "|".join(re.escape(p) for p in phrases) + r")(?:s|es)?\b", re.IGNORECASE)
    return pattern, entries


def chinese_terms(question: str, path: Path = GLOSSARY) -> list[str]:
    """The Chinese terms of the English phrases in question, in order, each once."""
    pattern, entries = _matcher(path)
    terms = [entries[m.group(1).lower()] for m in pattern.finditer(question)]
    return list(dict.fromkeys(terms))
