// The class to select from the URL fragment, `#class=<name or index>`: how a link, a browser
// tab opened from Python (`inficond.launch_app(...).select("sofa")`) and an inline Jupyter frame
// pick a class. A fragment change never reloads the page, so the views keep their state.

export interface NamedClass { class_idx: number; name: string }

/** The index of the class named (or numbered) in `hash`, or null when it names none. */
export function classFromHash(hash: string, classes: NamedClass[]): number | null {
  const params = new URLSearchParams(hash.replace(/^#/, ""));
  const raw = params.get("class");
  if (raw === null || raw.trim() === "") return null;
  const want = raw.trim();
  const byName = classes.find((c) => c.name === want) ?? classes.find((c) => c.name.toLowerCase() === want.toLowerCase());
  if (byName) return byName.class_idx;
  if (/^\d+$/.test(want)) {
    const byIdx = classes.find((c) => c.class_idx === Number(want));
    if (byIdx) return byIdx.class_idx;
  }
  return null;
}
