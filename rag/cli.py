"""The `fazhi` command: a thin layer that parses, calls the Pipeline, and formats."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from rag.errors import RagError
from rag.metadata import FIRST_YEAR, LAST_YEAR
from rag.providers import PROVIDER_NAMES
from rag.settings import load_settings, parse_overrides


class _Context:
    def __init__(self, config: str | None, overrides: dict):
        self.config = config
        self.overrides = overrides
        self._pipeline = None

    @property
    def settings(self):
        return load_settings(self.config, self.overrides)

    @property
    def pipeline(self):
        """The pipeline; its embedding model loads when first used, so `kb list` does not wait for it."""
        if self._pipeline is None:
            from rag.components import LazyEmbeddings, build_embeddings
            from rag.pipeline import Pipeline

            settings = self.settings
            self._pipeline = Pipeline.from_settings(
                settings, embeddings=LazyEmbeddings(lambda: build_embeddings(settings)))
        return self._pipeline


class RagErrorsGroup(click.Group):
    """Turns RagError into a message and exit code 1, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RagError as err:
            click.secho(f"错误: {err}", fg="red", err=True)
            sys.exit(1)


@click.group(cls=RagErrorsGroup)
@click.option("--config", "config", envvar="FAZHI_CONFIG", help="Settings YAML (default config/default.yaml).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a setting, e.g. llm.provider=extractive.")
@click.pass_context
def main(ctx, config, sets):
    """fazhi-qa: cited answers over 法治政府建设 reports."""
    ctx.obj = _Context(config, parse_overrides(sets))


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (no progress bar).")
@click.pass_obj
def ingest(obj, paths, as_json):
    """Ingest report files or folders (default: seeds/)."""
    from tqdm import tqdm

    bar = None

    def progress(file, done, total):
        nonlocal bar
        if as_json:
            return
        if bar is None:
            bar = tqdm(total=total, unit="chunk", desc="embedding")
        bar.set_postfix_str(file)
        bar.update(done - bar.n)

    try:
        summary = obj.pipeline.ingest(list(paths) or None, progress=progress)
    except FileNotFoundError as err:
        raise click.UsageError(str(err)) from err
    finally:
        if bar is not None:
            bar.close()
    s = summary
    if as_json:
        click.echo(json.dumps(s.as_dict(), ensure_ascii=False))
        sys.exit(2 if s.failed else 0)
    click.echo(
        f"files: {len(s.new)} new, {len(s.unchanged)} unchanged, {len(s.replaced)} replaced, {len(s.failed)} failed; "
        f"chunks: {s.chunks_embedded} embedded, {s.chunks_total} in index; "
        f"{s.seconds:.1f} s ({s.chunks_per_s:.1f} chunks/s)"
    )
    if s.reading:
        click.echo("读取: " + ", ".join(_reading(ext, r) for ext, r in
                                         sorted(s.reading.items(), key=lambda item: -item[1]["seconds"])))
    for file, reason in s.failed.items():
        click.secho(f"  failed {file}: {reason}", fg="yellow", err=True)
    if s.failed:
        sys.exit(2)


def _reading(extension: str, entry: dict) -> str:
    """「.pdf 3 files 14.2 s (6 pages OCR)」: where the time of reading files went."""
    files, pages, seconds = entry["files"], entry["ocr_pages"], entry["seconds"]
    ocr = f" ({pages} page{'s' * (pages != 1)} OCR)" if pages else ""
    return f"{extension} {files} file{'s' * (files != 1)} {seconds:.{1 if seconds >= 1 else 2}f} s{ocr}"


def _echo_rows(rows: list[dict], as_json: bool, line) -> None:
    """Rows as a JSON list, or one tab-separated line each."""
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    for row in rows:
        click.echo(line(row))


@main.group()
def kb():
    """Inspect and edit the knowledge base."""


