// Export a view (a panel) as a standalone SVG or PNG file.
//
// html-to-image clones the panel with every element's computed style inlined and its images
// (patches, photos) embedded as data URLs, and wraps it in an SVG <foreignObject>: the SVG shows
// the view as laid out on screen, charts and HTML alike. What it leaves out is added here:
// - the styles of SVG shapes and text: html-to-image copies an <svg> as is, without the CSS rules
//   (Svelte's scoped classes) that colour and size its children, so those are copied from the page;
// - the shared <pattern> fills (hatched bars) that live in one hidden <svg> outside the panel;
// - no scrollbars (a picture cannot scroll; on screen they are overlays);
// - a smaller file: html-to-image writes all ~350 computed properties on every element (98% of a
//   3 MB SVG of the performance view); a declaration is dropped where it changes nothing;
// - the PNG, drawn from that SVG on a canvas at `scale` times the screen size.


export type SnapshotFormat = "svg" | "png";

/** Elements carrying this attribute (e.g. the export control itself) are left out of the file. */
export const SKIP_ATTR = "data-export-skip";

const SVG_PREFIX = "data:image/svg+xml;charset=utf-8,";

/** `inficond-<title>.<ext>` with the title reduced to lowercase words joined by dashes. */
export function snapshotName(title: string, format: SnapshotFormat): string {
  const slug = title.toLowerCase().normalize("NFKD").replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "") || "view";
  return `inficond-${slug}.${format}`;
}

