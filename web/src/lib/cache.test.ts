import { describe, expect, it, vi } from "vitest";
import { RequestCache, debounce } from "./cache";
import { nearestIndex, sharedDomain } from "./chart";

describe("RequestCache", () => {
  it("asks once per key and epoch", async () => {
    const c = new RequestCache<number>();
    const fn = vi.fn(async () => 7);
    await c.get("dog", 0, fn);
    await c.get("dog", 0, fn);
    expect(fn).toHaveBeenCalledTimes(1);
    await c.get("cat", 0, fn);
    expect(fn).toHaveBeenCalledTimes(2);
    await c.get("dog", 1, fn); // the student changed
    expect(fn).toHaveBeenCalledTimes(3);
    expect(c.has("cat", 1)).toBe(false);
  });

  it("keeps an answer it is given for that epoch only", async () => {
    const c = new RequestCache<number>();
    const fn = vi.fn(async () => 7);
    c.put("prov", 3, 42);
    expect(await c.get("prov", 3, fn)).toBe(42);
    expect(fn).not.toHaveBeenCalled();
    expect(await c.get("prov", 4, fn)).toBe(7); // the next state asks again
  });

  it("keeps the answers of the two latest epochs only", async () => {
    const c = new RequestCache<number>();
    const fn = vi.fn(async () => 7);
    await c.get("dog", 0, fn);
    await c.get("dog", 1, fn); // asked for ahead of the switch to epoch 1
    expect(c.has("dog", 0) && c.has("dog", 1)).toBe(true);
    await c.get("dog", 2, fn);
    expect(c.has("dog", 0)).toBe(false);
    expect(c.has("dog", 1) && c.has("dog", 2)).toBe(true);
    expect(fn).toHaveBeenCalledTimes(3);
  });

  it("does not keep a failed request", async () => {
    const c = new RequestCache<number>();
    await expect(c.get("x", 0, () => Promise.reject(new Error("down")))).rejects.toThrow("down");
    await Promise.resolve();
    expect(c.has("x", 0)).toBe(false);
  });
});

describe("debounce", () => {
  it("calls once after the calls stop, with the last arguments", () => {
    vi.useFakeTimers();
    const fn = vi.fn();
    const d = debounce(fn, 100);
    d(1); d(2); d(3);
    vi.advanceTimersByTime(99);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fn).toHaveBeenCalledWith(3);
    d(4); d.cancel();
    vi.advanceTimersByTime(200);
    expect(fn).toHaveBeenCalledTimes(1);
    vi.useRealTimers();
  });
});

describe("shared sparkline scale", () => {
  it("covers every curve and widens flat ones", () => {
    expect(sharedDomain([[0.4, 0.5, null], [0.45, 0.7]])).toEqual([0.4, 0.7]);
    const [lo, hi] = sharedDomain([[0.5, 0.5]]);
    expect(hi - lo).toBeCloseTo(0.05);
    expect(sharedDomain([[null]])).toEqual([0, 1]);
    expect(nearestIndex([-1, 0, 1], 0.4)).toBe(1);
  });
});
