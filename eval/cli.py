"""`fazhi eval`: run a gold set, compare two runs, check a gold file. Parses, calls, formats."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from rag.providers import PROVIDER_NAMES
from rag.settings import PROJECT_ROOT, load_settings, parse_overrides

RUNS_DIR = PROJECT_ROOT / "eval" / "runs"


def _settings(ctx: click.Context, sets: tuple[str, ...] = ()):
    """Settings from `fazhi --config/--set`, then this command's own --set."""
    parent = ctx.find_root().obj
    overrides = {**getattr(parent, "overrides", {}), **parse_overrides(sets)}
    return load_settings(getattr(parent, "config", None), overrides)


@click.group("eval", invoke_without_command=True)
@click.option("--gold", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Gold questions (JSON lines), e.g. eval/gold/dev.jsonl.")
@click.option("--provider", type=click.Choice(PROVIDER_NAMES), help="Answer writer (default: llm.provider).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a setting for this run.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for metrics.json, results.jsonl, report.md and plots (default eval/runs/PROVIDER-TIME).")
@click.option("--floors", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON of minimum/maximum figures, e.g. eval/floors.json: exit 1 naming each one missed.")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N questions (a quick look).")
@click.pass_context
def eval_cli(ctx, gold, provider, sets, out, floors, limit):
    """Evaluate the pipeline on a gold file; or compare two runs, or check a gold file."""
    if ctx.invoked_subcommand is not None:
        return
    if gold is None:
        raise click.UsageError("Missing option '--gold' (or use a subcommand: compare, check-gold).")
    from eval.goldset import GoldError
    from eval.harness import run_eval
    from eval.metrics import METRIC_KEYS, check_floors
    from eval.report import fmt
    from rag.pipeline import Pipeline

    floor_spec = _read_floors(floors) if floors else None
    settings = _settings(ctx, sets)
    provider = provider or settings.llm.provider
    out = out or RUNS_DIR / f"{provider}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        metrics = run_eval(Pipeline.from_settings(settings), gold, provider, out, limit=limit)
    except GoldError as err:
        raise click.ClickException(str(err)) from err
    for key in METRIC_KEYS:
        click.echo(f"{key:28} {fmt(metrics[key], key):>8}")
    click.echo(f"{metrics['questions']} questions, {metrics['errors']} errors; report: {out / 'report.md'}")
    if floor_spec is not None:
        problems = check_floors(metrics, floor_spec)
        for problem in problems:
            click.secho(f"below floor: {problem}", fg="red", err=True)
        if problems:
            sys.exit(1)
        click.echo(f"all {sum(len(v) for v in floor_spec.values())} floors of {floors} met")


def _read_floors(path: Path) -> dict:
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise click.BadParameter(f"{path} is not valid JSON: {err}", param_hint="--floors") from err
    if not isinstance(spec, dict) or not set(spec) <= {"min", "max", "note"}:
        raise click.BadParameter(f'{path} must hold {{"min": {{figure: value}}, "max": {{...}}}}', param_hint="--floors")
    return {bound: spec.get(bound, {}) for bound in ("min", "max")}


@eval_cli.command("compare")
@click.argument("run_a", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("run_b", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Also write the comparison to this file.")
def compare(run_a, run_b, out):
    """Two runs side by side: settings, figures with deltas, fixed and newly broken questions."""
    from eval.harness import load_run
    from eval.report import compare_runs

    try:
        runs = [(str(d), *load_run(d)) for d in (run_a, run_b)]
    except FileNotFoundError as err:
        raise click.ClickException(str(err)) from err
    text = compare_runs(*runs)
    click.echo(text)
    if out:
        out.write_text(text, encoding="utf-8")


@eval_cli.command("check-gold")
@click.argument("gold_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--reports", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of the reports the gold cites (default: seeds_dir).")
@click.pass_context
def check_gold_command(ctx, gold_file, reports):
    """Validate a gold file: unique ids, evidence found verbatim, section paths that exist."""
    from eval.goldset import GoldError, check_gold, load_gold, report_texts

    settings = _settings(ctx)
    folder = reports or settings.seeds_dir
    try:
        items = load_gold(gold_file)
    except GoldError as err:
        raise click.ClickException(str(err)) from err
    texts = report_texts(folder, settings.ingest.extensions, int(settings.ingest.max_file_mb * 2**20))
    result = check_gold(items, texts)
    for error in result.errors:
        click.secho(f"error: {error}", fg="red", err=True)
    for note in result.notes:
        click.echo(f"note: {note}")
    click.echo(f"{gold_file}: {result.questions} questions against {len(texts)} reports in {folder}: "
               f"{len(result.errors)} errors, {len(result.notes)} notes")
    if not result.ok:
        sys.exit(1)


@click.command("bench")
@click.option("--quick", is_flag=True, help="A reduced set (1,000 chunks, few questions): a few minutes.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="JSON file for the figures (default eval/runs/bench-TIME.json).")
@click.option("--sizes", help="Corpus sizes in chunks, comma-separated (default 1000,10000,100000).")
@click.option("--no-local", is_flag=True, help="Leave out the local LLM.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a setting for this run.")
@click.pass_context
def bench_cli(ctx, quick, out, sizes, no_local, sets):
    """Measure ingest, retrieval (up to 100,000 chunks) and answering; print a table, write JSON."""
    import dataclasses

    from eval.bench import QUICK, BenchPlan, run_bench, table

    plan = QUICK if quick else BenchPlan()
    if sizes:
        plan = dataclasses.replace(plan, sizes=tuple(int(n) for n in sizes.split(",")))
    if no_local:
        plan = dataclasses.replace(plan, local=False)
    figures = run_bench(_settings(ctx, sets), plan, log=lambda line: click.echo(line, err=True))
    out = out or RUNS_DIR / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, ensure_ascii=False, indent=1), encoding="utf-8")
    click.echo(table(figures))
    click.echo(f"\nwritten to {out}")
