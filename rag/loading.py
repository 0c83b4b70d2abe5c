"""Read one report file (.txt, .md, .docx, .pdf, .png, .jpg) into its text, or say why it cannot be read.

The stored original is the decoded text with line endings normalised to "\\n" (\\r\\n and a
lone \\r become \\n) and a UTF-8 byte-order mark removed; every chunk offset points into it.
A PDF's text is laid out as paragraphs with its scanned pages read by OCR, and an image is read
by OCR (rag.pdf); tables of Word and PDF files become one line per row (rag.tables).
"""

from __future__ import annotations

import bisect
import codecs
import hashlib
import io
import re
import unicodedata
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from charset_normalizer import from_bytes

from rag.errors import BadFileError
from rag.pdf import PageProgress, read_pages
from rag.sections import Section, parse_sections
from rag.tables import table_lines
from rag.text import instruction_spans

TEXT_EXTENSIONS = (".txt", ".md")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
EXTENSIONS = (*TEXT_EXTENSIONS, ".docx", ".pdf", *IMAGE_EXTENSIONS)
# Formats of old word processors that no pip-installable reader opens reliably: refused with the fix.
SAVE_AS_DOCX = {".doc": "Word 97-2003 (.doc)", ".wps": "WPS (.wps)"}
# A .docx is a zip: refuse one whose members declare more than this many bytes unpacked
# (zipfile never inflates past a member's declared size, so checking the declarations suffices).
# python-docx holds every part in memory and parses the XML ones, so this bounds its memory.
MAX_UNZIPPED_BYTES = 64 * 1024 * 1024
MAX_ZIP_RATIO = 200          # and any large member packed more than 200 : 1
_RATIO_CHECK_FROM = 8 * 1024 * 1024
_MAX_CONTROL_SHARE = 0.05    # more control characters than this: a binary file
# The longest run of text without a line break a report may hold. A paragraph of the seeds is at
# most 809 characters and a whole seed at most 5,616, so even a report pasted as one line fits with
# room to spare; what is longer is a dump (a 5 MB line became ~10,000 chunks), not a report. A PDF's
# line is a paragraph, joined from the lines it was wrapped into (rag.pdf).
MAX_LINE_CHARS = 100_000
_MIN_UTF16_TEXT_SHARE = 0.9  # share of text-like characters a BOM-less UTF-16 decoding must give


@dataclass(frozen=True)
class LoadedReport:
    """A report's text as decoded, with where it came from and a hash of its bytes."""

    file: str       # name relative to the ingest root, e.g. "003_….txt"
    path: Path
    text: str       # decoded, line endings normalised to "\n"
    sha256: str     # of the file's bytes
    encoding: str   # utf-8, utf-8-sig, gb18030, docx, pdf, ocr (an image), …
    pages: tuple[int, ...] = ()  # offset where each page's text starts (a PDF); () for formats without pages

    def page_at(self, offset: int) -> int:
        """The 1-based page the character at offset is on; 0 when the format has no pages."""
        return bisect.bisect_right(self.pages, offset) if self.pages else 0

    @cached_property
    def instructions(self) -> list[tuple[int, int]]:
        """Spans of the text that give orders to a language model (rag.text.instruction_spans)."""
        return instruction_spans(self.text)

    @cached_property
    def sections(self) -> list[Section]:
        """The text's heading structure (rag.sections.parse_sections), parsed once for metadata and chunking."""
        return parse_sections(self.text, self.instructions)


def save_as_docx(file: str, suffix: str) -> BadFileError:
    """The refusal of an old word processor's file (SAVE_AS_DOCX), saying how to convert it."""
    return BadFileError(
        f"{file}: {SAVE_AS_DOCX[suffix]} files cannot be read. Open it in Word or WPS and save it as "
        f".docx (文件 → 另存为 → Word 文档 .docx), or as PDF, then upload that."
    )


