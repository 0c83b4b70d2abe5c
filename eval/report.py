"""Human-readable output of evaluation runs: report.md, PNG plots, and the comparison of two runs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from eval.metrics import (
    LOWER_IS_BETTER,
    METRIC_KEYS,
    RETRIEVE_K,
    WRONG_ANSWER,
    failure_categories,
    near_miss_kind,
)

BY_TYPE_COLUMNS = (
    ("hit@1", "retrieval.hit@1"), ("hit@5", "retrieval.hit@5"), ("mrr", "retrieval.mrr"),
    ("accuracy", "answer.accuracy"), ("refusal recall", "refusal.recall"), ("false refusal", "refusal.false_rate"),
    ("cit. district", "citation.district_accuracy"), ("cit. section", "citation.section_accuracy"),
    ("cit. precision", "citation.precision"), ("numeric faith.", "faithfulness.numeric"),
    ("total p50 ms", "latency.total_p50"),
)
BY_STYLE_COLUMNS = (
    ("accuracy", "answer.accuracy"), ("refusal recall", "refusal.recall"), ("false refusal", "refusal.false_rate"),
    ("cit. precision", "citation.precision"),
)
KEY_SETTINGS = (
    "embedding.model", "ingest.chunk_tokens", "ingest.overlap_tokens", "retrieval.top_k", "retrieval.dense_k",
    "retrieval.keyword_k", "retrieval.dense_weight", "retrieval.keyword_weight", "llm.context_tokens",
    "answer.extractive_sentences",
)
RETRIEVED_SHOWN = 5


def fmt(value, key: str = "") -> str:
    """0.812 for fractions, 1234 for milliseconds, – for not measured."""
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if key.startswith("latency."):
        return f"{value:.0f}"
    if isinstance(value, int):
        return str(value)
    return f"{value:.3f}"


def cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def flatten(tree: dict, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def correct_share(records: list[dict]) -> float | None:
    return sum(r["scores"]["correct"] for r in records) / len(records) if records else None


# ---- plots ----------------------------------------------------------------------------------


def write_plots(out_dir: Path, metrics: dict, records: list[dict]) -> list[tuple[str, str]]:
    """hit@k curve, accuracy by question type and latency distribution as PNG; [(title, file name)]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = []
    answerable = [r for r in records if r["scores"]["answerable"]]
    ks = list(range(1, RETRIEVE_K + 1))

    fig, ax = plt.subplots(figsize=(6, 4))
    groups = [("all answerable", answerable)] + [
        (kind, [r for r in answerable if r["type"] == kind]) for kind in metrics["by_type"]
    ]
    for label, group in groups:
        if not group:
            continue
        ranks = [r["scores"]["first_hit"] for r in group]
        curve = [sum(1 for rank in ranks if rank and rank <= k) / len(group) for k in ks]
        ax.plot(ks, curve, marker="o", linewidth=2.5 if label == "all answerable" else 1,
                label=f"{label} (n={len(group)})")
    ax.set(xlabel="k (passages retrieved)", ylabel="hit@k", ylim=(0, 1.05), xticks=ks, title="Retrieval hit@k")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    plots.append(("Retrieval hit@k", _save(fig, out_dir / "hit_at_k.png")))

    fig, ax = plt.subplots(figsize=(6, 4))
    kinds = list(metrics["by_type"])
    shares = [correct_share([r for r in records if r["type"] == kind]) or 0.0 for kind in kinds]
    counts = [sum(1 for r in records if r["type"] == kind) for kind in kinds]
    bars = ax.bar(range(len(kinds)), shares, color=["#c44" if k == "unanswerable" else "#48a" for k in kinds])
    for bar, share, n in zip(bars, shares, counts):
        ax.text(bar.get_x() + bar.get_width() / 2, share + 0.02, f"{share:.2f}\nn={n}", ha="center", fontsize=7)
    ax.set_xticks(range(len(kinds)), kinds, rotation=30, ha="right", fontsize=8)
    ax.set(ylim=(0, 1.2), ylabel="share correct", title="Answer accuracy by type (unanswerable: refused)")
    fig.tight_layout()
    plots.append(("Accuracy by question type", _save(fig, out_dir / "accuracy_by_type.png")))

    fig, ax = plt.subplots(figsize=(6, 4))
    timings = [r["answer"]["timings"] for r in records if r["answer"]]
    series = [
        ("total", [t["total_ms"] for t in timings]),
        ("retrieve", [t["retrieve_ms"] for t in timings if t["retrieve_ms"] > 0]),
        ("first token", [t["first_token_ms"] for t in timings if t["first_token_ms"] > 0]),
    ]
    for label, values in series:
        if values:
            ax.hist(values, bins=20, alpha=0.5, label=f"{label} (n={len(values)})")
    for key, style in (("latency.total_p50", "--"), ("latency.total_p95", ":")):
        if metrics.get(key) is not None:
            label = f"{key.split('_')[-1]} {metrics[key]:.0f} ms"
            ax.axvline(metrics[key], color="black", linestyle=style, label=label)
    ax.set(xlabel="ms", ylabel="questions", title="Latency per question")
    ax.legend(fontsize=7)
    plots.append(("Latency distribution", _save(fig, out_dir / "latency.png")))
    return plots


