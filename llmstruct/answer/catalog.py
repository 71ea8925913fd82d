"""The catalog: the store's documents and items with the names the planner links to, and the
original text of each source file that passages are sliced from."""

from __future__ import annotations

from collections import Counter

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from llmstruct.answer.terms import QUOTED, simplify
from llmstruct.ingest.paths import expand_paths
from llmstruct.errors import LlmstructError
from llmstruct.ingest.source import SourceText, read_source
from llmstruct.schema import DocumentRecord, Indicator, TaskItem
from llmstruct.store.store import Store
from llmstruct.structure.pipeline import structure_file
from llmstruct.structure.regions import places_named, region_code
from llmstruct.text.tokens import tokenizer_with


@dataclass(frozen=True)
class DocInfo:
    """One report as the planner and the UI see it."""

    doc_id: str
    source_file: str
    title: str
    doc_type: str
    period: str | None
    province: str | None
    city: str | None
    county: str | None
    town: str | None

    @property
    def place(self) -> str:
        return self.town or self.county or self.city or self.province or ""

    @property
    def label(self) -> str:
        """Short name for lists and citations: place, year, the start of the title."""
        year = f"{self.period}年" if self.period else ""
        title = self.title if len(self.title) <= 20 else self.title[:19] + "…"
        return f"{self.place}{year}·{title}" if self.place else f"{year}{title}"


def name_variants(counts: Counter[str]) -> dict[str, str]:
    """Rare spellings of a name -> the usual spelling: same length (2-4 characters), same
    surname, one other character; the rare one at most twice and the usual one at least
    three times as often. A rare name near two usual ones is left alone."""
    out: dict[str, str] = {}
    for rare, n in counts.items():
        if n > 2 or not 2 <= len(rare) <= 4:
            continue
        near = [usual for usual, m in counts.items()
                if m >= 3 * n and len(usual) == len(rare) and usual[0] == rare[0]
                and sum(a != b for a, b in zip(usual, rare, strict=True)) == 1]
        if len(near) == 1:
            out[rare] = near[0]
    return out


class Catalog:
    """The store's documents and structured items, with the names the planner links to.

    Built from DocumentRecords (from the store, or from structuring files directly) and the
    original text of each source file, which item passages are sliced from.
    """

    def __init__(self, records: Iterable[DocumentRecord], texts: dict[str, str] | None = None,
                 unavailable: dict[str, str] | None = None):
        self.records: dict[str, DocumentRecord] = {r.doc_id: r for r in records}
        self.texts: dict[str, str] = dict(texts or {})
        # indexed documents left out because their source cannot be trusted: doc_id -> reason
        self.unavailable: dict[str, str] = dict(unavailable or {})
        self.docs: dict[str, DocInfo] = {
            r.doc_id: DocInfo(
                r.doc_id, r.source_file, r.title.name if r.title else r.doc_id, r.doc_type, r.period,
                r.region.province, r.region.city, r.region.county, r.region.town,
            )
            for r in self.records.values()
        }
        self.leaders = sorted({ld.name for r in self.records.values() for i in r.items for ld in i.leaders}, key=len, reverse=True)
        # per document: a leader name written once or twice that differs by one character from
        # a name the document prints far more often (朱风华 once beside 朱凤华 22 times) -> that name
        self.leader_variants: dict[str, dict[str, str]] = {
            r.doc_id: name_variants(Counter(ld.name for i in r.items for ld in i.leaders)) for r in self.records.values()}
        units: dict[str, str] = {}
        for r in self.records.values():
            for i in r.items:
                for u in i.units:
                    units.setdefault(u.name, u.canonical)
                    units.setdefault(u.canonical, u.canonical)
        self.units = dict(sorted(units.items(), key=lambda kv: len(kv[0]), reverse=True))
        self.place_names = self._collect_place_names()
        self.tokenizer = tokenizer_with([n for n, _, _ in self.place_names] + self.leaders + list(self.units))

    def places_not_covered(self, text: str) -> list[str]:
        """Places ``text`` names that no document is about: none is of that place or inside
        it, and none is of a larger place holding it (a province's report covers its cities).

        Nothing is reported while some document's place is unknown: an excerpt without its
        header may be about any place (6 of the 11 development documents in evals/corpus
        have no recognised place, and 3 of those never name theirs), so "no document is
        about it" could not be known."""
        codes_of = [region_code(r.region) for r in self.records.values()]
        if None in codes_of:
            return []
        titles = " ".join(f"{d.title} {d.source_file}" for d in self.docs.values())
        return [name for name, codes in places_named(text).items()
                if name not in titles and not any(d.startswith(c) or c.startswith(d) for c in codes for d in codes_of)]

    def leader_names(self, name: str, doc_id: str) -> list[str]:
        """The spellings of one leader in a document: the usual one first, then its variants."""
        variants = self.leader_variants.get(doc_id, {})
        usual = variants.get(name, name)
        return [usual] + sorted(v for v, u in variants.items() if u == usual)

    def _collect_place_names(self) -> list[tuple[str, str, int]]:
        """(name as it may be written, canonical place, level) longest first; level 3 = town."""
        names: dict[str, tuple[str, int]] = {}
        for d in self.docs.values():
            for level, place in ((3, d.town), (2, d.county), (1, d.city), (0, d.province)):
                if not place:
                    continue
                names.setdefault(place, (place, level))
                short = re.sub(r"(?:壮族|回族|维吾尔)?(?:自治区|特别行政区)$|(街道|镇|乡|县|区|市|省)$", "", place)
                if len(short) >= 2 and short != place:
                    names.setdefault(short, (place, level))
        return sorted(((n, p, lv) for n, (p, lv) in names.items()), key=lambda x: (-len(x[0]), -x[2]))

    def find_places(self, text: str) -> list[str]:
        """Places named in ``text`` (canonical, in order of mention), longest names first."""
        taken = [False] * len(text)
        found: list[tuple[int, str]] = []
        for name, place, _ in self.place_names:
            for m in re.finditer(re.escape(name), text):
                if any(taken[m.start():m.end()]):
                    continue
                for k in range(m.start(), m.end()):
                    taken[k] = True
                found.append((m.start(), place))
        out: list[str] = []
        for _, place in sorted(found):
            if place not in out:
                out.append(place)
        return out

    def docs_for(self, places: Sequence[str], years: Sequence[str]) -> list[str]:
        """Documents about the places (the most specific level wins); years break ties."""
        chosen: list[str] = []
        for place in places:
            exact = [d for d in self.docs.values() if d.place == place]
            if not exact:
                exact = [d for d in self.docs.values() if place in (d.town, d.county, d.city, d.province)]
            if years and len({d.period for d in exact}) > 1:
                same = [d for d in exact if d.period in years]
                exact = same or exact
            chosen += [d.doc_id for d in exact if d.doc_id not in chosen]
        return chosen

    def items_named(self, question: str, doc_ids: Sequence[str] = ()) -> list[tuple[DocumentRecord, TaskItem]]:
        """Items whose task text contains a phrase the question puts in quotes (“深化‘放管服’改革”)."""
        phrases = [simplify(x) for x in QUOTED.findall(question)]
        if not phrases:
            return []
        out = []
        for rec in self.records.values():
            if doc_ids and rec.doc_id not in doc_ids:
                continue
            for it in rec.items:
                text = simplify(it.task.text)
                if any(ph in text for ph in phrases):
                    out.append((rec, it))
        return out

    def figures_in(self, doc_id: str, start: int, end: int) -> list[Indicator]:
        """The structured figures whose evidence overlaps ``[start, end)`` of the document's
        file text: what a quote states, as the records classify it (target, actual …)."""
        rec = self.records.get(doc_id)
        if rec is None:
            return []
        return [ind for it in rec.items for ind in [*it.targets, *(g for p in it.progress for g in p.indicators)]
                if ind.evidence.start < end and ind.evidence.end > start]

    def item(self, item_id: str) -> tuple[DocumentRecord, TaskItem] | None:
        doc_id = item_id.split("#", 1)[0]
        rec = self.records.get(doc_id)
        if rec is None:
            return None
        for it in rec.items:
            if it.item_id == item_id:
                return rec, it
        return None