def load_report(path: Path, *, max_bytes: int, file: str | None = None,
                on_page: PageProgress | None = None) -> LoadedReport:
    """Read the report at path; raise BadFileError naming the file, the reason and the fix.

    on_page(done, total) is called after each page of a PDF is read (OCR takes seconds a page).
    """
    path = Path(path)
    file = file or path.name
    suffix = path.suffix.lower()
    if suffix in SAVE_AS_DOCX:
        raise save_as_docx(file, suffix)
    if suffix not in EXTENSIONS:
        raise BadFileError(
            f"{file}: unsupported file type '{path.suffix or '(none)'}'. "
            f"Save the report as {', '.join(EXTENSIONS)}."
        )
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise BadFileError(
                f"{file}: {size / 1e6:.1f} MB is over the {max_bytes / 1e6:.1f} MB limit. "
                "Split the report or raise ingest.max_file_mb in the settings."
            )
        data = path.read_bytes()
    except OSError as err:
        raise BadFileError(f"{file}: cannot be opened ({err.strerror}). Check the path and its permissions.") from err
    if not data:
        raise BadFileError(f"{file}: the file is empty. Export the report again with its text.")
    pages: tuple[int, ...] = ()
    if suffix in TEXT_EXTENSIONS:
        text, encoding = _decode(data, file)
    elif suffix == ".docx":
        text, encoding = _docx_text(data, file), "docx"
    elif suffix == ".pdf":
        (text, pages), encoding = read_pages(data, file, "pdf", max_chars=max_bytes, on_page=on_page), "pdf"
    else:
        (text, _), encoding = read_pages(data, file, suffix.lstrip("."), max_chars=max_bytes), "ocr"
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip() and suffix == ".pdf":
        raise BadFileError(
            f"{file}: the PDF has no text layer and no page shows anything to read by OCR (blank pages?). "
            "Export it to PDF again with its text, or upload the text version."
        )
    if not text.strip():
        raise BadFileError(f"{file}: the file holds no text, only white space. Export the report again with its text.")
    if _control_share(text) > _MAX_CONTROL_SHARE:
        raise BadFileError(f"{file}: this looks like a binary file, not a text report. Save it as UTF-8 text.")
    _check_line_length(text, file, suffix)
    return LoadedReport(file=file, path=path, text=text, sha256=hashlib.sha256(data).hexdigest(), encoding=encoding,
                        pages=pages)


def _decode(data: bytes, file: str) -> tuple[str, str]:
    """Text of a .txt/.md file: UTF-8 (BOM removed), UTF-16 with a BOM, else what charset-normalizer finds."""
    if data.startswith(codecs.BOM_UTF8):
        return _strict(data[len(codecs.BOM_UTF8) :], "utf-8", file), "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _strict(data, "utf-16", file), "utf-16"
    if b"\x00" in data:
        # UTF-8 with a stray NUL is binary; UTF-16 of Chinese text is rarely valid UTF-8, and of
        # ASCII-heavy text has its NULs regularly on one side of each byte pair
        maybe_utf16 = len(data) >= _MIN_UTF16_BYTES and (not _valid_utf8(data) or _looks_utf16(data))
        decoded = _utf16_without_bom(data) if maybe_utf16 else None
        if decoded:
            return decoded
        if _looks_utf16(data):
            raise BadFileError(
                f"{file}: this looks like UTF-16 text without a byte-order mark, but it does not decode as "
                "UTF-16 (perhaps cut short). Open it and save it again as UTF-8 text."
            )
        raise BadFileError(f"{file}: this is a binary file (it holds NUL bytes), not a text report. Save it as UTF-8 text.")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    best = from_bytes(data).best()
    if best is None:
        raise BadFileError(
            f"{file}: the text encoding cannot be recognised (not UTF-8, GB18030 or another known one). "
            "Save the report as UTF-8 text."
        )
    encoding = best.encoding
    if encoding.replace("-", "").replace("_", "").lower() in {"gb2312", "gbk", "gb18030", "hzgb2312"}:
        encoding = "gb18030"  # the superset: characters GBK lacks still decode
    return _strict(data, encoding, file), encoding


def _utf16_without_bom(data: bytes) -> tuple[str, str] | None:
    """(text, codec) of UTF-16 written without a BOM, or None when it does not read as text.

    The byte order tried first is the one whose high bytes hold the NULs (those of ASCII digits,
    letters and line breaks); the other is tried too. A decoding counts as text when nearly all
    of it is Chinese, ASCII or the punctuation reports use; random bytes give about a third.
    """
    high_in_odd = data[1::2].count(0) >= data[0::2].count(0)
    for codec in ("utf-16-le", "utf-16-be") if high_in_odd else ("utf-16-be", "utf-16-le"):
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        if _text_share(text) >= _MIN_UTF16_TEXT_SHARE:
            return text, codec
    return None


