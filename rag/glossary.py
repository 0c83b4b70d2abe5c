"""Questions in the reports' words: the Chinese terms of the English phrases an English question
contains (config/glossary.yaml), and the reports' own terms for the everyday Chinese phrasings a
Chinese question uses (config/paraphrases.yaml: 第一选择 → 首选率, 还在接受社区矫正 → 在册).

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
from rag.text import fold

GLOSSARY = PROJECT_ROOT / "config" / "glossary.yaml"
PARAPHRASES = PROJECT_ROOT / "config" / "paraphrases.yaml"


@lru_cache(maxsize=4)
def _matcher(path: Path) -> tuple[re.Pattern, dict[str, str]]:
    entries = {_plain(str(k)): str(v) for k, v in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).items()}
    phrases = sorted(entries, key=len, reverse=True)
    stems = [re.escape(_stem(p)) for p in phrases]
    # a phrase matches in its inflected forms too: case/cases, draft/drafted, issue/issued/issuing
    pattern = re.compile(r"\b(" + "|".join(stems) + r")(?:e?s|e?d|ing|e)?\b", re.IGNORECASE)
    entries = {_stem(k): v for k, v in entries.items()}
    return pattern, entries


def _stem(phrase: str) -> str:
    """The phrase without a last word's final e (issue → issu), so inflections match it."""
    return phrase[:-1] if phrase.endswith("e") and len(phrase) > 3 else phrase


def _plain(text: str) -> str:
    """English text lower-cased, hyphens as spaces and -ies as -y, as glossary phrases are matched:
    "foreign-trade companies" is "foreign trade company"."""
    return re.sub(r"(?<=[a-z]{2})ies\b", "y", text.lower().replace("-", " "))


def chinese_terms(question: str, path: Path = GLOSSARY) -> list[str]:
    """The Chinese terms of the English phrases in question, in order, each once."""
    pattern, entries = _matcher(path)
    terms = [entries[m.group(1).lower()] for m in pattern.finditer(_plain(question))]
    return list(dict.fromkeys(terms))


@lru_cache(maxsize=4)
def paraphrases(path: Path = PARAPHRASES) -> tuple[tuple[str, str], ...]:
    """(everyday phrasing, the reports' term) pairs of the table, folded (see rag.claims.report_terms)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return tuple(sorted({(fold(str(phrasing)), fold(str(term)))
                         for term, phrasings in data.items() for phrasing in phrasings or ()}))
