"""Output schemas built per question: a citation can only be a passage number shown and a quote
only one of the offered sentences."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, RootModel, conlist, create_model

from llmstruct.answer.evidence import QUOTE_CHARS

TEXT_CHARS = 60

_CLOSED = ConfigDict(extra="forbid", frozen=True)


def _statement_model(name: str, numbers: tuple[int, ...], quotes: tuple[str, ...]) -> type[BaseModel]:
    """One statement: a quote (one of ``quotes`` verbatim, or free text when none are given),
    a short text, and one or two citations among ``numbers``."""
    quote_type = (Literal[quotes], ...) if quotes else (str, Field(max_length=QUOTE_CHARS))  # type: ignore[valid-type]
    return create_model(
        name,
        __config__=_CLOSED,
        quote=quote_type,
        text=(str, Field(max_length=TEXT_CHARS)),
        cites=(conlist(Literal[numbers], min_length=1, max_length=2), ...),  # type: ignore[valid-type]
    )


def _answer_or_refusal(name: str, statements: Any) -> type[RootModel]:
    """``{"refuse":true}`` or ``{"refuse":false,"statements":...}``."""
    refusal = create_model("Refusal", __config__=_CLOSED, refuse=(Literal[True], ...))
    answered = create_model(name, __config__=_CLOSED, refuse=(Literal[False], ...), statements=(statements, ...))
    return RootModel[Union[answered, refusal]]  # type: ignore[valid-type]


@lru_cache(maxsize=64)
def answer_schema(numbers: tuple[int, ...], max_statements: int, quotes: tuple[str, ...] = ()) -> type[RootModel]:
    """Output schema for one call: ``{"refuse":true}`` or ``{"refuse":false,"statements":[...]}``
    with at least one statement. Cites admit only the retrieved passages' numbers; with
    ``quotes`` given, a quote can only be one of those sentences (verbatim evidence)."""
    statement = _statement_model(f"Statement_{len(numbers)}", numbers, quotes)
    return _answer_or_refusal(f"Answered_{len(numbers)}_{max_statements}",
                              conlist(statement, min_length=1, max_length=max_statements))


@lru_cache(maxsize=64)
def grouped_schema(groups: tuple[tuple[tuple[int, ...], tuple[str, ...]], ...]) -> type[RootModel]:
    """Output schema for an answer in groups (the places of a comparison, the parts of a
    question): ``{"refuse":true}`` or exactly one statement per group, in order; statement i
    can quote only group i's sentences and cite only group i's passages (``groups``:
    (passage numbers, sentences) per group)."""
    items = tuple(_statement_model(f"Group{i}_{len(numbers)}", numbers, quotes)
                  for i, (numbers, quotes) in enumerate(groups, start=1))
    return _answer_or_refusal(f"AnsweredGroups_{len(groups)}", tuple[items])
