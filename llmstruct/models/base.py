"""The one small interface every generation backend implements, with what it can do declared."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

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


class Waiting(str):
    """An empty piece a stream may yield while its request waits for the model, so a page
    can say so: ``ahead`` requests are before it (0: it is being prefilled when
    ``started``), ``seconds`` since it was submitted. Adding it to the text changes nothing."""

    ahead: int
    seconds: float
    started: bool

    def __new__(cls, ahead: int, seconds: float, started: bool):
        self = super().__new__(cls, "")
        self.ahead, self.seconds, self.started = int(ahead), float(seconds), bool(started)
        return self


@dataclass(frozen=True)
class Capabilities:
    """What a backend does beyond the required calls, so callers need not probe for it.

    ``streaming``: :meth:`StructuredBackend.generate_json_stream` yields text as it is
    decoded (otherwise it yields the whole output once). ``prefix_cache``: a ``prefix`` given
    to the stream is prefilled once and reused. ``batching``: prompts of one call share
    forward passes. ``grammar``: the constrained-decoding engine, for display and provenance.
    ``threads``: CPU threads it computes on (0 when the work runs elsewhere, e.g. a server).
    """

    streaming: bool = False
    prefix_cache: bool = False
    batching: bool = False
    grammar: str = ""
    threads: int = 0


class StructuredBackend(ABC):
    """A local model that returns grammar-constrained JSON (and plain text for baselines)."""

    name: str
    model_id: str

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities()

    @abstractmethod
    def generate_json(self, prompts: list[str], schema: type[BaseModel], max_new_tokens: int) -> list[GenerationResult]:
        """Generate, for every prompt, compact JSON constrained to ``schema``'s JSON schema.

        Prompts are used verbatim (build them with :meth:`chat_prompt`); they are
        processed as one batch; results come back in prompt order.
        """

    @abstractmethod
    def generate_text(self, prompts: list[str], max_new_tokens: int) -> list[GenerationResult]:
        """Unconstrained greedy generation (baselines and comparisons)."""

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` under the model's tokenizer, no special tokens added."""

    @abstractmethod
    def chat_prompt(self, system: str, user: str) -> str:
        """The model's chat template applied to one system and one user message,
        ending where the assistant's answer starts."""

    def generate_json_stream(self, prompt: str, schema: type[BaseModel], max_new_tokens: int,
                             prefix: str = "") -> Iterator[str]:
        """Pieces of one constrained generation; without streaming, the whole output at once.
        A backend that queues requests may also yield :class:`Waiting` notes (empty strings)."""
        yield self.generate_json([prompt], schema, max_new_tokens)[0].text

    def load(self) -> dict[str, int]:
        """Generations running and waiting now, for a status page ({} when not known)."""
        return {}

    def warm_up(self) -> None:
        """Pay one-off start costs (grammar tables, first forward pass) before the first user."""
        self.generate_text([self.chat_prompt("", "你好")], 1)