def _save(fig, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path.name


# ---- report.md ------------------------------------------------------------------------------


def metrics_table(metrics: dict) -> list[str]:
    lines = ["| figure | value |", "| --- | ---: |"]
    lines += [f"| {key} | {fmt(metrics.get(key), key)} |" for key in METRIC_KEYS]
    return lines


def breakdown_table(metrics: dict, group: str, label: str, columns) -> list[str]:
    """One row per entry of metrics[group] (by_type, by_style), then one for all questions."""
    header = f"| {label} | n | " + " | ".join(name for name, _ in columns) + " |"
    lines = [header, "| --- | ---: |" + " ---: |" * len(columns)]
    for kind, m in [*metrics[group].items(), ("all", metrics)]:
        values = " | ".join(fmt(m.get(key), key) for _, key in columns)
        lines.append(f"| {kind} | {m['questions']} | {values} |")
    return lines


def near_miss_table(metrics: dict, records: list[dict]) -> list[str]:
    """Refusal recall of each near-miss kind that has questions."""
    counts = Counter(near_miss_kind(r) for r in records if not r["scores"]["answerable"])
    rows = [f"| {kind} | {counts[kind]} | {fmt(recall)} |"
            for kind, recall in metrics["refusal.recall_by_kind"].items() if counts[kind]]
    return ["| near miss | n | refusal recall |", "| --- | ---: | ---: |", *rows] if rows else ["none"]


def trust_problems(record: dict) -> list[str]:
    """What a record's trust figures found wrong: figures no closing citation states, clauses citing
    another district, list items left out, an English question answered in another language."""
    s = record["scores"]
    found = []
    if s["citation_precision"] and s["citation_precision"]["imprecise"]:
        found.append("figures no closing citation states: " + "、".join(s["citation_precision"]["imprecise"]))
    if s["clause_district"]:
        found += s["clause_district"]["wrong"]
    if s["items_missing"]:
        found.append("list lacks " + "、".join(s["items_missing"]))
    if s["language_ok"] is False:
        found.append("answer not in English")
    return found


def describe(record: dict) -> list[str]:
    """The markdown block of one question: question, expected, got, citations, retrieved, why."""
    expected = record["expected"]
    lines = [f"### {record['id']} · {record['type']}", "", f"- **Question:** {record['question']}"]
    if record["type"] == "unanswerable":
        lines.append("- **Expected:** a refusal (the reports do not say)")
    else:
        lines.append(f"- **Expected:** {expected['answer']} — must include: {'、'.join(expected['must_include'])}")
        lines.append("- **Gold sources:** " + "; ".join(
            f"{s['district']} · {s['section']}" for s in expected["sources"]))
    answer = record["answer"]
    if answer is None:
        lines.append(f"- **Got:** error — {record['error']}")
    else:
        flags = ", ".join(f for f, on in (("refused", answer["refused"]), ("ungrounded", not answer["grounded"])) if on)
        lines.append(f"- **Got{f' ({flags})' if flags else ''}:** {cell(answer['answer'])}")
        for c in answer["citations"]:
            lines.append(f"  - [{c['n']}] {c['district']} · {c['year']} · {c['section']} ({c['start']}–{c['end']})")
    if record["retrieved"]:
        shown = record["retrieved"][:RETRIEVED_SHOWN]
        first = record["scores"].get("first_hit")
        lines.append(f"- **Retrieved** (first hit at rank {first or '–'}): " + "; ".join(
            f"{n}.{'✓' if r.get('hit') else '✗'} {r['district']} · {r['section'].split(' > ')[-1][:24]}"
            for n, r in enumerate(shown, 1)))
    lines.append("- **Why:** " + ("; ".join(f"{x['category']} — {x['detail']}" for x in record["reasons"]) or "–"))
    return lines + [""]


def write_report(path: Path, metrics: dict, records: list[dict], plots: list[tuple[str, str]]) -> None:
    """report.md: run facts, the tables, the plots, then every failure and every other problem."""
    git = metrics.get("git") or {}
    settings = flatten(metrics.get("settings") or {})
    failures = [r for r in records if r["failed"]]
    problems = [r for r in records if not r["failed"] and r["reasons"]]
    distrusted = [(r, found) for r in records if (found := trust_problems(r))]
    lines = [
        f"# Evaluation: {metrics['provider']} ({metrics['model']})",
        "",
        f"- gold: `{metrics['gold']}` — {metrics['questions']} questions, {metrics['answerable']} answerable, "
        f"{metrics['errors']} errors",
        f"- commit: `{git.get('commit') or 'unknown'}`{' (uncommitted changes)' if git.get('dirty') else ''}; "
        f"run {metrics['started']}, {metrics['seconds']} s",
        "- settings: " + ", ".join(f"{k}={settings[k]}" for k in KEY_SETTINGS if k in settings),
        "",
        "## Metrics",
        "",
        "Fractions in 0..1, latency in ms. Retrieval, accuracy, citations and false refusals cover answerable "
        "questions; refusal recall the unanswerable ones. A hit is a passage of the gold file overlapping a gold "
        f"evidence span, in the top k of {RETRIEVE_K}. Citation precision and clause district cover every answer "
        "that is not a refusal: the share of stated figures that a quote of the [n] markers right after them "
        "states, and of marked clauses naming a district whose citations are all of it. List completeness: share "
        "of a list question's items given; answer language: share of English questions answered in English.",
        "",
        *metrics_table(metrics),
        "",
        "## By question type",
        "",
        *breakdown_table(metrics, "by_type", "type", BY_TYPE_COLUMNS),
        "",
        "## By question style",
        "",
        *breakdown_table(metrics, "by_style", "style", BY_STYLE_COLUMNS),
        "",
        "## Refusal recall by near-miss kind",
        "",
        *near_miss_table(metrics, records),
        "",
        "## Failure categories",
        "",
        "Questions showing each problem (a question can show several; only "
        + ", ".join(f"`{c}`" for c in WRONG_ANSWER) + " make an answer wrong).",
        "",
        "| category | questions |",
        "| --- | ---: |",
        *[f"| {category} | {n} |" for category, n in failure_categories(records).items()],
        "",
        "## Plots",
        "",
        *[f"![{title}]({name})" for title, name in plots],
        "",
        f"## Failures ({len(failures)} of {len(records)})",
        "",
    ]
    for record in failures:
        lines += describe(record)
    lines += [f"## Right answers with other problems ({len(problems)})", ""]
    for record in problems:
        lines.append(f"- **{record['id']}** ({record['type']}) {record['question']} — "
                     + "; ".join(f"{x['category']}: {x['detail']}" for x in record["reasons"]))
    lines += ["", f"## Trust problems ({len(distrusted)})", ""]
    for record, found in distrusted:
        lines.append(f"- **{record['id']}** ({record['type']}, {record['style']}) {record['question']} — "
                     + "; ".join(found))
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")


# ---- compare --------------------------------------------------------------------------------


def _delta(key: str, a, b) -> str:
    if a is None or b is None:
        return "–"
    diff = b - a
    if abs(diff) < 1e-9:
        return "="
    better = diff < 0 if key.startswith(LOWER_IS_BETTER) else diff > 0
    number = f"{diff:+.0f}" if key.startswith("latency.") else f"{diff:+.3f}"
    return f"{number} {'▲' if better else '▼'}"


def _why_wrong(record: dict) -> str:
    return "; ".join(f"{x['category']}: {x['detail']}" for x in record["reasons"] if x["category"] in WRONG_ANSWER) or "–"


def compare_runs(a: tuple[str, dict, list[dict]], b: tuple[str, dict, list[dict]]) -> str:
    """Markdown: settings that differ, every figure side by side with its delta, fixed and newly broken questions.

    a, b: (label, metrics, records) of the two runs; ▲ marks a change for the better.
    """
    (name_a, ma, ra), (name_b, mb, rb) = a, b
    lines = [f"# Comparison: A = {name_a}, B = {name_b}", ""]
    for label, m in (("A", ma), ("B", mb)):
        git = m.get("git") or {}
        lines.append(f"- {label}: {m.get('provider')} ({m.get('model')}), commit `{git.get('commit') or 'unknown'}`, "
                     f"{m.get('questions')} questions from `{m.get('gold')}`")
    sa, sb = flatten(ma.get("settings") or {}), flatten(mb.get("settings") or {})
    differing = [k for k in sorted(sa.keys() | sb.keys()) if sa.get(k) != sb.get(k)]
    lines += ["", "## Settings that differ", ""]
    if differing:
        lines += ["| setting | A | B |", "| --- | --- | --- |"]
        lines += [f"| {k} | {cell(sa.get(k, '–'))} | {cell(sb.get(k, '–'))} |" for k in differing]
    else:
        lines.append("none")
    lines += ["", "## Metrics", "", "| figure | A | B | Δ |", "| --- | ---: | ---: | ---: |"]
    for key in METRIC_KEYS:
        va, vb = ma.get(key), mb.get(key)
        lines.append(f"| {key} | {fmt(va, key)} | {fmt(vb, key)} | {_delta(key, va, vb)} |")
    lines += ["", "## Answer accuracy by type (unanswerable: refusal recall)", "",
              "| type | A | B | Δ |", "| --- | ---: | ---: | ---: |"]
    for kind in dict.fromkeys([*ma.get("by_type", {}), *mb.get("by_type", {})]):
        key = "refusal.recall" if kind == "unanswerable" else "answer.accuracy"
        va, vb = (m.get("by_type", {}).get(kind, {}).get(key) for m in (ma, mb))
        lines.append(f"| {kind} | {fmt(va)} | {fmt(vb)} | {_delta(key, va, vb)} |")
    by_a, by_b = {r["id"]: r for r in ra}, {r["id"]: r for r in rb}
    shared = [qid for qid in by_a if qid in by_b]
    fixed = [qid for qid in shared if by_a[qid]["failed"] and not by_b[qid]["failed"]]
    broken = [qid for qid in shared if not by_a[qid]["failed"] and by_b[qid]["failed"]]
    sections = ((f"Fixed in B ({len(fixed)})", fixed, by_a), (f"Newly broken in B ({len(broken)})", broken, by_b))
    for title, ids, source in sections:
        lines += ["", f"## {title}", ""]
        when = "was" if source is by_a else "now"
        lines += [f"- **{qid}** ({source[qid]['type']}) {source[qid]['question']} — {when}: {_why_wrong(source[qid])}"
                  for qid in ids] or ["none"]
    only = [(label, [q for q in mine if q not in other]) for label, mine, other in (("A", by_a, by_b), ("B", by_b, by_a))]
    if any(ids for _, ids in only):
        lines += ["", "## Questions in one run only", ""]
        lines += [f"- only in {label}: {', '.join(ids)}" for label, ids in only if ids]
    still = sum(1 for qid in shared if by_a[qid]["failed"] and by_b[qid]["failed"])
    lines += ["", f"{len(shared)} questions in both runs: {len(fixed)} fixed, {len(broken)} newly broken, "
              f"{still} failing in both."]
    return "\n".join(lines) + "\n"
