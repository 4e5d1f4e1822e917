import { describe, expect, it } from "vitest";
import { Selection } from "./selection";

describe("Selection", () => {
  it("publishes commits to every subscriber", () => {
    const sel = new Selection<number>();
    const seenA: (number | null)[] = [];
    const seenB: (number | null)[] = [];
    sel.subscribe((s) => seenA.push(s.active));
    sel.subscribe((s) => seenB.push(s.committed.value));
    sel.commit("performance", 3);
    expect(seenA).toEqual([null, 3]);
    expect(seenB).toEqual([null, 3]);
    expect(sel.get().committed.source).toBe("performance");
  });

  it("shows a preview while hovering without changing the committed value", () => {
    const sel = new Selection<number>();
    sel.commit("performance", 1);
    sel.preview("embedding", 7);
    expect(sel.get().active).toBe(7);
    expect(sel.committed).toBe(1);
    sel.preview("embedding", null);
    expect(sel.get().active).toBe(1);
  });

  it("a commit clears the preview", () => {
    const sel = new Selection<number>();
    sel.preview("embedding", 7);
    sel.commit("knowledge", 2);
    expect(sel.get().preview.value).toBeNull();
    expect(sel.get().active).toBe(2);
  });

  it("does not re-emit identical previews", () => {
    const sel = new Selection<number>();
    let n = 0;
    sel.subscribe(() => n++);
    sel.preview("a", 4);
    sel.preview("a", 4);
    sel.preview("a", null);
    sel.preview("a", null);
    expect(n).toBe(3);
  });

  it("toggle deselects the committed value", () => {
    const sel = new Selection<number>();
    sel.toggle("p", 5);
    expect(sel.committed).toBe(5);
    sel.toggle("p", 5);
    expect(sel.committed).toBeNull();
  });

  it("unsubscribe stops updates", () => {
    const sel = new Selection<number>();
    const seen: (number | null)[] = [];
    const off = sel.subscribe((s) => seen.push(s.active));
    off();
    sel.commit("p", 1);
    expect(seen).toEqual([null]);
  });
});