/** Ids the SVG text points at with `url(#id)` (attribute or inlined style) but does not define. */
export function missingRefs(svg: string): string[] {
  const refs = new Set<string>();
  // `url(#id)`, `url("#id")`, `url(&quot;#id&quot;)`, or the page's own URL before the `#`.
  for (const m of svg.matchAll(/url\((?:&quot;|["'])?[^)#"'&]*#([A-Za-z_][\w.-]*)/g)) refs.add(m[1]);
  return [...refs].filter((id) => !svg.includes(`id="${id}"`));
}

/**
 * Make the references self-contained: point `url(...#id)` at the local fragment and copy each
 * missing definition (`defs`: serialised elements by id, e.g. from the page) into a <defs> block
 * right after the root element's opening tag. Ids with no definition are left as they are.
 */
export function inlineDefs(svg: string, defs: Record<string, string>): string {
  const fixed = svg.replace(/url\((&quot;|["'])?[^)#"'&]*#([A-Za-z_][\w.-]*)/g, (_m, q: string | undefined, id: string) =>
    defs[id] !== undefined || svg.includes(`id="${id}"`) ? `url(${q ?? ""}#${id}` : _m);
  const add = missingRefs(svg).filter((id) => defs[id] !== undefined).map((id) => defs[id]);
  if (!add.length) return fixed;
  const open = fixed.indexOf(">", fixed.indexOf("<svg")) + 1;
  return `${fixed.slice(0, open)}<defs>${add.join("")}</defs>${fixed.slice(open)}`;
}

function pageDefs(ids: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  const ser = new XMLSerializer();
  for (const id of ids) {
    const el = document.getElementById(id);
    if (el instanceof SVGElement) out[id] = ser.serializeToString(el);
  }
  return out;
}

// What CSS may set on an SVG shape or text; each is copied from the page as computed.
// The inherited ones are written where they differ from the parent's; opacity and display (not
// inherited) where they differ from their initial values.
const SVG_PROPS = [
  "fill", "fill-opacity", "fill-rule", "stroke", "stroke-width", "stroke-opacity", "stroke-dasharray",
  "stroke-dashoffset", "stroke-linecap", "stroke-linejoin", "visibility",
  "font-family", "font-size", "font-weight", "font-style", "text-anchor", "dominant-baseline",
  "letter-spacing", "paint-order", "shape-rendering",
];

// <svg>s not nested in another one (`within`: the selector of the svgs that count as outer).
const outermost = (svgs: Iterable<Element>, within: string) => [...svgs].filter((s) => !s.parentElement?.closest(within));

/** Copy the computed styles of the page's SVG descendants onto their clones in `doc`. */
function copySvgStyles(node: HTMLElement, doc: Document): void {
  const live = outermost(node.querySelectorAll("svg"), "svg").filter((s) => !s.closest(`[${SKIP_ATTR}]`));
  const copies = outermost(doc.querySelectorAll("foreignObject svg"), "foreignObject svg");
  if (live.length !== copies.length) return; // not the same tree: leave the copy as html-to-image made it
  const walk = (a: Element, b: Element) => {
    const cs = getComputedStyle(a);
    const up = getComputedStyle(a.parentElement!);
    const decl = SVG_PROPS.filter((p) => cs.getPropertyValue(p) !== up.getPropertyValue(p)).map((p) => `${p}: ${cs.getPropertyValue(p)}`);
    if (cs.opacity !== "1") decl.push(`opacity: ${cs.opacity}`);
    if (cs.display === "none") decl.push("display: none");
    if (decl.length) b.setAttribute("style", `${decl.join("; ")}; ${b.getAttribute("style") ?? ""}`);
    for (let i = 0; i < a.children.length && i < b.children.length; i++) walk(a.children[i], b.children[i]);
  };
  live.forEach((s, i) => { for (let j = 0; j < s.children.length; j++) walk(s.children[j], copies[i].children[j]); });
}

/**
 * Drop each inline declaration `p: v` that the element would get anyway: `v` is both what its
 * parent declares for `p` (so an inherited property still inherits it) and the browser's default
 * for the tag (so a property that is not inherited still starts from it); a custom property
 * (`--x`, always inherited) only needs the first. Covers the HTML elements and the <svg> roots
 * among them; `defaults(tag)` gives the computed style of a bare element of that tag.
 */
export function pruneStyles(root: Element, defaults: (tag: string) => Map<string, string>): void {
  const original = new Map<Element, Map<string, string>>();
  const read = (el: Element) => {
    const style = (el as HTMLElement).style;
    const m = new Map<string, string>();
    if (style) for (let i = 0; i < style.length; i++) m.set(style[i], style.getPropertyValue(style[i]));
    return m;
  };
  const html = [...root.querySelectorAll("*")].filter((el) => el.namespaceURI === XHTML
    || (el.localName === "svg" && el.parentElement?.namespaceURI === XHTML));
  for (const el of [root, ...html]) original.set(el, read(el));
  for (const el of html) {
    const parent = el.parentElement ? original.get(el.parentElement) : undefined;
    if (!parent) continue;
    const base = defaults(el.localName);
    const style = (el as HTMLElement).style;
    for (const [p, v] of original.get(el)!) {
      if (parent.get(p) === v && (p.startsWith("--") || base.get(p) === v) && style.getPropertyPriority(p) === "") {
        style.removeProperty(p);
      }
    }
  }
}

const XHTML = "http://www.w3.org/1999/xhtml";
const SVG_NS = "http://www.w3.org/2000/svg";

/** The computed style of a bare element per tag, read in a blank same-origin frame. */
function defaultStyles(): { get: (tag: string) => Map<string, string>; close: () => void } {
  const frame = document.createElement("iframe");
  frame.setAttribute("aria-hidden", "true");
  frame.style.cssText = "position: fixed; left: -10000px; top: 0; width: 400px; height: 300px; border: 0;";
  document.body.appendChild(frame);
  const doc = frame.contentDocument!;
  const cache = new Map<string, Map<string, string>>();
  return {
    get(tag) {
      let m = cache.get(tag);
      if (!m) {
        const el = tag === "svg" ? doc.createElementNS(SVG_NS, "svg") : doc.createElement(tag);
        doc.body.appendChild(el);
        const cs = frame.contentWindow!.getComputedStyle(el);
        m = new Map<string, string>();
        for (let i = 0; i < cs.length; i++) m.set(cs[i], cs.getPropertyValue(cs[i]));
        el.remove();
        cache.set(tag, m);
      }
      return m;
    },
    close: () => frame.remove(),
  };
}

/** The panel `node` as standalone SVG text (its current size, white background). */
export async function viewSvg(node: HTMLElement): Promise<string> {
  // loaded on the first export only: it is a fifth of the page's script, which the first render waits for
  const { toSvg } = await import("html-to-image");
  const url = await toSvg(node, {
    backgroundColor: "#ffffff",
    skipFonts: true, // system fonts only; nothing to embed
    filter: (n) => !(n instanceof Element && n.hasAttribute(SKIP_ATTR)),
  });
  const doc = new DOMParser().parseFromString(decodeURIComponent(url.slice(url.indexOf(",") + 1)), "image/svg+xml");
  if (doc.querySelector("parsererror")) throw new Error("the view could not be serialised as SVG");
  copySvgStyles(node, doc);
  const page = doc.querySelector("foreignObject > *");
  if (page) {
    const defaults = defaultStyles();
    try { pruneStyles(page, defaults.get); } finally { defaults.close(); }
  }
  const style = doc.createElementNS(SVG_NS, "style");
  style.textContent = "* { scrollbar-width: none !important; }";
  doc.documentElement.insertBefore(style, doc.documentElement.firstChild);
  const svg = new XMLSerializer().serializeToString(doc);
  return inlineDefs(svg, pageDefs(missingRefs(svg)));
}

/** A PNG of `svg` (as viewSvg returns it) at `scale` times its size. */
export async function svgToPng(svg: string, width: number, height: number, scale = 2): Promise<Blob> {
  const img = new Image();
  img.src = SVG_PREFIX + encodeURIComponent(svg);
  await img.decode();
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(width * scale));
  canvas.height = Math.max(1, Math.round(height * scale));
  const ctx = canvas.getContext("2d");
  if (!ctx) throw new Error("this browser gives no 2D canvas");
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve, reject) =>
    canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("the canvas could not be encoded as PNG"))), "image/png"));
}

/** Save `node` as an SVG or PNG file named after `title` (the browser's download). */
export async function downloadView(node: HTMLElement, title: string, format: SnapshotFormat): Promise<string> {
  const svg = await viewSvg(node);
  const blob = format === "svg"
    ? new Blob([svg], { type: "image/svg+xml" })
    : await svgToPng(svg, node.offsetWidth, node.offsetHeight, Math.max(2, window.devicePixelRatio || 1));
  const name = snapshotName(title, format);
  const href = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = href;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10_000);
  return name;
}
