"""The ``llmstruct`` command: a thin layer over the library (typer + rich)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from llmstruct.answer.asker import Asker
from llmstruct.app.corpus import open_corpus
from llmstruct.app.review import review_dir
from llmstruct.app.webapp import launch
from llmstruct.app.wiring import backend_from_settings, store_from_settings
from llmstruct.config import Settings, load_settings
from llmstruct.structure.coverage import figure_share
from llmstruct.errors import ConfigError, LlmstructError
from llmstruct.eval.bench.answers import answer_benchmark
from llmstruct.eval.bench.load import brief as load_brief
from llmstruct.eval.bench.load import failures as load_failures
from llmstruct.eval.bench.load import load_benchmark
from llmstruct.eval.bench.retrieval import retrieval_benchmark
from llmstruct.eval.bench.structure import (
    corpus_benchmark,
    model_benchmark,
    rules_benchmark,
)
from llmstruct.eval.gold import load_questions
from llmstruct.eval.report import to_markdown, write_reports
from llmstruct.eval.runner import (
    EvalOptions,
    SuiteError,
    check_gate,
    load_suite,
    load_thresholds,
    run_eval,
)
from llmstruct.indexing import index_paths
from llmstruct.ingest.paths import expand_paths
from llmstruct.models.provision import (
    hf_dir,
    is_hf_dir,
    list_presets,
    pip_requirements,
    prepare,
    verify,
)
from llmstruct.schema import json_schema
from llmstruct.search.hybrid import MODES
from llmstruct.search.hybrid import search as run_search
from llmstruct.structure.batch import BatchEvents, run_batch

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Grounded JSON from Chinese government reports.")
console = Console()
err = Console(stderr=True)

EXIT_OK, EXIT_SOME_FAILED, EXIT_ALL_FAILED, EXIT_USAGE = 0, 1, 2, 64


_invocation: dict[str, Settings] = {}


def _error(message: str) -> None:
    """One line per problem on stderr, never wrapped, so scripts can grep it."""
    err.print(f"error: {message}", soft_wrap=True, markup=False, highlight=False, style="red")


@app.callback()
def _load_settings(
    config: Annotated[Path | None, typer.Option(
        "--config", help="TOML settings file (default: LLMSTRUCT_CONFIG, else ~/.config/llmstruct/config.toml)")] = None,
) -> None:
    """Grounded JSON from Chinese government reports."""
    try:
        _invocation["settings"] = load_settings(config=config)
    except ConfigError as exc:
        _error(str(exc))
        raise typer.Exit(EXIT_USAGE) from None


def _settings() -> Settings:
    """The settings read once for this invocation (defaults, the config file, LLMSTRUCT_* env)."""
    return _invocation["settings"]


@app.command()
def structure(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (txt, md, html, pdf, docx)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder for <doc_id>.json and run.jsonl")] = Path("out"),
    rules_only: Annotated[bool, typer.Option("--rules-only", help="Fill only what rules can read; no model")] = False,
    backend: Annotated[Optional[str], typer.Option(help="transformers | llamacpp | vllm (default: config)")] = None,
    model: Annotated[Optional[str], typer.Option(help="Preset name, .gguf file or transformers folder")] = None,
    endpoint: Annotated[Optional[str], typer.Option(help="vllm serve URL, e.g. http://127.0.0.1:8000")] = None,
    workers: Annotated[int, typer.Option(help="Items in flight at once: batch rows locally, requests on a server")] = 8,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from its checkpoints")] = False,
    only: Annotated[Optional[str], typer.Option(help="Comma-separated item ids (doc#3) or seq numbers to label")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not reuse or store model answers by content hash")] = False,
) -> None:
    """Structure reports into DocumentRecord JSON, one file per report.

    Exit code 0 when every file succeeded, 1 when some failed, 2 when all failed, 64 on usage errors.
    """
    files = expand_paths(paths)
    if not files:
        _error("no input files")
        raise typer.Exit(EXIT_USAGE)
    engine = None
    if not rules_only:
        engine = _backend(backend, model, endpoint, workers)
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("structuring", total=None, rate="")
        started = time.perf_counter()
        tokens = [0]

        def on_plan(n_files: int, n_items: int) -> None:
            bar.update(task, total=n_items or n_files, description="model pass" if n_items else "rules")

        def on_items(n: int, toks: int) -> None:
            tokens[0] += toks
            bar.advance(task, n)
            t = max(time.perf_counter() - started, 1e-9)
            done = bar.tasks[0].completed
            bar.update(task, rate=f"{done / t:.2f} items/s {tokens[0] / t:.1f} tok/s")

        def on_file(f: Path) -> None:
            if engine is None:
                bar.advance(task, 1)

        result = run_batch(files, out, backend=engine, resume=resume, batch_size=workers,
                           only=set(only.split(",")) if only else None, use_cache=not no_cache,
                           cache_dir=_settings().cache_dir, max_file_mb=_settings().max_file_mb,
                           events=BatchEvents(on_plan=on_plan, on_items=on_items, on_file=on_file))
    for msg in result.failures:
        _error(msg)
    for rec in result.records:
        for w in rec.warnings:
            err.print(f"warning: {rec.doc_id}: {w}", soft_wrap=True, markup=False, highlight=False, style="yellow")
    table = Table(title=f"{len(result.records)} reports from {len(files) - len(result.failures)}/{len(files)} files -> {out}"
                        f" in {result.seconds:.1f} s")
    for col in ("doc_id", "type", "title", "items", "units", "indicators", "figures in items"):
        table.add_column(col, overflow="fold")
    for rec in result.records:
        n_ind = sum(len(i.targets) + sum(len(p.indicators) for p in i.progress) for i in rec.items)
        share = figure_share(rec.coverage) if rec.coverage else None
        table.add_row(rec.doc_id, rec.doc_type, (rec.title.name if rec.title else "")[:40], str(len(rec.items)),
                      str(sum(len(i.units) for i in rec.items)), str(n_ind) if engine else "-",
                      f"{share:.0%} of {rec.coverage.figures}" if share is not None and rec.coverage else "-")
    console.print(table)
    if result.items:
        asked = [r for r in result.items if r["source"] in ("model", "cache", "checkpoint")]
        invalid = sum(not r["valid"] for r in asked)
        console.print(f"model answers: {len(asked)} ({sum(r['source'] == 'cache' for r in asked)} from cache), "
                      f"invalid after retry: {invalid}, retries: {sum(r['retries'] for r in asked)}; run log: {out / 'run.jsonl'}")
    if result.failures:
        raise typer.Exit(EXIT_ALL_FAILED if len(result.failures) >= len(files) else EXIT_SOME_FAILED)


def _backend(name: str | None, model: str | None, endpoint: str | None, workers: int):
    """Build the configured backend, or exit with one line saying why it can't be."""
    try:
        return backend_from_settings(_settings(), name, model, endpoint, workers)
    except LlmstructError as exc:
        _error(str(exc))
        raise typer.Exit(EXIT_USAGE) from None