def catalog_from_store(store: Store, folders: Sequence[Path]) -> Catalog:
    """Records from the store, with each source file's original text (looked up by file
    name in ``folders``) so that spans can be sliced and shown.

    A source found there that cannot be read, or whose sha256 is not the one it was
    structured from, would shift or break every citation: its documents are left out and
    listed in ``Catalog.unavailable`` with the reason, and the rest serve. A source not
    found there (indexed from another folder or by another process) is served from the
    store's copy of its text, or, in stores older than that copy, from its passages.
    """
    records = list(store.records())
    by_name: dict[str, Path] = {}
    for folder in folders:
        if folder.is_dir():
            for f in folder.iterdir():
                if f.is_file():
                    by_name.setdefault(f.name, f)
    sources: dict[Path, SourceText | str] = {}
    kept, texts, unavailable = [], {}, {}
    held = store.source_texts(r.source_sha256 for r in records if Path(r.source_file).name not in by_name)
    for r in records:
        path = by_name.get(Path(r.source_file).name)
        if path is None:  # indexed elsewhere (another folder, another app process): the store's copy
            kept.append(r)
            if r.source_sha256 in held:
                texts[r.doc_id] = held[r.source_sha256]
            continue
        if path not in sources:
            try:
                sources[path] = read_source(path)
            except LlmstructError as exc:
                sources[path] = str(getattr(exc, "reason", exc))
        src = sources[path]
        if isinstance(src, str):
            unavailable[r.doc_id] = f"{r.source_file}: {src}"
        elif src.sha256 != r.source_sha256:
            unavailable[r.doc_id] = f"{r.source_file} has changed since it was indexed (sha256 differs); index it again"
        else:
            kept.append(r)
            texts[r.doc_id] = src.text
    return Catalog(kept, texts, unavailable)


def load_catalog(paths: Iterable[str | Path]) -> Catalog:
    """A catalog from files structured on the spot (rules-only): for tests and for running
    without a store."""
    records, texts = [], {}
    for f in expand_paths([Path(p) for p in paths]):
        s = structure_file(f)
        for r in s.records:
            records.append(r)
            texts[r.doc_id] = s.source.text
    return Catalog(records, texts)
