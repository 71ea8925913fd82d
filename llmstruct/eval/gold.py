"""Gold data for offline evaluation: schema, loaders and a checker.

The gold files are labelled by hand from the seed documents, independently of any
extraction system. Every label that claims to be "verbatim" must be findable in its
seed file, otherwise the gold would silently reward or punish the wrong thing;
``verify_gold`` enforces that and ``python -m llmstruct.eval.gold`` reports it.

There are two extraction gold sets, each with its own documents (:data:`GOLD_SETS`): the
seeds' (``evals/gold/extraction.yaml`` over ``seeds/``) and the development corpus's
(``evals/corpus/gold.yaml`` over ``evals/corpus/``). Both are checked the same way; the
corpus set is optional (a root without it is not a problem).
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmstruct.schema import Status

EXTRACTION_FILE = Path("evals/gold/extraction.yaml")
QUESTIONS_FILE = Path("evals/gold/questions.yaml")
SEEDS_DIR = Path("seeds")
CORPUS_FILE = Path("evals/corpus/gold.yaml")
CORPUS_DIR = Path("evals/corpus")


@dataclass(frozen=True)
class GoldSet:
    """One extraction gold file and the folder holding the documents it labels."""

    name: str  # "seeds" or "corpus": the key of its results
    label: str  # how reports title it
    file: Path  # relative to the project root
    docs_dir: Path  # relative to the project root
    required: bool = True


GOLD_SETS: tuple[GoldSet, ...] = (
    GoldSet("seeds", "seeds", EXTRACTION_FILE, SEEDS_DIR),
    GoldSet("corpus", "development corpus", CORPUS_FILE, CORPUS_DIR, required=False),
)

# The seed that bundles several work reports on one page; its reports get doc ids
# "<stem>-NN" (01-based, file order) because each report is a separate document.
MULTI_REPORT_STEM = "004_9441ed748846e1ff"
_REPORT_HEADER = re.compile(r"^\s*•\s*【", re.M)

Role = Literal["lead", "responsible", "cooperating", "reporting"]
Qualifier = Literal["exact", "approx", "at_least", "at_most"]
ValueKind = Literal["target", "actual", "forecast", "baseline"]
ItemKind = Literal["task", "target", "topic"]
QuestionType = Literal[
    "lookup", "numeric", "multi_hop", "cross_document", "count", "unanswerable"
]
QUESTION_TYPES: tuple[str, ...] = QuestionType.__args__  # type: ignore[attr-defined]


class _Strict(BaseModel):
    """Unknown keys are errors: a typo in a gold file must not pass as missing data."""

    model_config = ConfigDict(extra="forbid")


class Unit(_Strict):
    """A unit named for a task, with the role the text gives it."""

    name: str = Field(min_length=1)
    role: Role


class Quantity(_Strict):
    """A number stated in the text (target, actual, forecast or baseline)."""

    name: str = Field(min_length=1)
    value: float
    unit: str | None = None
    qualifier: Qualifier
    kind: ValueKind
    change: bool
    quote: str = Field(min_length=1)


class Progress(_Strict):
    """One progress paragraph (000) or one per-unit progress block (003)."""

    unit: str | None = None
    status: Status
    status_cue: str | None = None
    quote: str = Field(min_length=1)
    indicators: list[Quantity] = Field(default_factory=list)


class GoldItem(_Strict):
    """One task, target list or topic paragraph, labelled by hand."""

    doc: str = Field(min_length=1)
    file: str = Field(min_length=1)
    seq_no: int | None = None
    kind: ItemKind
    section_path: list[str] = Field(default_factory=list)
    task_quote: str = Field(min_length=8)
    leaders: list[str] = Field(default_factory=list)
    units: list[Unit] = Field(default_factory=list)
    targets: list[Quantity] = Field(default_factory=list)
    progress: list[Progress] = Field(default_factory=list)
    deadlines: list[str] = Field(default_factory=list)


class Support(_Strict):
    """A verbatim quote that proves (part of) an answer."""

    file: str = Field(min_length=1)
    quote: str = Field(min_length=1)


class GoldQuestion(_Strict):
    """A staff question with its reference answer and evidence."""

    id: str = Field(pattern=r"^q\d{3}$")
    type: QuestionType
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    answer_keys: list[str] = Field(default_factory=list)
    support: list[Support] = Field(default_factory=list)
    answerable: bool


def _read_yaml_list(path: str | Path) -> list[Any]:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if data is None:
        return []
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a YAML list at top level")
    return data


def load_extraction(path: str | Path) -> list[GoldItem]:
    """Load and validate the extraction gold; raises on any schema error."""
    return [GoldItem.model_validate(raw) for raw in _read_yaml_list(path)]


def load_questions(path: str | Path) -> list[GoldQuestion]:
    """Load and validate the question gold; raises on any schema error."""
    return [GoldQuestion.model_validate(raw) for raw in _read_yaml_list(path)]


def squash(text: str) -> str:
    """Drop all whitespace: used where the seeds wrap names or numbers across lines."""
    return re.sub(r"\s+", "", text)


@lru_cache(maxsize=32)
def _seed_text(path: Path) -> str:
    """The text quotes are checked against: the file itself for .txt, else what the project's
    reader extracts (the text ``structure`` and the eval see)."""
    if path.suffix.lower() == ".txt":
        return path.read_text(encoding="utf-8")
    from llmstruct.ingest import read_source  # html/pdf/docx readers, only when needed

    return read_source(path).text


def split_reports(text: str) -> list[str]:
    """Split the multi-report page into its reports (header line to next header)."""
    starts = [m.start() for m in _REPORT_HEADER.finditer(text)]
    return [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)], strict=True)]


def doc_bounds(text: str, doc: str, stem: str) -> tuple[int, int] | None:
    """Offsets ``[start, end)`` of a doc inside its file's text (the whole file, or report k of 004)."""
    if doc == stem and stem != MULTI_REPORT_STEM:
        return 0, len(text)
    match = re.fullmatch(re.escape(stem) + r"-(\d{2})", doc)
    if stem != MULTI_REPORT_STEM or not match:
        return None
    starts = [m.start() for m in _REPORT_HEADER.finditer(text)]
    k = int(match.group(1))
    if not 1 <= k <= len(starts):
        return None
    return starts[k - 1], (starts[k] if k < len(starts) else len(text))


