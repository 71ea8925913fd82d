"""Benchmarks of structuring: rules-only throughput, the model pass against the bare model, the corpus."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from llmstruct.ingest.paths import expand_paths
from llmstruct.ingest.source import read_source
from llmstruct.structure.batch import run_batch
from llmstruct.structure.labeling import build_job
from llmstruct.structure.llm_pass import ask_model, plan_batches
from llmstruct.structure.pipeline import structure_file, structure_source


def rules_benchmark(paths: list[Path], repeat: int = 5) -> dict:
    """Rules-only structuring of ``paths``: median seconds per pass and throughput.

    Reading files is timed separately from structuring, so disk noise does not hide the
    pipeline's own cost. Each pass structures every file once; the median of ``repeat``
    passes is reported with the spread.
    """
    files = expand_paths(paths)
    t0 = time.perf_counter()
    sources = [read_source(f) for f in files]
    read_s = time.perf_counter() - t0
    chars = sum(len(s.text) for s in sources)
    timings = []
    reports = items = 0
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        results = [structure_source(s) for s in sources]
        timings.append(time.perf_counter() - t0)
        reports = sum(len(r.records) for r in results)
        items = sum(len(rec.items) for r in results for rec in r.records)
    median = statistics.median(timings)
    return {
        "benchmark": "rules_only",
        "files": len(files),
        "characters": chars,
        "reports": reports,
        "items": items,
        "read_seconds": round(read_s, 4),
        "repeat": len(timings),
        "structure_seconds_median": round(median, 4),
        "structure_seconds_min": round(min(timings), 4),
        "structure_seconds_max": round(max(timings), 4),
        "items_per_second": round(items / median, 1) if median else None,
        "characters_per_second": round(chars / median) if median else None,
    }


def sample_jobs(paths: list[Path], per_file: int, model_id: str = "") -> tuple[list, int]:
    """A fixed sample: the first ``per_file`` items of each file that need the model, and
    how many items of the whole input need it (for the corpus projection)."""
    jobs, total = [], 0
    for f in expand_paths(paths):
        st = structure_file(f)
        mine = [j for rec in st.records for j in (build_job(st.clean, it, model_id) for it in rec.items) if j.needs_model]
        total += len(mine)
        jobs += mine[:per_file]
    return jobs, total


def model_benchmark(backend, paths: list[Path], per_file: int = 3, workers: int = 8, repeat: int = 3) -> dict:
    """The model pass on a fixed sample, timed three ways on the same prompts and tokens.

    - pipeline: build prompts, constrained generation, validation (``llm_pass.ask_model``);
    - constrained generate alone, and a bare unconstrained ``generate`` forced to the same
      number of steps per batch: their per-step decode times give the grammar's overhead;
    - a bare forward pass over the prompts gives prefill speed.
    The pipeline / bare ratio is the whole cost of llmstruct around the model.
    Medians of ``repeat`` runs; every run is cold for the cache (no cache is used).
    """
    import torch

    jobs, corpus_items = sample_jobs(paths, per_file, backend.model_id)
    batches = plan_batches(jobs, workers)
    model, tok = backend.model, backend.tokenizer
    runs = []
    for _ in range(max(1, repeat)):
        row = {"pipeline_s": 0.0, "constrained_s": 0.0, "bare_s": 0.0, "prefill_s": 0.0, "steps": 0,
               "prompt_tokens": 0, "completion_tokens": 0, "valid": 0, "truncated": 0}
        for batch in batches:
            t0 = time.perf_counter()
            outs = ask_model(backend, batch, constrained=True, retry=False)
            row["pipeline_s"] += time.perf_counter() - t0
            gen_s = outs[0].seconds * len(batch)  # the batch's generate call
            row["constrained_s"] += gen_s
            row["valid"] += sum(o.valid for o in outs)
            row["truncated"] += sum(o.truncated for o in outs)
            row["prompt_tokens"] += sum(o.prompt_tokens for o in outs)
            row["completion_tokens"] += sum(o.completion_tokens for o in outs)
            steps = max(o.completion_tokens for o in outs)
            row["steps"] += steps
            prompts = [backend.chat_prompt(j.system, j.user) for j in batch]
            enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.inference_mode():
                t0 = time.perf_counter()
                model(**enc)
                row["prefill_s"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                model.generate(**enc, max_new_tokens=steps, min_new_tokens=steps, do_sample=False,
                               pad_token_id=backend.pad_token_id)
                row["bare_s"] += time.perf_counter() - t0
        runs.append(row)

    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    first = runs[0]
    pipeline_s, constrained_s, bare_s, prefill_s = med("pipeline_s"), med("constrained_s"), med("bare_s"), med("prefill_s")
    steps = first["steps"]
    step_c = max(constrained_s - prefill_s, 1e-9) / steps
    step_u = max(bare_s - prefill_s, 1e-9) / steps
    per_item = pipeline_s / len(jobs)
    return {
        "benchmark": "model_pass",
        "backend": backend.name,
        "model": backend.model_id,
        "grammar": backend.capabilities.grammar,
        "threads": backend.capabilities.threads,
        "sample_items": len(jobs),
        "batch_size": workers,
        "batches": len(batches),
        "repeat": len(runs),
        "prompt_tokens": first["prompt_tokens"],
        "completion_tokens": first["completion_tokens"],
        "valid_outputs": f"{first['valid']}/{len(jobs)}",
        "truncated_outputs": first["truncated"],
        "items_per_minute": round(60 / per_item, 1),
        "seconds_per_item_median": round(per_item, 2),
        "prefill_tokens_per_second": round(first["prompt_tokens"] / prefill_s, 1),
        "decode_tokens_per_second_constrained": round(first["completion_tokens"] / max(constrained_s - prefill_s, 1e-9), 1),
        "decode_step_seconds_constrained": round(step_c, 4),
        "decode_step_seconds_unconstrained": round(step_u, 4),
        "constrained_over_unconstrained_per_token": round(step_c / step_u, 3),
        "pipeline_over_bare_model": round(pipeline_s / bare_s, 3),
        "pipeline_seconds_median": round(pipeline_s, 2),
        "bare_model_seconds_median": round(bare_s, 2),
        "corpus_items_needing_model": corpus_items,
        "corpus_note": "the sample is not the corpus's mix of prompt lengths; time the corpus with --model --corpus",
    }


def corpus_benchmark(backend, paths: list[Path], workers: int = 8) -> dict:
    """The whole input through the model pass exactly as ``llmstruct structure --no-cache``
    runs it (rules, model, validation, grounding, writing), timed end to end: the figure
    the corpus target is about. One run: it takes minutes."""
    files = expand_paths(paths)
    with tempfile.TemporaryDirectory(prefix="llmstruct-bench-") as out:
        t0 = time.perf_counter()
        res = run_batch(files, Path(out), backend=backend, batch_size=workers, use_cache=False)
        wall = time.perf_counter() - t0
    asked = [r for r in res.items if r["source"] == "model"]
    indicators = sum(r["indicators"] for r in res.items)
    grounded = sum(r["indicators_grounded"] for r in res.items)
    return {
        "benchmark": "model_pass_corpus",
        "backend": backend.name,
        "model": backend.model_id,
        "grammar": backend.capabilities.grammar,
        "files": len(files),
        "failures": res.failures,
        "reports": len(res.records),
        "items": len(res.items),
        "items_asked_model": len(asked),
        "prompt_tokens": sum(r["prompt_tokens"] for r in asked),
        "completion_tokens": sum(r["completion_tokens"] for r in asked),
        "valid_outputs": f"{sum(r['valid'] for r in asked)}/{len(asked)}",
        "truncated_outputs": sum(r["truncated"] for r in asked),
        "retries": sum(r["retries"] for r in asked),
        "indicators": indicators,
        "indicators_grounded_rate": round(grounded / indicators, 4) if indicators else None,
        "wall_seconds": round(wall, 2),
        "wall_minutes": round(wall / 60, 2),
        "target": {"wall_minutes_max": 15, "met": wall / 60 <= 15},
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
