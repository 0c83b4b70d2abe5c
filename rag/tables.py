"""A table of a report (Word or PDF) as lines of text that keep each figure with its row and column.

Each data row becomes one line in which every value follows its row name and its column header:

    指标 | 2023年 | 2024年
    行政复议纠错率 | 8.1% | 9.3%      →  行政复议纠错率2023年8.1%；行政复议纠错率2024年9.3%。

The row name and header sit right before the figure with no punctuation between them, because a
figure's label is read from the words just before it up to the nearest punctuation
(rag.claims.Evidence.label) and its year from the last year written before it (about_year):
「行政复议纠错率：2023年8.1%；2024年9.3%」 would leave 9.3% labelled by 「2024年」 alone.
"""

from __future__ import annotations

from collections.abc import Sequence

_NUMBER_HEADERS = {"序号", "编号", "序"}  # a first column that only numbers the rows


def table_lines(rows: Sequence[Sequence[str | None]]) -> list[str]:
    """Lines of text for a table given as rows of cells (None or "" for an empty or merged cell).

    The first row of two or more cells is the header; a row of one cell (a caption spanning the
    table, a 「小计」 with no values) is kept as it is; a row whose name is empty (merged down from
    the row above) takes the name of the row above.
    """
    cleaned = [[squeeze(cell or "") for cell in row] for row in rows]
    header: list[str] | None = None
    lines: list[str] = []
    name = ""
    for row in cleaned:
        filled = [cell for cell in row if cell]
        if len(filled) <= 1:
            lines.extend(filled)
            continue
        if header is None:
            header = row
            continue
        first = 1 if header[0] in _NUMBER_HEADERS else 0
        name = row[first] or name
        cells = [
            f"{name}{header[j] if j < len(header) else ''}{value}"
            for j, value in enumerate(row[first + 1 :], start=first + 1)
            if value
        ]
        lines.append("；".join(cells) + "。")
    if header is not None and not lines:  # a header alone
        lines.append("；".join(cell for cell in header if cell) + "。")
    return lines


def squeeze(text: str) -> str:
    """Text on one line without the white space that layout adds: a space is kept only beside a
    Latin letter (「report 2024」), not in Chinese text or a figure (「202 4 年」 → 「2024年」)."""
    out = ""
    for word in text.split():
        if out and (_latin(out[-1]) or _latin(word[0])):
            out += " "
        out += word
    return out


def _latin(char: str) -> bool:
    return char.isascii() and char.isalpha()
