"""The answer prompt: numbered passages with their source, the candidate sentences, groups."""

from __future__ import annotations

from collections.abc import Sequence

from llmstruct.answer.catalog import Catalog
from llmstruct.answer.passages import Passage
from llmstruct.answer.terms import simplify
from llmstruct.schema import Hit
from llmstruct.text.prompts import load_template

ANSWER_PROMPT = "answer_question.v2"

PLACES_PROMPT = "answer_places.v1"

PARTS_PROMPT = "answer_parts.v1"

MAX_PLACES = 5


def place_groups(passages: Sequence[Passage], doc_ids: Sequence[str]) -> list[list[int]]:
    """Indices of each named document's passages, in the plan's order, when a question
    names two or more places and at least two of them have passages; else ``[]``."""
    if len(doc_ids) < 2:
        return []
    groups = [[i for i, ps in enumerate(passages) if ps.hit.doc_id == d] for d in dict.fromkeys(doc_ids)]
    groups = [g for g in groups if g][:MAX_PLACES]
    return groups if len(groups) >= 2 else []


def passage_header(hit: Hit, catalog: Catalog | None) -> str:
    """Where a passage comes from: place, year and report, its section, its item number."""
    parts = []
    if catalog and hit.doc_id in catalog.docs:
        parts.append(catalog.docs[hit.doc_id].label)
        found = catalog.item(hit.item_id) if hit.item_id else None
        if found and found[1].section_path:
            parts.append(simplify(found[1].section_path[0])[:16])
    seq = hit.metadata.get("seq_no")
    if isinstance(seq, int) and seq >= 0:
        parts.append(f"第{seq}项{'进展' if hit.kind == 'progress' else ''}")
    return "·".join(parts)


def build_prompt(question: str, passages: Sequence[Passage], backend, catalog: Catalog | None,
                 max_statements: int, candidates: Sequence[str] = (),
                 places: Sequence[tuple[str, Sequence[str]]] = (), template: str = PLACES_PROMPT) -> tuple[str, str]:
    """The answer prompt and its question-independent start (the system message), which a
    backend may keep prefilled. Passages are numbered with their source; the candidate
    sentences are the only strings the grammar admits as quotes. With ``places`` ((label,
    sentences) per place, or per part of the question with ``template=PARTS_PROMPT``) the
    candidates are grouped and one statement per group is asked."""
    lines = []
    for n, p in enumerate(passages, start=1):
        header = passage_header(p.hit, catalog)
        lines.append(f"[{n}]（{header}）{p.text}" if header else f"[{n}] {p.text}")
    common = dict(question=question, passages="\n".join(lines), n=len(passages),
                  numbers="、".join(str(i) for i in range(1, len(passages) + 1)))
    if places:
        options = "\n".join(f"{k}. {label}\n" + "\n".join(f"- {c}" for c in cands)
                             for k, (label, cands) in enumerate(places, start=1))
        system, user = load_template(template).render(candidates=options, groups=len(places), **common)
    else:
        options = "\n".join(f"- {c}" for c in candidates) or "（无）"
        system, user = load_template(ANSWER_PROMPT).render(candidates=options, max_statements=max_statements, **common)
    prompt = backend.chat_prompt(system, user)
    cut = prompt.rfind(user)
    return prompt, (prompt[:cut] if cut > 0 else "")
