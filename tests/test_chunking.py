"""Chunks of the seeds: exact offsets, section-aware, within budget, and covering every gold source."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag import schema
from rag.chunking import chunk_report
from rag.loading import LoadedReport, load_report
from rag.metadata import ReportMeta, report_metadata
from rag.sections import parse_sections
from rag.settings import PROJECT_ROOT, load_settings
from rag.text import fold
from rag.tokens import count_tokens

SEEDS = PROJECT_ROOT / "seeds"
GOLD = PROJECT_ROOT / "eval" / "gold" / "dev.jsonl"
NAMES = sorted(p.name for p in SEEDS.glob("*.txt"))
KEYS = {
    schema.CHUNK_ID, schema.FILE, schema.DISTRICT, schema.CITY, schema.PROVINCE, schema.DISTRICT_CODE, schema.YEAR,
    schema.TITLE, schema.BODY, schema.SECTION,
    schema.SUBHEADING, schema.START, schema.END, schema.FILE_HASH, schema.HEADER, schema.PAGE, schema.PAGE_STARTS,
}


def _budget() -> tuple[int, int]:
    ingest = load_settings().ingest
    return ingest.chunk_tokens, ingest.overlap_tokens


@lru_cache(maxsize=None)
def seed_chunks(name: str):
    report = load_report(SEEDS / name, max_bytes=10**7)
    tokens, overlap = _budget()
    return report, chunk_report(report, report_metadata(report), chunk_tokens=tokens, overlap_tokens=overlap)


@pytest.mark.parametrize("name", NAMES)
def test_chunks_are_exact_slices_in_order(name):
    report, chunks = seed_chunks(name)
    assert chunks
    for chunk in chunks:
        m = chunk.metadata
        assert report.text[m[schema.START] : m[schema.END]] == chunk.page_content
        assert chunk.page_content == chunk.page_content.strip()
    starts = [c.metadata[schema.START] for c in chunks]
    assert starts == sorted(starts)


@pytest.mark.parametrize("name", NAMES)
def test_chunks_cover_every_sentence(name):
    report, chunks = seed_chunks(name)
    covered = set()
    for chunk in chunks:
        covered.update(range(chunk.metadata[schema.START], chunk.metadata[schema.END]))
    assert all(i in covered for i, c in enumerate(report.text) if not c.isspace())


@pytest.mark.parametrize("name", NAMES)
def test_no_chunk_straddles_a_section(name):
    report, chunks = seed_chunks(name)
    sections = parse_sections(report.text)
    top_starts = [s.start for s in sections if s.path and s.path.count(schema.SECTION_SEPARATOR) == 0 and not s.subheading]
    for chunk in chunks:
        start, end = chunk.metadata[schema.START], chunk.metadata[schema.END]
        assert not any(start < b < end for b in top_starts), chunk.page_content[:40]
        # the chunk's last character lies in the section it is labelled with
        home = next(s for s in sections if s.start <= end - 1 < s.end)
        assert (home.path, home.subheading) == (chunk.metadata[schema.SECTION], chunk.metadata[schema.SUBHEADING])


@pytest.mark.parametrize("name", NAMES)
def test_chunk_sizes_within_budget(name):
    _, chunks = seed_chunks(name)
    budget, _ = _budget()
    sizes = [count_tokens(c.page_content) for c in chunks]
    assert max(sizes) <= budget
    assert sum(sizes) / len(sizes) > budget / 3  # not shredded into slivers


@pytest.mark.parametrize("name", NAMES)
def test_metadata_is_flat_and_complete(name):
    report, chunks = seed_chunks(name)
    meta = report_metadata(report)
    ids = [c.metadata[schema.CHUNK_ID] for c in chunks]
    assert len(set(ids)) == len(ids) and all(len(i) == 32 for i in ids)
    for chunk in chunks:
        m = chunk.metadata
        assert set(m) == KEYS
        assert all(isinstance(v, (str, int)) for v in m.values())
        assert (m[schema.FILE], m[schema.DISTRICT], m[schema.YEAR]) == (name, meta.district, meta.year)
        assert m[schema.FILE_HASH] == report.sha256
        assert m[schema.HEADER].startswith(f"{meta.district} · {meta.year}年 · {meta.title}")


def test_header_names_section_and_subheading():
    _, chunks = seed_chunks("003_190862aaa87d2635.txt")
    chunk = next(c for c in chunks if c.metadata[schema.SUBHEADING] == "4．精准普法实践创新深化")
    assert chunk.metadata[schema.HEADER] == (
        "荣昌区 · 2024年 · 关于2024年法治政府建设情况的报告 · "
        "一、2024年推进法治政府建设的主要举措、工作成效 > （五）夯实基层体系，着力提升政府治理能力水平 · 4．精准普法实践创新深化"
    )


def test_bare_heading_is_carried_into_its_first_child():
    report, chunks = seed_chunks("000_cd1dfdaf8535a5bd.txt")
    heading = "一、2025年推进法治政府建设的主要举措和成效"
    assert not any(c.page_content == heading for c in chunks)
    first = next(c for c in chunks if c.page_content.startswith(heading))
    assert first.metadata[schema.SECTION] == heading + " > 一是坚持党的绝对领导,整体重塑司法行政工作体系"


def test_chunk_ids_are_stable_and_depend_on_content(tmp_path):
    report, chunks = seed_chunks("004_d150b2aa907695eb.txt")
    again = chunk_report(report, report_metadata(report), chunk_tokens=220, overlap_tokens=40)
    assert [c.metadata[schema.CHUNK_ID] for c in again] == [c.metadata[schema.CHUNK_ID] for c in chunks]
    changed = LoadedReport(report.file, report.path, report.text.replace("356起", "357起"), "x", "utf-8")
    changed_ids = {c.metadata[schema.CHUNK_ID] for c in chunk_report(changed, report_metadata(report), chunk_tokens=220, overlap_tokens=40)}
    assert 0 < len(changed_ids - {c.metadata[schema.CHUNK_ID] for c in chunks}) <= 2


def _gold_sources():
    for line in GOLD.read_text(encoding="utf-8").splitlines():
        if line.strip():
            question = json.loads(line)
            for source in question["sources"]:
                yield pytest.param(source, id=f"{question['id']}-{source['evidence'][:8]}")


@pytest.mark.parametrize("source", list(_gold_sources()))
def test_every_gold_source_is_in_a_chunk_with_its_section(source):
    report, chunks = seed_chunks(source["file"])
    start = report.text.find(source["evidence"])
    assert start >= 0, "evidence not in the report"
    end = start + len(source["evidence"])
    hits = [
        c for c in chunks
        if c.metadata[schema.START] < end and start < c.metadata[schema.END]
        and fold(c.metadata[schema.SECTION]) == fold(source["section"])
    ]
    assert hits, f"no chunk overlaps {source['evidence']!r} under {source['section']!r}"
    assert all(c.metadata[schema.DISTRICT] == source["district"] and c.metadata[schema.YEAR] == source["year"] for c in hits)


def test_unknown_year_is_zero(tmp_path):
    report = LoadedReport("x.txt", Path("x.txt"), "一、举措\n正文。", "h", "utf-8")
    chunks = chunk_report(report, ReportMeta("", None, "", "x"), chunk_tokens=64, overlap_tokens=8)
    assert [c.metadata[schema.YEAR] for c in chunks] == [0]
    assert chunks[0].metadata[schema.HEADER] == "x · 一、举措"


def test_overlap_repeats_whole_sentences():
    text = "一、举措\n" + "".join(f"第{i}句话讲的是法治政府建设的第{i}项工作。" for i in range(30))
    report = LoadedReport("x.txt", Path("x.txt"), text, "h", "utf-8")
    chunks = chunk_report(report, ReportMeta("荣昌区", 2024, "", "t"), chunk_tokens=80, overlap_tokens=30)
    assert len(chunks) > 3
    for a, b in zip(chunks, chunks[1:]):
        assert b.metadata[schema.START] < a.metadata[schema.END]  # they overlap …
        assert text[b.metadata[schema.START] - 1] in "。\n"          # … from a sentence start
        assert count_tokens(text[b.metadata[schema.START] : a.metadata[schema.END]]) <= 30


def test_bad_budget_is_refused():
    report = LoadedReport("x.txt", Path("x.txt"), "正文。", "h", "utf-8")
    with pytest.raises(ValueError):
        chunk_report(report, ReportMeta("", None, "", "x"), chunk_tokens=40, overlap_tokens=40)


_FRAGMENTS = ["一、", "二、", "3、", "（一）", "(二)", "一是", "二是", "1．", "2.", "。", "，", "；", "\n", "\n\n",
              "法治政府建设", "全年调解矛盾纠纷1.16万件", "但仍然存在不足和问题", " ", "區", "ａｂ", "x" * 50, "长" * 80]


@settings(max_examples=60, deadline=None)
@given(
    text=st.one_of(st.text(max_size=400), st.lists(st.sampled_from(_FRAGMENTS), max_size=60).map("".join)),
    budget=st.integers(min_value=8, max_value=120),
    overlap_share=st.floats(min_value=0, max_value=0.9),
)
def test_chunks_of_any_text_map_back(text, budget, overlap_share):
    report = LoadedReport("x.txt", Path("x.txt"), text, "h", "utf-8")
    overlap = int(budget * overlap_share)
    chunks = chunk_report(report, ReportMeta("", None, "", "x"), chunk_tokens=budget, overlap_tokens=overlap)
    for chunk in chunks:
        m = chunk.metadata
        assert 0 <= m[schema.START] < m[schema.END] <= len(text)
        assert text[m[schema.START] : m[schema.END]] == chunk.page_content
        assert count_tokens(chunk.page_content) <= budget
    starts = [c.metadata[schema.START] for c in chunks]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert bool(chunks) == bool(text.strip())
