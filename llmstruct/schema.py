"""The contract: every record llmstruct writes is one of these pydantic models.

Every value that comes from a document carries a :class:`Span` whose ``start``/``end`` are
character offsets into the *original text* of the source (``formats.read_source(path).text``),
so that ``original[start:end] == span.text`` always holds. Clean, normalised strings
(line breaks of wrapped cells removed, Traditional mapped to Simplified, page numbers
dropped) sit next to the spans for reading; the spans are the proof.

Key order matters for constrained decoding: evidence comes before the values the model
derives from it, so the model writes a value after it has quoted the text.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

SCHEMA_VERSION = "1.1"  # 1.1: on_track status, Progress.assessment, DocumentRecord.coverage


class Strict(BaseModel):
    """Base: unknown fields are an error, records are immutable once built."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Span(Strict):
    """A half-open character range ``[start, end)`` of the original text, with that text."""

    start: int = Field(ge=0)
    end: int = Field(ge=0)
    text: str

    @model_validator(mode="after")
    def _ordered(self) -> "Span":
        if self.end < self.start:
            raise ValueError("span end before start")
        if len(self.text) != self.end - self.start:
            raise ValueError("span text length differs from end - start")
        return self


class TextField(Strict):
    """A passage as clean text plus the original spans it was read from.

    ``spans`` has several entries when a passage is interrupted in the source, e.g. a
    PDF table cell whose continuation was printed after another column at a page break.
    """

    text: str
    spans: list[Span] = Field(min_length=1)


class Named(Strict):
    """A name (leader, meeting, issuer ...) with the span it was read from."""

    name: str
    span: Span


UnitRole = Literal["lead", "responsible", "cooperating", "reporting"]


class Unit(Strict):
    """An organisation named for a task, with its role.

    ``lead``: 牵头 / 第一责任单位; ``responsible``: 责任单位 / 负责; ``cooperating``: 配合单位 /
    …配合; ``reporting``: appears only as the author of a progress block. A name wrapped
    in a table cell and interrupted by another column has several spans.
    """

    name: str
    canonical: str
    role: UnitRole
    spans: list[Span] = Field(min_length=1)


Qualifier = Literal["exact", "approx", "at_least", "at_most"]
IndicatorKind = Literal["target", "actual", "forecast", "baseline"]
Direction = Literal["up", "down", "flat"]
Alignment = Literal["exact", "normalized", "fuzzy", "rule"]


class Change(Strict):
    """A change such as 增长7% (value 7, unit %, direction up)."""

    value: float
    unit: str = Field(max_length=12)
    direction: Direction


class Indicator(Strict):
    """A figure stated in the text: a target, an actual, a forecast or a baseline."""

    evidence: Span
    name: str = Field(max_length=40)
    value: float | None = None
    value_text: str = Field(default="", max_length=40)
    unit: str = Field(default="", max_length=12)
    base_value: float | None = None
    qualifier: Qualifier = "exact"
    kind: IndicatorKind
    change: Change | None = None
    period: str = Field(default="", max_length=30)
    alignment: Alignment = "exact"


# What a progress entry's words can state (the model proposes only these, tied to a cue).
StatedStatus = Literal["completed", "in_progress", "behind", "not_started", "suspended", "planned", "unknown"]
# ... plus what code computes from the figures: on_track (meets its target or the share of
# it the time elapsed asks for).
Status = Literal["completed", "on_track", "in_progress", "behind", "not_started", "suspended", "planned", "unknown"]

AssessmentBasis = Literal["stated_share", "growth_rate", "time_share"]


class Assessment(Strict):
    """Progress judged against the item's target by code, from grounded figures.

    ``stated_share``: the text's own completion ratio (完成全年目标的57.9%) against the share
    of the year elapsed; ``growth_rate``: a reported growth rate against the target rate;
    ``time_share``: a cumulative amount over the target amount, against the share of the
    year elapsed (序时进度: 1-5月 = 5/12). ``actual`` and ``target`` are the figures' spans;
    ``elapsed`` is the share of the year and ``period`` the words it was read from.
    """

    status: Literal["on_track", "behind"]
    basis: AssessmentBasis
    actual: Span
    target: Span | None = None
    actual_value: float
    target_value: float | None = None
    elapsed: float | None = Field(default=None, ge=0, le=1)
    period: Span | None = None
    explanation: str = Field(max_length=120)


class Progress(Strict):
    """One progress entry: the whole 进展情况 paragraph, or one unit's block in a table."""

    reporting_unit: Named | None = None
    text: TextField
    status: Status | None = None
    status_cue: Span | None = None
    indicators: list[Indicator] = Field(default_factory=list)
    assessment: Assessment | None = None


class Deadline(Strict):
    """A time limit stated for a task (年内, 6月底前, 2023年底前 ...)."""

    text: str
    span: Span


ItemKind = Literal["task", "target", "topic", "summary"]


class TaskItem(Strict):
    """One task (numbered) or topic paragraph (work reports), with everything said of it.

    ``kind``: ``task`` a numbered task; ``target`` the main expected targets (主要预期目标);
    ``topic`` a topic paragraph of a work report; ``summary`` a review paragraph with the
    year's headline figures.
    """

    item_id: str
    seq_no: int | None = None
    section_path: list[str] = Field(default_factory=list)
    kind: ItemKind
    heading: str = ""
    task: TextField
    leaders: list[Named] = Field(default_factory=list)
    units: list[Unit] = Field(default_factory=list)
    targets: list[Indicator] = Field(default_factory=list)
    progress: list[Progress] = Field(default_factory=list)
    status: Status | None = None
    deadlines: list[Deadline] = Field(default_factory=list)