def doc_text(seeds_dir: Path, doc: str, file: str) -> tuple[str | None, str | None]:
    """Return (text of the document, problem) for a doc id and its seed file name."""
    path = seeds_dir / file
    if not path.is_file():
        return None, f"seed file not found: {file}"
    stem = path.stem
    text = _seed_text(path)
    if doc == stem and stem != MULTI_REPORT_STEM:
        return text, None
    match = re.fullmatch(re.escape(stem) + r"-(\d{2})", doc)
    if stem == MULTI_REPORT_STEM and match:
        reports = split_reports(text)
        k = int(match.group(1))
        if 1 <= k <= len(reports):
            return reports[k - 1], None
        return None, f"doc {doc}: report {k} out of range 1..{len(reports)}"
    return None, f"doc {doc} does not belong to file {file}"


def _validation_lines(where: str, err: ValidationError) -> list[str]:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        lines.append(f"{where}: {loc}: {e['msg']} (got {e.get('input')!r})")
    return lines


def _item_quotes(item: GoldItem) -> Iterable[tuple[str, str]]:
    """(field label, verbatim string) pairs that must occur exactly in the document."""
    yield "task_quote", item.task_quote
    for i, heading in enumerate(item.section_path):
        yield f"section_path[{i}]", heading
    for i, q in enumerate(item.targets):
        yield f"targets[{i}].quote", q.quote
    for i, p in enumerate(item.progress):
        yield f"progress[{i}].quote", p.quote
        if p.status_cue is not None:
            yield f"progress[{i}].status_cue", p.status_cue
        for j, q in enumerate(p.indicators):
            yield f"progress[{i}].indicators[{j}].quote", q.quote
    for i, d in enumerate(item.deadlines):
        yield f"deadlines[{i}]", d


def _item_names(item: GoldItem) -> Iterable[tuple[str, str]]:
    """Names written "as printed" but possibly wrapped: checked with whitespace removed."""
    for i, leader in enumerate(item.leaders):
        yield f"leaders[{i}]", leader
    for i, u in enumerate(item.units):
        yield f"units[{i}].name", u.name
    for i, p in enumerate(item.progress):
        if p.unit is not None:
            yield f"progress[{i}].unit", p.unit


def _valid_entries(raw: list[Any], model: type[_Strict], label: str, problems: list[str]):
    """(index, entry) for each entry that validates; the others add problem lines."""
    for n, entry in enumerate(raw):
        try:
            yield n, model.model_validate(entry)
        except ValidationError as err:
            problems.extend(_validation_lines(f"{label}[{n}]", err))


def check_extraction(raw_items: list[Any], seeds_dir: Path) -> tuple[list[GoldItem], list[str]]:
    """Validate every entry on its own so one bad entry does not hide the others."""
    problems: list[str] = []
    items: list[GoldItem] = []
    seen: Counter[tuple[str, int | None, str]] = Counter()
    for n, item in _valid_entries(raw_items, GoldItem, "extraction", problems):
        items.append(item)
        where = f"extraction[{n}] {item.doc} #{item.seq_no}"
        key = (item.doc, item.seq_no, item.task_quote)
        seen[key] += 1
        if seen[key] == 2:
            problems.append(f"{where}: duplicate item")
        if item.kind == "topic" and item.seq_no is not None:
            problems.append(f"{where}: topic paragraphs have seq_no null")
        text, why = doc_text(seeds_dir, item.doc, item.file)
        if text is None:
            problems.append(f"{where}: {why}")
            continue
        for label, quote in _item_quotes(item):
            if quote not in text:
                problems.append(f"{where}: {label} not verbatim in {item.file}: {quote!r}")
        flat = squash(text)
        for label, name in _item_names(item):
            if squash(name) not in flat:
                problems.append(f"{where}: {label} not in {item.file}: {name!r}")
    return items, problems


