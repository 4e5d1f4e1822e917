import { describe, expect, it } from "vitest";
import { classFromHash } from "./hash";

const classes = [
  { class_idx: 0, name: "aeroplane" },
  { class_idx: 1, name: "dining table" },
  { class_idx: 2, name: "Sofa" },
];

describe("classFromHash", () => {
  it("finds a class by name, encoded or not, case-insensitively as a fallback", () => {
    expect(classFromHash("#class=aeroplane", classes)).toBe(0);
    expect(classFromHash("#class=dining%20table", classes)).toBe(1);
    expect(classFromHash("#class=sofa", classes)).toBe(2);
  });
  it("finds a class by index and ignores other parameters", () => {
    expect(classFromHash("#x=1&class=2", classes)).toBe(2);
  });
  it("names no class for an empty, missing or unknown fragment", () => {
    expect(classFromHash("", classes)).toBeNull();
    expect(classFromHash("#class=", classes)).toBeNull();
    expect(classFromHash("#class=zebra", classes)).toBeNull();
    expect(classFromHash("#class=7", classes)).toBeNull();
  });
});
