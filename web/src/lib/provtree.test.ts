import { describe, expect, it } from "vitest";
import { layoutTree, type TreeStep } from "./provtree";

const st = (id: number, parent: number | null, onPath: boolean): TreeStep => ({ state_id: id, parent_id: parent, on_head_path: onPath });

describe("provenance tree", () => {
  it("a straight history is one lane, oldest first", () => {
    const { rows, lanes } = layoutTree([st(3, 2, true), st(1, null, true), st(2, 1, true)]);
    expect(rows.map((r) => r.step.state_id)).toEqual([1, 2, 3]);
    expect(lanes).toBe(1);
    expect(rows[0].pieces).toEqual([{ lane: 0, top: false, bottom: true }]);
    expect(rows[2].pieces).toEqual([{ lane: 0, top: true, bottom: false }]);
  });

  it("after undo and a new step, the current branch reads straight down in lane 0 and the old one branches off", () => {
    // 1 -> 2 -> 3 (undone), then 2 -> 4 -> 5 (current)
    const steps = [st(1, null, true), st(2, 1, true), st(3, 2, false), st(4, 2, true), st(5, 4, true)];
    const { rows, lanes } = layoutTree(steps);
    expect(rows.map((r) => r.step.state_id)).toEqual([1, 2, 4, 5, 3]);
    expect(rows.filter((r) => r.step.on_head_path).every((r) => r.lane === 0)).toBe(true);
    const off = rows.find((r) => r.step.state_id === 3)!;
    expect(off.lane).toBe(1);
    expect(lanes).toBe(2);
    // the branch leaves state 2 and runs down lane 1 past 4 and 5
    expect(rows[1].elbows).toEqual([{ from: 0, to: 1 }]);
    expect(rows[2].pieces).toContainEqual({ lane: 1, top: true, bottom: true });
    expect(off.pieces).toContainEqual({ lane: 1, top: true, bottom: false });
  });

  it("branches that do not overlap share a lane; overlapping ones do not", () => {
    // 1 -> 2 -> 3 (head); 1 -> 4; 2 -> 5
    const steps = [st(1, null, true), st(2, 1, true), st(3, 2, true), st(4, 1, false), st(5, 2, false)];
    const { rows } = layoutTree(steps);
    const lane = (id: number) => rows.find((r) => r.step.state_id === id)!.lane;
    expect(lane(1)).toBe(0);
    expect(lane(3)).toBe(0);
    expect(lane(4)).not.toBe(lane(5)); // both run past row of 3
    expect(new Set(rows.map((r) => r.row)).size).toBe(5);
  });

  it("several distillations are several roots", () => {
    const { rows } = layoutTree([st(1, null, false), st(2, 1, false), st(3, null, true)]);
    expect(rows.map((r) => r.step.state_id)).toEqual([1, 2, 3]);
    expect(rows[2].lane).toBe(0);
  });
});