@kb.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def kb_list(obj, as_json):
    """One row per report: file, district, year, chunks, body, title; then which need fixing."""
    from rag.schema import UNKNOWN_DISTRICT_TEXT, UNKNOWN_YEAR_TEXT

    rows = obj.pipeline.reports()
    _echo_rows(
        rows, as_json,
        lambda r: (f"{r['file']}\t{r['district'].strip() or UNKNOWN_DISTRICT_TEXT}\t{r['year'] or UNKNOWN_YEAR_TEXT}"
                   f"\t{r['chunks']}\t{r['body']}\t{r['title']}"),
    )
    no_district = [r["file"] for r in rows if not r["district"].strip()]
    no_year = [r["file"] for r in rows if not r["year"]]
    if (no_district or no_year) and not as_json:
        listed = "；".join(f"{what}：{'、'.join(files)}" for what, files in
                          ((UNKNOWN_DISTRICT_TEXT, no_district), (UNKNOWN_YEAR_TEXT, no_year)) if files)
        click.secho(
            f"需要改正的报告（{listed}）：问到某个区县或年份时检索不到它们。"
            "改正：在界面「知识库」中选中报告填写区县、年份后「保存并重新导入」；"
            '或 PATCH /api/reports/<file>，正文如 {"district": "荣昌区", "year": 2024}；'
            "或在报告旁写 <file>.meta.yaml（district: 荣昌区 与 year: 2024 两行）后对报告重新运行 fazhi ingest。",
            fg="yellow", err=True,
        )


@kb.command("chunks")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def kb_chunks(obj, as_json):
    """Every chunk: chunk_id, file, district, year, section, start, end, text."""
    from rag import schema

    keys = (schema.CHUNK_ID, schema.FILE, schema.DISTRICT, schema.YEAR, schema.SECTION, schema.START, schema.END)
    rows = [{**{k: d.metadata[k] for k in keys}, "text": d.page_content} for d in obj.pipeline.kb.chunks()]
    _echo_rows(rows, as_json, lambda r: f"{r['file']}\t{r['start']}-{r['end']}\t{r['section']}\t{r['text'][:40]}…")


@kb.command("remove")
@click.argument("file")
@click.pass_obj
def kb_remove(obj, file):
    """Remove one report from the index."""
    try:
        obj.pipeline.remove_report(file)
    except KeyError:
        raise click.UsageError(f"No report named {file} in the index: see `fazhi kb list`.") from None
    click.echo(f"removed {file}")


