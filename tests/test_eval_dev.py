"""The full dev set through the real pipeline (e5 embeddings, extractive answers) must meet eval/floors.json."""

from __future__ import annotations

import json

import pytest

from eval.harness import run_eval
from eval.metrics import check_floors
from rag.pipeline import Pipeline
from rag.settings import PROJECT_ROOT, load_settings
from tests.conftest import GOLD

FLOORS = PROJECT_ROOT / "eval" / "floors.json"


@pytest.mark.integration
def test_dev_set_meets_the_floors(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    # Share the models folder that `fazhi models prepare` filled instead of rebuilding e5 here.
    shared_models = load_settings().models_dir
    shared_models.mkdir(parents=True, exist_ok=True)
    (data / "models").symlink_to(shared_models, target_is_directory=True)
    pipeline = Pipeline.from_settings(load_settings(overrides={"data_dir": str(data), "llm.provider": "extractive"}))
    summary = pipeline.ingest()
    assert len(summary.new) == 5 and not summary.failed

    metrics = run_eval(pipeline, GOLD, "extractive", tmp_path / "run", progress=False)

    assert metrics["questions"] == 45 and metrics["errors"] == 0
    assert metrics["embedding"] == "e5-small-offline"
    problems = check_floors(metrics, json.loads(FLOORS.read_text(encoding="utf-8")))
    assert problems == [], f"see {tmp_path / 'run' / 'report.md'}"
