"""Text of a PDF or of a page image, page by page: lines joined back into paragraphs, tables as
rows (rag.tables), scanned pages read by OCR (rag.ocr). PyMuPDF reads, finds tables and renders.

A page's lines come from its text layer; a page without one that shows ink is rendered at OCR_DPI
and read by OCR. Either way, lines are joined into the paragraphs they were wrapped from by their
geometry alone, so that rag.sections finds a heading at the start of its own line: a paragraph
ends at a line stopping short of the right margin, and starts at a line indented from the left
one or after a wider gap than the page's line spacing. A paragraph running on over a page break
is joined too. Page numbers at the foot (「— 3 —」, 「第3页 共5页」) are left out.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from rag.errors import BadFileError
from rag.tables import squeeze, table_lines

OCR_DPI = 150          # no less accurate than 200 dpi, and faster (docs/formats.md)
_INK_DPI = 36          # enough to tell a blank page from one that shows something
_INK_SHARE = 0.002     # a page with fewer dark pixels than this is blank
_SHORT_LINE = 1.5      # a line ending this many characters before the right margin ends its paragraph
_INDENT = 0.8          # a line starting this many characters after the left margin starts one
_PARAGRAPH_GAP = 1.6   # so does a line further below the last than this many line spacings
_OWN_FRAME_LINES = 3   # a page with fewer lines than this is measured with the whole document's frame
# OCR reads the dashes of 「— 3 —」 as 一 too
_PAGE_NUMBER = re.compile(r"[-—–－_·一]*(?:第\d+页(?:[,，/]?共\d+页)?|\d{1,4})[-—–－_·一]*")

PageProgress = Callable[[int, int], None]  # (pages read, pages in all)


@dataclass
class _Line:
    left: float
    top: float
    right: float
    bottom: float
    text: str
    parts: list[tuple[float, str]] = field(default_factory=list)
    table: bool = False  # a rendered table: lines of its own, never joined to a paragraph


@dataclass(frozen=True)
class _Frame:
    """Where a page's text lines start and end, and how tall and far apart they are."""

    left: float
    right: float
    size: float
    pitch: float

    @classmethod
    def of(cls, lines: list[_Line]) -> _Frame:
        body = [line for line in lines if not line.table]
        size = statistics.median(line.bottom - line.top for line in body) if body else 1.0
        steps = [b.top - a.top for a, b in zip(body, body[1:]) if b.top > a.top]
        return cls(min((line.left for line in body), default=0.0), max((line.right for line in body), default=0.0),
                   size, statistics.median(steps) if steps else 1.5 * size)


def read_pages(data: bytes, file: str, filetype: str, *, max_chars: int,
               on_page: PageProgress | None = None) -> tuple[str, tuple[int, ...]]:
    """The text of a PDF (filetype "pdf") or an image ("png", "jpg") and the offset where each
    page's text starts; BadFileError naming the file, what is wrong and the fix."""
    import pymupdf

    pymupdf.no_recommend_layout()
    locked = f"{file}: the PDF is password-protected. Remove the password and upload it again."
    damaged = (f"{file}: the PDF is damaged or cannot be read ({{}}). Export it to PDF again or save it as text."
               if filetype == "pdf" else f"{file}: the image is damaged or cannot be read ({{}}). Save it again as PNG or JPEG.")
    try:
        document = pymupdf.open(stream=data, filetype=filetype)
    except Exception as err:  # MuPDF raises FileDataError, RuntimeError, ValueError on damaged files
        raise BadFileError(damaged.format(type(err).__name__)) from err
    with document:
        if document.needs_pass and not document.authenticate(""):
            raise BadFileError(locked)
        pages, size = [], 0
        try:
            for number, page in enumerate(document, 1):
                pages.append(_page_lines(page, file, number) if document.is_pdf else _image_lines(data, file))
                size += sum(len(line.text) for line in pages[-1])
                if size > max_chars:
                    raise BadFileError(
                        f"{file}: the PDF unpacks to more than {max_chars:,} characters of text, far more than a "
                        "report holds. Split it or export the text of the report."
                    )
                if on_page:
                    on_page(number, document.page_count)
        except BadFileError:
            raise
        except Exception as err:
            raise BadFileError(damaged.format(type(err).__name__)) from err
    return _paragraphs(pages)


