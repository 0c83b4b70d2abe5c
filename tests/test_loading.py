"""Reading report files: encodings, Word (with tables), PDF (paragraphs, pages, scans), and every kind of bad file."""

from __future__ import annotations

import hashlib
import io
import tracemalloc
import zipfile

import docx
import pymupdf
import pytest

from rag import loading
from rag.errors import BadFileError
from rag.loading import load_report
from rag.settings import PROJECT_ROOT

SEEDS = PROJECT_ROOT / "seeds"
MB = 1_000_000
REPORT = "区司法局关于2024年法治政府建设情况的报告\r\n一、主要举措\r\n全年调解矛盾纠纷1.16万件，调解成功率为99.8％。\r\n"


def pdf_bytes(text: str | None, password: str | None = None, compress: bool = False) -> bytes:
    """A one-page PDF with `text` on one line in Helvetica (ASCII only; the page as wide as the
    line), or blank; its content deflated if `compress`."""
    document = pymupdf.open()
    width = 40 + (pymupdf.get_text_length(text, fontname="helv", fontsize=12) if text else 260)
    page = document.new_page(width=width, height=200)
    if text is not None:
        page.insert_text((20, 100), text, fontname="helv", fontsize=12)
    encryption = {"encryption": pymupdf.PDF_ENCRYPT_RC4_128, "user_pw": password, "owner_pw": password} if password else {}
    return document.tobytes(deflate=compress, garbage=3, **encryption)


def pdf_pages(pages: list[list[str]], *, indent: float = 30) -> bytes:
    """A PDF of A4 pages in a CJK font, each a list of lines; a line starting with two spaces is
    indented (a paragraph's first line), every other line starts at the margin."""
    document = pymupdf.open()
    for lines in pages:
        page = document.new_page()
        for n, line in enumerate(lines):
            x = 72 + (indent if line.startswith("  ") else 0)
            page.insert_text((x, 100 + 28 * n), line.strip(), fontname="china-s", fontsize=15)
    return document.tobytes()


def docx_bytes(paragraphs: list[str], table: list[list[str]] | None = None) -> bytes:
    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


# ---- good files ------------------------------------------------------------------


def test_seed_is_read_exactly():
    path = SEEDS / "002_23abab8cc5084cfd.txt"
    report = load_report(path, max_bytes=MB)
    assert report.text == path.read_text(encoding="utf-8")
    assert report.file == path.name and report.path == path and report.encoding == "utf-8"
    assert report.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_file_name_relative_to_the_ingest_root(tmp_path):
    path = _write(tmp_path, "a.txt", REPORT.encode())
    assert load_report(path, max_bytes=MB, file="2024/a.txt").file == "2024/a.txt"


def test_utf8_with_crlf_is_normalised_to_newlines(tmp_path):
    report = load_report(_write(tmp_path, "r.txt", REPORT.encode()), max_bytes=MB)
    assert report.text == REPORT.replace("\r\n", "\n")


def test_utf8_bom_is_removed(tmp_path):
    report = load_report(_write(tmp_path, "r.md", b"\xef\xbb\xbf" + REPORT.encode()), max_bytes=MB)
    assert report.text == REPORT.replace("\r\n", "\n") and report.encoding == "utf-8-sig"


@pytest.mark.parametrize("codec", ["gbk", "gb18030"])
def test_gbk_is_detected(tmp_path, codec):
    data = REPORT.encode(codec)
    report = load_report(_write(tmp_path, "r.txt", data), max_bytes=MB)
    assert report.text == REPORT.replace("\r\n", "\n")
    assert report.encoding == "gb18030"
    assert report.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_byte_order_mark_is_read(tmp_path, codec):
    """Notepad's "Unicode" without a BOM: NUL bytes, yet text (before, refused as binary)."""
    report = load_report(_write(tmp_path, "r.txt", REPORT.encode(codec)), max_bytes=MB)
    assert report.text == REPORT.replace("\r\n", "\n") and report.encoding == codec


