"""The one small interface every generation backend implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pydantic import BaseModel


@dataclass(frozen=True)
class GenerationResult:
    """One generated output.

    ``text``: the generated text (special tokens removed).
    ``prompt_tokens``: tokens of this prompt (padding excluded).
    ``completion_tokens``: tokens generated for this prompt, the end-of-sequence token
    included when one was produced.
    ``seconds``: wall time of the whole call that produced it (one batch shares it, so a
    batch's aggregate speed is ``sum(completion_tokens) / seconds``).
    ``truncated``: generation stopped at the ``max_new_tokens`` cap instead of ending by
    itself. A truncated output must be reported as a failure, never parsed.
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    truncated: bool


@runtime_checkable
class StructuredBackend(Protocol):
    """A local model that returns grammar-constrained JSON (and plain text for baselines)."""

    name: str
    model_id: str

    def generate_json(
        self, prompts: list[str], schema: type[BaseModel], max_new_tokens: int
    ) -> list[GenerationResult]:
        """Generate, for every prompt, compact JSON constrained to ``schema``'s JSON schema.

        Prompts are used verbatim (build them with :meth:`chat_prompt`); they are
        processed as one batch; results come back in prompt order.
        """
        ...

    def generate_text(self, prompts: list[str], max_new_tokens: int) -> list[GenerationResult]:
        """Unconstrained greedy generation (baselines and comparisons)."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` under the model's tokenizer, no special tokens added."""
        ...

    def chat_prompt(self, system: str, user: str) -> str:
        """The model's chat template applied to one system and one user message,
        ending where the assistant's answer starts."""
        ...
