"""The real pipeline: e5 embeddings, Chroma on disk, and the local LLM (marked integration)."""

from __future__ import annotations

import pytest

from tests.conftest import writer_pipeline

pytestmark = pytest.mark.integration


def test_real_embeddings_rank_the_district_chunk_first(real_pipeline):
    passages = real_pipeline.retrieve("荣昌区行政复议的直接纠错率是多少？")
    assert passages[0].meta["district"] == "荣昌区"
    assert any("直接纠错率22.22%" in p.chunk.page_content for p in passages[:2])
    # dense search alone, without the district filter, also puts 荣昌区 first
    manifest = real_pipeline.kb.manifest()
    dense = real_pipeline.kb.dense_search("荣昌区行政复议直接纠错率", 3, manifest)
    assert real_pipeline.kb.get_chunks([dense[0][0]])[dense[0][0]].metadata["district"] == "荣昌区"


def test_reingest_embeds_nothing(real_pipeline):
    summary = real_pipeline.ingest()
    assert summary.chunks_embedded == 0 and len(summary.unchanged) == 5


def test_extractive_answers_on_the_real_index(real_pipeline):
    answer = real_pipeline.ask("梁平区人民调解成功率达到了多少？", provider="extractive")
    assert "99.97%" in answer.answer and not answer.refused
    assert answer.citations[0].district == "梁平区"


@pytest.mark.parametrize(
    "question, expected, district",
    [
        ("荣昌区2024年行政复议直接纠错率是多少？", "22.22%", "荣昌区"),
        ("九龙坡区律师行业党的组织覆盖率达到了多少？", "82.4%", "九龙坡区"),
    ],
)
def test_local_llm_answers_dev_questions_with_the_right_citation(real_pipeline, question, expected, district):
    answer = writer_pipeline(real_pipeline).ask(question, provider="local")  # not from the 指标库 table
    assert expected in answer.answer and answer.grounded and not answer.refused
    assert answer.citations and answer.citations[0].district == district
    assert answer.model.endswith(".gguf")


def test_local_llm_answers_english_in_english_and_refuses_another_years_figure(real_pipeline):
    from eval.metrics import is_english

    english = real_pipeline.ask("How many legal aid cases did Rongchang District accept in 2024?", provider="local")
    assert "991" in english.answer and is_english(english.answer) and not english.refused
    assert any("991" in c.quote for c in english.citations)
    # 沙坪坝区's report is of 2023: its 2023 mediation success rate is no answer for 2024
    near = real_pipeline.ask("沙坪坝区2024年人民调解成功率是多少？", provider="local")
    assert near.refused and "99.8" not in near.answer.split("相近的内容")[0]