def _valid_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_MIN_UTF16_BYTES = 64  # a report is kilobytes; below this, NULs are read as binary, not guessed as UTF-16


def _looks_utf16(data: bytes) -> bool:
    """True when NUL bytes are frequent and nearly all on one side of each byte pair, as in UTF-16
    (a few bytes say nothing: 「0\\x00」 is a NUL after a digit, not UTF-16 「0」)."""
    odd, even = data[1::2].count(0), data[0::2].count(0)
    return len(data) >= _MIN_UTF16_BYTES and max(odd, even) >= 0.1 * (len(data) // 2) and min(odd, even) <= 0.1 * max(odd, even)


# What a Chinese report is written in: ASCII and Latin-1, general punctuation, letterlike symbols to
# enclosed numbers (①), CJK punctuation to CJK compatibility (㎡), CJK ideographs, full-width forms.
_NOT_TEXT = re.compile("[^\t\n\r\x20-\xff\u2000-\u24ff\u3000-\u33ff\u4e00-\u9fff\uff00-\uffef]")


def _text_share(text: str) -> float:
    return 1 - len(_NOT_TEXT.findall(text)) / len(text) if text else 0.0


def _check_line_length(text: str, file: str, suffix: str) -> None:
    """BadFileError when a line of text is over MAX_LINE_CHARS, naming its length and the fix."""
    longest = max(map(len, text.split("\n")))
    if longest <= MAX_LINE_CHARS:
        return
    fix = {
        ".pdf": "Export the report's text with its paragraphs (as .txt or .docx) and upload that.",
        ".docx": "Break the report into its paragraphs in Word or WPS and save it again.",
    }.get(suffix, "Save the report with one paragraph per line.")
    raise BadFileError(
        f"{file}: the text has no line break for {longest:,} characters (the limit is {MAX_LINE_CHARS:,}; "
        f"a report's paragraph is a few hundred). {fix}"
    )


def _strict(data: bytes, encoding: str, file: str) -> str:
    try:
        return data.decode(encoding)
    except (UnicodeDecodeError, LookupError) as err:
        raise BadFileError(f"{file}: the text is not valid {encoding} ({err}). Save the report as UTF-8 text.") from err


def _control_share(text: str) -> float:
    controls = sum(1 for c in text if c not in "\n\t\f\v" and unicodedata.category(c) in ("Cc", "Cs", "Co"))
    return controls / len(text)


def _docx_text(data: bytes, file: str) -> str:
    """Paragraphs and tables of a .docx in document order, joined by "\\n"; a table as one line
    per row (rag.tables.table_lines)."""
    import docx
    from docx.table import Table

    corrupt = f"{file}: the Word file is damaged or not a .docx (perhaps truncated). Open and save it again in Word or WPS."
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise BadFileError(corrupt) from err
    unpacked = sum(m.file_size for m in members)
    inflated = [m for m in members if m.file_size > _RATIO_CHECK_FROM and m.file_size > MAX_ZIP_RATIO * max(m.compress_size, 1)]
    if unpacked > MAX_UNZIPPED_BYTES or inflated:
        raise BadFileError(
            f"{file}: the Word file unpacks to {unpacked / 1e6:.0f} MB, far more than a report holds "
            "(a zip bomb?). Save the report again from Word or WPS, or as text."
        )
    try:
        document = docx.Document(io.BytesIO(data))
        lines = []
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                lines.extend(table_lines(_table_rows(block)))
            else:
                lines.append(block.text)
    except Exception as err:  # python-docx raises KeyError, ValueError, lxml and zip errors alike
        raise BadFileError(corrupt) from err
    return "\n".join(lines)


def _table_rows(table) -> list[list[str]]:
    """A Word table's rows of cell texts, a cell merged across columns given once ("" after it)."""
    rows = []
    for row in table.rows:
        cells, seen = [], set()
        for cell in row.cells:  # a merged cell is the same XML element in every column it spans
            cells.append("" if id(cell._tc) in seen else cell.text)
            seen.add(id(cell._tc))
        rows.append(cells)
    return rows
