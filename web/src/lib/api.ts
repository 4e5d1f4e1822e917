// Typed client of the InFiConD server. Errors arrive as problem JSON and are thrown as ApiError.

import type {
  AddConceptsResult, ClassConcepts, ConceptDetail, ConceptSearch, ConceptMap, ExportResult, Instruction,
  PatchBatch, Performance, Problem, Provenance, SortKey, Suggestion, Summary, TuneResult, WhatIf,
} from "./types";
import { RequestCache } from "./cache";
import { PatchSource } from "./patches";
import { corpusEpoch, epoch } from "./state";

export class ApiError extends Error {
  constructor(public status: number, public title: string, public detail: string, public problem: Partial<Problem> = {}) {
    super(detail || title);
  }
}

// The access token (servers bound beyond loopback) never appears in a URL the page builds: opening
// the printed URL `http://host:port/?token=...` makes the server set an HttpOnly, SameSite=Strict
// cookie and redirect to the clean URL; the browser then sends that cookie with every request
// and <img> load. The page itself never sees the token.

/** A URL for <img>/<a>: the path as is (the cookie carries the token, see above). */
export function mediaUrl(path: string): string {
  return path;
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  // The server refuses state-changing requests that are not JSON (a cross-site form cannot send it).
  if (method !== "GET") headers["Content-Type"] = "application/json";
  let res: Response;
  try {
    res = await fetch(path, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, "Network error", `cannot reach the InFiConD server (${(e as Error).message})`);
  }
  if (!res.ok) {
    let p: Partial<Problem> = {};
    try { p = await res.json(); } catch { /* not JSON */ }
    throw new ApiError(res.status, p.title ?? res.statusText, p.detail ?? `${method} ${path} failed (${res.status})`, p);
  }
  return (await res.json()) as T;
}

const enc = encodeURIComponent;

// Every view asks for what it shows, and several show the same thing (the summary: four views;
// a class's top concepts: the knowledge view and the concept map). One request per URL and
// student state (epoch) answers them all: measured on the development workspace, a page load
// made 15 API requests (5 summaries) and a class click asked for the class's concepts twice,
// the second one waiting behind the first (and the suggestions) on the server's lock.
const answers = new RequestCache<unknown>();
const get = <T>(path: string, e = epoch.get()): Promise<T> => answers.get(path, e, () => request<T>("GET", path)) as Promise<T>;
// the concept map depends on the corpus words only, not on the student
const maps = new RequestCache<unknown>();

/** Patch thumbnails, loaded in one request per list (see lib/patches.ts). */
export const patches = new PatchSource((ids) =>
  request<PatchBatch>("GET", `/api/media/patches?${ids.map((i) => `ids=${enc(i)}`).join("&")}`).then((b) => b.patches));

export const api = {
  summary: (e?: number) => get<Summary>("/api/summary", e),
  performance: (split = "val", e?: number) => get<Performance>(`/api/performance?split=${enc(split)}`, e),
  classConcepts: (cls: number, k = 10, sort: SortKey = "influence", e?: number) =>
    get<ClassConcepts>(`/api/classes/${cls}/concepts?k=${k}&sort=${sort}`, e),
  whatif: (cls: number, concept: number, n = 21, factor: number | null = null) =>
    get<WhatIf>(`/api/classes/${cls}/whatif/${concept}?n_points=${n}${factor === null ? "" : `&factor=${factor}`}`),
  searchConcepts: (cls: number, q: string, limit = 20) =>
    get<ConceptSearch>(`/api/classes/${cls}/concepts/search?q=${enc(q)}&limit=${limit}`),
  suggestions: (cls: number, k = 5, shortcuts = 0) =>
    get<Suggestion[]>(`/api/classes/${cls}/suggestions?k=${k}${shortcuts ? `&shortcuts=${shortcuts}` : ""}`),
  conceptMap: () => maps.get("map", corpusEpoch.get(), () => request<ConceptMap>("GET", "/api/concepts/map")) as Promise<ConceptMap>,
  concept: (concept: number, cls: number | null, factor: number | null = null, e?: number) =>
    get<ConceptDetail>(`/api/concepts/${concept}${cls === null ? "" : `?cls=${cls}${factor === null ? "" : `&factor=${factor}`}`}`, e),
  addConcepts: (words: string[]) => request<AddConceptsResult>("POST", "/api/concepts", { words }),
  tune: (instructions: Instruction[], factor = 0.5, onConflict: "error" | "replace" = "error", erase = false) =>
    request<TuneResult>("POST", "/api/tune", { instructions, factor, on_conflict: onConflict, ...(erase ? { erase } : {}) }),
  provenance: (e?: number) => get<Provenance>("/api/provenance", e),
  /** Asks for what the views show in student state `e` (the one a step is about to make current)
   *  and resolves when every answer is in, failed ones included: bumping the epoch then redraws
   *  every view once, from answers at hand. Bumped first, each answer arrived in a task of its
   *  own and the page was redrawn once per answer (5 times per step). */
  prefetchState: (e: number, lists: [number, number, SortKey][], concept: [number, number | null, number | null] | null) =>
    Promise.allSettled([
      api.summary(e), api.performance("val", e), api.performance("test", e), api.provenance(e),
      ...lists.map(([c, k, s]) => api.classConcepts(c, k, s, e)),
      ...(concept ? [api.concept(...concept, e)] : []),
    ]).then(() => undefined),
  undo: () => request<Provenance>("POST", "/api/provenance/undo"),
  revert: (stateId: number | string) => request<Provenance>("POST", "/api/provenance/revert", { state_id: stateId }),
  /** Undo and revert answer with the new provenance: keep it for the state they made (after bumpEpoch). */
  rememberProvenance: (p: Provenance) => answers.put("/api/provenance", epoch.get(), p),
  export: () => request<ExportResult>("POST", "/api/export"),
  patchUrl: (id: string | number) => mediaUrl(`/api/media/patches/${enc(String(id))}`),
  imageUrl: (idx: number) => mediaUrl(`/api/media/images/${idx}`),
};
