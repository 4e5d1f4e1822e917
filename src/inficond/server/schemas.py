"""Typed request and response models of the HTTP API.

They mirror the dictionaries :class:`inficond.session.Session` returns. Response models allow
extra keys (``extra="allow"``) so that a field the engine adds later still reaches the browser;
request models forbid them so a typo in a body is a 422, not a silently ignored field.
The TypeScript mirror lives in ``web/src/lib/types.ts``.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from inficond.session import TUNE_FACTOR

# Input limits: a name longer than any we hold is refused before it reaches the engine, and no
# error message echoes more than a glimpse of it (see server/errors.py and server/security.py).
MAX_NAME_CHARS = 200
MAX_WORD_CHARS = 64  # = inficond.session.MAX_WORD_CHARS
NO_CONTROL = r"^[^\x00-\x1f\x7f-\x9f]*$"  # no control characters in a word
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]
ClassRef = Union[Annotated[int, Field(ge=0)], Name]
ConceptRef = Union[Annotated[int, Field(ge=0)], Name]


class Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(BaseModel):
    """RFC 9457 problem details: every error body."""

    title: str
    detail: str
    status: int
    type: str = "about:blank"
    error_id: Optional[str] = Field(None, description="on 500: the id under which the server log has the details")

    model_config = ConfigDict(extra="allow")  # e.g. ``conflicts`` of a vote against an earlier one


# --------------------------------------------------------------------------- summary
class DatasetSummary(Out):
    root: Optional[str] = None
    n_images: int
    n_classes: int
    splits: dict[str, int] = {}
    skipped: list[list] = []
    class_names: list[str] = []


class CorpusSummary(Out):
    n_concepts: int
    sources: dict[str, int] = {}


class StudentSummary(Out):
    state_id: Optional[Union[int, str]] = None
    lam: Optional[Union[float, list[float]]] = Field(None, description="L1 strength (one per class or shared)")
    solver: Optional[str] = None
    teacher_map: Optional[float] = None
    student_map: Optional[float] = None
    mean_nonzero: Optional[float] = None


class Summary(Out):
    dataset: DatasetSummary
    teacher: Optional[dict] = None
    encoder: Optional[dict] = None
    corpus: CorpusSummary
    workspace: Optional[str] = Field(None, description="workspace folder (keys the browser's pending votes)")
    student: Optional[StudentSummary] = None


# --------------------------------------------------------------------------- performance
class Scores(Out):
    ap: Optional[float] = None
    precision: Optional[float] = None
    recall: Optional[float] = None
    f1: Optional[float] = None
    accuracy: Optional[float] = None


ALIGNMENT_KEYS = ("both_correct", "only_teacher_correct", "both_wrong", "only_student_correct")


class Alignment(Out):
    """One subset (positives or negatives) split by which model predicts it correctly."""

    n: int = 0
    share: float = Field(0.0, description="the subset's fraction of all images")
    empty: bool = False
    counts: dict[str, int] = Field(description=f"images per group: {', '.join(ALIGNMENT_KEYS)}")
    rates: dict[str, float] = {}

    @model_validator(mode="before")
    @classmethod
    def _flat_counts(cls, data):
        # accept the flat form {both_correct: .., ..., n, share} as well as {counts: {...}}
        if isinstance(data, dict) and "counts" not in data:
            data = {**data, "counts": {k: int(data.get(k, 0)) for k in ALIGNMENT_KEYS}}
        return data


class AlignmentPair(Out):
    pos: Alignment
    neg: Alignment


class ClassPerformance(Out):
    class_idx: int
    name: str
    excluded: bool = False
    reason: Optional[str] = None
    n_pos: int = 0
    student_ap_ci: Optional[list[float]] = Field(
        None, description="approximate 95% interval of the student's AP given n_pos (a sample-size cue)")
    teacher: Scores
    student: Scores
    gap: Optional[float] = None
    fidelity: Optional[float] = None
    alignment: AlignmentPair


class Performance(Out):
    split: str
    teacher_map: Optional[float] = None
    student_map: Optional[float] = None
    classes: list[ClassPerformance]


# --------------------------------------------------------------------------- concepts
class WhatIfInline(Out):
    grid: list[float]
    ap: list[Optional[float]]
    current: float


class PatchRef(Out):
    patch_id: Union[int, str]
    similarity: float


class ClassConcept(Out):
    rank: int
    concept_idx: int
    word: str
    influence: float
    discrepancy_p: Optional[float] = None
    discrepancy_n: Optional[float] = None
    whatif: Optional[WhatIfInline] = None
    patches: list[PatchRef] = []
    vote: Optional[Literal["up", "down"]] = Field(None, description="a standing earlier vote on this concept")


SortKey = Literal["influence", "discrepancy_p", "discrepancy_n"]


class ClassConcepts(Out):
    class_idx: int
    name: str
    sort: SortKey
    sort_note: Optional[str] = Field(None, description="why the ranking fell back to another key")
    k: int
    ap: Optional[float] = None
    max_abs_influence: Optional[float] = None
    concepts: list[ClassConcept]


class VoteProposal(Out):
    """Where a vote at strength ``factor`` would put the concept's bound, and the metrics there
    if only this influence moved (before the refit re-balances the others)."""

    factor: float
    ref: float
    earlier: Optional[Literal["up", "down"]] = None
    up: float
    down: float
    up_values: dict[str, Optional[float]] = {}
    down_values: dict[str, Optional[float]] = {}


class WhatIf(Out):
    class_idx: int
    concept_idx: int
    grid: list[float]
    values: dict[str, list[Optional[float]]]
    current: float
    proposal: Optional[VoteProposal] = None


class SearchHit(Out):
    concept_idx: int
    word: str
    influence: float
    rank: Optional[int] = Field(None, description="rank by |influence| among non-zero concepts")
    source: Optional[str] = None
    vote: Optional[Literal["up", "down"]] = None


class ConceptSearch(Out):
    class_idx: int
    name: str
    q: str
    total: int
    concepts: list[SearchHit]


class GalleryImage(Out):
    image_idx: int
    image_id: Optional[str] = None
    similarity: float
    box: Optional[list[float]] = None


class ConceptClass(Out):
    class_idx: int
    name: str
    influence: float


class ConceptDetail(Out):
    concept_idx: int
    word: str
    source: Optional[str] = None
    images: list[GalleryImage] = []
    patches: list[PatchRef] = []
    classes: list[ConceptClass] = []
    whatif: Optional[WhatIf] = None
    vote: Optional[Literal["up", "down"]] = None


class MapPoint(Out):
    concept_idx: int
    word: str
    x: float
    y: float


class ConceptMap(Out):
    points: list[MapPoint]


class Suggestion(Out):
    concept_idx: int
    word: str
    direction: Literal["up", "down"]
    ap_before: Optional[float] = None
    ap_after: Optional[float] = None
    gain: Optional[float] = None
    split: str = "train"  # where the gain was measured; val and test stay an honest check
    kind: Literal["move", "shortcut"] = Field("move", description="'move': a weight move scored by exact what-if; "
                                              "'shortcut': a suspected shortcut scored by applying its ▼ vote with erase")
    erase: bool = Field(False, description="apply with erase=True (shortcut suggestions)")
    partial_corr: Optional[float] = Field(None, description="shortcut: correlation of the concept's presence with "
                                          "the teacher's logit beyond the train labels")
    related: list[str] = Field([], description="shortcut: other words of the same context (presences correlated "
                               ">= 0.5), which the vote stands for")


class AddConceptsRequest(In):
    words: list[Annotated[str, Field(max_length=MAX_WORD_CHARS, pattern=NO_CONTROL)]] = Field(
        min_length=1, max_length=100, description=f"at most 100 words of at most {MAX_WORD_CHARS} characters")


class AddedConcept(Out):
    concept_idx: int
    word: str


class SkippedWord(Out):
    word: str
    reason: str


class AddConceptsResult(Out):
    added: list[AddedConcept] = []
    skipped: list[SkippedWord] = []


# --------------------------------------------------------------------------- tuning
class Instruction(In):
    class_: ClassRef = Field(alias="class")
    concept: ConceptRef
    direction: Literal["up", "down"]

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class TuneRequest(In):
    instructions: list[Instruction] = Field(min_length=1, max_length=200)
    factor: float = Field(TUNE_FACTOR, gt=0, le=2, description="vote strength f: a vote moves the bound by "
                          "f * max(|w|, ref) (see inficond.students.tuning)")
    on_conflict: Literal["error", "replace"] = Field(
        "error", description="'replace' drops an earlier opposite vote on the same concept")
    mode: Literal["bound", "soft"] = Field(
        "bound", description="'bound': a vote bounds the influence (default); 'soft': it only changes the "
        "concept's L1 penalty (measured weaker, see BENCHMARKS.md)")
    erase: bool = Field(False, description="downvotes also regress the concept's share out of the teacher's "
                        "logits for this class (removes a shortcut instead of moving it to correlated concepts)")
    erase_how: Literal["marginal", "partial"] = "marginal"
    label_weight: float = Field(0.0, ge=0, le=1, description="weight of the ground-truth labels mixed into "
                                "the teacher's soft labels for the refit (0 = teacher only)")


class MetricPair(Out):
    before: Optional[Scores] = None
    after: Optional[Scores] = None


class FidelityScores(Out):
    agreement: float = Field(description="share of val images where student and teacher predict the class alike")
    kl: float = Field(description="mean KL divergence (nats) from the teacher's to the student's probability")


class FidelityChange(Out):
    """How a step moved the tuned class away from (or towards) the teacher, on val."""

    split: Literal["val"] = "val"
    before: FidelityScores
    after: FidelityScores
    change: FidelityScores
    costs_fidelity: bool = Field(description="at least one more val image now disagrees with the teacher")


class TuneResult(Out):
    state_id: Union[int, str]
    class_idx: Optional[int] = None
    instructions: list[dict] = []
    val: MetricPair
    test: Optional[MetricPair] = None
    duration_ms: Optional[float] = None
    fidelity: Optional[FidelityChange] = None
    options: dict = Field(default_factory=dict, description="the step's recorded options besides factor "
                          "(mode, erase, erase_how, label_weight), when not the defaults")


# --------------------------------------------------------------------------- provenance
class StepInstruction(Out):
    class_idx: Optional[int] = None
    concept_idx: int
    word: str
    direction: Literal["up", "down"]


class Step(Out):
    state_id: Union[int, str]
    parent_id: Optional[Union[int, str]] = None
    kind: str
    created_at: Optional[Union[str, float]] = None
    class_idx: Optional[int] = None
    instructions: list[StepInstruction] = []
    val: Optional[MetricPair] = None
    test: Optional[MetricPair] = None
    duration_ms: Optional[float] = None
    on_head_path: bool = True


class ClassTotal(Out):
    class_idx: int
    name: str
    steps: int
    val_ap_delta: Optional[float] = None
    test_ap_delta: Optional[float] = None


class Cumulative(Out):
    """Change since distillation along the head path: mean AP over the classes in the mean, and
    AP per tuned class (AP changes of different classes are never added up)."""

    val_map_delta: Optional[float] = None
    test_map_delta: Optional[float] = None
    per_class: list[ClassTotal] = []


class Provenance(Out):
    head: Optional[Union[int, str]] = None
    cumulative: Cumulative = Cumulative()
    steps: list[Step] = []


class RevertRequest(In):
    state_id: Annotated[int, Field(ge=0)]


# --------------------------------------------------------------------------- export
class ExportResult(Out):
    files: dict[str, str] = Field(description="artefact kind -> download URL")


class PatchBatch(Out):
    """Several concept patches in one answer, each as a ``data:`` URL (for ``<img src>``)."""

    patches: dict[str, str] = Field(description="patch id -> data URL of its image file")
