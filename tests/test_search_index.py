"""The search index: filtered dense and keyword search over rows grouped by district and year."""

import numpy as np
import pytest

from rag.search_index import SearchIndex

DISTRICTS = ["荣昌区", "万州区", "开州区"]
TOPICS = ["行政复议直接纠错率", "人民调解成功率", "普法讲座场次", "行政诉讼败诉率", "法律顾问覆盖率"]


def _index(seed: int = 0, n: int = 60):
    """n chunks spread over districts, years and topics, with random vectors; also the raw rows."""
    rng = np.random.default_rng(seed)
    rows = [(f"c{i}", f"{DISTRICTS[i % 3]}{TOPICS[i % 5]}第{i}条", DISTRICTS[i % 3], 2021 + i % 4) for i in range(n)]
    vectors = rng.normal(size=(n, 8)).astype(np.float32)
    ids, texts, districts, years = (list(column) for column in zip(*rows))
    return SearchIndex(ids, texts, districts, years, vectors), rows, vectors


def _brute_force(rows, vectors, query, k, districts=None, years=None):
    """Cosine ranking of the admitted rows, computed the slow way."""
    scored = []
    for (cid, _, district, year), vector in zip(rows, vectors):
        if (districts and district not in districts) or (years and year not in years):
            continue
        cosine = float(vector @ query / (np.linalg.norm(vector) * np.linalg.norm(query)))
        scored.append((cosine, cid))
    return [cid for _, cid in sorted(scored, reverse=True)[:k]]


@pytest.mark.parametrize(
    ("districts", "years"),
    [(None, None), (["荣昌区"], None), (None, [2022, 2023]), (["万州区", "开州区"], [2024]), (["荣昌区"], [2021])],
)
def test_filtered_dense_search_is_the_exact_cosine_ranking_of_admitted_rows(districts, years):
    index, rows, vectors = _index()
    query = np.random.default_rng(1).normal(size=8).astype(np.float32)
    found = index.dense_search(query, 4, districts=districts, years=years)
    assert [cid for cid, _ in found] == _brute_force(rows, vectors, query, 4, districts, years)
    admitted = {cid for cid, _, d, y in rows if (not districts or d in districts) and (not years or y in years)}
    assert {cid for cid, _ in found} <= admitted
    assert all(-1.0 <= score <= 1.0 for _, score in found)


def test_a_filter_with_no_rows_finds_nothing():
    index, _, _ = _index()
    assert index.dense_search(np.ones(8), 5, districts=["璧山区"]) == []
    assert index.keyword_search("调解成功率", 5, years=[1999]) == []


def test_keyword_search_keeps_to_the_filter_and_ranks_the_matching_topic_first():
    index, rows, _ = _index()
    found = index.keyword_search("人民调解成功率", 3, districts=["万州区"], years=[2022])
    text_of = {cid: text for cid, text, _, _ in rows}
    assert found and all(text_of[cid].startswith("万州区") for cid, _ in found)
    assert "人民调解成功率" in text_of[found[0][0]]
    assert all(score > 0 for _, score in found)
    assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)


def test_saved_index_loads_with_the_same_answers(tmp_path):
    index, _, _ = _index(n=90)
    index.save(tmp_path / "v1")
    loaded = SearchIndex.load(tmp_path / "v1")
    query = np.random.default_rng(2).normal(size=8)
    for districts, years in [(None, None), (["开州区"], [2023, 2024])]:
        assert loaded.dense_search(query, 5, districts, years) == index.dense_search(query, 5, districts, years)
        assert loaded.keyword_search("普法讲座", 5, districts, years) == index.keyword_search(
            "普法讲座", 5, districts, years)


def test_an_empty_index_searches_to_nothing(tmp_path):
    index = SearchIndex([], [], [], [], [])
    index.save(tmp_path / "empty")
    for searched in (index, SearchIndex.load(tmp_path / "empty")):
        assert searched.dense_search(np.ones(8), 3) == [] and searched.keyword_search("调解", 3) == []


def test_knowledge_base_filtered_and_unfiltered_dense_search_agree(seeded_pipeline):
    """Chroma's HNSW (unfiltered) and the index's exact scan (filtered) rank one district's chunks alike."""
    kb = seeded_pipeline.kb
    manifest = kb.manifest()
    district = kb.reports()[0]["district"]
    chunks = kb.chunks()
    district_chunks = {d.metadata["chunk_id"] for d in chunks if d.metadata["district"] == district}
    question = f"{district}行政复议直接纠错率"
    everywhere = kb.dense_search(question, len(chunks), manifest)
    filtered = kb.dense_search(question, 5, manifest, districts=[district])
    assert [cid for cid, _ in filtered] == [cid for cid, _ in everywhere if cid in district_chunks][:5]
    assert [round(s, 4) for _, s in filtered] == [round(s, 4) for cid, s in everywhere if cid in district_chunks][:5]


def test_a_passage_carries_the_dense_and_keyword_scores_it_was_fused_from(seeded_pipeline):
    """The hit test shows them; a chunk only one search found has None for the other."""
    passages = seeded_pipeline.retrieve("荣昌区2024年行政复议直接纠错率是多少？")
    assert passages and all(p.dense is not None or p.keyword is not None for p in passages)
    assert any(p.keyword and p.keyword > 0 for p in passages)
