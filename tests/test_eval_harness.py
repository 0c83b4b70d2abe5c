"""The evaluation harness end to end on fakes: run_eval, `fazhi eval` with floors, compare, check-gold."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from eval.cli import eval_cli
from eval.goldset import check_gold, load_gold
from eval.harness import load_run, run_eval
from eval.metrics import METRIC_KEYS, Span, score_question, summarize
from eval.report import write_report
from rag.pipeline import Pipeline
from tests.conftest import GOLD, SEEDS

SUBSET = ("q018", "q032", "q081")  # two answerable facts, one about a district no report covers
PNG = b"\x89PNG"


@pytest.fixture
def gold_subset(tmp_path):
    lines = [line for line in GOLD.read_text(encoding="utf-8").splitlines() if json.loads(line)["id"] in SUBSET]
    path = tmp_path / "subset.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_run_eval_writes_metrics_results_report_and_plots(seeded_pipeline, gold_subset, tmp_path):
    out = tmp_path / "run"
    metrics = run_eval(seeded_pipeline, gold_subset, "extractive", out, progress=False)

    assert {p.name for p in out.iterdir()} == {
        "metrics.json", "results.jsonl", "report.md", "hit_at_k.png", "accuracy_by_type.png", "latency.png"}
    assert all((out / name).read_bytes()[:4] == PNG for name in ("hit_at_k.png", "accuracy_by_type.png", "latency.png"))
    saved, records = load_run(out)
    assert saved == json.loads(json.dumps(metrics))
    assert set(METRIC_KEYS) <= set(saved) and list(saved["by_type"]) == ["fact_number", "unanswerable"]
    assert saved["provider"] == "extractive" and saved["model"] == "extractive"
    assert saved["settings"]["retrieval"]["top_k"] == seeded_pipeline.settings.retrieval.top_k
    assert "commit" in saved["git"]

    assert [r["id"] for r in records] == list(SUBSET)
    assert metrics["questions"] == 3 and metrics["answerable"] == 2 and metrics["errors"] == 0
    # keyword search finds both facts; the uncovered district is refused without retrieval
    assert metrics["retrieval.hit@10"] == 1.0
    assert metrics["refusal.recall"] == 1.0 and records[2]["answer"]["refused"] is True
    assert records[2]["retrieved"] == [] and "hit@1" not in records[2]["scores"]
    assert metrics["answer.accuracy"] == sum(r["scores"]["correct"] for r in records[:2]) / 2
    hits = [row for row in records[0]["retrieved"] if row["hit"]]
    assert hits and all(row["file"].startswith("001_") for row in hits)
    first = hits[0]
    text = seeded_pipeline.kb.report_text(first["file"])
    evidence = records[0]["expected"]["sources"][0]["evidence"]
    at = text.find(evidence)
    assert first["start"] < at + len(evidence) and at < first["end"]   # a hit really overlaps the evidence
    assert all(r["answer"]["timings"]["total_ms"] > 0 for r in records)

    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| retrieval.hit@10 | 1.000 |" in report and "## By question type" in report
    assert "| citation.precision |" in report and "## By question style" in report
    assert "![Retrieval hit@k](hit_at_k.png)" in report
    for record in records:
        assert (f"### {record['id']} ·" in report) is record["failed"]


class _FailingAsk:
    """The seeded pipeline, except that asking about 沙坪坝 raises."""

    def __init__(self, pipeline: Pipeline):
        self._pipeline = pipeline

    def __getattr__(self, name):
        return getattr(self._pipeline, name)

    def ask(self, question, **kwargs):
        if "沙坪坝" in question:
            raise RuntimeError("model crashed")
        return self._pipeline.ask(question, **kwargs)


def test_a_question_that_raises_is_a_failure_and_the_run_goes_on(seeded_pipeline, gold_subset, tmp_path):
    metrics = run_eval(_FailingAsk(seeded_pipeline), gold_subset, "extractive", tmp_path / "run", progress=False)
    _, records = load_run(tmp_path / "run")
    broken = records[1]
    assert broken["id"] == "q032" and broken["failed"] and broken["answer"] is None
    assert broken["error"] == "ask: RuntimeError: model crashed"
    assert metrics["errors"] == 1 and records[2]["answer"]["refused"] is True
    assert "error — ask: RuntimeError: model crashed" in (tmp_path / "run" / "report.md").read_text(encoding="utf-8")


def test_cli_eval_exits_non_zero_naming_each_figure_below_its_floor(seeded_pipeline, gold_subset, tmp_path, monkeypatch):
    monkeypatch.setattr(Pipeline, "from_settings", classmethod(lambda cls, settings=None, **kw: seeded_pipeline))
    floors = tmp_path / "floors.json"
    floors.write_text(json.dumps({"min": {"refusal.recall": 1.0, "retrieval.hit@10": 1.01, "answer.accuracy": 1.5},
                                  "max": {"refusal.false_rate": 1.0}}), encoding="utf-8")
    args = ["--gold", str(gold_subset), "--provider", "extractive", "--out", str(tmp_path / "run"), "--floors", str(floors)]
    result = CliRunner().invoke(eval_cli, args)
    assert result.exit_code == 1, result.output
    assert "below floor: retrieval.hit@10 = 1.000 is below its floor 1.01" in result.output
    assert "below floor: answer.accuracy" in result.output and "refusal.recall" not in result.output.split("report:")[1]
    assert (tmp_path / "run" / "metrics.json").exists()

    floors.write_text(json.dumps({"min": {"refusal.recall": 1.0}}), encoding="utf-8")
    result = CliRunner().invoke(eval_cli, args)
    assert result.exit_code == 0 and "all 1 floors" in result.output


def test_cli_eval_needs_gold():
    result = CliRunner().invoke(eval_cli, [])
    assert result.exit_code == 2 and "--gold" in result.output


# ---- compare ---------------------------------------------------------------------------------


def _gold(qid, must):
    return {"id": qid, "type": "fact_number", "question": f"问题{qid}", "answer": must, "must_include": [must],
            "sources": [{"file": "a.txt", "district": "荣昌区", "year": 2024, "section": "一、成效", "evidence": "x" * 10}]}


def _answer(text, total):
    return {"answer": text, "refused": False, "grounded": True, "provider": "extractive", "model": "extractive",
            "citations": [], "timings": {"retrieve_ms": 5.0, "first_token_ms": 6.0, "total_ms": total}}


def _write_run(folder, answers: dict, top_k: int):
    evidence = [Span("a.txt", 0, 10)]
    records = [score_question(_gold(qid, must), [{"file": "a.txt", "district": "荣昌区", "year": 2024, "section": "一、成效",
                                                 "start": 0, "end": 50}], evidence, _answer(text, 100.0))
               for qid, (must, text) in answers.items()]
    metrics = {**summarize(records), "provider": "extractive", "model": "extractive", "gold": "g.jsonl",
               "git": {"commit": "abc", "dirty": False}, "settings": {"retrieval": {"top_k": top_k}}}
    folder.mkdir()
    (folder / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False), encoding="utf-8")
    (folder / "results.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records), encoding="utf-8")


def test_compare_shows_deltas_settings_fixed_and_newly_broken(tmp_path):
    _write_run(tmp_path / "a", {"q1": ("12件", "共12件"), "q2": ("5人", "共3人"), "q3": ("7家", "共7家")}, top_k=6)
    _write_run(tmp_path / "b", {"q1": ("12件", "共13件"), "q2": ("5人", "共5人"), "q3": ("7家", "共7家")}, top_k=8)
    result = CliRunner().invoke(eval_cli, ["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "c.md")])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "| retrieval.top_k | 6 | 8 |" in out
    assert "| answer.accuracy | 0.667 | 0.667 | = |" in out
    fixed = out.split("## Fixed in B (1)")[1].split("## Newly broken")[0]
    broken = out.split("## Newly broken in B (1)")[1]
    assert "**q2**" in fixed and "q1" not in fixed
    assert "**q1**" in broken and "missing: answer lacks 12件" in broken
    assert "3 questions in both runs: 1 fixed, 1 newly broken, 0 failing in both." in out
    assert (tmp_path / "c.md").read_text(encoding="utf-8") == out.rstrip("\n") + "\n"


def test_compare_marks_better_and_worse(tmp_path):
    _write_run(tmp_path / "a", {"q1": ("12件", "共13件"), "q2": ("5人", "共3人")}, top_k=6)
    _write_run(tmp_path / "b", {"q1": ("12件", "共12件"), "q2": ("5人", "共3人")}, top_k=6)
    out = CliRunner().invoke(eval_cli, ["compare", str(tmp_path / "a"), str(tmp_path / "b")]).output
    assert "| answer.accuracy | 0.000 | 0.500 | +0.500 ▲ |" in out
    assert "## Settings that differ\n\nnone" in out


def test_compare_rejects_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "empty").mkdir()
    _write_run(tmp_path / "a", {"q1": ("12件", "共12件")}, top_k=6)
    result = CliRunner().invoke(eval_cli, ["compare", str(tmp_path / "a"), str(tmp_path / "empty")])
    assert result.exit_code == 1 and "is not an evaluation run" in result.output


# ---- check-gold ------------------------------------------------------------------------------


def test_check_gold_accepts_the_dev_set():
    result = CliRunner().invoke(eval_cli, ["check-gold", str(GOLD), "--reports", str(SEEDS)])
    assert result.exit_code == 0, result.output
    assert "45 questions against 5 reports" in result.output and "0 errors" in result.output


def test_check_gold_catches_bad_evidence_duplicate_ids_and_sections(tmp_path):
    items = [json.loads(line) for line in GOLD.read_text(encoding="utf-8").splitlines()][:3]
    items[1]["id"] = items[0]["id"]
    items[2]["sources"][0]["evidence"] = "九龙坡区全年办理公证99999件"
    items.append({**items[0], "id": "q999", "sources": [{**items[0]["sources"][0], "section": "一、不存在的标题"}]})
    items.append({**items[0], "id": "q998", "sources": [{**items[0]["sources"][0], "file": "missing.txt"}]})
    gold = tmp_path / "bad.jsonl"
    gold.write_text("\n".join(json.dumps(i, ensure_ascii=False) for i in items), encoding="utf-8")
    result = CliRunner().invoke(eval_cli, ["check-gold", str(gold), "--reports", str(SEEDS)])
    assert result.exit_code == 1
    assert f"error: {items[0]['id']}: id used 2 times" in result.output
    assert f"error: {items[2]['id']} source 1: evidence 「九龙坡区全年办理公证99999件」 not found verbatim" in result.output
    assert "error: q999 source 1: section level 「一、不存在的标题」 is not a heading line" in result.output
    assert "error: q998 source 1: no report named missing.txt" in result.output
    assert "4 errors" in result.output


def test_check_gold_reports_an_unreadable_line(tmp_path):
    gold = tmp_path / "broken.jsonl"
    gold.write_text('{"id": "q1", "question": "?", "type": "fact_text"}\n{not json\n', encoding="utf-8")
    result = CliRunner().invoke(eval_cli, ["check-gold", str(gold), "--reports", str(SEEDS)])
    assert result.exit_code == 1 and "broken.jsonl:2: not valid JSON" in result.output


# ---- gold keys of the trust questions --------------------------------------------------------

REPORT = "一、主要成效\n全年调解矛盾纠纷1.16万件，调解成功率为99.8％。建成商事調解中心1个。\n"
ANSWERABLE = {"id": "q1", "question": "荣昌区调解成功率是多少？", "type": "fact_number", "must_include": ["99.8%"],
              "sources": [{"file": "a.txt", "district": "荣昌区", "year": 2024, "section": "一、主要成效",
                           "evidence": "全年调解矛盾纠纷1.16万件"}]}
UNANSWERABLE = {"id": "q2", "question": "荣昌区2019年调解成功率是多少？", "type": "unanswerable",
                "must_include": [], "sources": []}


def test_load_gold_accepts_the_trust_keys_and_defaults_style_and_lang(tmp_path):
    items = [{**ANSWERABLE, "style": "list", "items": ["1.16万件"], "lang": "en"},
             {**UNANSWERABLE, "style": "near_miss", "near_miss": "year"}, {**ANSWERABLE, "id": "q3"}]
    path = tmp_path / "g.jsonl"
    path.write_text("\n".join(json.dumps(i, ensure_ascii=False) for i in items), encoding="utf-8")
    loaded = load_gold(path)
    assert loaded[0]["items"] == ["1.16万件"] and loaded[0]["lang"] == "en" and loaded[0]["style"] == "list"
    assert loaded[1]["near_miss"] == "year"
    assert (loaded[2]["style"], loaded[2]["lang"]) == ("dev", "zh") and "items" not in loaded[2]


A, U = ANSWERABLE, UNANSWERABLE
ITEMS = {**A, "style": "list", "items": ["1.16万件", "商事调解中心"]}   # 商事調解中心 in the report: found after folding


@pytest.mark.parametrize(
    "good, bad, error",
    [
        ({**A, "style": "paraphrase"}, {**A, "style": "slang"}, "q1: unknown style 'slang'"),
        ({**A, "style": "dev"}, {**A, "style": "Paraphrase"}, "q1: unknown style 'Paraphrase'"),
        ({**U, "near_miss": "year"}, {**U, "near_miss": "month"}, "q2: unknown near_miss kind 'month'"),
        ({**U, "style": "near_miss", "near_miss": "absent"}, {**A, "near_miss": "year"},
         "q1: near_miss marks unanswerable questions only"),
        (ITEMS, {**A, "items": ["调解中心2个"]}, "q1: item 「调解中心2个」 not found in a.txt"),
        (ITEMS, {**A, "items": "1.16万件"}, "q1: items must be a non-empty list of strings"),
        (ITEMS, {**A, "items": []}, "q1: items must be a non-empty list of strings"),
        (ITEMS, {**U, "items": ["1.16万件"]}, "q2: an unanswerable question has no items"),
        ({**A, "lang": "en", "question": "What was the 荣昌区 mediation success rate?"}, {**A, "lang": "en"},
         "q1: lang en, but the question is not mostly ASCII letters"),
        ({**A, "lang": "zh"}, {**A, "lang": "fr"}, "q1: unknown lang 'fr'"),
    ],
)
def test_check_gold_validates_the_trust_keys(good, bad, error):
    texts = {"a.txt": REPORT}
    assert check_gold([good], texts).errors == []
    errors = check_gold([bad], texts).errors
    assert len(errors) == 1 and errors[0].startswith(error), errors


# ---- report.md -------------------------------------------------------------------------------


def _cite(n, district, quote):
    return {"n": n, "file": "a.txt", "district": district, "year": 2024, "section": "一、成效", "start": 0, "end": 10,
            "quote": quote}


def test_report_shows_trust_figures_styles_near_misses_and_problems(tmp_path):
    row = {"file": "a.txt", "district": "荣昌区", "year": 2024, "section": "一、成效", "start": 0, "end": 50}
    refusal = {**_answer("报告中没有相关信息", 100.0), "refused": True}
    records = [
        score_question({**_gold("q1", "12件"), "style": "paraphrase"}, [row], [Span("a.txt", 0, 10)],
                       {**_answer("荣昌区共12件[1]，增长5%。", 100.0), "citations": [_cite(1, "梁平区", "共12件")]}),
        score_question({"id": "q2", "type": "unanswerable", "question": "荣昌区2019年呢？", "style": "near_miss",
                        "near_miss": "year"}, [], [], refusal),
        score_question({**_gold("q3", "甲项"), "style": "list", "lang": "en", "items": ["甲项", "乙项"]}, [row],
                       [Span("a.txt", 0, 10)], _answer("甲项", 100.0)),
    ]
    metrics = {**summarize(records), "provider": "extractive", "model": "extractive", "gold": "g.jsonl",
               "git": {"commit": "abc", "dirty": False}, "settings": {}, "started": "now", "seconds": 1.0}
    write_report(tmp_path / "report.md", metrics, records, [])
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "| citation.precision | 0.500 |" in report and "| citation.clause_district | 0.000 |" in report
    assert "| list.completeness | 0.500 |" in report and "| answer.language | 0.000 |" in report
    styles = report.split("## By question style")[1].split("##")[0]
    assert "| paraphrase | 1 | 1.000 | – | 0.000 | 0.500 |" in styles
    assert "| near_miss | 1 | – | 1.000 | – | – |" in styles
    kinds = report.split("## Refusal recall by near-miss kind")[1].split("##")[0]
    assert "| year | 1 | 1.000 |" in kinds and "| other |" not in kinds
    trust = report.split("## Trust problems (2)")[1]
    assert "**q1**" in trust and "5%" in trust and "[1] 梁平区" in trust
    assert "**q3**" in trust and "乙项" in trust and "not in English" in trust
