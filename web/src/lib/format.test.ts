import { describe, expect, it } from "vitest";
import { clockTime, delta, num, pct, shortPath } from "./format";

describe("formatting", () => {
  it("percentages and missing values", () => {
    expect(pct(0.8123)).toBe("81.2%");
    expect(pct(null)).toBe("–");
    expect(pct(Number.NaN)).toBe("–");
  });
  it("signed changes in points", () => {
    expect(delta(0.0134)).toBe("+1.3");
    expect(delta(-0.004)).toBe("−0.4");
    expect(delta(0.00001)).toBe("±0.0");
    expect(delta(undefined)).toBe("–");
  });
  it("numbers and paths", () => {
    expect(num(0.12345, 2)).toBe("0.12");
    expect(shortPath("/data/voc2012/")).toBe("voc2012");
    expect(shortPath(null)).toBe("–");
  });

  it("clock time, zero-padded, 24 hours", () => {
    expect(clockTime(new Date(2026, 10, 30, 9, 5, 7))).toBe("09:05:07");
    expect(clockTime(new Date(2026, 10, 30, 23, 59, 0))).toBe("23:59:00");
  });
});
