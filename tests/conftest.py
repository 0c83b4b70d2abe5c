"""Shared fixtures: settings in a temp folder, fake embeddings, a knowledge base of the seeds."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import chromadb
import pytest
from chromadb.config import Settings as ChromaClientSettings
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from eval.processes import data_dir_sharing_models
from rag.pipeline import Pipeline
from rag.settings import PROJECT_ROOT, load_settings
from rag.store import KnowledgeBase

SEEDS = PROJECT_ROOT / "seeds"
GOLD = PROJECT_ROOT / "eval" / "gold" / "dev.jsonl"
# A small report of a district the seeds do not cover, for upload tests (API and browser).
UPLOAD_REPORT = """璧山区2024年法治政府建设情况报告

2024年，璧山区坚持以习近平法治思想为指导，扎实推进法治政府建设。

一、主要举措和成效
（一）深化行政复议改革
全年办理行政复议案件321件，直接纠错率18.5%，行政争议实质化解率92.3%。
（二）加强公共法律服务
建成“璧山法律服务驿站”57个，全年提供法律咨询4680人次，办理法律援助案件865件。

二、存在的不足
基层法治人才不足，部分镇街执法规范化水平有待提高。

重庆市璧山区人民政府
2025年1月20日
"""


@pytest.fixture
def settings(tmp_path):
    return load_settings(overrides={"data_dir": str(tmp_path / "data"), "llm.provider": "extractive"})


def make_kb(data_dir: Path, embeddings=None, collection: str | None = None, **options) -> KnowledgeBase:
    """A knowledge base in data_dir with its own Chroma store and a fake embedder.

    Name an existing collection to open a second view of the same knowledge base.
    """
    client = chromadb.PersistentClient(
        path=str(data_dir / "chroma"), settings=ChromaClientSettings(anonymized_telemetry=False)
    )
    return KnowledgeBase(
        client,
        embeddings or DeterministicFakeEmbedding(size=32),
        collection=collection or f"test-{uuid.uuid4().hex[:8]}",
        index_dir=data_dir / "search",
        lock_path=data_dir / "ingest.lock",
        **options,
    )


@pytest.fixture
def seeds_copy(tmp_path) -> Path:
    folder = tmp_path / "reports"
    shutil.copytree(SEEDS, folder)
    return folder


@pytest.fixture(scope="session")
def seeded_pipeline(tmp_path_factory):
    """A pipeline over the five seeds (see bm25_pipeline)."""
    return bm25_pipeline(tmp_path_factory.mktemp("seeded"), sorted(SEEDS.glob("*.txt")))


def bm25_pipeline(data_dir: Path, paths: list[Path]) -> Pipeline:
    """A pipeline over these reports, all ingested, with fake embeddings: their ranks are noise, so
    BM25 alone ranks; answers are extractive."""
    settings = load_settings(
        overrides={"data_dir": str(data_dir), "llm.provider": "extractive", "retrieval.dense_weight": 0}
    )
    kb = make_kb(data_dir)
    summary = kb.ingest(paths)
    assert not summary.failed and len(summary.new) == len(paths)
    return Pipeline(settings, kb)


class NoIndicators:
    """An empty 指标库 table: every question goes to retrieval and the writer (tests of the writer's path;
    the table's own answers are tested in test_aggregate.py and test_indicator_ingest.py)."""

    def rows(self, *args, **filters) -> list:
        return []

    def metrics(self) -> list:
        return []

    def version(self) -> str:
        return ""

    def replace(self, *args, **kwargs) -> None:
        pass

    def rebuild(self, *args, **kwargs) -> None:
        pass


def writer_pipeline(pipeline: Pipeline, chat_models: dict | None = None) -> Pipeline:
    """The same knowledge base and writers (or those given), with no question answered from the table."""
    return Pipeline(pipeline.settings, pipeline.kb, chat_models or pipeline._chat_model_factories,
                    indicators=NoIndicators())


def fake_llm_pipeline(pipeline: Pipeline, responses: list[str]) -> Pipeline:
    """The same knowledge base, answering with a fake chat model that replies `responses` in turn."""
    model = FakeListChatModel(responses=responses)
    return writer_pipeline(pipeline, {"local": lambda: (model, "fake-chat")})


@pytest.fixture(scope="session")
def real_pipeline(tmp_path_factory):
    """The seeds ingested with the real e5 embeddings (integration tests only).

    The models folder filled by `fazhi models prepare` is shared instead of rebuilt.
    """
    data = data_dir_sharing_models(tmp_path_factory.mktemp("real"))
    pipeline = Pipeline.from_settings(load_settings(overrides={"data_dir": str(data)}))
    summary = pipeline.ingest()
    assert len(summary.new) == 5 and not summary.failed
    return pipeline
