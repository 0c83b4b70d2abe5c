"""The gold sets through the real pipeline (e5 embeddings, extractive answers) must meet their floors:
dev.jsonl eval/floors.json, trust.jsonl (paraphrases, no district, other script, English, near misses,
lists) eval/floors_trust.json, the held-out sets eval/floors_holdout.json (holdout4, the hardest on
wording, eval/floors_holdout4.json; holdout9, the newest, eval/floors_holdout9.json), and the questions over every
report (answered from the 指标库 table) eval/floors_aggregate.json."""

from __future__ import annotations

import json

import pytest

from eval.harness import run_eval
from eval.metrics import check_floors
from rag.settings import PROJECT_ROOT
from tests.conftest import GOLD

EVAL = PROJECT_ROOT / "eval"


@pytest.mark.integration
@pytest.mark.parametrize(("gold", "floors", "questions"), [
    (GOLD, EVAL / "floors.json", 45),
    (EVAL / "gold" / "trust.jsonl", EVAL / "floors_trust.json", 40),
    (EVAL / "gold" / "holdout.jsonl", EVAL / "floors_holdout.json", 40),
    (EVAL / "gold" / "holdout2.jsonl", EVAL / "floors_holdout.json", 40),
    (EVAL / "gold" / "holdout3.jsonl", EVAL / "floors_holdout.json", 40),
    (EVAL / "gold" / "holdout4.jsonl", EVAL / "floors_holdout4.json", 40),
    (EVAL / "gold" / "holdout5.jsonl", EVAL / "floors_holdout.json", 40),
    (EVAL / "gold" / "holdout6.jsonl", EVAL / "floors_holdout.json", 40),
    (EVAL / "gold" / "holdout7.jsonl", EVAL / "floors_holdout.json", 40),
    (EVAL / "gold" / "holdout8.jsonl", EVAL / "floors_holdout.json", 40),
    (EVAL / "gold" / "holdout9.jsonl", EVAL / "floors_holdout9.json", 40),
    (EVAL / "gold" / "aggregate.jsonl", EVAL / "floors_aggregate.json", 24),
])
def test_gold_set_meets_its_floors(real_pipeline, tmp_path, gold, floors, questions):
    # real_pipeline has ingested the five seeds (asserted in the fixture).
    metrics = run_eval(real_pipeline, gold, "extractive", tmp_path / "run", progress=False)

    assert metrics["questions"] == questions and metrics["errors"] == 0
    assert metrics["embedding"] == "e5-small-offline"
    problems = check_floors(metrics, json.loads(floors.read_text(encoding="utf-8")))
    assert problems == [], f"see {tmp_path / 'run' / 'report.md'}"