def test_a_seed_saved_as_utf16_without_a_byte_order_mark_is_read(tmp_path):
    path = SEEDS / "003_190862aaa87d2635.txt"
    text = path.read_text(encoding="utf-8")
    assert load_report(_write(tmp_path, "r.txt", text.encode("utf-16-le")), max_bytes=MB).text == text


def test_utf16_that_cannot_be_decoded_says_so_and_how_to_fix_it(tmp_path):
    data = REPORT.encode("utf-16-le")[:-1]  # cut mid-character
    message = _refused(_write(tmp_path, "r.txt", data), "UTF-16")
    assert "UTF-8" in message and "binary" not in message


def test_docx_paragraphs_and_tables_in_order(tmp_path):
    data = docx_bytes(["区司法局关于2024年法治政府建设情况的报告", "一、主要举措"], [["项目", "件数"], ["调解", "11228件"]])
    report = load_report(_write(tmp_path, "r.docx", data), max_bytes=MB)
    assert report.text == "区司法局关于2024年法治政府建设情况的报告\n一、主要举措\n调解件数11228件。"
    assert report.encoding == "docx" and report.pages == () and report.page_at(10) == 0


TABLES = [
    # a value after its row name and column header, so that its label and year are read from them
    ([["指标", "2023年", "2024年"], ["行政复议纠错率", "8.1%", "9.3%"]],
     ["行政复议纠错率2023年8.1%；行政复议纠错率2024年9.3%。"]),
    # a caption row merged across the table; an empty cell left out
    ([["2023年主要数据", "2023年主要数据", "2023年主要数据"], ["项目", "数量", "同比"], ["法律咨询", "12600人次", ""]],
     ["2023年主要数据", "法律咨询数量12600人次。"]),
    # a column that only numbers the rows; a cell's text on one line
    ([["序号", "指标", "完成值"], ["1", "法律援助\n案件", "865件"]], ["法律援助案件完成值865件。"]),
]


@pytest.mark.parametrize(("rows", "lines"), TABLES)
def test_a_word_table_is_one_line_a_row_each_value_after_its_row_and_column(tmp_path, rows, lines):
    document = docx.Document()
    document.add_paragraph("一、主要数据")
    grid = document.add_table(rows=len(rows), cols=len(rows[0]))
    for r, row in enumerate(rows):
        if len(set(row)) == 1:
            grid.cell(r, 0).merge(grid.cell(r, len(row) - 1)).text = row[0]
            continue
        for c, value in enumerate(row):
            grid.cell(r, c).text = value
    document.add_paragraph("二、存在的不足")
    out = io.BytesIO()
    document.save(out)
    report = load_report(_write(tmp_path, "r.docx", out.getvalue()), max_bytes=MB)
    assert report.text.split("\n") == ["一、主要数据", *lines, "二、存在的不足"]


def test_text_pdf(tmp_path):
    report = load_report(_write(tmp_path, "r.pdf", pdf_bytes("Rule of law report 2024")), max_bytes=MB)
    assert report.text == "Rule of law report 2024" and report.encoding == "pdf" and report.pages == (0,)


def test_pdf_lines_are_joined_into_paragraphs_across_pages_and_page_numbers_left_out(tmp_path):
    """A paragraph wrapped at the margin runs on over the page break; a heading stays on its own
    line; 「— 1 —」 at the foot is no text of the report."""
    first = "全年办理行政复议案件，直接纠错率明显提升，行政争议实质化解工作"   # 31 characters after a 2-character indent
    second = "取得新成效，以调解和解方式结案的案件数量较上年有所增长，全区各级行"  # 33: to the right margin too
    last = "政机关负责人出庭应诉率100%。"
    data = pdf_pages([
        ["一、主要举措", "  （一）深化行政复议改革", "  " + first, second, *[""] * 20, "— 1 —"],
        [last, "  （二）加强公共法律服务", "  全年提供法律咨询4680人次。"],
    ])
    report = load_report(_write(tmp_path, "r.pdf", data), max_bytes=MB)
    assert report.text == (
        f"一、主要举措\n（一）深化行政复议改革\n{first}{second}{last}\n（二）加强公共法律服务\n全年提供法律咨询4680人次。"
    )
    page_two = report.pages[1]
    assert report.text[page_two:].startswith(last) and report.page_at(page_two - 1) == 1 and report.page_at(page_two) == 2


