import { describe, expect, it } from "vitest";
import { inlineDefs, missingRefs, snapshotName } from "./snapshot";

describe("snapshot names", () => {
  it("slugs the view title", () => {
    expect(snapshotName("Concept embedding", "png")).toBe("inficond-concept-embedding.png");
    expect(snapshotName("Fine-tuning provenance", "svg")).toBe("inficond-fine-tuning-provenance.svg");
    expect(snapshotName("  ***  ", "svg")).toBe("inficond-view.svg");
  });
});

describe("pattern references", () => {
  const hatch = '<pattern id="hatch-blue" width="5" height="5"><rect width="5" height="5"/></pattern>';

  it("finds ids used but not defined, in attributes and inlined styles", () => {
    const svg = '<svg xmlns="http://www.w3.org/2000/svg"><rect fill="url(#a)"/>'
      + '<div style="fill: url(&quot;#hatch-blue&quot;);"></div><pattern id="a"/></svg>';
    expect(missingRefs(svg)).toEqual(["hatch-blue"]);
  });

  it("copies a missing definition into the file once", () => {
    const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="10"><rect style="fill: url(&quot;#hatch-blue&quot;)"/>'
      + '<rect fill="url(#hatch-blue)"/></svg>';
    const out = inlineDefs(svg, { "hatch-blue": hatch });
    expect(out.startsWith(`<svg xmlns="http://www.w3.org/2000/svg" width="10"><defs>${hatch}</defs><rect`)).toBe(true);
    expect(out.split('id="hatch-blue"').length).toBe(2);
    expect(missingRefs(out)).toEqual([]);
  });

  it("points a page-URL reference at the local definition", () => {
    const svg = '<svg><rect style="fill: url(&quot;http://127.0.0.1:8765/#hatch-blue&quot;)"/></svg>';
    const out = inlineDefs(svg, { "hatch-blue": hatch });
    expect(out).toContain('fill: url(&quot;#hatch-blue&quot;)');
    expect(out).toContain(hatch);
  });

  it("leaves the text alone when nothing is missing or nothing is known", () => {
    const svg = '<svg><rect fill="url(#x)"/></svg>';
    expect(inlineDefs(svg, {})).toBe(svg);
    expect(inlineDefs('<svg><pattern id="x"/><rect fill="url(#x)"/></svg>', {})).toBe('<svg><pattern id="x"/><rect fill="url(#x)"/></svg>');
  });
});