class Region(Strict):
    """Administrative region of the issuing government, from its header and the national adcode table."""

    province: str | None = None
    city: str | None = None
    county: str | None = None
    town: str | None = None


DocType = Literal["progress_report", "task_list", "work_report", "other"]
DateKind = Literal["issued", "signed", "meeting", "published"]


class DateField(Strict):
    """A date stated in the document, normalised to ISO ``YYYY-MM-DD``."""

    kind: DateKind
    value: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    span: Span


class Provenance(Strict):
    """How a record was made, so results can be compared across runs."""

    method: Literal["rules", "rules+llm"]
    llmstruct_version: str
    prompt_version: str | None = None
    model_id: str | None = None
    backend: str | None = None
    decoding: dict[str, str | int | float | bool] = Field(default_factory=dict)


# A doc_id names files (<doc_id>.json, review pages, exports): never a path, never hidden,
# short enough in bytes for any file system (80 CJK characters are 240 bytes).
DocId = Annotated[str, StringConstraints(min_length=1, max_length=80, pattern=r"^[^./\\\x00][^/\\\x00]*$")]


class Coverage(Strict):
    """How much of the report its items hold: figures (number with unit) and non-space
    characters of its slice of the file, and how many of them lie inside some item."""

    figures: int = Field(ge=0)
    figures_in_items: int = Field(ge=0)
    chars: int = Field(ge=0)
    chars_in_items: int = Field(ge=0)


class DocumentRecord(Strict):
    """One report: its metadata and its items. One JSON file per record."""

    schema_version: str = SCHEMA_VERSION
    doc_id: DocId
    source_file: str
    source_sha256: str
    report_index: int = Field(ge=1, description="1-based position of this report inside its file")
    source_range: Span
    doc_type: DocType
    title: Named | None = None
    issuing_body: Named | None = None
    doc_number: Named | None = None
    dates: list[DateField] = Field(default_factory=list)
    meeting: Named | None = None
    speaker: Named | None = None
    speaker_title: str = ""
    region: Region = Field(default_factory=Region)
    period: str | None = Field(default=None, description="the year the report is about, e.g. 2021")
    items: list[TaskItem] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    coverage: Coverage | None = None
    provenance: Provenance


HitKind = Literal["task", "progress", "record"]


class Hit(Strict):
    """One retrieved passage: a chunk of a report's original text, or one item's record.

    ``start``/``end`` are offsets into the original text of ``source_file`` (as decoded by
    ``formats.read_source``) and ``text == original[start:end]``, so a citation built from a
    hit can be checked and opened at the exact span.
    """

    chunk_id: str
    doc_id: str
    item_id: str
    source_file: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    text: str
    kind: HitKind = "task"
    score: float = 0.0
    metadata: dict[str, str | int | float | bool] = Field(default_factory=dict)


class Citation(Strict):
    """A verified citation in an answer: passage number ``n`` and its quote in the file."""

    n: int = Field(ge=1)
    doc_id: str
    source_file: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    quote: str


# Which check refused an answer (messages in ``data/vocab.yaml``; the eval counts codes).
RefusalCode = Literal[
    "empty_question", "question_too_long", "no_matching_items", "no_such_item", "no_leader", "no_units", "no_progress",
    "weak_evidence", "truncated", "model_refused", "nothing_verified", "no_number", "wrong_unit",
    "target_not_actual", "actual_not_target", "wrong_subject", "wrong_period", "place_not_in_corpus",
]


# What code computed: gap/change/difference (a − b), sum, share (a ÷ b × 100, to 0.1), rank, unit conversion.
ComputationOp = Literal["difference", "sum", "share", "rank", "conversion"]


class Computation(Strict):
    """A number code derived for an answer, with its inputs: a number in no quote is allowed
    only when its computation recomputes from operands found in the cited quotes."""

    op: ComputationOp
    inputs: list[Annotated[int, Field(ge=1)]] = Field(min_length=1)  # the [n] quoting each operand, in order
    operands: list[float] = Field(min_length=1)  # as used, after unit conversion
    result: float  # rank: the first of the ranking
    unit: str
    formula: str  # as written in the answer, so a reader sees what was computed


class Answer(Strict):
    """What ``llmstruct ask --json`` prints."""

    question: str
    answer: str
    refused: bool
    citations: list[Citation] = Field(default_factory=list)
    refusal: RefusalCode | None = None
    computations: list[Computation] = Field(default_factory=list)  # the numbers code derived, checkable


def iter_spans(obj: object) -> Iterator[Span]:
    """Every Span inside a record, item or list of them (what grounding checks walk)."""
    if isinstance(obj, Span):
        yield obj
    elif isinstance(obj, BaseModel):
        for name in type(obj).model_fields:
            yield from iter_spans(getattr(obj, name))
    elif isinstance(obj, (list, tuple)):
        for x in obj:
            yield from iter_spans(x)


def json_schema() -> dict:
    """The JSON Schema of a DocumentRecord (what ``llmstruct schema`` prints)."""
    return DocumentRecord.model_json_schema()
