"""Why an answer is refused: a code (counted by the eval) with a Chinese message (shown to staff)."""

from __future__ import annotations

from dataclasses import dataclass, field

from llmstruct.schema import RefusalCode
from llmstruct.vocab import VOCAB

REFUSAL = VOCAB.refusal_answer


@dataclass(frozen=True)
class Refusal:
    """A refusal reason: ``code`` says which check refused, ``detail`` fills its message."""

    code: RefusalCode
    detail: dict[str, str] = field(default_factory=dict)

    @property
    def message(self) -> str:
        return VOCAB.refusal_messages[self.code].format(**self.detail)


def refusal(code: RefusalCode, **detail: object) -> Refusal:
    return Refusal(code, {k: str(v) for k, v in detail.items()})