def _page_lines(page, file: str, number: int) -> list[_Line]:
    """A PDF page's lines: its text layer with each table as one block, else OCR of its image."""
    # a table is found by its rules: a page with no drawings has none (and skipping the search,
    # slow on a page of much text, takes 10 s off a page of 100,000 characters)
    found = page.find_tables().tables if page.get_drawings() else []
    tables = [t for t in found if t.row_count >= 2 and t.col_count >= 2]
    boxes = []
    for block in page.get_text("dict", sort=True)["blocks"]:
        for line in block.get("lines", ()):
            text = "".join(span["text"] for span in line["spans"])
            left, top, right, bottom = line["bbox"]
            middle = ((left + right) / 2, (top + bottom) / 2)
            if text.strip() and not any(_inside(middle, t.bbox) for t in tables):
                boxes.append((left, top, right, bottom, text))
    lines = _visual_lines(boxes)
    for table in tables:
        rendered = "\n".join(table_lines(table.extract()))
        if rendered:
            lines.append(_Line(*table.bbox, rendered, table=True))
    if lines:
        return sorted(lines, key=lambda line: line.top)
    if not _shows_ink(page):
        return []  # a blank page
    boxes = _ocr(page.get_pixmap(dpi=OCR_DPI))
    if not boxes:
        raise BadFileError(
            f"{file}: page {number} yields no text: it has no text layer and OCR reads nothing in it (scanned at "
            "too low a resolution, too faint, or a picture?). Scan it again at 300 dpi, or upload the text version."
        )
    return _visual_lines(boxes)


def _image_lines(data: bytes, file: str) -> list[_Line]:
    """The lines OCR reads in an image file, at the image's own resolution."""
    import pymupdf

    boxes = _ocr(pymupdf.Pixmap(data))
    if not boxes:
        raise BadFileError(
            f"{file}: OCR finds no text in the image: too small, blurred or too faint? Photograph or scan "
            "the page again (text at least 20 pixels high), or upload the text version."
        )
    return _visual_lines(boxes)


def _ocr(pixmap) -> list[tuple[float, float, float, float, str]]:
    import numpy
    import pymupdf

    from rag.ocr import read_image

    if pixmap.alpha:
        pixmap = pymupdf.Pixmap(pixmap, 0)
    if pixmap.n != 3:
        pixmap = pymupdf.Pixmap(pymupdf.csRGB, pixmap)
    return read_image(numpy.frombuffer(pixmap.samples, numpy.uint8).reshape(pixmap.height, pixmap.width, 3))


def _shows_ink(page) -> bool:
    import pymupdf

    grey = page.get_pixmap(dpi=_INK_DPI, colorspace=pymupdf.csGRAY)
    dark = sum(1 for value in grey.samples if value < 128)
    return dark > _INK_SHARE * grey.width * grey.height


def _inside(point: tuple[float, float], box) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def _visual_lines(boxes) -> list[_Line]:
    """Runs of text on the same line (their middles within its height) joined left to right;
    page numbers left out."""
    lines: list[_Line] = []
    for left, top, right, bottom, text in sorted(boxes, key=lambda box: (box[1], box[0])):
        middle = (top + bottom) / 2
        line = next((line for line in reversed(lines[-3:]) if line.top <= middle <= line.bottom), None)
        if line is None:
            lines.append(_Line(left, top, right, bottom, "", [(left, text)]))
        else:
            line.left, line.right = min(line.left, left), max(line.right, right)
            line.top, line.bottom = min(line.top, top), max(line.bottom, bottom)
            line.parts.append((left, text))
    for line in lines:
        line.text = squeeze(" ".join(text for _, text in sorted(line.parts)))
    return [line for line in lines if line.text and not _PAGE_NUMBER.fullmatch(line.text)]


def _paragraphs(pages: list[list[_Line]]) -> tuple[str, tuple[int, ...]]:
    """The pages' lines joined into paragraphs, one a line, and the offset each page starts at."""
    out: list[str] = []
    length = 0
    starts: list[int] = []
    previous: tuple[_Line, _Frame] | None = None
    whole = _Frame.of([line for lines in pages for line in lines])
    for lines in pages:
        own = sum(not line.table for line in lines) >= _OWN_FRAME_LINES
        frame = _Frame.of(lines) if own else whole  # a scan may sit differently on each page
        start = None
        for line in lines:
            if previous:
                joint = _joint(*previous, line, frame, same_page=start is not None)
                out.append(joint)
                length += len(joint)
            start = length if start is None else start
            out.append(line.text)
            length += len(line.text)
            previous = line, frame
        starts.append(length if start is None else start)
    return "".join(out), tuple(starts)


def _joint(last: _Line, last_frame: _Frame, line: _Line, frame: _Frame, same_page: bool) -> str:
    """What goes between two lines: "\\n" between paragraphs, else nothing (a space between Latin words)."""
    if (
        last.table
        or line.table
        or last.right < last_frame.right - _SHORT_LINE * last_frame.size
        or line.left > frame.left + _INDENT * frame.size
        or same_page and line.top - last.top > _PARAGRAPH_GAP * frame.pitch
    ):
        return "\n"
    return " " if squeeze(f"{last.text[-1]} {line.text[0]}") != last.text[-1] + line.text[0] else ""
