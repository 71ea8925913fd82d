"""Search filters: user keys (region, year, document, unit, status …) to metadata clauses."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import get_args

from llmstruct.schema import Status
from llmstruct.text.normalize import to_simplified
from llmstruct.text.units import canonical_unit
from llmstruct.vocab import VOCAB

_FILTER_FIELDS: dict[str, tuple[str, ...]] = {
    "region": ("region",),
    "year": ("year",),
    "document": ("doc_id", "source_stem", "source_file"),
    "unit": ("units",),
    "status": ("statuses",),
    "kind": ("kind",),
    "doc_type": ("doc_type",),
    "leader": ("leaders",),
    "item": ("item_id",),
}

_FILTER_ALIASES = {"doc": "document", "doc_id": "document", "file": "document", "units": "unit",
                   "item_id": "item", "type": "doc_type", "period": "year", "leaders": "leader"}



STATUS_ALIASES = VOCAB.status_aliases

STATUSES: tuple[str, ...] = get_args(Status)


@dataclass(frozen=True)
class Clause:
    """One filter: the row matches when any (field, value) pair matches."""

    key: str
    pairs: tuple[tuple[str, str], ...]


def filter_keys() -> list[str]:
    return sorted(_FILTER_FIELDS)


def parse_filters(filters: dict[str, str] | None, known_units: Iterable[str] = ()) -> list[Clause]:
    """Filters as clauses; unknown keys raise ValueError (a usage error, not a miss).

    ``unit`` is canonicalised (县发改局 = 县发展和改革局); a unit given without its level
    prefix (统计局) matches every known unit that ends with it. ``status`` accepts the
    schema values and Chinese words (滞后, 已完成 ...). Values are mapped to Simplified.
    """
    clauses = []
    for raw_key, raw_value in (filters or {}).items():
        key = _FILTER_ALIASES.get(raw_key.strip().lower(), raw_key.strip().lower())
        if key not in _FILTER_FIELDS:
            raise ValueError(f"unknown filter {raw_key!r}; use one of {', '.join(filter_keys())}")
        value = to_simplified(str(raw_value).strip())
        if not value:
            raise ValueError(f"empty value for filter {raw_key!r}")
        if key == "unit":
            values = units_matching(value, known_units)
        elif key == "status":
            status = STATUS_ALIASES.get(value, value.lower())
            if status not in STATUSES:
                raise ValueError(f"unknown status {raw_value!r}; use one of {', '.join(STATUSES)}")
            values = [status]
        else:
            values = [value]
        clauses.append(Clause(key, tuple((f, v) for f in _FILTER_FIELDS[key] for v in values)))
    return clauses


_LEVEL = re.compile("^(" + "|".join(VOCAB.words("unit_level_prefixes")) + ")")


def units_matching(name: str, known_units: Iterable[str]) -> list[str]:
    """Canonical unit names meant by ``name``: itself, or with any level prefix when none given."""
    canon = canonical_unit(name)
    if _LEVEL.match(canon):
        return [canon]
    matches = [u for u in known_units if u == canon or (u.endswith(canon) and _LEVEL.match(u[: len(u) - len(canon)]))]
    return sorted(set(matches) | {canon})
