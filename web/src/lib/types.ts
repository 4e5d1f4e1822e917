// TypeScript mirror of src/inficond/server/schemas.py (the pydantic response models).
// Keep the two in step: a field added there is added here.

export interface VoteConflict { concept_idx: number; word: string; earlier: Direction; now: Direction }
export interface Problem { title: string; detail: string; status: number; type?: string; conflicts?: VoteConflict[] }

export interface DatasetSummary {
  root: string | null; n_images: number; n_classes: number;
  splits: Record<string, number>; skipped: unknown[][]; class_names: string[];
  corrupt?: unknown[][];
}
export interface CorpusSummary { n_concepts: number; sources: Record<string, number> }
export interface StudentSummary {
  state_id: number | string | null; lam: number | number[] | null; solver: string | null;
  teacher_map: number | null; student_map: number | null; mean_nonzero: number | null;
  test_student_map?: number | null;
}
export interface Summary {
  dataset: DatasetSummary; teacher: Record<string, unknown> | null;
  encoder: Record<string, unknown> | null; corpus: CorpusSummary; student: StudentSummary | null;
  workspace?: string | null;
}

export interface Scores {
  ap: number | null; precision: number | null; recall: number | null;
  f1: number | null; accuracy?: number | null;
}
export type AlignmentGroup = "both_correct" | "only_teacher_correct" | "both_wrong" | "only_student_correct";
export interface Alignment {
  n: number; share: number; empty?: boolean;
  counts: Record<AlignmentGroup, number>; rates?: Partial<Record<AlignmentGroup, number>>;
}
export interface ClassPerformance {
  class_idx: number; name: string; excluded: boolean; reason: string | null; n_pos: number;
  student_ap_ci?: number[] | null;
  teacher: Scores; student: Scores; gap: number | null; fidelity: number | null;
  alignment: { pos: Alignment; neg: Alignment };
}
export interface Performance {
  split: string; teacher_map: number | null; student_map: number | null; classes: ClassPerformance[];
}

export interface WhatIfInline { grid: number[]; ap: (number | null)[]; current: number }
export interface PatchRef { patch_id: string | number; similarity: number; image_idx?: number }
export interface ClassConcept {
  rank: number; concept_idx: number; word: string; influence: number;
  discrepancy_p: number | null; discrepancy_n: number | null;
  whatif: WhatIfInline | null; patches: PatchRef[]; vote?: Direction | null;
}
export type SortKey = "influence" | "discrepancy_p" | "discrepancy_n";
export interface ClassConcepts {
  class_idx: number; name: string; sort: SortKey; k: number; ap: number | null; sort_note?: string | null;
  max_abs_influence: number | null; concepts: ClassConcept[]; nonzero?: number;
}
export type MetricName = "ap" | "accuracy" | "f1" | "recall" | "precision";
export interface VoteProposal {
  factor: number; ref: number; earlier: Direction | null; up: number; down: number;
  up_values: Partial<Record<MetricName, number | null>>; down_values: Partial<Record<MetricName, number | null>>;
}
export interface WhatIf {
  class_idx: number; concept_idx: number; word?: string; grid: number[];
  values: Partial<Record<MetricName, (number | null)[]>>; current: number; proposal?: VoteProposal | null;
}
export interface SearchHit { concept_idx: number; word: string; influence: number; rank: number | null; source: string | null; vote: Direction | null }
export interface ConceptSearch { class_idx: number; name: string; q: string; total: number; concepts: SearchHit[] }
export interface GalleryImage {
  image_idx: number; image_id: string | null; similarity: number; box: number[] | null; split?: string;
}
export interface ConceptDetail {
  concept_idx: number; word: string; source: string | null; images: GalleryImage[];
  patches: PatchRef[]; classes: { class_idx: number; name: string; influence: number }[];
  whatif: WhatIf | null; vote?: Direction | null;
}
export interface MapPoint { concept_idx: number; word: string; x: number; y: number }
export interface ConceptMap { points: MapPoint[] }
export type Direction = "up" | "down";
export interface Suggestion {
  concept_idx: number; word: string; direction: Direction;
  ap_before: number | null; ap_after: number | null; gain: number | null; split?: string;
}
export interface AddConceptsResult {
  added: { concept_idx: number; word: string }[]; skipped: { word: string; reason: string }[];
}

export interface Instruction { class: number | string; concept: number | string; direction: Direction }
export interface MetricPair { before: Scores | null; after: Scores | null }
export interface AlignmentChange { counts: Record<string, number>; rates: Record<string, number> }
export interface TuneResult {
  state_id: number | string; class_idx: number | null;
  instructions: StepInstruction[]; val: MetricPair; test: MetricPair | null; duration_ms: number | null;
  factor?: number;
  alignment?: Record<string, { change: { pos: AlignmentChange; neg: AlignmentChange } }>;
}
export interface StepInstruction {
  class_idx: number | null; concept_idx: number; word: string; direction: Direction; class?: string;
}
export interface Step {
  state_id: number | string; parent_id: number | string | null; kind: string;
  created_at: string | number | null; class_idx: number | null; instructions: StepInstruction[];
  val: MetricPair | null; test: MetricPair | null; duration_ms: number | null; on_head_path: boolean;
}
export interface ClassTotal { class_idx: number; name: string; steps: number; val_ap_delta: number | null; test_ap_delta: number | null }
export interface Provenance {
  head: number | string | null;
  cumulative: { val_map_delta: number | null; test_map_delta: number | null; per_class: ClassTotal[] };
  steps: Step[];
}
export interface ExportResult { files: Record<string, string> }
