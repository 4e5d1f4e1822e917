// The API's types under short names. The shapes come from ./api.gen.ts, generated from the
// server's OpenAPI schema (src/inficond/server/schemas.py) by scripts/gen_api_types.py, so the
// two cannot drift; tests/test_api_types.py fails when that file is stale.
//
// What is written by hand here: unions the front end names (Direction, SortKey, ...), and the
// keys the engine sends beyond a model's declared fields (the response models allow extra keys,
// so the schema types them only as `unknown`). A key the views rely on belongs in the pydantic
// model; the ones below are not declared there yet.

import type { components } from "./api.gen";

type S = components["schemas"];

export type Direction = NonNullable<S["ClassConcept"]["vote"]>;
export type SortKey = S["ClassConcepts"]["sort"];
export type AlignmentGroup = "both_correct" | "only_teacher_correct" | "both_wrong" | "only_student_correct";
export type MetricName = "ap" | "accuracy" | "f1" | "recall" | "precision";

export interface VoteConflict { concept_idx: number; word: string; earlier: Direction; now: Direction }
/** Every error body; `conflicts` comes with a 409 on a vote against an earlier one. */
export type Problem = S["Problem"] & { conflicts?: VoteConflict[] };

export type DatasetSummary = S["DatasetSummary"] & { corrupt?: unknown[][] };
export type CorpusSummary = S["CorpusSummary"];
export type StudentSummary = S["StudentSummary"] & { test_student_map?: number | null };
export type Summary = S["Summary"] & { dataset: DatasetSummary; student?: StudentSummary | null };

export type Scores = S["Scores"];
export type PatchBatch = S["PatchBatch"];
export type Alignment = S["Alignment"];
export type ClassPerformance = S["ClassPerformance"];
export type Performance = S["Performance"];

export type WhatIfInline = S["WhatIfInline"];
export type PatchRef = S["PatchRef"] & { image_idx?: number };
export type ClassConcept = S["ClassConcept"];
export type ClassConcepts = S["ClassConcepts"] & { nonzero?: number };
export type VoteProposal = S["VoteProposal"];
export type WhatIf = S["WhatIf"] & { word?: string };
export type SearchHit = S["SearchHit"];
export type ConceptSearch = S["ConceptSearch"];
export type GalleryImage = S["GalleryImage"] & { split?: string };
export type ConceptDetail = S["ConceptDetail"] & { images: GalleryImage[] };
export type MapPoint = S["MapPoint"];
export type ConceptMap = S["ConceptMap"];
export type Suggestion = S["Suggestion"];
export type AddConceptsResult = S["AddConceptsResult"];

export type Instruction = S["Instruction"];
export type MetricPair = S["MetricPair"];
export interface AlignmentChange { counts: Record<string, number>; rates: Record<string, number> }
export type StepInstruction = S["StepInstruction"] & { class?: string };
export type TuneResult = S["TuneResult"] & {
  instructions: StepInstruction[]; factor?: number;
  alignment?: Record<string, { change: { pos: AlignmentChange; neg: AlignmentChange } }>;
};
export type Step = S["Step"] & { instructions: StepInstruction[] };
export type ClassTotal = S["ClassTotal"];
export type Provenance = S["Provenance"] & { steps: Step[] };
export type ExportResult = S["ExportResult"];
