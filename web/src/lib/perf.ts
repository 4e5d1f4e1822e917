// Student performance view logic: sorting classes and the alignment stacked-bar segments.

import type { Alignment, AlignmentGroup, ClassPerformance, Step } from "./types";

export type ClassSortKey = "gap" | "ap" | "recall" | "precision" | "f1";

export const SORT_LABELS: Record<ClassSortKey, string> = {
  gap: "AP gap",
  ap: "Student AP",
  recall: "Recall",
  precision: "Precision",
  f1: "F1",
};

function keyOf(c: ClassPerformance, key: ClassSortKey): number | null {
  if (key === "gap") return c.gap ?? null;
  return c.student[key] ?? null;
}

/**
 * Order classes for the performance view. `gap` puts the largest teacher−student AP gap first;
 * a metric puts the weakest student first. `reverse` flips that. Excluded classes and classes
 * without a value always go last; ties keep class order.
 */
export function sortClasses(classes: ClassPerformance[], key: ClassSortKey = "gap", reverse = false): ClassPerformance[] {
  const sign = (key === "gap" ? -1 : 1) * (reverse ? -1 : 1);
  return [...classes].sort((a, b) => {
    const ea = a.excluded ? 1 : 0;
    const eb = b.excluded ? 1 : 0;
    if (ea !== eb) return ea - eb;
    const va = keyOf(a, key);
    const vb = keyOf(b, key);
    if (va === null && vb === null) return a.class_idx - b.class_idx;
    if (va === null) return 1;
    if (vb === null) return -1;
    if (va !== vb) return sign * (va - vb);
    return a.class_idx - b.class_idx;
  });
}

/** The class that most needs tuning: the largest AP gap among included classes. */
export function weakestClass(classes: ClassPerformance[]): ClassPerformance | null {
  const s = sortClasses(classes, "gap").filter((c) => !c.excluded && c.gap !== null);
  return s[0] ?? null;
}

export type SegmentKind = AlignmentGroup;

export interface Segment {
  kind: SegmentKind;
  count: number;
  x0: number; // fraction of the bar, 0..1
  x1: number;
  label: string;
}

export const SEGMENT_ORDER: SegmentKind[] = [
  "both_correct", "only_teacher_correct", "both_wrong", "only_student_correct",
];

export const SEGMENT_LABELS: Record<SegmentKind, string> = {
  both_correct: "both correct",
  only_teacher_correct: "student wrong, teacher right",
  both_wrong: "both wrong",
  only_student_correct: "student right, teacher wrong",
};

/**
 * Split a bar of width 1 into the four alignment subsets, in the paper's order: both correct
 * (blue), student wrong/teacher right (shaded blue), both wrong (orange), student right/teacher
 * wrong (shaded orange). Fractions are of the subset's total; an empty subset gives no segments.
 */
export function alignmentSegments(a: Alignment): Segment[] {
  const total = SEGMENT_ORDER.reduce((s, k) => s + (a.counts[k] ?? 0), 0);
  if (total <= 0) return [];
  const out: Segment[] = [];
  let x = 0;
  for (const kind of SEGMENT_ORDER) {
    const count = a.counts[kind] ?? 0;
    if (count <= 0) continue;
    const w = count / total;
    out.push({ kind, count, x0: x, x1: Math.min(1, x + w), label: SEGMENT_LABELS[kind] });
    x += w;
  }
  if (out.length) out[out.length - 1].x1 = 1;
  return out;
}

/** Grey size bars: each subset's count relative to the larger of the two subsets. */
export function subsetSizes(pos: Alignment, neg: Alignment): { pos: number; neg: number } {
  const m = Math.max(pos.n, neg.n, 1);
  return { pos: pos.n / m, neg: neg.n / m };
}

/** Change of AP across one provenance step, on val and test. */
export function stepDelta(step: Step): { val: number | null; test: number | null } {
  const d = (p: Step["val"]) =>
    p && p.before && p.after && p.before.ap != null && p.after.ap != null ? p.after.ap - p.before.ap : null;
  return { val: d(step.val), test: d(step.test) };
}

/**
 * Val and test moved apart: one went up and the other down by more than `eps`
 * (e.g. a tuning step that fits the validation images but hurts held-out ones).
 */
export function diverges(val: number | null, test: number | null, eps = 0.002): boolean {
  if (val === null || test === null) return false;
  return (val > eps && test < -eps) || (val < -eps && test > eps);
}

/**
 * The AP gap as shown in the performance view: student − teacher, in points ("−16.7" = the
 * student is 16.7 points behind). `gap` from the server is teacher − student. The row, its
 * title and its tooltip all use this one text, so they cannot disagree in sign.
 */
export function gapText(gap: number | null): string {
  if (gap === null || Number.isNaN(gap)) return "–";
  const v = -gap * 100;
  if (Math.abs(v) < 0.05) return "0.0";
  return `${v > 0 ? "+" : "−"}${Math.abs(v).toFixed(1)}`;
}

/** How sure an AP figure is, from its 95% interval: a cue for small samples. */
export function confidenceCue(ci: number[] | null | undefined, nPos: number): { level: "ok" | "low" | "very-low"; halfWidth: number | null; text: string } {
  if (!ci || ci.length !== 2) return { level: "very-low", halfWidth: null, text: `${nPos} positives: no AP interval` };
  const hw = (ci[1] - ci[0]) / 2;
  const level = hw > 0.15 || nPos < 10 ? "very-low" : hw > 0.07 || nPos < 30 ? "low" : "ok";
  return { level, halfWidth: hw, text: `±${(hw * 100).toFixed(0)} pts (95% interval ${(ci[0] * 100).toFixed(0)}–${(ci[1] * 100).toFixed(0)}%, ${nPos} positives)` };
}

export interface AlignmentChangeSide { counts: Record<string, number>; rates: Record<string, number> }

/**
 * Change of the false-negative share (student wrong among positives) and the false-positive
 * share (student wrong among negatives) after a tuning step, from the server's alignment change.
 */
export function errorShareChange(change: { pos: AlignmentChangeSide; neg: AlignmentChangeSide } | null | undefined): { fn: number; fp: number } | null {
  if (!change) return null;
  const wrong = (s: AlignmentChangeSide) => (s.rates.only_teacher_correct ?? 0) + (s.rates.both_wrong ?? 0);
  return { fn: wrong(change.pos), fp: wrong(change.neg) };
}