@app.command()
def schema() -> None:
    """Print the JSON Schema of a DocumentRecord."""
    sys.stdout.write(json.dumps(json_schema(), ensure_ascii=False, indent=2) + "\n")


@app.command()
def bench(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Inputs (default: seeds/)")] = None,
    repeat: Annotated[int, typer.Option(help="Timed repetitions; the median is reported")] = 5,
    retrieval: Annotated[bool, typer.Option("--retrieval", help="Store benchmark: index rate, query latency "
                                            "at --chunks, hit@5/MRR of hybrid vs vector")] = False,
    chunks: Annotated[int, typer.Option("--chunks", help="Size of the synthetic store (--retrieval)")] = 100_000,
    work_dir: Annotated[Optional[Path], typer.Option("--work-dir", help="Keep the bench stores here "
                                                     "(--retrieval; default: a temp folder, removed)")] = None,
    model: Annotated[bool, typer.Option("--model", help="Model pass on a fixed sample: items/min, prefill/decode "
                                        "tokens/s, constrained vs unconstrained, pipeline vs bare model")] = False,
    per_file: Annotated[int, typer.Option(help="Sample size per input file (--model)")] = 3,
    corpus: Annotated[bool, typer.Option("--corpus", help="With --model: the whole input through the model "
                                         "pass, no cache, timed end to end (minutes)")] = False,
    workers: Annotated[int, typer.Option(help="Batch size (--model)")] = 8,
    answers: Annotated[bool, typer.Option("--answers", help="Chat answers: time to first streamed content and "
                                          "to the final answer on gold questions (store indexed if empty)")] = False,
    per_type: Annotated[int, typer.Option(help="Gold questions per question type (--answers)")] = 3,
    load: Annotated[Optional[int], typer.Option("--load", help="Load test: N concurrent chat sessions (1-64) of "
                                                "distinct questions through the web app on loopback, after "
                                                "--single questions alone; starts the app on a free loopback "
                                                "port with the configured corpus unless --url")] = None,
    url: Annotated[Optional[str], typer.Option("--url", help="With --load: a running app on loopback "
                                               "(http://127.0.0.1:PORT) instead of starting one")] = None,
    endpoint: Annotated[Optional[str], typer.Option("--endpoint", help="With --load: the started app answers "
                                                    "with this vllm serve URL (backend vllm)")] = None,
    single: Annotated[int, typer.Option("--single", help="With --load: questions asked one at a time "
                                        "before the concurrent wave (1-10)")] = 3,
    timeout: Annotated[float, typer.Option("--timeout", help="With --load: limit per session, seconds")] = 900.0,
) -> None:
    """Print benchmark numbers as JSON: rules-only throughput; the model pass with --model;
    the store with --retrieval; chat latency with --answers; many staff at once with --load.

    With --load: exit 0 when every session got an answer, 1 when some did not, 2 when none
    did or the app could not be started or made ready, 64 on usage errors (a non-loopback --url)."""
    if corpus and not model:
        _error("--corpus times the model pass: use it with --model")
        raise typer.Exit(EXIT_USAGE)
    if load is None and (url is not None or endpoint is not None):
        _error("--url and --endpoint go with --load N")
        raise typer.Exit(EXIT_USAGE)
    if load is not None:
        if model or retrieval or answers:
            _error("--load runs on its own: not with --model, --retrieval or --answers")
            raise typer.Exit(EXIT_USAGE)
        _bench_load(load, url, endpoint, single, timeout)
        return

    if answers:
        try:
            catalog, store = open_corpus(_settings(), log=lambda m: err.print(m, markup=False, highlight=False))
            engine = backend_from_settings(_settings())
        except LlmstructError as exc:
            _error(str(exc))
            raise typer.Exit(EXIT_SOME_FAILED) from None
        engine.warm_up()
        taken: dict[str, int] = {}
        sample = []
        for q in load_questions(_settings().evals_dir / "gold" / "questions.yaml"):
            if taken.get(q.type, 0) < per_type:
                taken[q.type] = taken.get(q.type, 0) + 1
                sample.append(q)
        result = answer_benchmark(Asker(catalog, engine, store=store), sample, repeat=repeat)
        sys.stdout.write(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
        return

    if retrieval:
        try:
            result = retrieval_benchmark(target_chunks=chunks, work_dir=work_dir,
                                         seeds_dir=paths[0] if paths else _settings().seeds_dir,
                                         questions=_settings().evals_dir / "gold" / "questions.yaml",
                                         log=lambda m: err.print(m, markup=False, highlight=False))
        except LlmstructError as exc:
            _error(str(exc))
            raise typer.Exit(EXIT_SOME_FAILED) from None
        sys.stdout.write(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
        return
    files = paths or [_settings().seeds_dir]
    if model:
        engine = _backend("transformers", None, None, workers)
        if corpus:
            result = corpus_benchmark(engine, files, workers=workers)
        else:
            result = model_benchmark(engine, files, per_file=per_file, workers=workers, repeat=repeat)
        sys.stdout.write(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
        return
    sys.stdout.write(json.dumps(rules_benchmark(files, repeat=repeat), ensure_ascii=False, indent=2) + "\n")


def _bench_load(sessions: int, url: str | None, endpoint: str | None, single: int, timeout: float) -> None:
    """``bench --load``: the summary as JSON on stdout, progress and failed sessions on stderr."""
    def log(message: str) -> None:
        err.print(message, markup=False, highlight=False, soft_wrap=True)

    try:
        summary = load_benchmark(sessions, url=url, endpoint=endpoint, settings=_settings(), single=single,
                                 timeout=timeout, log=log)
    except ConfigError as exc:
        _error(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    except LlmstructError as exc:
        _error(str(exc))
        raise typer.Exit(EXIT_ALL_FAILED) from None
    sys.stdout.write(json.dumps(load_brief(summary), ensure_ascii=False, indent=2) + "\n")
    failed = load_failures(summary)
    for line in failed:
        _error(line)
    if failed:
        total = summary["sessions"] + summary["single_sessions"]
        raise typer.Exit(EXIT_ALL_FAILED if len(failed) >= total else EXIT_SOME_FAILED)


def _open_store_or_exit(store: Path | None, chroma_url: str | None, create: bool):
    """The store named on the command line (or the configured one); one-line error otherwise."""
    if store is not None and chroma_url:
        _error("--store and --chroma-url exclude each other")
        raise typer.Exit(EXIT_USAGE)
    try:
        return store_from_settings(_settings(), path=store, url=chroma_url, create=create)
    except LlmstructError as exc:
        _error(str(exc))
        raise typer.Exit(EXIT_ALL_FAILED if create else EXIT_SOME_FAILED) from None


@app.command()
def index(
    paths: Annotated[list[Path], typer.Argument(help="Documents, folders, or structure output (<doc_id>.json)")],
    store: Annotated[Optional[Path], typer.Option("--store", help="Store folder (default: data_dir/chroma)")] = None,
    chroma_url: Annotated[Optional[str], typer.Option("--chroma-url", help="Chroma server, http://HOST:PORT")] = None,
    sources: Annotated[Optional[Path], typer.Option("--sources", help="Source files of JSON records "
                                                    "(default: seeds/); checked by sha256")] = None,
) -> None:
    """Build or update the knowledge store; unchanged documents are left as they are.

    Exit code 0 when every input was indexed, 1 when some failed, 2 when all failed.
    """
    st = _open_store_or_exit(store, chroma_url, create=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as bar:
        task = bar.add_task("embedding", total=None)
        try:
            report = index_paths(st, paths, sources_dir=sources or _settings().seeds_dir,
                                 progress=lambda done, total: bar.update(task, completed=done, total=total))
        except LlmstructError as exc:
            _error(str(exc))
            raise typer.Exit(EXIT_ALL_FAILED) from None
    for message in report.errors:
        _error(message)
    table = Table(title=f"{st.location}: {len(report.results)} documents, "
                        f"{report.passages_embedded} passages embedded, {report.passages_from_cache} from cache")
    for col in ("doc_id", "action", "items", "chunks"):
        table.add_column(col, overflow="fold")
    for r in report.results:
        table.add_row(r.doc_id, r.action, str(r.items), str(r.chunks))
    console.print(table)
    counts = st.counts()
    console.print(f"store: {counts['documents']} documents, {counts['items']} items, {counts['chunks']} chunks")
    if report.errors:
        raise typer.Exit(EXIT_SOME_FAILED if report.results else EXIT_ALL_FAILED)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="问题或关键词")],
    filters: Annotated[Optional[list[str]], typer.Option("--filter", "-f", help="key=value, repeatable; keys: "
                       "region, year, document, unit, status, kind, doc_type, leader")] = None,
    k: Annotated[int, typer.Option("--k", "-k", help="Number of hits")] = 8,
    mode: Annotated[str, typer.Option("--mode", help="hybrid, vector or bm25")] = "hybrid",
    store: Annotated[Optional[Path], typer.Option("--store", help="Store folder (default: data_dir/chroma)")] = None,
    chroma_url: Annotated[Optional[str], typer.Option("--chroma-url", help="Chroma server, http://HOST:PORT")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the hits as JSON")] = False,
) -> None:
    """Search the store: ranked passages with document, item and offsets into the source."""
    parsed: dict[str, str] = {}
    for f in filters or []:
        key, sep, value = f.partition("=")
        if not sep or not key.strip() or not value.strip():
            _error(f"bad --filter {f!r}: expected key=value")
            raise typer.Exit(EXIT_USAGE)
        parsed[key.strip()] = value.strip()
    if mode not in MODES:
        _error(f"bad --mode {mode!r}: use one of {', '.join(MODES)}")
        raise typer.Exit(EXIT_USAGE)
    st = _open_store_or_exit(store, chroma_url, create=False)
    try:
        hits = run_search(st, query, k=k, filters=parsed or None, mode=mode)  # type: ignore[arg-type]
    except ValueError as exc:
        _error(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    except LlmstructError as exc:
        _error(str(exc))
        raise typer.Exit(EXIT_SOME_FAILED) from None
    if as_json:
        rows = [{"rank": n, **h.model_dump()} for n, h in enumerate(hits, start=1)]
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
        return
    table = Table(title=f"{len(hits)} 条结果 · {mode} · {query}")
    for col in ("#", "score", "doc_id", "item", "kind", "offsets", "text"):
        table.add_column(col, overflow="fold")
    for n, h in enumerate(hits, start=1):
        snippet = " ".join(h.text.split())
        table.add_row(str(n), f"{h.score:.4f}", h.doc_id, h.item_id.rsplit("#", 1)[-1], h.kind, f"{h.start}-{h.end}",
                      snippet[:80] + ("…" if len(snippet) > 80 else ""))
    console.print(table)


models_app = typer.Typer(no_args_is_help=True, help="Offline model presets: list, prepare, verify.")
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list() -> None:
    """Presets, their PyPI part packages and whether they are prepared."""
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
    try:
        path = prepare(name)
    except LlmstructError as exc:
        _error(str(exc))
        raise typer.Exit(EXIT_SOME_FAILED) from None
    console.print(f"ready: {path}")


@models_app.command("verify")
def models_verify(name: Annotated[str, typer.Argument(help="Preset name")] = "qwen2.5-coder-0.5b") -> None:
    """Check the assembled file's size and sha256 against the pinned values."""
    try:
        result = verify(name)
    except LlmstructError as exc:
        _error(str(exc))
        raise typer.Exit(EXIT_SOME_FAILED) from None
    sys.stdout.write(json.dumps(result, ensure_ascii=False, indent=2, default=str) + "\n")
    if not result.get("ok"):
        raise typer.Exit(EXIT_SOME_FAILED)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question, in Chinese")],
    as_json: Annotated[bool, typer.Option("--json", help="Print {question, answer, refused, citations} as JSON")] = False,
    filter_: Annotated[Optional[list[str]], typer.Option("--filter", help="k=v: region, year, doc_id, unit, status")] = None,
    model_plan: Annotated[bool, typer.Option("--model-plan", help="Let the model classify the question too")] = False,
) -> None:
    """Answer a question from the indexed reports, every statement cited and verified."""
    filters: dict[str, str] = {}
    for f in filter_ or []:
        key, sep, value = f.partition("=")
        if not sep or key not in ("region", "year", "doc_id", "doc", "unit", "status"):
            _error(f"bad --filter {f!r}; use k=v with k in region, year, doc_id, unit, status")
            raise typer.Exit(EXIT_USAGE)
        filters["doc_id" if key == "doc" else key] = value
    try:
        catalog, store = open_corpus(_settings(), log=lambda m: err.print(m, markup=False, highlight=False),
                                     index_if_empty=False)
        if not catalog.records:
            _error("the store is empty; index the reports first: llmstruct index seeds")
            raise typer.Exit(EXIT_SOME_FAILED)
        asker = Asker(catalog, backend_from_settings(_settings()), store=store, use_model_plan=model_plan)
        answer = asker.ask(question, filters=filters or None)
    except LlmstructError as exc:
        _error(str(exc))
        raise typer.Exit(EXIT_SOME_FAILED) from None
    if as_json:
        sys.stdout.write(answer.model_dump_json(indent=2) + "\n")
        return
    console.print(answer.answer, markup=False, highlight=False)
    for c in answer.citations:
        console.print(f"[{c.n}] {c.source_file} {c.start}-{c.end}: {c.quote}", markup=False, highlight=False)


@app.command()
def serve(
    host: Annotated[Optional[str], typer.Option(help="Bind address (default 127.0.0.1)")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port (default 7860)")] = None,
) -> None:
    """Start the web app (the same as `python app.py`); exit 64 when a setting is unsafe."""
    try:
        launch(_settings(), host, port)
    except LlmstructError as exc:
        _error(str(exc))
        raise typer.Exit(EXIT_USAGE) from None


@app.command("eval")
def eval_(
    suites: Annotated[list[str], typer.Argument(help="extraction (seeds + development corpus) | corpus | questions | "
                                                     "smoke | a gold or subset YAML file")],
    backend: Annotated[Optional[str], typer.Option(help="transformers | llamacpp | vllm (default: config)")] = None,
    model: Annotated[Optional[str], typer.Option(help="Preset name, .gguf file or transformers folder")] = None,
    endpoint: Annotated[Optional[str], typer.Option(help="vllm serve URL")] = None,
    rules_only: Annotated[bool, typer.Option("--rules-only", help="No model: rules extraction and retrieval only")] = False,
    baselines: Annotated[bool, typer.Option("--baselines/--no-baselines", help="Also run the unconstrained baseline")] = True,
    answers: Annotated[bool, typer.Option("--answers/--no-answers", help="Answer the questions with the model")] = True,
    store: Annotated[Optional[Path], typer.Option(help="Store folder to search (default: config)")] = None,
    store_url: Annotated[Optional[str], typer.Option(help="Chroma server URL to search")] = None,
    no_store: Annotated[bool, typer.Option("--no-store", help="No store: record-passage retrieval only")] = False,
    limit: Annotated[Optional[int], typer.Option(help="Only the first N items and N questions")] = None,
    report: Annotated[Optional[Path], typer.Option(help="Write X.html, X.md and X.json")] = None,
    gate: Annotated[Optional[Path], typer.Option(help="Thresholds YAML; exit 1 when a metric misses its threshold")] = None,
) -> None:
    """Score the system on the gold suites, with baselines in the same run.

    Exit code 0 ok, 1 gate failed or a section failed, 2 nothing could be scored, 64 usage.
    """
    try:
        suite = load_suite(suites)
        thresholds = load_thresholds(gate, suite.name) if gate else None
    except (SuiteError, OSError) as exc:
        _error(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    s = _settings()
    if store is None and not store_url:
        store_url = s.chroma_url or None
        store = None if store_url else s.data_dir / "chroma"
    opts = EvalOptions(backend=backend or s.backend, model=model or s.model, endpoint=endpoint or s.endpoint,
                       threads=s.threads, cache_dir=s.cache_dir, rules_only=rules_only, baselines=baselines,
                       answers=answers, use_store=not no_store, store_path=store, store_url=store_url,
                       seeds_dir=s.seeds_dir, limit=limit)
    result = run_eval(suite, opts, log=lambda m: err.print(m, markup=False, highlight=False))
    checks = check_gate(result, thresholds) if thresholds is not None else None
    if report:
        for p in write_reports(result, report, checks):
            err.print(f"wrote {p}", markup=False, highlight=False)
    sys.stdout.write(to_markdown(result, checks))
    failed_sections = [k for k, v in result["sections"].items() if v.startswith("not run: failed")]
    scored = [k for k in ("extraction", "extraction_corpus", "retrieval", "answers") if result.get(k)]
    for k in failed_sections:
        _error(f"{k}: {result['sections'][k]}")
    if not scored:
        raise typer.Exit(EXIT_ALL_FAILED)
    if checks is not None:
        for c in checks:
            if not c.ok:
                _error(f"gate: {c.metric} = {c.value} is not {c.op} {c.threshold} {c.note}".rstrip())
        if not all(c.ok for c in checks):
            raise typer.Exit(EXIT_SOME_FAILED)
    if failed_sections:
        raise typer.Exit(EXIT_SOME_FAILED)


@app.command()
def review(
    out_dir: Annotated[Path, typer.Argument(help="Folder with <doc_id>.json records")],
    sources: Annotated[Optional[list[Path]], typer.Option("--sources", help="Folder(s) with the source files (default: seeds)")] = None,
) -> None:
    """Write OUT_DIR/review/<doc_id>.html: the source text with every field highlighted, the record beside it."""
    if not out_dir.is_dir():
        _error(f"{out_dir}: not a folder")
        raise typer.Exit(EXIT_USAGE)
    result = review_dir(out_dir, list(sources) if sources else [_settings().seeds_dir])
    for msg in result.failures:
        _error(msg)
    if not result.records and not result.failures:
        _error(f"{out_dir}: no <doc_id>.json records")
        raise typer.Exit(EXIT_USAGE)
    console.print(f"{len(result.written)} review pages -> {out_dir / 'review' / 'index.html'}")
    if result.failures:
        raise typer.Exit(EXIT_ALL_FAILED if not result.written else EXIT_SOME_FAILED)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
