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
from rag.districts import find_districts
from rag.keyword import tokenize
from rag.retrieval import Passage
from rag.text import fold, sentence_spans

_QUESTION_WORDS = {
    "多少", "几", "哪些", "哪个", "什么", "是否", "如何", "怎么", "有", "是", "的", "了", "在", "和", "与",
    "及", "中", "为", "年", "区", "镇", "县", "报告", "情况", "主要", "方面", "分别", "其中", "全年",
    "共", "达到", "达", "吗", "呢", "工作", "法治", "建设", "政府", "推进", "开展", "2023", "2024",
    "2025", "2026", "司法局", "哪", "个", "家", "件", "项", "次", "人", "率",
}
_ASKS_FIGURE = re.compile(r"多少|几[个项件家次人名条批场]|比例|[^\w]?率|数量|面积|金额")
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

    def header(self) -> str:
        m = self.meta
        return f"{m[schema.DISTRICT]} · {m[schema.YEAR]} · {m[schema.SECTION] or '报告开头'}"


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


def asks_for_figure(question: str) -> bool:
    return bool(_ASKS_FIGURE.search(fold(question)))


def asks_for_section(question: str) -> bool:
    return bool(_SECTION_QUESTION.search(fold(question)))


def _overlap(terms: dict[str, float], text: str) -> float:
    folded = fold(text).lower()
    return sum(w for t, w in terms.items() if t in folded)


def score_sentences(question: str, passages: list[Passage]) -> list[tuple[float, int, int, int]]:
    """(score, passage index, start, end) for every sentence of the passages, best first."""
    terms = question_terms(question)
    total = sum(terms.values()) or 1.0
    wants_figure = asks_for_figure(question)
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
            scored.append((score, i, offset + s, offset + e))
    scored.sort(key=lambda x: -x[0])
    return scored


def coverage(question: str, text: str) -> float:
    """Share of the question's weighted content words found in text (0..1)."""
    terms = question_terms(question)
    total = sum(terms.values())
    return _overlap(terms, text) / total if total else 0.0


def select_excerpts(question: str, passages: list[Passage], budget_tokens: int, count_tokens) -> list[Excerpt]:
    """The best sentences within a token budget, merged per chunk into contiguous excerpts."""
    chosen: dict[int, list[tuple[int, int, float]]] = {}
    used = 0
    for score, i, start, end in score_sentences(question, passages):
        passage = passages[i]
        offset = passage.meta[schema.START]
        sentence = passage.chunk.page_content[start - offset : end - offset]
        cost = count_tokens(sentence) + (12 if i not in chosen else 0)
        if used + cost > budget_tokens:
            if used:
                continue
        chosen.setdefault(i, []).append((start, end, score))
        used += cost
        if used >= budget_tokens:
            break
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
