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


# The particles of English phrasal verbs that may stand apart from their verb ("sent the staff down").
_PARTICLES = ("down", "up", "over", "back", "out", "off")


@lru_cache(maxsize=4)
def _matcher(path: Path) -> tuple[re.Pattern, dict[str, str], tuple[tuple[re.Pattern, str], ...]]:
    """The glossary's phrases as one pattern, their terms by stem, and a pattern for each phrasal verb
    parted by what it acts on: "sent the most law enforcement staff down" is "sent down"."""
    entries = {_plain(str(k)): str(v) for k, v in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).items()}
    phrases = sorted(entries, key=len, reverse=True)
    stems = [re.escape(_stem(p)) for p in phrases]
    # a phrase matches in its inflected forms too: case/cases, draft/drafted, issue/issued/issuing
    pattern = re.compile(r"\b(" + "|".join(stems) + r")(?:e?s|e?d|ing|e)?\b", re.IGNORECASE)
    parted = tuple(
        (re.compile(rf"\b{re.escape(verb)}(?:e?s|e?d|ing)?(?:\s+[a-z]+){{1,6}}?\s+{particle}\b"), term)
        for phrase, term in entries.items() if len(words := phrase.split()) == 2 and words[1] in _PARTICLES
        for verb, particle in [words])
    entries = {_stem(k): v for k, v in entries.items()}
    return pattern, entries, parted


def _stem(phrase: str) -> str:
    """The phrase without a last word's final e (issue → issu), so inflections match it."""
    return phrase[:-1] if phrase.endswith("e") and len(phrase) > 3 else phrase


def _plain(text: str) -> str:
    """English text lower-cased, hyphens as spaces and -ies as -y, as glossary phrases are matched:
    "foreign-trade companies" is "foreign trade company"."""
    return re.sub(r"(?<=[a-z]{2})ies\b", "y", text.lower().replace("-", " "))


def chinese_terms(question: str, path: Path = GLOSSARY) -> list[str]:
    """The Chinese terms of the English phrases in question, in order, each once."""
    pattern, entries, parted = _matcher(path)
    plain = _plain(question)
    found = [(m.start(), entries[m.group(1).lower()]) for m in pattern.finditer(plain)]
    found += [(m.start(), term) for verb, term in parted if (m := verb.search(plain))]
    return list(dict.fromkeys(term for _, term in sorted(found)))


@lru_cache(maxsize=4)
def paraphrases(path: Path = PARAPHRASES) -> tuple[tuple[str, str], ...]:
    """(everyday phrasing, the reports' term) pairs of the table, folded (see rag.claims.report_terms)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return tuple(sorted({(fold(str(phrasing)), fold(str(term)))
                         for term, phrasings in data.items() for phrasing in phrasings or ()}))
