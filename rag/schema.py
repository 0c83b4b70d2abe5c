"""The shared vocabulary: chunk metadata keys and the Answer returned to every caller.

A chunk is a LangChain ``Document`` whose ``page_content`` is the chunk's original
text and whose metadata is flat and scalar under the keys below (Chroma rejects
nested values).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

# Chunk metadata keys. Keep every use of them pointing here.
CHUNK_ID = "chunk_id"
FILE = "file"               # report file name relative to its folder, e.g. 003_….txt
DISTRICT = "district"       # e.g. 荣昌区, 开州区大进镇; "" when not detected (never matches a named place)
CITY = "city"               # prefecture of the district, e.g. 北京市, 长春市 (a municipality is its own); "" when unknown
PROVINCE = "province"       # e.g. 北京市, 吉林省; "" when unknown
DISTRICT_CODE = "district_code"  # six-digit code of the county-level unit, e.g. 110105: tells two 朝阳区 apart
YEAR = "year"               # int, the year the report covers; 0 when not detected (never matches a year)
TITLE = "title"
BODY = "body"               # issuing body, e.g. 区司法局
SECTION = "section"         # heading path as written: "一、… > （五）…"
SUBHEADING = "subheading"   # a third-level heading (1．…) inside the section, or ""
START = "start"             # character offsets into the original text:
END = "end"                 # original[start:end] == page_content
PAGE = "page"               # int, the page of a PDF the chunk starts on (1-based); 0 for formats without pages
PAGE_STARTS = "page_starts"  # offsets where later pages start inside the chunk, e.g. "1532 3120"; "" when none
FILE_HASH = "file_hash"     # sha256 of the report's bytes
HEADER = "header"           # "district · year · title · section", prefixed for embedding/BM25


def page_at(metadata: dict, offset: int) -> int:
    """The page of a PDF the report's character at offset is on, read from the metadata of a chunk
    holding it: its first page plus the page starts before offset; 0 without pages or outside it."""
    if not metadata.get(PAGE) or not metadata[START] <= offset <= metadata[END]:
        return 0
    return metadata[PAGE] + sum(1 for p in metadata.get(PAGE_STARTS, "").split() if int(p) <= offset)


SECTION_SEPARATOR = " > "
# How a district or year that was not detected is written where people read it.
UNKNOWN_DISTRICT_TEXT = "区县未识别"
UNKNOWN_YEAR_TEXT = "年份未识别"


class Citation(BaseModel):
    """One cited passage: where it is, and the exact words quoted from the report."""

    n: int
    file: str
    district: str
    year: int
    section: str
    start: int
    end: int
    quote: str
    page: int = 0  # the page of a PDF the quote starts on; 0 for formats without pages

    def label(self) -> str:
        """〔district · year · section · 第3页〕, the chip shown under an answer; a part not known is left out."""
        page = f"第{self.page}页" if self.page else ""
        return f"〔{' · '.join(str(part) for part in (self.district, self.year, self.section, page) if part)}〕"


class Timings(BaseModel):
    retrieve_ms: float = 0.0
    first_token_ms: float = 0.0
    total_ms: float = 0.0


class Answer(BaseModel):
    """What the pipeline returns to the CLI, the HTTP API, the UI and the evaluation."""

    answer: str
    refused: bool = False
    grounded: bool = True
    citations: list[Citation] = Field(default_factory=list)
    provider: str = ""
    model: str = ""
    timings: Timings = Field(default_factory=Timings)
