"""The ``llmstruct`` command: a thin layer over the library (typer + rich)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from llmstruct.errors import LlmstructError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Grounded JSON from Chinese government reports.")
console = Console()
err = Console(stderr=True)

EXIT_OK, EXIT_SOME_FAILED, EXIT_ALL_FAILED, EXIT_USAGE = 0, 1, 2, 64


def _error(message: str) -> None:
    """One line per problem on stderr, never wrapped, so scripts can grep it."""
    err.print(f"error: {message}", soft_wrap=True, markup=False, highlight=False, style="red")


@app.command()
def structure(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (txt, md, html, pdf, docx)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder for <doc_id>.json")] = Path("out"),
    rules_only: Annotated[bool, typer.Option("--rules-only", help="Fill only what rules can read; no model")] = False,
) -> None:
    """Structure reports into DocumentRecord JSON, one file per report.

    Exit code 0 when every file succeeded, 1 when some failed, 2 when all failed.
    """
    from llmstruct.pipeline import expand_paths, structure_file, write_records

    if not rules_only:
        _error("the model pass is not available yet; run with --rules-only")
        raise typer.Exit(EXIT_USAGE)
    files = expand_paths(paths)
    if not files:
        _error("no input files")
        raise typer.Exit(EXIT_USAGE)
    failures: list[str] = []
    rows: list[tuple[str, str, str, int, int]] = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True, disable=len(files) < 3) as bar:
        task = bar.add_task("structuring", total=len(files))
        for f in files:
            try:
                result = structure_file(f)
                write_records(result.records, out)
                for rec in result.records:
                    rows.append((rec.doc_id, rec.doc_type, rec.title.name if rec.title else "", len(rec.items),
                                 sum(len(i.units) for i in rec.items)))
            except LlmstructError as exc:
                failures.append(str(exc))
                _error(str(exc))
            except Exception as exc:  # one bad file must not stop the batch
                failures.append(f"{f}: {type(exc).__name__}: {exc}")
                _error(f"{f}: unexpected {type(exc).__name__}: {exc}")
            bar.advance(task)
    table = Table(title=f"{len(rows)} reports from {len(files) - len(failures)}/{len(files)} files -> {out}")
    for col in ("doc_id", "type", "title", "items", "units"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r[0], r[1], r[2][:40], str(r[3]), str(r[4]))
    console.print(table)
    if failures:
        raise typer.Exit(EXIT_ALL_FAILED if len(failures) == len(files) else EXIT_SOME_FAILED)


@app.command()
def schema() -> None:
    """Print the JSON Schema of a DocumentRecord."""
    from llmstruct.schema import json_schema

    sys.stdout.write(json.dumps(json_schema(), ensure_ascii=False, indent=2) + "\n")


@app.command()
def bench(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Inputs (default: seeds/)")] = None,
    repeat: Annotated[int, typer.Option(help="Timed repetitions; the median is reported")] = 5,
) -> None:
    """Print benchmark numbers as JSON (rules-only throughput for now)."""
    from llmstruct.bench import rules_benchmark
    from llmstruct.config import get_settings

    files = paths or [get_settings().seeds_dir]
    sys.stdout.write(json.dumps(rules_benchmark(files, repeat=repeat), ensure_ascii=False, indent=2) + "\n")


models_app = typer.Typer(no_args_is_help=True, help="Offline model presets: list, prepare, verify.")
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list() -> None:
    """Presets, their PyPI part packages and whether they are prepared."""
    from llmstruct.models.provision import hf_dir, is_hf_dir, list_presets, pip_requirements

    table = Table(title="model presets")
    for col in ("preset", "prepared", "PyPI parts"):
        table.add_column(col, overflow="fold")
    for name in list_presets():
        reqs = pip_requirements(name)
        parts = f"{reqs[0]} … {reqs[-1]} ({len(reqs)} packages)"
        table.add_row(name, "yes" if is_hf_dir(hf_dir(name)) else "no", parts)
    console.print(table)


@models_app.command("prepare")
def models_prepare(
    name: Annotated[Optional[str], typer.Argument(help="Preset, local .gguf file or transformers folder")] = None,
) -> None:
    """Assemble the parts, check size and sha256, convert once to a transformers folder."""
    from llmstruct.models.provision import prepare

    try:
        path = prepare(name)
    except LlmstructError as exc:
        _error(str(exc))
        raise typer.Exit(EXIT_SOME_FAILED) from None
    console.print(f"ready: {path}")


@models_app.command("verify")
def models_verify(name: Annotated[str, typer.Argument(help="Preset name")] = "qwen2.5-coder-0.5b") -> None:
    """Check the assembled file's size and sha256 against the pinned values."""
    from llmstruct.models.provision import verify

    try:
        result = verify(name)
    except LlmstructError as exc:
        _error(str(exc))
        raise typer.Exit(EXIT_SOME_FAILED) from None
    sys.stdout.write(json.dumps(result, ensure_ascii=False, indent=2, default=str) + "\n")
    if not result.get("ok"):
        raise typer.Exit(EXIT_SOME_FAILED)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