def check_questions(raw_qs: list[Any], seeds_dir: Path) -> tuple[list[GoldQuestion], list[str]]:
    """Validate questions, their evidence and the answerable/unanswerable contract."""
    problems: list[str] = []
    qs: list[GoldQuestion] = []
    ids: Counter[str] = Counter()
    for n, q in _valid_entries(raw_qs, GoldQuestion, "questions", problems):
        qs.append(q)
        where = f"questions[{n}] {q.id}"
        ids[q.id] += 1
        if ids[q.id] == 2:
            problems.append(f"{where}: duplicate id")
        if (q.type == "unanswerable") == q.answerable:
            problems.append(f"{where}: answerable must be false exactly for type unanswerable")
        if q.answerable:
            if not q.support:
                problems.append(f"{where}: answerable question without support")
            if not q.answer_keys:
                problems.append(f"{where}: answerable question without answer_keys")
        elif q.support or q.answer_keys:
            problems.append(f"{where}: unanswerable question must have no support/keys")
        for i, s in enumerate(q.support):
            path = seeds_dir / s.file
            if not path.is_file():
                problems.append(f"{where}: support[{i}] seed file not found: {s.file}")
            elif s.quote not in _seed_text(path):
                problems.append(f"{where}: support[{i}] not verbatim in {s.file}: {s.quote!r}")
        evidence = squash("".join(s.quote for s in q.support))
        answer = squash(q.answer)
        for key in q.answer_keys:
            k = squash(key)
            if not k or (k not in evidence and k not in answer):
                problems.append(f"{where}: answer key {key!r} in neither support nor answer")
    return qs, problems


def verify_gold(root: str | Path) -> list[str]:
    """Return one line per problem in the gold files under ``root`` (empty = all good).

    Each extraction gold set is checked against its own documents folder; the questions
    against the seeds. An optional set (the development corpus) that is absent is skipped.
    """
    root = Path(root)
    problems: list[str] = []
    checks = [(gs.file, gs.docs_dir, check_extraction, gs.required) for gs in GOLD_SETS]
    checks.append((QUESTIONS_FILE, SEEDS_DIR, check_questions, True))
    for rel, docs, check, required in checks:
        path = root / rel
        if not path.is_file():
            if required:
                problems.append(f"missing gold file: {rel}")
            continue
        try:
            raw = _read_yaml_list(path)
        except (yaml.YAMLError, ValueError) as err:
            problems.append(f"{rel}: cannot parse: {err}")
            continue
        problems.extend(f"{rel}: {p}" for p in check(raw, root / docs)[1])
    return problems


def summary(root: str | Path) -> list[str]:
    """Human-readable counts: items per seed file and per doc, questions per type."""
    root = Path(root)
    lines: list[str] = []
    for gs in GOLD_SETS:
        if not gs.required and not (root / gs.file).is_file():
            continue
        label = "extraction" if gs.name == "seeds" else f"extraction ({gs.label}, {gs.file})"
        try:
            items = load_extraction(root / gs.file)
        except (OSError, ValueError, ValidationError, yaml.YAMLError) as err:
            lines.append(f"{label}: not loadable ({type(err).__name__})")
            continue
        lines.append(f"{label} items: {len(items)}")
        for file, n in sorted(Counter(i.file for i in items).items()):
            docs = Counter(i.doc for i in items if i.file == file)
            extra = f" in {len(docs)} docs" if len(docs) > 1 else ""
            lines.append(f"  {file}: {n}{extra}")
            if len(docs) > 1:
                lines.extend(f"    {doc}: {k}" for doc, k in sorted(docs.items()))
    try:
        qs = load_questions(root / QUESTIONS_FILE)
    except (OSError, ValueError, ValidationError, yaml.YAMLError) as err:
        lines.append(f"questions: not loadable ({type(err).__name__})")
    else:
        lines.append(f"questions: {len(qs)}")
        by_type = Counter(q.type for q in qs)
        for t in QUESTION_TYPES:
            lines.append(f"  {t}: {by_type.get(t, 0)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """CLI: print counts and problems; exit 1 when any problem is found."""
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else Path(__file__).resolve().parents[2]
    for line in summary(root):
        print(line)
    problems = verify_gold(root)
    print(f"problems: {len(problems)}")
    for p in problems:
        print(f"  {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
