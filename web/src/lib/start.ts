// The class the page opens on, chosen as soon as the validation performance arrives, before the
// views are mounted: the URL's class (#class=sofa), else the class that most needs tuning. Its
// top concepts are asked for at once, so the knowledge view and the concept map find the answer
// waiting (lib/api.ts answers each URL once per student state) instead of asking after mounting;
// so is every class committed later, in the click itself.
// A later fragment change selects again (launch_app.select).

import { api } from "./api";
import { classFromHash } from "./hash";
import { weakestClass } from "./perf";
import { classSelection } from "./state";
import type { Performance, SortKey } from "./types";

/** What the knowledge view lists first (and the concept map highlights). */
export const TOP_K = 10;
export const TOP_SORT: SortKey = "influence";

const hashClass = (p: Performance) => classFromHash(window.location.hash, p.classes);

/** Ask for a committed class's top concepts in the click itself: the views ask in their effects,
 *  which run after the selection's other updates (a 10-45 ms late request on a loaded machine). */
function prefetchCommitted(): void {
  let last: number | null = null;
  classSelection.subscribe((s) => {
    const c = s.committed.value;
    if (c === last) return;
    last = c;
    if (c !== null) api.classConcepts(c, TOP_K, TOP_SORT).catch(() => {});
  });
}

/** Chooses the start class; resolves once every answer the first render shows has arrived (or
 *  failed), so the views can be mounted with their data at hand: mounted earlier, each answer
 *  arrived in a task of its own and the page was styled, laid out and painted three times over
 *  before it was complete (measured: 3 frames, 430 -> 600 -> 690 ms, for one of ~240 ms). */
export function selectStartClass(): Promise<void> {
  prefetchCommitted();
  const chosen = api.performance("val").then((p) => {
    const k = hashClass(p);
    const w = weakestClass(p.classes);
    if (k !== null) classSelection.commit("url", k);
    else if (w && classSelection.committed === null) classSelection.commit("app", w.class_idx);
    const c = classSelection.committed;
    return c === null ? null : api.classConcepts(c, TOP_K, TOP_SORT);
  });
  window.addEventListener("hashchange", () => {
    api.performance("val").then((p) => { const k = hashClass(p); if (k !== null) classSelection.commit("url", k); }).catch(() => {});
  });
  // the same requests as the views make (lib/api.ts answers each once), the preloaded ones of index.html
  const first: Promise<unknown>[] = [chosen, api.summary(), api.performance("test"), api.provenance(), api.conceptMap()];
  return Promise.allSettled(first).then(() => undefined);
}
