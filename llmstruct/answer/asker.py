"""The Asker: plan, retrieve, generate under a grammar, verify; the one entry point for answers."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from llmstruct.answer.arithmetic import arithmetic_answer
from llmstruct.answer.catalog import Catalog
from llmstruct.answer.compose import (
    StreamEvent,
    answer_from_output,
    draft_text,
    refused,
)
from llmstruct.answer.evidence import ranked_clauses
from llmstruct.answer.from_metadata import metadata_answer
from llmstruct.answer.from_records import assignment_answer, item_facts, records_answer
from llmstruct.answer.grammar import answer_schema, grouped_schema
from llmstruct.answer.passages import (
    MAX_PASSAGES,
    Passage,
    coverage,
    merge_hits,
    retrieve,
)
from llmstruct.answer.planning import (
    Plan,
    apply_filters,
    part_plan,
    part_topics,
    plan,
    question_parts,
)
from llmstruct.answer.prompt import (
    PARTS_PROMPT,
    PLACES_PROMPT,
    build_prompt,
    passage_header,
    place_groups,
)
from llmstruct.answer.refusal import refusal
from llmstruct.answer.terms import content_terms
from llmstruct.answer.verification import (
    AnswerGroup,
    VerifyReport,
)
from llmstruct.models.base import StructuredBackend, Waiting
from llmstruct.schema import Answer
from llmstruct.store.store import Store

MIN_COVERAGE = 0.5
# One question holds a model slot for its whole answer: a page of text is not a question,
# and only the last few turns of a conversation can be what a follow-up refers to.
MAX_QUESTION_CHARS = 500
MAX_HISTORY_TURNS = 6


def waiting_text(w: Waiting, passages: int) -> str:
    """What the page says while the model is busy with other questions or reading this one."""
    if w.ahead:
        return f"检索到 {passages} 段相关原文。排队中：前面还有 {w.ahead} 个问题（已等待 {w.seconds:.0f} 秒）…"
    return f"检索到 {passages} 段相关原文，正在阅读并生成回答（已用 {w.seconds:.0f} 秒）…"


@dataclass
class Asker:
    """Everything needed to answer: a catalog (records + texts), optionally a store and a
    backend. The CLI and the web app are thin layers over this."""

    catalog: Catalog
    backend: StructuredBackend | None = None
    store: Store | None = None
    use_model_plan: bool = False
    max_new_tokens: int = 200

    def plan(self, question: str, history: Sequence[str] = ()) -> Plan:
        return plan(question, history, self.catalog, self.backend if self.use_model_plan else None)

    def ask(self, question: str, history: Sequence[str] = (), filters: dict[str, str] | None = None) -> Answer:
        final = None
        for ev in self.stream(question, history, filters):
            if ev.kind == "final":
                final = ev.answer
        assert final is not None
        return final

    def stream(self, question: str, history: Sequence[str] = (), filters: dict[str, str] | None = None) -> Iterator[StreamEvent]:
        """Events: status lines, drafts while the model copies evidence, then the final answer."""
        t0 = time.perf_counter()
        question = question.strip()
        if not question:
            why = refusal("empty_question")
            yield StreamEvent("final", answer=refused(question, why), seconds=0.0, refusal=why)
            return
        if len(question) > MAX_QUESTION_CHARS:
            why = refusal("question_too_long", chars=len(question), limit=MAX_QUESTION_CHARS)
            yield StreamEvent("final", answer=refused(question[:MAX_QUESTION_CHARS], why), seconds=0.0, refusal=why)
            return
        history = [h[:MAX_QUESTION_CHARS] for h in list(history)[-MAX_HISTORY_TURNS:]]
        p = self.plan(question, history)
        if filters:
            p = apply_filters(p, filters, self.catalog)
        outside = self.catalog.places_not_covered(p.standalone)
        if outside and not p.regions and not p.doc_ids:  # only places no document is about
            why = refusal("place_not_in_corpus", place="、".join(outside))
            yield StreamEvent("final", answer=refused(question, why), seconds=time.perf_counter() - t0, refusal=why)
            return
        meta = metadata_answer(question, p, self.catalog)
        if meta is not None:
            yield StreamEvent("final", answer=meta, seconds=time.perf_counter() - t0)
            return
        computed = arithmetic_answer(question, p, self.catalog)
        if computed is not None:
            yield StreamEvent("final", answer=computed, seconds=time.perf_counter() - t0)
            return
        if p.intent in ("count", "list"):
            rec = records_answer(question, p, self.catalog, self.store)
            if rec is not None:
                yield StreamEvent("final", answer=rec, seconds=time.perf_counter() - t0,
                                  refusal=refusal(rec.refusal) if rec.refusal else None)
                return
        facts = item_facts(p, self.catalog)
        if facts is not None and facts.missing:
            yield StreamEvent("final", answer=refused(question, facts.missing), seconds=time.perf_counter() - t0,
                              refusal=facts.missing)
            return
        if facts is not None:
            direct = assignment_answer(question, p, facts, self.catalog)
            if direct is not None:
                yield StreamEvent("final", answer=direct, seconds=time.perf_counter() - t0)
                return
        several = len(p.doc_ids) >= 2  # two passages per named place, within the prompt's budget
        parts = [] if several else question_parts(p.standalone, self.catalog)
        if parts:  # each part retrieves for itself; the passages are pooled
            hits = merge_hits([retrieve(part_plan(p, q), self.catalog, self.store, k=3, filters=filters)
                                for q in parts], MAX_PASSAGES + 1)
        else:
            hits = retrieve(p, self.catalog, self.store, k=min(8, 2 * len(p.doc_ids)) if several else MAX_PASSAGES,
                            filters=filters)
        passages = [Passage.of(h) for h in hits]
        terms = p.keywords or content_terms(p.standalone, self.catalog)
        strength = max((coverage(terms, ps.text) for ps in passages), default=0.0)
        if not passages or strength < MIN_COVERAGE:
            why = refusal("weak_evidence", coverage=f"{strength:.2f}")
            yield StreamEvent("final", answer=refused(question, why), passages=tuple(hits),
                              seconds=time.perf_counter() - t0, refusal=why)
            return
        yield StreamEvent("status", text=f"检索到 {len(passages)} 段相关原文，正在生成回答…", passages=tuple(hits))
        max_statements = 3 if p.intent == "compare" else 2
        contexts = [passage_header(ps.hit, self.catalog) for ps in passages]
        gaps: list[str] = []
        if parts:
            groups, gaps = self._by_part(p, parts, passages, contexts)
        else:
            groups = self._by_place(p, passages, terms, contexts)
        if groups:
            spec = tuple((tuple(i + 1 for i in g.passages), tuple(c for _, c in g.ranked)) for g in groups)
            schema = grouped_schema(spec)
            prompt, prefix = build_prompt(p.standalone, passages, self.backend, self.catalog, len(spec),
                                          places=[(g.label, quotes) for g, (_, quotes) in zip(groups, spec)],
                                          template=PARTS_PROMPT if parts else PLACES_PROMPT)
            ranked = sorted((x for g in groups for x in g.ranked), key=lambda x: -x[0])
            budget = self.max_new_tokens // 2 * len(spec)
        else:
            ranked = ranked_clauses(passages, terms, p.years, contexts, p.standalone, k=2 + 2 * max_statements)
            options = tuple(c for _, c in ranked)
            schema = answer_schema(tuple(range(1, len(passages) + 1)), max_statements, options)
            prompt, prefix = build_prompt(p.standalone, passages, self.backend, self.catalog, max_statements, options)
            budget = self.max_new_tokens
        raw = ""
        for piece in self.backend.generate_json_stream(prompt, schema, budget, prefix=prefix):
            if isinstance(piece, Waiting):
                yield StreamEvent("status", text=waiting_text(piece, len(passages)), passages=tuple(hits),
                                  seconds=time.perf_counter() - t0)
                continue
            raw += piece
            draft = draft_text(raw)
            if draft:
                yield StreamEvent("draft", text=draft, passages=tuple(hits), seconds=time.perf_counter() - t0)
        report = VerifyReport()
        docs, places = self._asked_places(p, filters)
        answer = answer_from_output(question, p.standalone, raw, passages, self.catalog, report, schema, ranked, groups,
                                    docs=docs, places=places, gaps=gaps)
        yield StreamEvent("final", answer=answer, passages=tuple(hits), seconds=time.perf_counter() - t0,
                          refusal=report.refusal if answer.refused else None, report=report)

    def _by_place(self, p: Plan, passages: Sequence[Passage], terms: Sequence[str],
                  contexts: Sequence[str]) -> list[AnswerGroup]:
        """For a question about several places: one group per place that has sentences, in
        the plan's order; ``[]`` when fewer than two places do."""
        out = []
        groups = place_groups(passages, p.doc_ids)
        per = 3 if len(groups) <= 3 else 2  # candidates per place: the prompt stays ≈ one place's size
        for g in groups:
            ranked = ranked_clauses([passages[i] for i in g], terms, p.years, [contexts[i] for i in g],
                                    p.standalone, k=per)
            if ranked:
                doc = self.catalog.docs.get(passages[g[0]].hit.doc_id)
                out.append(AnswerGroup(g, ranked, p.standalone, contexts[g[0]].split("·")[0],
                                       doc.place if doc else ""))
        return out if len(out) >= 2 else []

    def _asked_places(self, p: Plan, filters: dict[str, str] | None) -> tuple[list[str] | None,
                                                                             list[tuple[str, list[str]]]]:
        """The documents a statement may cite (those of the places or the document asked
        about; None when the question names none), and (place, its documents) for each place
        of a question about several (each answered or named as not found)."""
        docs = list(p.doc_ids) if p.doc_ids and (p.regions or (filters or {}).get("doc_id")
                                                 or (filters or {}).get("region")) else None
        places = []
        if len(p.regions) >= 2 and not (filters or {}).get("doc_id"):
            for place in p.regions:
                mine = [d for d in self.catalog.docs_for([place], p.years) if d in p.doc_ids]
                places.append((place, mine))
        return docs, places

    def _by_part(self, p: Plan, parts: Sequence[str], passages: Sequence[Passage],
                 contexts: Sequence[str]) -> tuple[list[AnswerGroup], list[str]]:
        """For a question in parts: one group per part that has sentences, ranked for that
        part over all the pooled passages, and the topics of the parts with none (named as
        not found); ``([], [])`` when no part has sentences."""
        every = list(range(len(passages)))
        topics = part_topics(p.standalone, self.catalog)
        out, gaps = [], []
        for i, q in enumerate(parts):
            sub = part_plan(p, q)
            ranked = ranked_clauses(passages, content_terms(q, self.catalog), sub.years, contexts, q, k=3)
            topic = topics[i] if i < len(topics) else q.rstrip("？")
            if ranked:
                out.append(AnswerGroup(every, ranked, q, q, gap=topic))
            else:
                gaps.append(topic)
        return (out, gaps) if out else ([], [])
