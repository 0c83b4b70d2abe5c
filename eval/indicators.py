"""How well the 指标库 finds the indicators of the seed reports: precision and recall against
eval/gold/indicators.jsonl, with how often the metric phrase and the kind agree.

A predicted row matches a gold row when file, value and unit agree and its sentence overlaps
the gold evidence; each row matches at most once. `python -m eval.indicators` prints the
figures, then every miss and false positive (`--json PATH` also writes them).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rag.indicators import Indicator, MetricKeys, extract_indicators
from rag.loading import load_report
from rag.metadata import report_metadata
from rag.settings import PROJECT_ROOT, load_settings
from rag.text import fold

GOLD = PROJECT_ROOT / "eval" / "gold" / "indicators.jsonl"


@dataclass
class IndicatorScore:
    """Scores over all rows, and the rows that fell short."""

    precision: float
    recall: float
    metric_match: float   # share of matched rows whose phrases hold one another (folded)
    kind_accuracy: float  # share of matched rows of the gold kind
    gold: int
    predicted: int
    matched: int
    misses: list[dict] = field(default_factory=list)            # gold rows no prediction matched
    false_positives: list[dict] = field(default_factory=list)   # predictions no gold row matched
    wrong_kind: list[dict] = field(default_factory=list)        # matched, of another kind: gold and predicted


def read_gold(path: Path = GOLD) -> list[dict]:
    """The gold rows of a JSON-lines file."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def predict(folder: Path, files: list[str], keys: MetricKeys | None = None) -> tuple[dict[str, list[Indicator]], dict[str, str]]:
    """The indicators, and the text, of each named report in folder."""
    max_bytes = load_settings().ingest.max_file_mb * 2**20
    predicted, texts = {}, {}
    for file in files:
        report = load_report(Path(folder) / file, max_bytes=max_bytes)
        predicted[file] = extract_indicators(report, report_metadata(report), keys)
        texts[file] = report.text
    return predicted, texts


def score(gold: list[dict], predicted: dict[str, list[Indicator]], texts: dict[str, str]) -> IndicatorScore:
    """Match gold rows to predicted ones (see the module docstring) and score them."""
    used: set[int] = set()
    matched: list[tuple[dict, Indicator]] = []
    misses = []
    for row in gold:
        start = texts[row["file"]].find(row["evidence"])
        end = start + len(row["evidence"])
        options = [
            p for p in predicted.get(row["file"], [])
            if id(p) not in used and abs(p.value - row["value"]) < 1e-9 and fold(p.unit) == fold(row["unit"])
            and p.start < end and start < p.end
        ]
        if not options:
            misses.append(row)
            continue
        best = max(options, key=lambda p: (_same_metric(row["metric"], p.metric), -abs(p.start - start)))
        used.add(id(best))
        matched.append((row, best))
    all_predicted = [p for rows in predicted.values() for p in rows]
    n = len(matched)
    return IndicatorScore(
        precision=n / len(all_predicted) if all_predicted else 1.0,
        recall=n / len(gold) if gold else 1.0,
        metric_match=sum(_same_metric(g["metric"], p.metric) for g, p in matched) / n if n else 0.0,
        kind_accuracy=sum(g["kind"] == p.kind for g, p in matched) / n if n else 0.0,
        gold=len(gold),
        predicted=len(all_predicted),
        matched=n,
        misses=misses,
        false_positives=[_brief(p) for p in all_predicted if id(p) not in used],
        wrong_kind=[{"gold": g, "predicted": _brief(p)} for g, p in matched if g["kind"] != p.kind],
    )


def _same_metric(gold: str, predicted: str) -> bool:
    a, b = fold(gold), fold(predicted)
    return bool(a and b) and (a in b or b in a)


def _brief(p: Indicator) -> dict:
    return {k: v for k, v in asdict(p).items() if k in ("file", "metric", "value", "unit", "kind", "about_year", "sentence")}


def main(argv: list[str] | None = None) -> IndicatorScore:
    parser = argparse.ArgumentParser(prog="python -m eval.indicators", description=__doc__.splitlines()[0])
    parser.add_argument("--gold", type=Path, default=GOLD)
    parser.add_argument("--reports", type=Path, default=PROJECT_ROOT / "seeds", help="folder of the gold's reports")
    parser.add_argument("--json", type=Path, help="also write the score and its rows here")
    args = parser.parse_args(argv)
    gold = read_gold(args.gold)
    predicted, texts = predict(args.reports, sorted({row["file"] for row in gold}))
    result = score(gold, predicted, texts)
    print(f"precision     {result.precision:.3f}  ({result.matched}/{result.predicted})")
    print(f"recall        {result.recall:.3f}  ({result.matched}/{result.gold})")
    print(f"metric match  {result.metric_match:.3f}")
    print(f"kind accuracy {result.kind_accuracy:.3f}")
    for row in result.misses:
        print(f"miss\t{row['file']}\t{row['value']:g}{row['unit']}\t{row['metric']}\t{row['evidence']}")
    for p in result.false_positives:
        print(f"false positive\t{p['file']}\t{p['value']:g}{p['unit']}\t{p['metric']}\t{p['sentence'][:60]}")
    for pair in result.wrong_kind:
        g, p = pair["gold"], pair["predicted"]
        print(f"wrong kind\t{g['file']}\t{g['value']:g}{g['unit']}\tgold {g['kind']}, predicted {p['kind']}\t{g['evidence']}")
    if args.json:
        args.json.write_text(json.dumps(asdict(result), ensure_ascii=False, indent=1), encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
