"""The code around the model, with a scripted backend: streaming, drafts, schema checks,
repair and refusal codes. The backend writes what the per-question grammar admits first
(its first candidate sentence, its first passage number), so these tests exercise the real
schemas, prompts and verification fast; what the model itself chooses is tested with the
real model in test_asker.py (marked ``model``)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from helpers import SEEDS
from pydantic import BaseModel

from llmstruct.answer import Asker, load_catalog
from llmstruct.models.base import Capabilities, GenerationResult, StructuredBackend

QUESTION = "临沭县2021年上半年一般公共预算收入是多少？"


def _first_admitted(schema: type[BaseModel]) -> str:
    """The JSON the grammar admits when every choice takes its first option: an answer
    (not a refusal) whose statements quote their first candidate and cite their first passage."""
    js = schema.model_json_schema()
    defs = js.get("$defs", {})

    def resolve(node: dict) -> dict:
        return defs[node["$ref"].split("/")[-1]] if "$ref" in node else node

    answered = next(resolve(alt) for alt in js["anyOf"] if "statements" in resolve(alt)["properties"])
    stmts = answered["properties"]["statements"]
    items = stmts.get("prefixItems") or [stmts["items"]] * stmts.get("minItems", 1)
    out = []
    for item in map(resolve, items):
        props = item["properties"]
        quote = props["quote"]["enum"][0]
        cite = props["cites"]["items"]["enum"][0]
        out.append({"quote": quote, "text": quote, "cites": [cite]})
    return json.dumps({"refuse": False, "statements": out}, ensure_ascii=False, separators=(",", ":"))


class ScriptedBackend(StructuredBackend):
    """No model: answers with :func:`_first_admitted` (or a fixed text), streamed in pieces."""

    name = "scripted"
    model_id = "scripted"

    def __init__(self, fixed: str | None = None):
        self.fixed = fixed
        self.calls: list[tuple[str, str]] = []

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(streaming=True, prefix_cache=True)

    def chat_prompt(self, system: str, user: str) -> str:
        return f"<system>{system}</system><user>{user}</user><assistant>"

    def count_tokens(self, text: str) -> int:
        return len(text)

    def generate_text(self, prompts: list[str], max_new_tokens: int) -> list[GenerationResult]:
        return [GenerationResult("", len(p), 0, 0.0, False) for p in prompts]

    def generate_json(self, prompts: list[str], schema: type[BaseModel], max_new_tokens: int) -> list[GenerationResult]:
        return [GenerationResult("".join(self.generate_json_stream(p, schema, max_new_tokens)), len(p), 1, 0.0, False)
                for p in prompts]

    def generate_json_stream(self, prompt: str, schema: type[BaseModel], max_new_tokens: int,
                             prefix: str = "") -> Iterator[str]:
        self.calls.append((prompt, prefix))
        text = self.fixed if self.fixed is not None else _first_admitted(schema)
        for i in range(0, len(text), 7):
            yield text[i:i + 7]


@pytest.fixture(scope="module")
def catalog():
    return load_catalog([SEEDS / "000_5c1aadecc78db95a.txt"])


def test_a_streamed_answer_shows_drafts_then_a_verified_final(catalog):
    backend = ScriptedBackend()
    events = list(Asker(catalog, backend).stream(QUESTION))
    kinds = [e.kind for e in events]
    assert kinds[0] == "status" and kinds[-1] == "final" and "draft" in kinds
    assert all(e.text.startswith("「") for e in events if e.kind == "draft")
    final = events[-1]
    assert not final.answer.refused and final.answer.citations and final.report is not None
    text = catalog.texts[final.answer.citations[0].doc_id]
    for c in final.answer.citations:  # every citation is the exact slice of the file it names
        assert text[c.start:c.end] == c.quote
    prompt, prefix = backend.calls[0]
    assert prefix and prompt.startswith(prefix) and QUESTION.rstrip("？") in prompt[len(prefix):]


def test_the_same_question_twice_is_generated_twice(catalog):
    backend = ScriptedBackend()
    asker = Asker(catalog, backend)
    first, second = asker.ask(QUESTION), asker.ask(QUESTION)
    assert len(backend.calls) == 2 and first == second and not first.refused


def test_an_output_cut_off_is_refused_with_its_code(catalog):
    answer = Asker(catalog, ScriptedBackend(fixed='{"refuse":false,"statements":[{"quote":"')).ask(QUESTION)
    assert answer.refused and answer.refusal == "truncated"


def test_a_model_refusal_is_kept_with_its_code(catalog):
    answer = Asker(catalog, ScriptedBackend(fixed='{"refuse":true}')).ask(QUESTION)
    assert answer.refused and answer.refusal == "model_refused"


def test_a_question_with_no_evidence_is_refused_before_the_model(catalog):
    backend = ScriptedBackend()
    events = list(Asker(catalog, backend).stream("火星探测器的发射窗口是哪一天？"))
    assert events[-1].answer.refused and events[-1].answer.refusal == "weak_evidence"
    assert "覆盖率" in events[-1].reason and backend.calls == []


def test_an_empty_question_is_refused_with_its_code(catalog):
    answer = Asker(catalog, ScriptedBackend()).ask("   ")
    assert answer.refused and answer.refusal == "empty_question"


def test_a_question_over_the_length_limit_is_refused_before_any_work(catalog):
    backend = ScriptedBackend()
    final = list(Asker(catalog, backend).stream(QUESTION * 40))[-1]
    assert final.answer.refused and final.answer.refusal == "question_too_long" and not backend.calls
    assert "上限 500 字" in final.refusal.message
    ok = list(Asker(catalog, backend).stream(QUESTION, history=["很长的历史问题" * 500] * 50))[-1]
    assert not ok.answer.refused  # a long history is trimmed, never refused
