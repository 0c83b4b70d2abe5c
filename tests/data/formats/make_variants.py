"""Write the format variants of tests/data/formats: reports as Word files with tables, as text
PDFs of several pages, as scans (image-only PDFs) and as a photographed page (.png).

Run `.venv/bin/python tests/data/formats/make_variants.py` to write them again; the files are
committed so that people can open them. Every text here was written for these tests. The
text PDFs and scans reuse reports of tests/data/regions; this folder is ingested only by its own
tests, so those reports' answers in eval/gold/regions.jsonl do not change.
"""

from __future__ import annotations

import io
from pathlib import Path

import docx
import pymupdf
from PIL import Image

HERE = Path(__file__).resolve().parent
REGIONS = HERE.parent / "regions"

# Text PDFs set like an official document: A4, 15 pt characters, 30 to a line, 22 lines a page.
PAGE = pymupdf.paper_rect("a4")
MARGIN_X, MARGIN_TOP, MARGIN_BOTTOM = 72, 90, 100
FONT, FONT_SIZE, TITLE_SIZE, LINE_HEIGHT = "china-s", 15, 20, 29

# Lines starting with "|" are the rows of a table, the first its header.
CUIPING_2024 = """宜宾市翠屏区2024年法治政府建设情况报告

2024年，翠屏区在宜宾市委、市政府和区委的领导下，坚持以习近平法治思想为指导，扎实推进法治政府建设，各项工作取得新进展。现将有关情况报告如下。

一、2024年法治政府建设主要成效
（一）健全依法决策机制
严格落实重大行政决策程序规定，全年作出重大行政决策6项，全部经过合法性审查和集体讨论决定。区政府法律顾问审查合同83份，提出法律意见210条。
（二）深化行政执法规范化建设
全面推行行政执法公示、执法全过程记录、重大执法决定法制审核制度，开展执法案卷评查两次，评查案卷260卷。
（三）发挥行政复议化解行政争议主渠道作用
全年收到行政复议申请412件，受理389件，审结371件。行政复议和行政应诉的主要指标见下表。
| 指标 | 2023年 | 2024年
| 行政复议纠错率 | 8.1% | 9.3%
| 行政机关负责人出庭应诉率 | 96.4% | 100%
| 行政诉讼败诉率 | 4.2% | 2.9%
| 办理法律援助案件 | 1186件 | 1342件
（四）多元化解矛盾纠纷
全区人民调解组织调处矛盾纠纷5630件，调解成功率98.2%。建成“翠屏调解工作室”18个。

二、存在的不足
一是部分镇街执法人员专业能力不足；二是行政复议案件数量增长较快，办案力量较为紧张。

三、2025年工作安排
（一）推进镇（街道）综合行政执法规范化建设。
（二）充实行政复议办案力量，提升案件办理质效。

宜宾市翠屏区人民政府
2025年1月24日
"""

YUECHENG_2023 = """绍兴市越城区2023年法治政府建设情况报告

2023年，越城区深入学习贯彻习近平法治思想，围绕浙江省法治政府建设目标，持续提升依法行政能力。现将有关情况报告如下。

一、2023年法治政府建设主要工作
（一）推进行政执法体制改革
深化“大综合一体化”行政执法改革，全年开展跨部门联合检查410次，减少涉企检查频次31%。
（二）完善公共法律服务体系
建成镇街公共法律服务工作站13个、村社法律服务点286个。全年公共法律服务主要数据如下。
| 2023年公共法律服务主要数据
| 项目 | 数量 | 同比
| 法律咨询 | 12600人次 | 增长8.5%
| 法律援助案件 | 1375件 | 增长6.2%
| 公证办证 | 9820件 | 下降3.1%
| 人民调解案件 | 6410件 | 增长4.7%
（三）加强法治宣传教育
开展“法治进文化礼堂”活动320场，培育“法律明白人”950名。

二、存在的问题
一是基层法治力量仍显薄弱；二是部分领域执法协同不够顺畅。

三、2024年工作打算
（一）推进综合执法队伍规范化建设。
（二）深化公共法律服务均等化。

绍兴市越城区人民政府
2024年2月6日
"""

