import { describe, expect, it } from "vitest";
import { alignmentSegments, diverges, sortClasses, stepDelta, subsetSizes, weakestClass } from "./perf";
import type { Alignment, ClassPerformance, Step } from "./types";

const al = (bc: number, otc: number, bw: number, osc: number): Alignment => ({
  counts: { both_correct: bc, only_teacher_correct: otc, both_wrong: bw, only_student_correct: osc },
  n: bc + otc + bw + osc, share: 0, empty: false, rates: {},
});

function cls(i: number, gap: number | null, s: { ap?: number; recall?: number; f1?: number; precision?: number } = {}, excluded = false): ClassPerformance {
  return {
    class_idx: i, name: `c${i}`, excluded, reason: excluded ? "too few positives" : null, n_pos: 5,
    teacher: { ap: 0.9, precision: 0.9, recall: 0.9, f1: 0.9 },
    student: { ap: s.ap ?? 0.5, precision: s.precision ?? 0.5, recall: s.recall ?? 0.5, f1: s.f1 ?? 0.5 },
    gap, fidelity: 0.9, alignment: { pos: al(1, 0, 0, 0), neg: al(1, 0, 0, 0) },
  };
}

describe("sortClasses", () => {
  const classes = [cls(0, 0.1), cls(1, 0.3), cls(2, null), cls(3, 0.5, {}, true), cls(4, -0.05)];

  it("defaults to the largest AP gap first, excluded and unknown last", () => {
    expect(sortClasses(classes).map((c) => c.class_idx)).toEqual([1, 0, 4, 2, 3]);
  });

  it("reverse puts the smallest gap first but still keeps excluded last", () => {
    expect(sortClasses(classes, "gap", true).map((c) => c.class_idx)).toEqual([4, 0, 1, 2, 3]);
  });

  it("sorts by a student metric, weakest first", () => {
    const cs = [cls(0, 0, { recall: 0.7 }), cls(1, 0, { recall: 0.2 }), cls(2, 0, { recall: 0.9 })];
    expect(sortClasses(cs, "recall").map((c) => c.class_idx)).toEqual([1, 0, 2]);
    expect(sortClasses(cs, "recall", true).map((c) => c.class_idx)).toEqual([2, 0, 1]);
  });

  it("does not mutate its input", () => {
    const before = classes.map((c) => c.class_idx);
    sortClasses(classes, "f1");
    expect(classes.map((c) => c.class_idx)).toEqual(before);
  });

  it("weakestClass skips excluded classes", () => {
    expect(weakestClass(classes)?.class_idx).toBe(1);
    expect(weakestClass([cls(0, 0.9, {}, true)])).toBeNull();
  });
});

describe("alignmentSegments", () => {
  it("splits the bar in the paper's order and covers [0, 1]", () => {
    const segs = alignmentSegments(al(6, 2, 1, 1));
    expect(segs.map((s) => s.kind)).toEqual(["both_correct", "only_teacher_correct", "both_wrong", "only_student_correct"]);
    expect(segs[0].x0).toBe(0);
    expect(segs[0].x1).toBeCloseTo(0.6);
    expect(segs[1].x1).toBeCloseTo(0.8);
    expect(segs[2].x1).toBeCloseTo(0.9);
    expect(segs[3].x1).toBe(1);
    for (let i = 1; i < segs.length; i++) expect(segs[i].x0).toBeCloseTo(segs[i - 1].x1);
  });

  it("drops empty subsets and handles an empty bar", () => {
    expect(alignmentSegments(al(3, 0, 1, 0)).map((s) => s.kind)).toEqual(["both_correct", "both_wrong"]);
    expect(alignmentSegments(al(0, 0, 0, 0))).toEqual([]);
  });

  it("subset sizes are relative to the larger subset", () => {
    expect(subsetSizes(al(10, 0, 0, 0), al(90, 10, 0, 0))).toEqual({ pos: 0.1, neg: 1 });
    expect(subsetSizes(al(0, 0, 0, 0), al(0, 0, 0, 0))).toEqual({ pos: 0, neg: 0 });
  });
});

describe("provenance deltas", () => {
  const step = (vb: number, va: number, tb: number, ta: number): Step => ({
    state_id: 2, parent_id: 1, kind: "tune", created_at: null, class_idx: 0, instructions: [],
    val: { before: { ap: vb, precision: 0, recall: 0, f1: 0 }, after: { ap: va, precision: 0, recall: 0, f1: 0 } },
    test: { before: { ap: tb, precision: 0, recall: 0, f1: 0 }, after: { ap: ta, precision: 0, recall: 0, f1: 0 } },
    duration_ms: 10, on_head_path: true,
  });

  it("computes val and test AP change", () => {
    const d = stepDelta(step(0.5, 0.6, 0.5, 0.45));
    expect(d.val).toBeCloseTo(0.1);
    expect(d.test).toBeCloseTo(-0.05);
  });

  it("warns only when val and test move in opposite directions", () => {
    expect(diverges(0.02, -0.01)).toBe(true);
    expect(diverges(-0.02, 0.01)).toBe(true);
    expect(diverges(0.02, 0.01)).toBe(false);
    expect(diverges(0.02, -0.001)).toBe(false);
    expect(diverges(null, -0.1)).toBe(false);
  });
});

describe("interface figures", () => {
  it("gap sign: student − teacher, the same text everywhere", async () => {
    const { gapText } = await import("./perf");
    expect(gapText(0.167)).toBe("−16.7"); // teacher ahead: the student is behind
    expect(gapText(-0.05)).toBe("+5.0");
    expect(gapText(0.0001)).toBe("0.0");
    expect(gapText(null)).toBe("–");
  });

  it("confidence cue widens with fewer positives", async () => {
    const { confidenceCue } = await import("./perf");
    expect(confidenceCue([0.7, 0.8], 200).level).toBe("ok");
    expect(confidenceCue([0.5, 0.9], 8).level).toBe("very-low");
    expect(confidenceCue([0.6, 0.8], 25).level).toBe("low");
    expect(confidenceCue(null, 0).halfWidth).toBeNull();
    expect(confidenceCue([0.6, 0.8], 25).text).toContain("25 positives");
  });

  it("FN and FP share change from the alignment change", async () => {
    const { errorShareChange } = await import("./perf");
    const side = (otc: number, bw: number) => ({ counts: {}, rates: { both_correct: 0, only_teacher_correct: otc, both_wrong: bw, only_student_correct: 0 } });
    const d = errorShareChange({ pos: side(-0.05, 0.01), neg: side(0.02, 0) })!;
    expect(d.fn).toBeCloseTo(-0.04);
    expect(d.fp).toBeCloseTo(0.02);
    expect(errorShareChange(null)).toBeNull();
  });
});
