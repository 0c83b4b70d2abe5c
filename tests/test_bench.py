"""The benchmark: synthetic corpora, cached sentence vectors, figure keys, and a small real run."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings

from eval.bench import QUICK, run_bench, spread, table
from eval.bench_corpus import SentenceMeanEmbeddings, shuffled_report, write_corpus
from rag.districts import DISTRICTS
from tests.conftest import SEEDS, make_kb


class CountingEmbeddings(Embeddings):
    """Each text → a one-hot vector by its length; remembers what it was asked."""

    def __init__(self):
        self.asked: list[str] = []

    def embed_documents(self, texts):
        self.asked += texts
        return [np.eye(8)[len(t) % 8].tolist() for t in texts]

    def embed_query(self, text):
        return self.embed_documents([text])[0]


def test_shuffled_report_moves_paragraphs_but_not_headings():
    text = "\n".join(["标题", "一、总体情况"] + [f"第{i}段内容，" + "很长的正文" * 8 for i in range(6)] + ["二、下一步"])
    shuffled = shuffled_report(text, random.Random(3))
    lines, original = shuffled.splitlines(), text.splitlines()
    assert sorted(lines) == sorted(original)
    assert lines[:2] == ["标题", "一、总体情况"] and lines[-1] == "二、下一步"
    assert lines != original


def test_sentence_mean_embeddings_average_cached_sentences(tmp_path):
    model = CountingEmbeddings()
    embedder = SentenceMeanEmbeddings(model, tmp_path / "vectors.npz")
    assert embedder.add(["甲。乙乙。", "甲。"]) == 2
    vector = embedder.embed_documents(["标题行\n甲。乙乙。"])[0]
    expected = np.eye(8)[2] + np.eye(8)[3]  # 「甲。」 has 2 characters, 「乙乙。」 3
    assert np.allclose(vector, expected / np.linalg.norm(expected))
    assert embedder.misses == 0 and "标题行" not in model.asked

    embedder.embed_documents(["标题\n丙丙丙丙。"])
    assert embedder.misses == 1
    embedder.save()
    reloaded = SentenceMeanEmbeddings(CountingEmbeddings(), tmp_path / "vectors.npz")
    assert set(reloaded.vectors) == {"甲。", "乙乙。", "丙丙丙丙。"}


def test_synthetic_reports_are_filed_under_new_districts_and_years(tmp_path):
    seeds = sorted(SEEDS.glob("*.txt"))
    paths = write_corpus(seeds, tmp_path / "corpus", reports=8)
    assert len(paths) == 8 and write_corpus(seeds, tmp_path / "corpus", 8) == paths
    kb = make_kb(tmp_path / "data")
    summary = kb.ingest(paths)
    assert not summary.failed and summary.chunks_total > 8 * 20
    filed = [(r["district"], r["year"]) for r in kb.reports()]
    assert filed[:5] == [("九龙坡区", 2025), ("梁平区", 2024), ("沙坪坝区", 2023), ("荣昌区", 2024), ("开州区大进镇", 2025)]
    assert filed[5:] == [(DISTRICTS[0], 2016), (DISTRICTS[1], 2017), (DISTRICTS[2], 2018)]


def test_figure_keys_are_flat_with_size_suffix():
    figures = spread("retrieval.hybrid.", [1.0, 2.0, 3.0, 4.0], "@1000")
    assert figures == {"retrieval.hybrid.p50_ms@1000": 2.5, "retrieval.hybrid.p95_ms@1000": 3.85}
    assert spread("answer.local.first_token_", [10.0]) == {
        "answer.local.first_token_p50_ms": 10.0, "answer.local.first_token_p95_ms": 10.0}
    shown = table({"ingest.a": 1, "retrieval.b@10": 2}).splitlines()
    assert shown == ["ingest.a        1", "", "retrieval.b@10  2"]


@pytest.mark.integration
def test_small_bench_run_measures_every_stage(real_pipeline):
    plan = dataclasses.replace(QUICK, sizes=(200,), batch_sizes=(8,), embed_passages=8, questions=4,
                               local=False, reingest_reports=3, server_size=200)
    figures = run_bench(real_pipeline.settings, plan, log=lambda _: None)
    assert figures["ingest.chunks"] == 178 and figures["ingest.reingest_embedded_chunks@5"] == 0
    assert figures["ingest.reingest_unchanged_reports"] == 3 and figures["ingest.reingest_embedded_chunks"] == 0
    assert 150 <= figures["retrieval.chunks@200"] <= 260
    for key in ("ingest.embed_passages_per_s", "ingest.peak_rss_mb", "retrieval.hybrid.p95_ms@200",
                "retrieval.keyword.p50_ms@200", "retrieval.dense.p50_ms@200", "retrieval.langchain.hybrid.p50_ms@200",
                "retrieval.server.hybrid.p50_ms@200", "answer.extractive.total_p50_ms"):
        assert figures[key] > 0, key
    assert figures["answer.extractive.questions"] == 4 and "answer.local.first_token_p50_ms" not in figures
