"""The full dev set through the real pipeline (e5 embeddings, extractive answers) must meet eval/floors.json."""

from __future__ import annotations

import json

import pytest

from eval.harness import run_eval
from eval.metrics import check_floors
from rag.settings import PROJECT_ROOT
from tests.conftest import GOLD

FLOORS = PROJECT_ROOT / "eval" / "floors.json"


@pytest.mark.integration
def test_dev_set_meets_the_floors(real_pipeline, tmp_path):
    # real_pipeline has ingested the five seeds (asserted in the fixture).
    metrics = run_eval(real_pipeline, GOLD, "extractive", tmp_path / "run", progress=False)

    assert metrics["questions"] == 45 and metrics["errors"] == 0
    assert metrics["embedding"] == "e5-small-offline"
    problems = check_floors(metrics, json.loads(FLOORS.read_text(encoding="utf-8")))
    assert problems == [], f"see {tmp_path / 'run' / 'report.md'}"