def test_a_blank_page_of_a_pdf_is_skipped(tmp_path):
    data = pdf_pages([["一、主要举措"], [], ["  全年提供法律咨询4680人次。"]])
    report = load_report(_write(tmp_path, "r.pdf", data), max_bytes=MB)
    assert report.text == "一、主要举措\n全年提供法律咨询4680人次。"
    assert report.page_at(report.text.index("全年")) == 3


@pytest.mark.parametrize(("name", "kind"), [("r.doc", "Word 97-2003 (.doc)"), ("r.wps", "WPS (.wps)")])
def test_old_word_and_wps_files_are_refused_saying_to_save_as_docx(tmp_path, name, kind):
    message = _refused(_write(tmp_path, name, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500)), kind)
    assert "save it as .docx" in message


# ---- bad files ---------------------------------------------------------------------


def _refused(path, *reasons: str, max_bytes: int = MB) -> str:
    with pytest.raises(BadFileError) as err:
        load_report(path, max_bytes=max_bytes)
    message = str(err.value)
    assert path.name in message
    assert any(reason in message for reason in reasons), message
    return message


def test_unknown_extension(tmp_path):
    _refused(_write(tmp_path, "r.rtf", REPORT.encode()), "unsupported file type '.rtf'")


def test_missing_file(tmp_path):
    _refused(tmp_path / "gone.txt", "cannot be opened")


def test_folder_named_like_a_report(tmp_path):
    (tmp_path / "folder.txt").mkdir()
    _refused(tmp_path / "folder.txt", "cannot be opened")


def test_too_big_is_refused_before_reading(tmp_path, monkeypatch):
    path = _write(tmp_path, "r.txt", REPORT.encode() * 100)
    monkeypatch.setattr(type(path), "read_bytes", lambda self: pytest.fail("read a file over the limit"))
    message = _refused(path, "over the", max_bytes=1000)
    assert "ingest.max_file_mb" in message


def test_empty(tmp_path):
    _refused(_write(tmp_path, "r.txt", b""), "empty")


def test_whitespace_only(tmp_path):
    _refused(_write(tmp_path, "r.txt", " \r\n\t\n\u3000".encode()), "only white space")


