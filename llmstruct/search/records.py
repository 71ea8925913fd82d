"""Structured queries over the stored item records, not over chunk similarity.

"县统计局配合了哪些任务", "哪些任务进展滞后" and "朱凤华负责几项" have exact answers in the
records: which units a task names and in which role, who leads it, what its progress
says. Similarity search would return passages that look alike and miss the rest, so
these questions go to :func:`query_items`, which filters the item records (Chroma
metadata for what Chroma can filter, Python for the rest) and returns every matching
item with the spans needed to cite it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, get_args

from pydantic import BaseModel, ConfigDict

from llmstruct.schema import Hit, Span, TaskItem, UnitRole
from llmstruct.search.filters import STATUS_ALIASES, STATUSES, units_matching
from llmstruct.text.normalize import to_simplified
from llmstruct.text.units import canonical_unit
from llmstruct.vocab import VOCAB

if TYPE_CHECKING:
    from llmstruct.store.store import Store

ROLES: tuple[str, ...] = get_args(UnitRole)
ROLE_ALIASES = VOCAB.role_aliases


class ItemRef(BaseModel):
    """One matching task item with what a caller needs to count, list and cite it."""

    model_config = ConfigDict(frozen=True)

    doc_id: str
    item_id: str
    seq_no: int | None
    kind: str
    task: str
    source_file: str
    spans: list[Span]
    title: str = ""
    doc_type: str = ""
    year: str = ""
    region: list[str] = []
    leaders: list[str] = []
    units: list[tuple[str, str]] = []
    status: str | None = None
    item: TaskItem

    def to_hit(self) -> Hit:
        """The item as a ``record`` hit citing its first task span."""
        span = self.spans[0]
        return Hit(chunk_id=f"{self.item_id}/record", doc_id=self.doc_id, item_id=self.item_id,
                   source_file=self.source_file, start=span.start, end=span.end, text=span.text, kind="record",
                   score=1.0, metadata={"title": self.title, "year": self.year, "seq_no": self.seq_no or 0,
                                        "status": self.status or "", "units": "、".join(u for u, _ in self.units),
                                        "leaders": "、".join(self.leaders)})


def _roles(role: str | Iterable[str] | None) -> set[str] | None:
    if role is None:
        return None
    parts = [r for r in (role.replace("，", ",").split(",") if isinstance(role, str) else role) if str(r).strip()]
    out = set()
    for r in parts:
        r = str(r).strip()
        r = ROLE_ALIASES.get(r, r.lower())
        if r not in ROLES:
            raise ValueError(f"unknown role {r!r}; use one of {', '.join(ROLES)}")
        out.add(r)
    return out or None


def _status(status: str | None) -> str | None:
    if status is None:
        return None
    s = STATUS_ALIASES.get(status.strip(), status.strip().lower())
    if s not in STATUSES:
        raise ValueError(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
    return s


def _where(leader: str | None, status: str | None, region: str | None, doc_id: str | None,
           year: str | int | None) -> dict | None:
    parts: list[dict[str, Any]] = []
    if leader:
        parts.append({"leaders": {"$contains": to_simplified(leader.strip())}})
    if status:
        parts.append({"statuses": {"$contains": status}})
    if region:
        parts.append({"region": {"$contains": to_simplified(region.strip())}})
    if doc_id:
        parts.append({"$or": [{"doc_id": doc_id}, {"source_stem": doc_id}]})
    if year is not None and str(year).strip():
        parts.append({"year": str(year).strip()})
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"$and": parts}


def query_items(store: "Store", unit: str | None = None, role: str | Iterable[str] | None = None,
                leader: str | None = None, status: str | None = None, region: str | None = None,
                doc_id: str | None = None, year: str | int | None = None) -> list[ItemRef]:
    """Every item matching all given filters, in document and task order.

    ``unit`` is canonicalised (县发展和改革局 = 县发改局); without a level prefix (统计局) it
    matches that unit at any level. ``role`` narrows the unit's role (lead, responsible,
    cooperating, reporting, or 牵头/负责/配合; several comma-separated); without ``unit`` it
    keeps items naming any unit in that role. ``status`` matches the item's status or any
    of its progress entries' (滞后 = behind). ``region`` is any level (临沭县, 临沂市).
    ``doc_id`` is a doc id or a file stem (all reports of a compilation).
    """
    roles = _roles(role)
    rows = store.item_rows(_where(leader, _status(status), region, doc_id, year))
    wanted: set[str] | None = None
    if unit is not None and unit.strip():
        known = {u for _, m in rows for u in m.get("units", [])}
        wanted = set(units_matching(to_simplified(unit.strip()), known))
    out = []
    for item_id, meta in rows:
        item = TaskItem.model_validate_json(meta.get("item_json", "{}"))
        if wanted is not None or roles is not None:
            ok = False
            for u in item.units:
                names = {u.canonical, canonical_unit(u.name)}
                if (wanted is None or names & wanted) and (roles is None or u.role in roles):
                    ok = True
                    break
            if not ok:
                continue
        out.append(ItemRef(
            doc_id=meta.get("doc_id", ""), item_id=item_id, seq_no=item.seq_no, kind=item.kind, task=item.task.text,
            source_file=meta.get("source_file", ""), spans=list(item.task.spans), title=meta.get("title", ""),
            doc_type=meta.get("doc_type", ""), year=meta.get("year", ""), region=list(meta.get("region", [])),
            leaders=[ld.name for ld in item.leaders], units=[(u.canonical, u.role) for u in item.units],
            status=meta.get("status"), item=item))
    out.sort(key=lambda r: (r.doc_id, r.seq_no if r.seq_no is not None else 10**9, r.item_id))
    return out
