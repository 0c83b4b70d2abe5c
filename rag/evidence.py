"""From retrieved chunks to the few sentences an answer needs.

Sentences are scored by the question words they share (longer words weigh more;
district names, years and question words weigh nothing), with a small bonus for
the words of their chunk's section header and for the chunk's retrieval rank.
The best sentences, merged into contiguous runs, become the numbered excerpts
[1]…[n] shown to the model and cited in the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag import schema
from rag.claims import Ask
from rag.districts import find_districts
from rag.grounding import quantities
from rag.keyword import tokenize
from rag.retrieval import Passage
from rag.text import fold, sentence_spans

_QUESTION_WORDS = {
    "多少", "几", "哪些", "哪个", "什么", "是否", "如何", "怎么", "有", "是", "的", "了", "在", "和", "与",
    "及", "中", "为", "年", "区", "镇", "县", "报告", "情况", "主要", "方面", "分别", "其中", "全年",
    "共", "达到", "达", "吗", "呢", "工作", "法治", "建设", "政府", "推进", "开展", "2023", "2024",
    "2025", "2026", "司法局", "哪", "个", "家", "件", "项", "次", "人", "率",
}
_PART_END = re.compile(r"[？?；;]")
# A sentence opening a heading or list item (folded text): 二、 (一) 一是 1. 1、
OUTLINE_ITEM = re.compile(r"\s*(?:[一二三四五六七八九十]{1,3}[、是]|\([一二三四五六七八九十]{1,3}\)|\d{1,2}[.、](?!\d))")
_SECTION_QUESTION = re.compile(r"哪些|哪几|不足|问题|打算|举措|安排|思路|目标|计划|措施")


@dataclass
class Excerpt:
    """A contiguous run of sentences of one chunk: what one [n] marker points at."""

    chunk: object  # langchain Document
    start: int     # offsets into the original report text
    end: int
    text: str
    score: float

    @property
    def meta(self) -> dict:
        return self.chunk.metadata


def question_terms(question: str) -> dict[str, float]:
    """Weighted content words of a question."""
    ignore = {fold(d) for d in find_districts(question)}
    ignore |= {t for d in ignore for t in tokenize(d)}
    terms: dict[str, float] = {}
    for token in tokenize(question):
        if token in _QUESTION_WORDS or token in ignore:
            continue
        terms[token] = min(len(token), 4) if len(token) > 1 else 0.3
    return terms


def asks_for_section(question: str) -> bool:
    return bool(_SECTION_QUESTION.search(fold(question)))


def _overlap(terms: dict[str, float], text: str) -> float:
    folded = fold(text).lower()
    return sum(w for t, w in terms.items() if t in folded)


def score_sentences(question: str, passages: list[Passage]) -> list[tuple[float, int, int, int]]:
    """(score, passage index, start, end) for every sentence of the passages, best first."""
    terms = question_terms(question)
    total = sum(terms.values()) or 1.0
    ask = Ask.read(question)
    wants_figure, kinds = ask.wants_figure, ask.kinds  # a figure of the kind asked for ranks higher
    wants_outline = asks_for_section(question)
    scored = []
    for i, passage in enumerate(passages):
        meta = passage.meta
        text, offset = passage.chunk.page_content, meta[schema.START]
        header_score = _overlap(terms, meta.get(schema.HEADER, "")) / total
        for s, e in sentence_spans(text):
            sentence = text[s:e]
            score = _overlap(terms, sentence) / total + 0.3 * header_score + 0.15 / (i + 1)
            if wants_figure and re.search(r"\d", sentence):
                score += 0.1
                if kinds and any(q.kind in kinds for q in quantities(sentence)):
                    score += 0.15
            if wants_outline and OUTLINE_ITEM.match(fold(sentence)):  # 「有哪些方面」: the items list them
                score += 0.3
            scored.append((score, i, offset + s, offset + e))
    scored.sort(key=lambda x: -x[0])
    return scored


def select_excerpts(question: str, passages: list[Passage], budget_tokens: int, count_tokens,
                    per_district: bool = False) -> list[Excerpt]:
    """The best sentences within a token budget, merged per chunk into contiguous excerpts.

    First the best sentence of each compared district (per_district), or else of each part of
    a question that asks several things (「…多少家？2026年计划…？」); then the best of the rest
    while the budget lasts. Filling by score alone spent the budget on the first district's or
    part's long sentences and left the others without their evidence.
    """
    scored = score_sentences(question, passages)
    if per_district:
        districts = dict.fromkeys(p.meta[schema.DISTRICT] for p in passages)
        pools = [[x for x in scored if passages[x[1]].meta[schema.DISTRICT] == d] for d in districts]
    else:
        parts = question_parts(question)
        pools = [score_sentences(part, passages) for part in parts] if len(parts) > 1 else []
    chosen: dict[int, list[tuple[int, int, float]]] = {}
    taken: dict[str, list[tuple[int, int]]] = {}
    used = sum(_fill(pool, passages, 0, count_tokens, chosen, taken) for pool in pools)  # one each
    _fill(scored, passages, budget_tokens, count_tokens, chosen, taken, used)
    return _merge(chosen, passages)


def question_parts(question: str) -> list[str]:
    """The sub-questions of a question that asks several things, or [question]."""
    parts = [p for p in _PART_END.split(question) if question_terms(p)]
    return parts if len(parts) > 1 else [question]


def _fill(scored, passages: list[Passage], budget_tokens: int, count_tokens,
          chosen: dict[int, list[tuple[int, int, float]]], taken: dict[str, list[tuple[int, int]]],
          used: int = 0) -> int:
    """Add sentences, best first, to chosen ({passage index: spans}) while the budget lasts; tokens used.

    With nothing used yet the best sentence goes in whatever its length. Chunks overlap, so a
    sentence overlapping one already taken from the same report is skipped.
    """
    for score, i, start, end in scored:
        passage = passages[i]
        file = passage.meta[schema.FILE]
        if any(start < e and s < end for s, e in taken.get(file, ())):
            continue
        offset = passage.meta[schema.START]
        sentence = passage.chunk.page_content[start - offset : end - offset]
        cost = count_tokens(sentence) + (12 if i not in chosen else 0)
        if used + cost > budget_tokens and used:
            continue
        chosen.setdefault(i, []).append((start, end, score))
        taken.setdefault(file, []).append((start, end))
        used += cost
        if used >= budget_tokens:
            break
    return used


def _merge(chosen: dict[int, list[tuple[int, int, float]]], passages: list[Passage]) -> list[Excerpt]:
    """Chosen sentences as excerpts: adjacent sentences of one chunk joined, best excerpt first."""
    excerpts: list[Excerpt] = []
    for i, spans in chosen.items():
        passage = passages[i]
        offset = passage.meta[schema.START]
        content = passage.chunk.page_content
        all_spans = [(offset + s, offset + e) for s, e in sentence_spans(content)]
        picked = {(s, e) for s, e, _ in spans}
        run: list[tuple[int, int]] = []
        best = {(s, e): sc for s, e, sc in spans}
        for span in all_spans + [None]:
            if span in picked:
                run.append(span)
                continue
            if run:
                start, end = run[0][0], run[-1][1]
                excerpts.append(
                    Excerpt(passage.chunk, start, end, content[start - offset : end - offset],
                            max(best[s] for s in run))
                )
                run = []
    excerpts.sort(key=lambda x: -x.score)
    return excerpts
