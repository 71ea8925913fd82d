"""``llmstruct eval``: run the gold suites against every system in one run, and gate on thresholds.

Systems compared in the same run, on the same items and questions:

- extraction: ``rules`` (rules only), ``llmstruct`` (the model pass under a grammar) and
  ``unconstrained`` (the same model and prompt, plain generation, then JSON parsing), on
  each gold set apart: the seeds' gold (``result["extraction"]``, what the gate reads as
  ``extraction.*``) and the development corpus's gold (``result["extraction_corpus"]``,
  ``extraction_corpus.*``: reported, gated only by a threshold block that names it);
- retrieval: the store's ``hybrid``, ``vector`` and ``bm25`` modes, and the BM25 over
  record passages that answering uses when no store is open;
- answers: ``llmstruct`` (plan, retrieve, answer under a grammar, verify).

A section runs only when what it needs exists (module, backend, store); otherwise the
result says ``not run`` with the reason, and no number is made up for it.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from llmstruct import __version__
from llmstruct.answer import (
    Asker,
    catalog_from_store,
    load_catalog,
    retrieve,
    rule_plan,
)
from llmstruct.config import DEFAULT_BACKEND, DEFAULT_MODEL, DEFAULT_THREADS, checkout_root
from llmstruct.eval import gold as gold_mod
from llmstruct.eval.answers import AnswerRun, score_answers
from llmstruct.eval.extraction import (
    CallStat,
    SystemRun,
    anchor_gold,
    assign,
    gold_key,
    rules_run,
    score_system,
)
from llmstruct.eval.gold import GoldItem, GoldQuestion
from llmstruct.eval.retrieval import run_retrieval
from llmstruct.indexing import index_paths
from llmstruct.ingest import expand_paths, read_source
from llmstruct.models import get_backend
from llmstruct.search import search
from llmstruct.store.opening import open_store
from llmstruct.structure import llm_pass

ROOT = Path(__file__).resolve().parents[2]
SMOKE_FILE = Path("evals/smoke.yaml")
THRESHOLDS_FILE = Path("evals/thresholds.yaml")
NAMED_SUITES = {"extraction": gold_mod.EXTRACTION_FILE, "questions": gold_mod.QUESTIONS_FILE, "smoke": SMOKE_FILE,
                "corpus": gold_mod.CORPUS_FILE}
# Result key of each extraction gold set (the seeds' key is the one gates always used).
SET_KEYS = {"seeds": "extraction", "corpus": "extraction_corpus"}
STORE_MODES = ("hybrid", "vector", "bm25")

Log = Callable[[str], None]


class SuiteError(ValueError):
    """A suite argument that names nothing loadable (usage error)."""


@dataclass(frozen=True)
class Suite:
    """The gold items and questions one run scores.

    ``items`` label the seeds (documents in ``EvalOptions.seeds_dir``), ``corpus_items`` the
    development corpus (documents in ``EvalOptions.corpus_dir``); each set is scored apart.
    """

    name: str
    items: tuple[GoldItem, ...] = ()
    questions: tuple[GoldQuestion, ...] = ()
    corpus_items: tuple[GoldItem, ...] = ()


@dataclass(frozen=True)
class EvalOptions:
    """How to run: which model, which baselines, where the seeds and the index are."""

    backend: str = DEFAULT_BACKEND
    model: str = DEFAULT_MODEL
    endpoint: str = ""
    threads: int = DEFAULT_THREADS
    cache_dir: Path | None = None
    rules_only: bool = False
    baselines: bool = True
    answers: bool = True
    use_store: bool = True
    store_path: Path | None = None
    store_url: str | None = None
    seeds_dir: Path = ROOT / gold_mod.SEEDS_DIR
    corpus_dir: Path = ROOT / gold_mod.CORPUS_DIR
    limit: int | None = None


@dataclass
class Sections:
    """Which section ran, and why the others did not (reported verbatim)."""

    status: dict[str, str] = field(default_factory=dict)

    def ran(self, name: str, detail: str = "") -> None:
        self.status[name] = "ran" + (f": {detail}" if detail else "")

    def skip(self, name: str, reason: str) -> None:
        self.status[name] = f"not run: {reason}"


def _resolve(arg: str, root: Path) -> Path:
    if arg in NAMED_SUITES:
        return root / NAMED_SUITES[arg]
    p = Path(arg)
    return p if p.is_absolute() or p.exists() else root / p


def load_suite(args: list[str], root: Path = ROOT) -> Suite:
    """Gold files or named suites (``extraction``, ``corpus``, ``questions``, ``smoke``), merged into one suite.

    ``extraction`` is both extraction gold sets: the seeds' and, when its file exists, the
    development corpus's (scored apart); ``corpus`` is the corpus's alone. A file holding a
    YAML list is gold (items or questions, told apart by their keys; the corpus gold file
    counts as the corpus set); a file holding a mapping with ``extraction``/``questions``
    keys is a subset of the default gold, by gold key (``doc#seq_no`` or ``doc@first 12
    characters``, of either set) and question id.
    """
    if not args:
        raise SuiteError("no suite given (extraction, corpus, questions, smoke or a gold file)")
    items: dict[str, GoldItem] = {}
    corpus: dict[str, GoldItem] = {}
    questions: dict[str, GoldQuestion] = {}
    corpus_file = (root / gold_mod.CORPUS_FILE).resolve()
    for arg in args:
        path = _resolve(arg, root)
        if not path.is_file():
            raise SuiteError(f"suite {arg!r}: no such named suite or file ({path})")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        try:
            if isinstance(data, list) and data and isinstance(data[0], dict) and "question" in data[0]:
                questions.update((q.id, q) for q in gold_mod.load_questions(path))
            elif isinstance(data, list):
                into = corpus if path.resolve() == corpus_file else items
                into.update((gold_key(i), i) for i in gold_mod.load_extraction(path))
                if arg == "extraction" and corpus_file.is_file():
                    corpus.update((gold_key(i), i) for i in gold_mod.load_extraction(corpus_file))
            elif isinstance(data, dict) and set(data) <= {"extraction", "questions"}:
                _subset(data, root, items, corpus, questions, arg)
            else:
                raise SuiteError(f"suite {arg!r}: expected a gold list or a subset mapping")
        except (ValueError, TypeError) as exc:
            if isinstance(exc, SuiteError):
                raise
            raise SuiteError(f"suite {arg!r}: {exc}") from None
    name = "+".join(a if a in NAMED_SUITES else Path(a).stem for a in args)
    return Suite(name, tuple(items.values()), tuple(questions.values()), tuple(corpus.values()))


def _subset(data: dict, root: Path, items: dict, corpus: dict, questions: dict, arg: str) -> None:
    all_items = {gold_key(i): i for i in gold_mod.load_extraction(root / gold_mod.EXTRACTION_FILE)}
    corpus_file = root / gold_mod.CORPUS_FILE
    all_corpus = {gold_key(i): i for i in gold_mod.load_extraction(corpus_file)} if corpus_file.is_file() else {}
    all_qs = {q.id: q for q in gold_mod.load_questions(root / gold_mod.QUESTIONS_FILE)}
    for key in data.get("extraction") or []:
        if key in all_items:
            items[key] = all_items[key]
        elif key in all_corpus:
            corpus[key] = all_corpus[key]
        else:
            raise SuiteError(f"suite {arg!r}: unknown gold item {key!r}")
    for qid in data.get("questions") or []:
        if qid not in all_qs:
            raise SuiteError(f"suite {arg!r}: unknown question {qid!r}")
        questions[qid] = all_qs[qid]


def _shown(path: Path) -> str:
    """A folder as reports show it: relative to the checkout when inside it."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _git_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def run_eval(suite: Suite, opts: EvalOptions, log: Log = lambda _m: None) -> dict:
    """Every number for ``suite``: extraction, retrieval, answers and speed, with section status."""
    started = time.time()
    sections = Sections()
    result: dict[str, Any] = {
        "meta": {
            "suite": suite.name,
            "gold_items": len(suite.items),
            "corpus_gold_items": len(suite.corpus_items),
            "questions": len(suite.questions),
            "llmstruct_version": __version__,
            "git_commit": _git_commit(ROOT),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "host": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
                     "python": platform.python_version()},
            "options": {"backend": opts.backend, "model": opts.model, "endpoint": opts.endpoint,
                        "rules_only": opts.rules_only, "use_store": opts.use_store,
                        "baselines": opts.baselines, "limit": opts.limit},
        },
    }
    items = list(suite.items)[: opts.limit] if opts.limit else list(suite.items)
    corpus_items = list(suite.corpus_items)[: opts.limit] if opts.limit else list(suite.corpus_items)
    questions = list(suite.questions)[: opts.limit] if opts.limit else list(suite.questions)
    gold_sets = [("seeds", items, opts.seeds_dir), ("corpus", corpus_items, opts.corpus_dir)]
    result["meta"]["gold_sets"] = {
        name: {"label": gs.label, "gold_file": str(gs.file), "docs_dir": _shown(docs), "items": len(its),
               "result_key": SET_KEYS[name]}
        for (name, its, docs), gs in zip(gold_sets, gold_mod.GOLD_SETS, strict=True) if its}
    # questions are asked of the whole corpus: unanswerable ones must find nothing anywhere
    corpus = expand_paths([opts.seeds_dir])
    backend_box: dict[str, Any] = {}

    def backend() -> Any:
        """The model backend, built once on first use; an error string when it cannot be built."""
        if "b" not in backend_box:
            try:
                endpoint = opts.endpoint if opts.backend.lower() == "vllm" else ""
                log(f"loading backend {opts.backend} {opts.model}")
                backend_box["b"] = get_backend(opts.backend, model=opts.model, endpoint=endpoint, threads=opts.threads,
                                               cache_dir=opts.cache_dir)
            except Exception as exc:  # reported as the reason a section did not run
                backend_box["b"] = f"backend not available: {type(exc).__name__}: {exc}"
        return backend_box["b"]

    for set_name, set_items, docs_dir in gold_sets:
        key = SET_KEYS[set_name]
        if not set_items:
            if set_name == "seeds":
                sections.skip(key, "suite has no seed extraction items" if corpus_items
                              else "suite has no extraction items")
            continue
        result[key] = _extraction(set_name, key, set_items, docs_dir, opts, backend, sections, log)
    if questions:
        texts = {f.name: read_source(f).text for f in corpus}
        result["retrieval"], store = _retrieval(questions, corpus, texts, opts, sections, log)
        if opts.rules_only or not opts.answers:
            sections.skip("answers", "--rules-only" if opts.rules_only else "--no-answers")
        else:
            ans = _answers(questions, corpus, texts, opts, backend, store, sections, log)
            if ans:
                result["answers"] = ans
    else:
        sections.skip("retrieval", "suite has no questions")
        sections.skip("answers", "suite has no questions")
    result["speed"] = speed_summary(result)
    result["sections"] = sections.status
    root = checkout_root()
    if root is not None:  # the browser tests' screenshots (the 进度 view, a citation), shown in the HTML report
        result["screenshots"] = [str(p) for p in sorted((root / "tests" / "artifacts").glob("browser_*.png"))]
    b = backend_box.get("b")
    if b is not None and not isinstance(b, str):
        result["meta"]["model_id"] = b.model_id
        result["meta"]["backend"] = b.name
    result["meta"]["seconds"] = round(time.time() - started, 2)
    result["meta"]["host"]["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    return result


def _extraction(set_name: str, key: str, items: list[GoldItem], docs_dir: Path, opts: EvalOptions, backend,
                sections: Sections, log: Log) -> dict:
    """Every extraction system on one gold set, its documents read from ``docs_dir``."""
    files = sorted({docs_dir / i.file for i in items})
    log(f"extraction ({set_name}): rules on {len(files)} files")
    rules, structured = rules_run(files)
    systems = {"rules": score_system(rules, items)}
    sections.ran(f"{key}.rules")
    if opts.rules_only:
        sections.skip(f"{key}.llmstruct", "--rules-only")
        sections.skip(f"{key}.unconstrained", "--rules-only")
    else:
        systems.update(_model_extraction(items, rules, structured, opts, backend, sections, log, key))
    return systems


def _model_extraction(items, rules: SystemRun, structured: dict, opts: EvalOptions, backend, sections: Sections,
                      log: Log, key: str = "extraction") -> dict:
    b = backend()
    if isinstance(b, str):
        for s in (f"{key}.llmstruct", f"{key}.unconstrained"):
            sections.skip(s, b)
        return {}
    anchors, _ = anchor_gold(items, rules.texts)
    only: dict[str, set[str]] = {}
    for a in anchors:
        it = assign(a, rules.records.get(a.gold.doc))
        if it is not None:
            only.setdefault(a.gold.file, set()).add(it.item_id)
    out = {}
    variants = [("llmstruct", True)] + ([("unconstrained", False)] if opts.baselines else [])
    if not opts.baselines:
        sections.skip(f"{key}.unconstrained", "--no-baselines")
    for name, constrained in variants:
        log(f"{key}: {name} on {sum(map(len, only.values()))} items")
        try:
            run = model_run(name, structured, only, b, constrained, rules.texts, log)
        except Exception as exc:  # the section fails, the run goes on
            sections.skip(f"{key}.{name}", f"failed: {type(exc).__name__}: {exc}")
            continue
        out[name] = score_system(run, items)
        sections.ran(f"{key}.{name}", f"{len(run.calls)} model calls")
    return out


def model_run(name: str, structured: dict, only: dict[str, set[str]], backend, constrained: bool,
              texts: dict[str, str], log: Log = lambda _m: None) -> SystemRun:
    """Label the gold items of each file with the model; no cache, so times are real."""
    records = {}
    calls: list[CallStat] = []
    t0 = time.perf_counter()
    for file, ids in sorted(only.items()):
        lr = llm_pass.label_structured(
            structured[file], backend, constrained=constrained, cache=None, only=ids,
            on_batch=lambda n, toks, f=file: log(f"  {name} {f}: {n} items, {toks} tokens"))
        records.update({r.doc_id: r for r in lr.records})
        for ir in lr.items:
            if ir.source != "model":  # "rules": nothing to ask; cache/checkpoint are not used here
                continue
            calls.append(CallStat(
                item_id=ir.item_id, seconds=float(ir.seconds), prompt_tokens=int(ir.prompt_tokens),
                completion_tokens=int(ir.completion_tokens), valid=bool(ir.valid), truncated=bool(ir.truncated),
                retries=int(getattr(ir, "retries", 0) or 0),
            ))
    seconds = time.perf_counter() - t0
    model_id = backend.model_id
    title = ("llmstruct 约束解码" if constrained else "unconstrained 无约束") + f" ({model_id})"
    note = ("labels under the grammar, checked against the text; items rules settle are not sent to the model"
            if constrained else "same model and prompt, plain generation, JSON cut from the reply and validated; "
            "invalid outputs are counted, and (as in llmstruct) keep rules-only values")
    n_items = sum(len(ids) for ids in only.values())
    return SystemRun(name=name, title=title, records=records, texts=texts, seconds=seconds, items=n_items,
                     calls=tuple(calls), notes=(note,))


def _retrieval(questions, files, texts, opts: EvalOptions, sections: Sections, log: Log) -> tuple[dict, Any]:
    """Scores per retrieval system, and the store when one could be opened (answers use it too)."""
    out: dict[str, Any] = {}
    log("retrieval: record-passage BM25 (no store)")
    catalog = load_catalog(files)

    def catalog_search(question: str, k: int):
        plan = rule_plan(question, (), catalog)
        return retrieve(plan, catalog, None, k=k)

    out["records_bm25"] = {"title": "record passages BM25 记录段落 (answering, no store)",
                           **run_retrieval(questions, catalog_search, texts)}
    sections.ran("retrieval.records_bm25")
    if not opts.use_store:
        for m in STORE_MODES:
            sections.skip(f"retrieval.{m}", "--no-store")
        return out, None
    try:
        store = open_eval_store(files, opts, log)
    except Exception as exc:  # no index, no store numbers
        for m in STORE_MODES:
            sections.skip(f"retrieval.{m}", f"store not available: {type(exc).__name__}: {exc}")
        return out, None
    for mode in STORE_MODES:
        log(f"retrieval: store {mode}")
        res = run_retrieval(questions, lambda q, k, m=mode: search(store, q, k=k, mode=m), texts)
        if res["errors"] and len(res["errors"]) == res["overall"]["questions"]:
            sections.skip(f"retrieval.{mode}", f"every query failed: {next(iter(res['errors'].values()))}")
            continue
        out[mode] = {"title": f"store {mode}", **res}
        sections.ran(f"retrieval.{mode}")
    return out, store


def open_eval_store(files: list[Path], opts: EvalOptions, log: Log):
    """The index to search: ``--store``/``--store-url``, else the configured store.

    Corpus files the store does not hold (same name and sha256) are indexed first, as the
    app does on its first start; indexing is idempotent, so a second run only reads.
    """
    store = open_store(path=opts.store_path, url=opts.store_url)
    have = {(d.source_file, d.source_sha256) for d in store.documents()}
    missing = [f for f in files if (f.name, read_source(f).sha256) not in have]
    if missing:
        log(f"retrieval: indexing {len(missing)} corpus files into {store.location} (embeds every chunk once)")
        report = index_paths(store, missing)
        if report.errors:
            raise RuntimeError("; ".join(report.errors[:3]))
    return store


def _answers(questions, files, texts, opts: EvalOptions, backend, store, sections: Sections,
             log: Log) -> dict | None:
    """The product's answer path: the store's records and hybrid search when a store is open
    (as ``llmstruct ask`` does), else records structured in memory with keyword retrieval."""
    b = backend()
    if isinstance(b, str):
        sections.skip("answers", b)
        return None
    if store is not None:
        catalog = catalog_from_store(store, [opts.seeds_dir])
        how = f"store {store.location} hybrid retrieval"
    else:
        catalog = load_catalog(files)
        how = "no store: BM25 over record passages"
    asker = Asker(catalog=catalog, backend=b, store=store)
    answers, secs, errors = {}, {}, {}
    for n, q in enumerate(questions, start=1):
        log(f"answers: {n}/{len(questions)} {q.id}")
        t0 = time.perf_counter()
        try:
            answers[q.id] = asker.ask(q.question)
        except Exception as exc:  # one failing question is reported, the rest still run
            errors[q.id] = f"{type(exc).__name__}: {exc}"
        secs[q.id] = time.perf_counter() - t0
    run = AnswerRun(name="llmstruct", title=f"llmstruct ({b.model_id})",
                    answers=answers, seconds=secs, errors=errors, notes=(how,))
    sections.ran("answers", f"{len(answers)} answered, {len(errors)} failed")
    labels = {d: doc.label for d, doc in catalog.docs.items()}
    return {"llmstruct": score_answers(run, questions, texts, labels)}


def speed_summary(result: dict) -> dict:
    """One table of seconds per unit of work and tokens per second, per system."""
    rows = {}
    for key in SET_KEYS.values():
        for name, r in (result.get(key) or {}).items():
            s = r["speed"]
            rows[f"{key}.{name}"] = {
                "seconds_per_item": s.get("seconds_per_item_median", s.get("seconds_per_item")),
                "tokens_per_second": s.get("tokens_per_second"),
                "items": s.get("calls", s.get("items")),
            }
    for name, r in (result.get("retrieval") or {}).items():
        rows[f"retrieval.{name}"] = {"seconds_per_query": r.get("seconds_per_query_median"),
                                     "queries": r["overall"]["questions"]}
    for name, r in (result.get("answers") or {}).items():
        rows[f"answers.{name}"] = {"seconds_per_question": r["speed"]["seconds_per_question_median"],
                                   "questions": r["questions"]}
    return rows


# ----------------------------------------------------------------------------- gate


@dataclass(frozen=True)
class GateCheck:
    """One threshold against one measured number."""

    metric: str
    op: str
    threshold: float
    value: float | None
    ok: bool
    note: str = ""


def metric(result: dict, path: str) -> Any:
    """A number from the result by dotted path (``extraction.rules.fields.units.f1``)."""
    node: Any = result
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def load_thresholds(path: Path, suite: str) -> dict:
    """The block of ``path`` for ``suite``: ``{min: {metric: x}, max: {metric: x}}``."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    block = data.get(suite)
    if not isinstance(block, dict):
        raise SuiteError(f"{path}: no thresholds for suite {suite!r} (have: {', '.join(sorted(data)) or 'none'})")
    return block


def check_gate(result: dict, thresholds: dict) -> list[GateCheck]:
    """Each threshold checked; a metric that was not measured fails, it never passes silently."""
    checks = []
    for op in ("min", "max"):
        for path, limit in sorted((thresholds.get(op) or {}).items()):
            value = metric(result, path)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                section = ".".join(path.split(".")[:2])
                why = result.get("sections", {}).get(section) or result.get("sections", {}).get(path.split(".")[0])
                checks.append(GateCheck(path, op, float(limit), None, False, f"not measured ({why or 'absent'})"))
                continue
            ok = value >= limit if op == "min" else value <= limit
            checks.append(GateCheck(path, op, float(limit), float(value), ok))
    return checks


__all__ = ["SET_KEYS", "EvalOptions", "GateCheck", "Suite", "SuiteError", "check_gate", "load_suite", "load_thresholds",
           "metric", "run_eval"]
