"""The Chinese vocabulary as data: ``data/vocab.yaml`` read once, checked against the schema.

Every module that matches or shows statuses, roles, document types, cue words or stop
words takes them from :data:`VOCAB`, so a word is added in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, get_args

import yaml

from llmstruct.schema import DocType, IndicatorKind, RefusalCode, Status, UnitRole


def words_pattern(words: list[str] | tuple[str, ...]) -> re.Pattern[str]:
    """A regex matching any of ``words`` (never empty: an empty pattern matches everything)."""
    if not words:
        raise ValueError("an empty word list would match everything")
    return re.compile("|".join(map(re.escape, words)))


@dataclass(frozen=True)
class Vocabulary:
    raw: dict[str, Any]

    def __post_init__(self) -> None:
        for key, literal in (("statuses", Status), ("roles", UnitRole), ("doc_types", DocType),
                             ("indicator_kinds", IndicatorKind), ("refusal_messages", RefusalCode)):
            if tuple(self.raw[key]) != get_args(literal):
                raise ValueError(f"vocab.yaml {key} {tuple(self.raw[key])} != schema {get_args(literal)}")

    # ---- statuses
    def status_label(self, status: str, review: bool = False) -> str:
        entry = self.raw["statuses"][status]
        return entry.get("review_label", entry["label"]) if review else entry["label"]

    @property
    def status_aliases(self) -> dict[str, str]:
        """Chinese filter value → status code (exact match)."""
        return {a: s for s, e in self.raw["statuses"].items() for a in e.get("filter_aliases", [])}

    @property
    def status_question_cues(self) -> tuple[tuple[str, str], ...]:
        """(cue, status) in the order a question's cues are tried."""
        st = self.raw["statuses"]
        return tuple((c, s) for s in self.raw["status_question_cue_order"] for c in st[s].get("question_cues", []))

    def status_corroboration(self, status: str) -> list[str] | None:
        return self.raw["statuses"][status].get("corroboration_words")

    @property
    def status_severity(self) -> tuple[str, ...]:
        return tuple(self.raw["status_severity"])

    # ---- roles
    def role(self, role: str) -> dict[str, Any]:
        return self.raw["roles"][role]

    @property
    def role_aliases(self) -> dict[str, str]:
        return {a: r for r, e in self.raw["roles"].items() for a in e.get("filter_aliases", [])}

    @property
    def role_question_cues(self) -> tuple[tuple[str, str], ...]:
        roles = self.raw["roles"]
        return tuple((c, r) for r in self.raw["role_question_cue_order"] for c in roles[r].get("question_cues", []))

    @property
    def role_clause_suffixes(self) -> tuple[tuple[str, str], ...]:
        roles = self.raw["roles"]
        return tuple((c, r) for r in self.raw["role_clause_suffix_order"] for c in roles[r].get("clause_suffixes", []))

    @property
    def clause_key_roles(self) -> dict[str, str | None]:
        """Label key of a unit clause → role (None: the key names leaders)."""
        out: dict[str, str | None] = {k: None for k in self.raw["leader_clause_keys"]}
        for r, e in self.raw["roles"].items():
            out.update({k: r for k in e.get("clause_keys", [])})
        return out

    # ---- everything else
    def doc_type_label(self, doc_type: str, index: bool = False) -> str:
        entry = self.raw["doc_types"].get(doc_type)
        if entry is None:
            return ""
        return entry["index_label"] if index else entry["label"]

    def kind_label(self, kind: str) -> str:
        return self.raw["indicator_kinds"][kind]["label"]

    def kind_corroboration(self, kind: str) -> list[str]:
        return self.raw["indicator_kinds"][kind]["corroboration_words"]

    def words(self, key: str) -> tuple[str, ...]:
        return tuple(self.raw[key])

    def cue(self, name: str) -> re.Pattern[str]:
        return words_pattern(self.raw["question_cues"][name])

    @property
    def refusal_answer(self) -> str:
        return self.raw["refusal_answer"]

    @property
    def refusal_messages(self) -> dict[str, str]:
        return dict(self.raw["refusal_messages"])


def load_vocabulary() -> Vocabulary:
    text = (resources.files("llmstruct") / "data" / "vocab.yaml").read_text(encoding="utf-8")
    return Vocabulary(yaml.safe_load(text))


VOCAB = load_vocabulary()