@kb.command("check")
@click.option("--repair", is_flag=True, help="Mend what can be mended, then check again.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def kb_check(obj, repair, as_json):
    """Check that Chroma, the manifest, the search index and the uploads agree (exit 2 if not)."""
    result = obj.pipeline.kb_check(repair=repair)
    if as_json:
        click.echo(json.dumps(result.as_dict(), ensure_ascii=False, indent=1))
        sys.exit(0 if result.ok else 2)
    for problem in result.problems:
        status = "left" if problem in result.remaining else "repaired"
        click.echo(f"{status if repair else 'problem'}\t{problem.kind}\t{problem.subject}\t{problem.detail}")
    size = f"{result.reports} reports, {result.chunks} chunks"
    if result.ok:
        mended = f"; {len(result.problems)} problems repaired" if result.problems else ""
        click.echo(f"knowledge base OK: {size}{mended}")
        return
    if repair:
        click.secho(f"{len(result.remaining)} of {len(result.problems)} problems need you ({size}): see above.",
                    fg="yellow", err=True)
    else:
        click.secho(f"{len(result.problems)} problems ({size}): run `fazhi kb check --repair` to mend them "
                    "(what it does is said above).", fg="yellow", err=True)
    sys.exit(2)


@main.command()
@click.argument("question")
@click.option("--provider", type=click.Choice(PROVIDER_NAMES))
@click.option("--district", "districts", multiple=True, metavar="NAME",
              help="Search only this district's reports (repeatable).")
@click.option("--year", "years", multiple=True, type=click.IntRange(FIRST_YEAR, LAST_YEAR),
              help="Search only this year's reports (repeatable).")
@click.option("--conversation", "conversation_id", metavar="ID",
              help="Continue a stored conversation: its earlier turns are the history, and this one is kept.")
@click.option("--new-conversation", is_flag=True, help="Start a stored conversation; its id is printed to stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print only the Answer, as JSON.")
@click.pass_obj
def ask(obj, question, provider, districts, years, conversation_id, new_conversation, as_json):
    """Ask a question; prints the answer as it is written, then its sources."""
    if conversation_id and new_conversation:
        raise click.UsageError("Give --conversation ID or --new-conversation, not both.")
    pipeline = obj.pipeline
    filters = {key: list(values) for key, values in (("districts", districts), ("years", years)) if values} or None
    if new_conversation:
        conversation_id = pipeline.conversations.create().id
    if conversation_id:
        stream = pipeline.converse(conversation_id, question, filters, provider)
    else:
        stream = pipeline.stream(question, filters=filters, provider=provider)
    if as_json:
        click.echo(stream.answer.model_dump_json(indent=2))
    else:
        for delta in stream:
            click.echo(delta, nl=False)
        click.echo("\n")
        for c in stream.answer.citations:
            click.echo(f"  [{c.n}] {c.label()} 「{c.quote}」")
    if new_conversation:
        click.echo(f"conversation {conversation_id}: follow up with --conversation {conversation_id}", err=True)


@main.command()
@click.option("--metric", metavar="KEY_OR_WORDS", help="A metric key, or words its phrase contains (纠错率).")
@click.option("--district", metavar="NAME", help="Only this district's figures.")
@click.option("--year", type=click.IntRange(FIRST_YEAR, LAST_YEAR), help="Only figures about this year.")
@click.option("--csv", "as_csv", is_flag=True, help="Print the rows as CSV (every field and the citation label).")
@click.pass_obj
def indicators(obj, metric, district, year, as_csv):
    """The 指标库: the metrics with their counts, or with --metric/--district/--year (or --csv) the figures."""
    from rag.indicator_table import to_csv, value_text

    pipeline = obj.pipeline
    metrics = pipeline.indicator_metrics()
    if not metrics:
        click.secho("no indicators yet: run `fazhi ingest` (the table is filled as reports are ingested).",
                    fg="yellow", err=True)
        sys.exit(1)
    if not (metric or district or year or as_csv):
        for m in metrics:
            click.echo(f"{m.metric_key}\t{m.unit}\t{m.count}\t{'、'.join(m.districts)}")
        return
    rows = pipeline.indicator_rows(metric, district, year)
    if as_csv:
        click.echo(to_csv(rows), nl=False)
    else:
        for r in rows:
            click.echo(f"{r.metric_key}\t{r.district}\t{r.about_year}\t{value_text(r)}{r.unit}\t{r.kind}\t{r.section}")
    if not rows:
        click.secho("no figures match: run `fazhi indicators` for the metrics and their districts.",
                    fg="yellow", err=True)


@main.group()
def models():
    """Offline models."""


@models.command("prepare")
@click.option("--llm/--no-llm", default=True, help="Also assemble the local LLM's GGUF file.")
@click.pass_obj
def models_prepare(obj, llm):
    """Build the offline embedding model folder, tiktoken cache and local LLM file."""
    from rag.models import prepare_models

    summary = prepare_models(obj.settings, include_llm=llm)
    for key, value in summary.items():
        click.echo(f"{key}: {value}")

from eval.cli import bench_cli, eval_cli  # noqa: E402
main.add_command(eval_cli, "eval")
main.add_command(bench_cli, "bench")


@main.command()
@click.option("--host", default=None, help="Address to listen on (default: server.host).")
@click.option("--port", type=int, default=None, help="Port (default: server.port).")
@click.pass_obj
def serve(obj, host, port):
    """Serve the chat UI at / and the HTTP API (/api, /v1, /docs) beside it."""
    import uvicorn

    from rag.api import create_app

    settings = obj.settings
    host, port = host or settings.server.host, port or settings.server.port
    pipeline = obj.pipeline
    # the embedding model loads now, not at the first question, and a broken one stops the start
    pipeline.kb.embeddings.embed_query("预热")
    app = create_app(pipeline)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    click.echo(f"fazhi-qa: chat UI at http://{shown}:{port}/  ·  API docs at http://{shown}:{port}/docs")
    uvicorn.run(app, host=host, port=port, log_level="warning")


if __name__ == "__main__":
    main()