LUSONG_2025 = """株洲市芦淞区2025年法治政府建设情况报告

2025年，芦淞区在株洲市委、市政府和区委的领导下，以习近平法治思想为指导，围绕服装商贸产业发展需要，推进法治化营商环境建设。现将有关情况报告如下。

一、2025年法治政府建设主要成效
（一）优化法治化营商环境
在服饰市场群设立商事调解中心，全年调处商事纠纷860件，涉案金额1.2亿元。推行涉企行政执法“首违不罚”，对轻微违法行为免予处罚173件。
（二）规范行政执法行为
组织执法人员专题培训12期，培训1480人次。全年行政执法和政府信息公开主要指标见下表。
| 指标 | 2024年 | 2025年
| 行政执法案卷优秀率 | 86% | 91%
| 政府信息公开申请按期答复率 | 98.5% | 100%
| 人民调解成功率 | 97.8% | 98.6%
（三）推进基层依法治理
开展“民主法治示范村（社区）”创建，新增省级示范村（社区）3个。全区村（社区）法律顾问覆盖率100%。

二、存在的不足
一是市场主体多，商事纠纷化解压力大；二是部分执法人员运用法律解决问题的能力有待提高。

三、2026年工作安排
（一）完善商事纠纷多元化解机制。
（二）开展行政执法质量提升行动。

株洲市芦淞区人民政府
2026年1月20日
"""

DALI_2024 = """大理市2024年行政复议工作情况报告

2024年，大理市司法局坚持以习近平法治思想为指导，发挥行政复议化解行政争议的主渠道作用。

一、主要成效
（一）依法办理复议案件
全年收到行政复议申请236件，审结219件，直接纠错率12.6%。
（二）加强源头预防
开展行政执法监督检查14次，发现问题53个，全部督促整改。

二、下一步打算
（一）推进行政复议案件繁简分流。
（二）加强行政复议与行政诉讼衔接。

大理市司法局
2025年1月15日
"""

TEXT_PDFS = {"hangzhou_xihu_2023.pdf": "hangzhou_xihu_2023.txt", "wuhan_jianghan_2024.pdf": "wuhan_jianghan_2024.txt"}
# name → (source, dpi, bilevel)
SCANS = {
    "zhengzhou_jinshui_2024_scan.pdf": ("zhengzhou_jinshui_2024.txt", 150, False),
    "ningbo_jiangbei_2024_scan.pdf": ("ningbo_jiangbei_2024.txt", 200, True),
}


def blocks(text: str) -> list[str | list[list[str]]]:
    """The report's paragraphs, and each run of "|" lines as one table (a list of rows)."""
    out: list[str | list[list[str]]] = []
    for line in text.strip().split("\n"):
        if line.startswith("|"):
            row = [cell.strip() for cell in line.strip("|").split("|")]
            if out and isinstance(out[-1], list):
                out[-1].append(row)
            else:
                out.append([row])
        else:
            out.append(line)
    return out


def write_docx(text: str, path: Path) -> None:
    document = docx.Document()
    for block in blocks(text):
        if isinstance(block, list):
            width = max(len(row) for row in block)
            table = document.add_table(rows=len(block), cols=width)
            table.style = "Table Grid"
            for r, row in enumerate(block):
                if len(row) == 1:  # a caption row spanning the table
                    table.cell(r, 0).merge(table.cell(r, width - 1)).text = row[0]
                    continue
                for c, value in enumerate(row):
                    table.cell(r, c).text = value
        else:
            document.add_paragraph(block)
    document.save(path)