def test_binary_with_nul_bytes(tmp_path):
    _refused(_write(tmp_path, "r.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 20), "binary")


def test_binary_of_control_characters(tmp_path):
    _refused(_write(tmp_path, "r.txt", bytes(range(1, 32)) * 50), "binary")


def test_truncated_docx(tmp_path):
    data = docx_bytes(["一、主要举措", "正文。"])
    _refused(_write(tmp_path, "r.docx", data[: len(data) // 2]), "damaged")


def test_docx_that_is_not_a_zip(tmp_path):
    _refused(_write(tmp_path, "r.docx", REPORT.encode()), "damaged")


def zip_bomb(size: int) -> bytes:
    """A .docx-shaped zip whose document.xml is `size` zero bytes, packed about 1000 : 1 (written in
    blocks, so making it takes no `size` of memory)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            for _ in range(size // MB):
                member.write(bytes(MB))
            member.write(bytes(size % MB))
    return out.getvalue()


def test_zip_bomb_docx_by_total_size(tmp_path, monkeypatch):
    monkeypatch.setattr(loading, "MAX_UNZIPPED_BYTES", 2 * MB)
    data = zip_bomb(3 * MB)
    assert len(data) < 20_000
    _refused(_write(tmp_path, "r.docx", data), "zip bomb")


def test_zip_bomb_docx_by_ratio(tmp_path, monkeypatch):
    monkeypatch.setattr(loading, "_RATIO_CHECK_FROM", 1 * MB)
    _refused(_write(tmp_path, "r.docx", zip_bomb(2 * MB)), "zip bomb")


@pytest.mark.parametrize("size", [12 * MB, 80 * MB])  # over the ratio check; over the total as well
def test_zip_bomb_docx_is_refused_unopened_with_the_real_limits(tmp_path, size):
    path = _write(tmp_path, "r.docx", zip_bomb(size))
    assert path.stat().st_size < 100_000
    tracemalloc.start()
    try:
        _refused(path, "zip bomb")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * MB  # nothing was inflated


def test_pdf_that_unpacks_to_more_text_than_its_size_limit(tmp_path):
    path = _write(tmp_path, "r.pdf", pdf_bytes("Rule of law report 2024 " * 2000, compress=True))
    assert path.stat().st_size < 5000
    _refused(path, "more than 5,000 characters", max_bytes=5000)


@pytest.mark.parametrize(("name", "make"), [
    ("r.txt", lambda text: text.encode()),
    ("r.md", lambda text: text.encode("gb18030")),
    ("r.docx", lambda text: docx_bytes([text])),
    ("r.pdf", lambda text: pdf_bytes(text, compress=True)),
])
def test_a_line_longer_than_the_limit_is_refused_and_one_at_the_limit_is_read(tmp_path, name, make):
    """A 5 MB text with no line break became ~10,000 chunks over 8 minutes. A report's longest
    paragraph is a few hundred characters (809 in the seeds), a whole report a few thousand:
    the longest seed (5,616 characters) pasted as one line is still read."""
    limit = loading.MAX_LINE_CHARS
    one_line = (SEEDS / "003_190862aaa87d2635.txt").read_text(encoding="utf-8").replace("\n", "")
    assert load_report(_write(tmp_path, "seed.txt", one_line.encode()), max_bytes=MB).text == one_line
    at_limit = ("A" * 99 + ".") * (limit // 100)
    assert len(load_report(_write(tmp_path, name, make(at_limit)), max_bytes=5 * MB).text.strip()) == limit
    over = _write(tmp_path, "long-" + name, make(at_limit + "A"))
    message = _refused(over, "no line break", max_bytes=5 * MB)
    assert f"{limit + 1:,} characters" in message and f"{limit:,}" in message


def test_pdf_without_text(tmp_path):
    _refused(_write(tmp_path, "r.pdf", pdf_bytes(None)), "no text layer")


def test_a_page_that_shows_something_but_yields_no_text_is_refused_naming_the_page(tmp_path):
    """Page 2 has no text layer and shows ink (blots, as a scan far too coarse would) that OCR cannot read."""
    document = pymupdf.open(stream=pdf_pages([["一、主要举措"]]))
    page = document.new_page(width=200, height=60)
    for x in range(10, 190, 30):
        page.draw_rect(pymupdf.Rect(x, 20, x + 18, 40), color=(0, 0, 0), fill=(0, 0, 0))
    message = _refused(_write(tmp_path, "r.pdf", document.tobytes()), "page 2 yields no text")
    assert "300 dpi" in message


def test_password_protected_pdf(tmp_path):
    _refused(_write(tmp_path, "r.pdf", pdf_bytes("secret text", password="s3cret")), "password-protected")


def test_truncated_pdf(tmp_path):
    data = pdf_bytes("Rule of law report 2024")
    _refused(_write(tmp_path, "r.pdf", data[: len(data) // 3]), "damaged", "no text layer")


def test_pdf_that_is_not_a_pdf(tmp_path):
    _refused(_write(tmp_path, "r.pdf", b"not a pdf at all " * 10), "damaged", "no text layer")


def test_an_image_that_is_not_an_image(tmp_path):
    _refused(_write(tmp_path, "r.png", b"\x89PNG\r\n\x1a\nnot an image " * 10), "the image is damaged")


@pytest.mark.parametrize("data", [b"\x00", b"\x00\x00\x00", b"0\x00"])
def test_a_few_nul_bytes_are_binary_not_broken_utf16(tmp_path, data):
    """Hypothesis found it: a one-byte file b"\\x00" was called UTF-16 cut short."""
    path = tmp_path / "r.txt"
    path.write_bytes(data)
    with pytest.raises(BadFileError, match="binary"):
        load_report(path, max_bytes=1 << 20)
