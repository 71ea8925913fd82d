"""Chat latency: time to first streamed content and to the final answer on gold questions."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from llmstruct.eval.bench.load import percentile


@dataclass(frozen=True)
class TimedAnswer:
    answer: object
    first_seconds: float  # to the first content a user sees: copied evidence (a draft) or the answer
    total_seconds: float
    generated: bool  # the model was asked (records answers and early refusals need no generation)


def timed_answer(asker, question: str, history=(), filters=None) -> TimedAnswer:
    """Answer one question through the streaming path the chat uses, timing what the user
    sees; status lines such as 正在检索 are not content."""
    t0 = time.perf_counter()
    first = None
    answer = None
    generated = False
    for ev in asker.stream(question, history, filters):
        generated = generated or ev.kind in ("status", "draft")
        if first is None and ev.kind in ("draft", "final"):
            first = time.perf_counter() - t0
        if ev.kind == "final":
            answer = ev.answer
    total = time.perf_counter() - t0
    return TimedAnswer(answer, first if first is not None else total, total, generated)


def _pct(values: list[float], q: float) -> float | None:
    return round(percentile(values, q), 3) if values else None


def answer_benchmark(asker, questions, repeat: int = 1) -> dict:
    """Time to first content and to the final answer over gold ``questions``, with the model
    and store warm; p50/p95 over all answers and split by whether the model generated."""
    rows = []
    for _ in range(max(1, repeat)):
        for q in questions:
            t = timed_answer(asker, q.question)
            rows.append({"id": q.id, "type": q.type, "first_s": round(t.first_seconds, 3),
                         "total_s": round(t.total_seconds, 3), "generated": t.generated,
                         "refused": bool(t.answer is not None and t.answer.refused)})

    def summary(sel: list[dict]) -> dict:
        return {"answers": len(sel),
                "first_content_p50_s": _pct([r["first_s"] for r in sel], 50),
                "first_content_p95_s": _pct([r["first_s"] for r in sel], 95),
                "total_p50_s": _pct([r["total_s"] for r in sel], 50),
                "total_p95_s": _pct([r["total_s"] for r in sel], 95)}

    overall = summary(rows)
    return {
        "benchmark": "answers",
        "model": asker.backend.model_id if asker.backend else None,
        "questions": len(questions),
        "repeat": max(1, repeat),
        "all": overall,
        "model_generated": summary([r for r in rows if r["generated"]]),
        "without_model": summary([r for r in rows if not r["generated"]]),
        "target": {"first_content_s_max": 3.0, "first_content_p95_s": overall["first_content_p95_s"],
                   "met_at_p95": (overall["first_content_p95_s"] or 1e9) <= 3.0},
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "rows": rows,
    }
