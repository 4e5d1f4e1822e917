import { describe, expect, it } from "vitest";
import { overlaps, placeLabels, spreadPoints, type LabelIn } from "./labels";

describe("spreadPoints", () => {
  it("separates coincident points (sofa under couch) so both are visible", () => {
    const out = spreadPoints([{ id: 1, x: 50, y: 50, r: 8 }, { id: 2, x: 50, y: 50, r: 5 }, { id: 3, x: 200, y: 50, r: 5 }]);
    const d = Math.hypot(out[0].x - out[1].x, out[0].y - out[1].y);
    expect(d).toBeGreaterThanOrEqual(8 + 5 + 1 - 1e-3);
    expect(out[2]).toMatchObject({ x: 200, y: 50, moved: false });
    expect(out[0].moved || out[1].moved).toBe(true);
  });

  it("leaves separated points alone", () => {
    const out = spreadPoints([{ id: 1, x: 0, y: 0, r: 3 }, { id: 2, x: 10, y: 0, r: 3 }]);
    expect(out.map((c) => c.moved)).toEqual([false, false]);
  });
});

describe("placeLabels", () => {
  const lab = (id: number, x: number, y: number, text: string): LabelIn => ({ id, x, y, r: 5, text, width: text.length * 6.5, height: 12 });
  const bounds = { x0: 0, y0: 0, x1: 400, y1: 300 };

  it("labels of nearby points (wagon, van, car, taxi) never overlap each other or the points", () => {
    const items = [lab(1, 100, 100, "wagon"), lab(2, 108, 101, "van"), lab(3, 112, 96, "car"), lab(4, 104, 108, "taxi")];
    const spread = spreadPoints(items).map((c, i) => ({ ...items[i], x: c.x, y: c.y }));
    const out = placeLabels(spread, bounds);
    const shown = out.filter((o) => !o.hidden);
    expect(shown.length).toBe(4);
    for (let i = 0; i < shown.length; i++) {
      for (let j = i + 1; j < shown.length; j++) expect(overlaps(shown[i].box, shown[j].box)).toBe(false);
      for (const c of spread) {
        const cb = { x0: c.x - c.r, y0: c.y - c.r, x1: c.x + c.r, y1: c.y + c.r };
        if (c.id !== shown[i].id) expect(overlaps(shown[i].box, cb)).toBe(false);
      }
    }
  });

  it("stays inside the bounds and hides a label that fits nowhere", () => {
    const out = placeLabels([lab(1, 395, 150, "edge")], bounds);
    expect(out[0].box.x1).toBeLessThanOrEqual(400);
    const tiny = placeLabels([lab(1, 10, 10, "a-very-long-label")], { x0: 0, y0: 0, x1: 20, y1: 20 });
    expect(tiny[0].hidden).toBe(true);
  });
});
