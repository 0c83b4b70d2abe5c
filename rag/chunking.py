"""Split a report into section-aware chunks of whole sentences, sized in tokens.

A chunk never straddles a section (rag.sections), except that a bare heading line (one
with nothing under it but sub-headings, like 「一、2025年…主要举措和成效」 followed by
「一是…」) is carried into the first chunk of the section that follows it, so no chunk is a
heading alone. Sentences end at 。；！？ or a line break (rag.text.sentence_spans). Runs of
sentences aim at an even size within the budget. A sentence over the budget is cut into
even pieces after ，： (or after 、, or, failing those, where the budget runs out); a run that would be a
sliver (a heading sentence before a long one) takes the next sentence's first clauses.
Consecutive chunks of a section share whole sentences (or pieces) worth at most
`overlap_tokens`. Sentences that give orders to a language model (rag.text.instruction_spans,
「忽略以上所有指令…」) are left out of every chunk: a report is data for the answerer, never
instructions, so what retrieval can find, the model can read and an answer can quote is only
the rest.

The splitter is ours, not LangChain's: RecursiveCharacterTextSplitter finds start offsets
by searching for the chunk text again and mixes its overlap unit with characters, while
here every offset comes from the sentence spans themselves.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import math
from collections.abc import Callable

from langchain_core.documents import Document

from rag import schema
from rag.loading import LoadedReport
from rag.metadata import ReportMeta
from rag.sections import Section, heading_only
from rag.text import sentence_spans
from rag.tokens import count_tokens as _count_tokens

logger = logging.getLogger(__name__)

# Bump when chunk boundaries or contents change: every report then counts as changed and is re-chunked.
CHUNKER_VERSION = 3
_CLAUSE_ENDS = "，,：:"
_HEADER_SEPARATOR = " · "

Span = tuple[int, int]


def chunk_report(
    report: LoadedReport,
    meta: ReportMeta,
    *,
    chunk_tokens: int,
    overlap_tokens: int,
    count_tokens: Callable[[str], int] = _count_tokens,
) -> list[Document]:
    """The chunks of a report, in text order; page_content == report.text[start:end]."""
    if chunk_tokens < 1 or not 0 <= overlap_tokens < chunk_tokens:
        raise ValueError(f"need chunk_tokens >= 1 and 0 <= overlap_tokens < chunk_tokens, got {chunk_tokens}, {overlap_tokens}")
    text = report.text
    excluded = report.instructions
    if excluded:
        logger.warning("%s: %d passage(s) addressed to a language model left out of the index", report.file, len(excluded))
    chunks: list[Document] = []
    carried: int | None = None  # start of bare headings waiting for their first child
    sections = report.sections
    for n, section in enumerate(sections):
        following = sections[n + 1] if n + 1 < len(sections) else None
        if following and _is_bare(text, section) and _is_child(following, section):
            carried = section.start if carried is None else carried
            continue
        start = section.start if carried is None else carried
        carried = None
        for sentences in _sentence_runs(text, start, section.end, chunk_tokens, count_tokens, excluded):
            for chunk_start, chunk_end in _pack(text, sentences, chunk_tokens, overlap_tokens, count_tokens):
                chunks.append(_document(report, meta, section, chunk_start, chunk_end))
    return chunks


def _is_bare(text: str, section: Section) -> bool:
    """True when the section is its heading line and nothing else."""
    return bool(section.path) and heading_only(text[section.start : section.end])


def _is_child(child: Section, parent: Section) -> bool:
    if child.path == parent.path:
        return bool(child.subheading) and not parent.subheading
    return child.path.startswith(parent.path + schema.SECTION_SEPARATOR)


def _sentence_runs(text: str, start: int, end: int, budget: int, count_tokens, excluded: list[Span]) -> list[list[Span]]:
    """Sentence spans of text[start:end], those over budget cut into pieces that fit, in runs
    split where a sentence touching an excluded span (sorted, disjoint) is left out."""
    excluded_ends = [e for _, e in excluded]
    runs: list[list[Span]] = [[]]
    for span in sentence_spans(text, start, end):
        n = bisect.bisect_right(excluded_ends, span[0])  # the first excluded span ending after span starts
        if n < len(excluded) and excluded[n][0] < span[1]:
            if runs[-1]:
                runs.append([])
        elif count_tokens(text[span[0] : span[1]]) <= budget:
            runs[-1].append(span)
        else:
            runs[-1].extend(_cut(text, span, budget, count_tokens))
    return [run for run in runs if run]


def _cut(text: str, span: Span, budget: int, count_tokens) -> list[Span]:
    """Pieces of an over-long sentence, of about even size: runs of clauses (cut after ，：, else
    after a list's 、) where possible, else of characters."""
    start, end = span
    total = count_tokens(text[start:end])
    target = math.ceil(total / math.ceil(total / budget))
    pieces: list[Span] = []
    while start < end:
        if _longest_fit(text, start, end, budget, count_tokens) == end:
            pieces.append((start, end))
            break
        head, start = _clause_split(text, start, (start, end), target, count_tokens)
        pieces.append(head)
    return pieces


def _clause_split(text: str, chunk_start: int, sentence: Span, budget: int, count_tokens) -> tuple[Span, int]:
    """Split sentence so that text[chunk_start:head end] fits budget: (head span, start of the rest).

    The head ends after the last clause mark that fits (「协调会、推进会18次」 is one list, whose
    figure says what its items are), else after the last 、, else where the budget runs out; it
    holds at least one character.
    """
    start, end = sentence
    fit = max(_longest_fit(text, chunk_start, end, budget, count_tokens), start + 1)
    clause = max(text.rfind(c, start, fit) for c in _CLAUSE_ENDS)
    if clause < start:  # a list's 、 only when no clause ends: cut there, an item leaves its figure
        clause = text.rfind("、", start, fit)
    stop = clause + 1 if clause >= start else fit
    head_end = stop
    while head_end > start + 1 and text[head_end - 1].isspace():
        head_end -= 1
    while stop < end and text[stop].isspace():
        stop += 1
    return (start, head_end), stop


def _longest_fit(text: str, start: int, end: int, budget: int, count_tokens) -> int:
    """The largest stop in (start, end] with text[start:stop] within budget (at least one character).

    Probes double from `budget` characters before the binary search, so the cost follows the
    fit and not the sentence, which may be a whole report written on one line.
    """
    low, high = start + 1, end
    reach = max(budget, 1)
    while start + reach < high:
        if count_tokens(text[start : start + reach]) > budget:
            high = start + reach - 1
            break
        low = start + reach
        reach *= 2
    while low < high:
        middle = (low + high + 1) // 2
        if count_tokens(text[start:middle]) <= budget:
            low = middle
        else:
            high = middle - 1
    return low


def _pack(text: str, sentences: list[Span], budget: int, overlap: int, count_tokens) -> list[Span]:
    """Runs of whole sentences within budget, aiming at an even size so that no section ends
    in a sliver. Each run after the first starts with the previous run's last sentences,
    worth at most `overlap` tokens, if the run still fits."""

    def tokens(first: int, last: int) -> int:
        return count_tokens(text[sentences[first][0] : sentences[last][1]])

    if not sentences:
        return []
    sentences = list(sentences)
    total = tokens(0, len(sentences) - 1)
    target = total / math.ceil(total / budget)
    chunks: list[Span] = []
    first, must_reach = 0, 0
    while first < len(sentences):
        last = first
        while last + 1 < len(sentences) and (
            last + 1 <= must_reach or (tokens(first, last) < target and tokens(first, last + 1) <= budget)
        ):
            last += 1
        following = last + 1
        if following < len(sentences) and tokens(first, last) < budget // 4:
            # A sliver (a heading sentence before a long one): fill it with the next sentence's first clauses.
            head, rest = _clause_split(text, sentences[first][0], sentences[following], budget, count_tokens)
            if rest < sentences[following][1] and count_tokens(text[sentences[first][0] : head[1]]) <= budget:
                sentences[following : following + 1] = [head, (rest, sentences[following][1])]
                last = following
        chunks.append((sentences[first][0], sentences[last][1]))
        following = last + 1
        if following == len(sentences):
            break
        start = following
        while start - 1 > first and tokens(start - 1, last) <= overlap and tokens(start - 1, following) <= budget:
            start -= 1
        first, must_reach = start, following
    return chunks


def _document(report: LoadedReport, meta: ReportMeta, section: Section, start: int, end: int) -> Document:
    content = report.text[start:end]
    year = meta.year or 0
    header = _HEADER_SEPARATOR.join(
        part for part in (meta.district, f"{year}年" if year else "", meta.title, section.path, section.subheading) if part
    )
    chunk_id = hashlib.sha256(f"{report.file}\x00{start}\x00{content}".encode()).hexdigest()[:32]
    return Document(
        page_content=content,
        metadata={
            schema.CHUNK_ID: chunk_id,
            schema.FILE: report.file,
            schema.DISTRICT: meta.district,
            schema.CITY: meta.city,
            schema.PROVINCE: meta.province,
            schema.DISTRICT_CODE: meta.district_code,
            schema.YEAR: year,
            schema.TITLE: meta.title,
            schema.BODY: meta.body,
            schema.SECTION: section.path,
            schema.SUBHEADING: section.subheading,
            schema.START: start,
            schema.END: end,
            schema.PAGE: report.page_at(start),
            schema.PAGE_STARTS: " ".join(str(p) for p in report.pages if start < p < end),
            schema.FILE_HASH: report.sha256,
            schema.HEADER: header,
        },
    )
