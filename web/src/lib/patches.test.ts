import { describe, expect, it } from "vitest";
import { PatchSource } from "./patches";

const answer = (ids: string[]) => Object.fromEntries(ids.map((i) => [i, `data:image/jpeg;base64,${i}`]));

describe("PatchSource", () => {
  it("asks once for every id not loaded, in one request", async () => {
    const calls: string[][] = [];
    const src = new PatchSource(async (ids) => { calls.push(ids); return answer(ids); });
    await src.load(["a", "b", "a"]);
    expect(calls).toEqual([["a", "b"]]);
    expect(src.url("a")).toBe("data:image/jpeg;base64,a");
    await src.load(["b", "c"]);
    expect(calls).toEqual([["a", "b"], ["c"]]);
    await src.load(["a", "c"]);
    expect(calls.length).toBe(2);
  });

  it("waits for a batch in flight instead of asking again", async () => {
    const calls: string[][] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const src = new PatchSource(async (ids) => { calls.push(ids); await gate; return answer(ids); });
    const first = src.load(["a", "b"]);
    const second = src.load(["b"]);
    expect(calls).toEqual([["a", "b"]]);
    expect(src.url("b")).toBeUndefined();
    release();
    await Promise.all([first, second]);
    expect(src.url("b")).toBe("data:image/jpeg;base64,b");
  });

  it("asks again after a failed batch", async () => {
    let fail = true;
    const src = new PatchSource(async (ids) => { if (fail) throw new Error("down"); return answer(ids); });
    await expect(src.load(["a"])).rejects.toThrow("down");
    fail = false;
    await src.load(["a"]);
    expect(src.url("a")).toBe("data:image/jpeg;base64,a");
  });
});