class Typesetter:
    """Lays a report out on A4 pages: a centred title, paragraphs with a two-character indent
    wrapped at the margin, ruled tables, and 「— n —」 page numbers at the foot."""

    def __init__(self):
        self.doc = pymupdf.open()
        self.y = PAGE.height  # no page yet

    def line_room(self, height: float) -> None:
        if self.y + height > PAGE.height - MARGIN_BOTTOM:
            page = self.doc.new_page(width=PAGE.width, height=PAGE.height)
            number = f"— {self.doc.page_count} —"
            width = pymupdf.get_text_length(number, fontname=FONT, fontsize=12)
            page.insert_text(((PAGE.width - width) / 2, PAGE.height - 50), number, fontname=FONT, fontsize=12)
            self.y = MARGIN_TOP

    @property
    def page(self):
        return self.doc[-1]

    def text_line(self, x: float, text: str, size: float = FONT_SIZE) -> None:
        self.line_room(LINE_HEIGHT)
        self.page.insert_text((x, self.y + size), text, fontname=FONT, fontsize=size)
        self.y += LINE_HEIGHT

    def paragraph(self, text: str) -> None:
        width = PAGE.width - 2 * MARGIN_X
        indent = 2 * FONT_SIZE
        line, room = "", width - indent
        for char in text:
            if pymupdf.get_text_length(line + char, fontname=FONT, fontsize=FONT_SIZE) > room:
                self.text_line(MARGIN_X + width - room, line)
                line, room = "", width
            line += char
        self.text_line(MARGIN_X + width - room, line)

    def title(self, text: str) -> None:
        width = pymupdf.get_text_length(text, fontname=FONT, fontsize=TITLE_SIZE)
        self.text_line((PAGE.width - width) / 2, text, TITLE_SIZE)
        self.y += LINE_HEIGHT / 2

    def table(self, rows: list[list[str]]) -> None:
        width = PAGE.width - 2 * MARGIN_X
        columns = [width * 0.5] + [width * 0.5 / (len(rows[0]) - 1)] * (len(rows[0]) - 1)
        for row in rows:
            self.line_room(LINE_HEIGHT)
            x = MARGIN_X
            for cell, column in zip(row, columns):
                self.page.draw_rect(pymupdf.Rect(x, self.y, x + column, self.y + LINE_HEIGHT), color=(0, 0, 0), width=0.6)
                self.page.insert_text((x + 4, self.y + LINE_HEIGHT - 8), cell, fontname=FONT, fontsize=FONT_SIZE - 2)
                x += column
            self.y += LINE_HEIGHT

    def typeset(self, text: str) -> pymupdf.Document:
        parts = blocks(text)
        self.title(parts[0])
        for block in parts[1:]:
            if isinstance(block, list):
                self.table(block)
            elif block:
                self.paragraph(block)
        return self.doc


def text_pdf(text: str) -> pymupdf.Document:
    return Typesetter().typeset(text)


def scan(source: pymupdf.Document, dpi: int, bilevel: bool = False) -> pymupdf.Document:
    """An image-only PDF: every page of source rendered in grey at dpi, kept as a JPEG of low
    quality as office scanners do, or thresholded to black and white (bilevel) like a fax."""
    scanned = pymupdf.open()
    for page in source:
        image = page.get_pixmap(dpi=dpi, colorspace=pymupdf.csGRAY)
        if bilevel:
            out = io.BytesIO()
            Image.open(io.BytesIO(image.tobytes("png"))).point(lambda v: 255 if v > 160 else 0).convert("1").save(out, "PNG")
            data = out.getvalue()
        else:
            data = image.tobytes("jpeg", jpg_quality=30)
        scanned.new_page(width=page.rect.width, height=page.rect.height).insert_image(page.rect, stream=data)
    return scanned


def main() -> None:
    write_docx(CUIPING_2024, HERE / "cuiping_2024.docx")
    write_docx(YUECHENG_2023, HERE / "yuecheng_2023.docx")
    text_pdf(LUSONG_2025).save(HERE / "lusong_2025_table.pdf", garbage=4, deflate=True)
    for name, source in TEXT_PDFS.items():
        text_pdf((REGIONS / source).read_text(encoding="utf-8")).save(HERE / name, garbage=4, deflate=True)
    for name, (source, dpi, bilevel) in SCANS.items():
        scan(text_pdf((REGIONS / source).read_text(encoding="utf-8")), dpi, bilevel).save(HERE / name, garbage=4, deflate=True)
    text_pdf(DALI_2024)[0].get_pixmap(dpi=150, colorspace=pymupdf.csGRAY).save(HERE / "dali_2024.png")
    for path in sorted(HERE.iterdir()):
        if path.suffix != ".py":
            print(f"{path.name:36} {path.stat().st_size / 1000:6.1f} KB")


if __name__ == "__main__":
    main()
