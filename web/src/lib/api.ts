// Typed client of the InFiConD server. Errors arrive as problem JSON and are thrown as ApiError.

import type {
  AddConceptsResult, ClassConcepts, ConceptDetail, ConceptSearch, ConceptMap, ExportResult, Instruction,
  Performance, Problem, Provenance, SortKey, Suggestion, Summary, TuneResult, WhatIf,
} from "./types";

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

export const api = {
  summary: () => request<Summary>("GET", "/api/summary"),
  performance: (split = "val") => request<Performance>("GET", `/api/performance?split=${enc(split)}`),
  classConcepts: (cls: number, k = 10, sort: SortKey = "influence") =>
    request<ClassConcepts>("GET", `/api/classes/${cls}/concepts?k=${k}&sort=${sort}`),
  whatif: (cls: number, concept: number, n = 21, factor: number | null = null) =>
    request<WhatIf>("GET", `/api/classes/${cls}/whatif/${concept}?n_points=${n}${factor === null ? "" : `&factor=${factor}`}`),
  searchConcepts: (cls: number, q: string, limit = 20) =>
    request<ConceptSearch>("GET", `/api/classes/${cls}/concepts/search?q=${enc(q)}&limit=${limit}`),
  suggestions: (cls: number, k = 5, shortcuts = 0) =>
    request<Suggestion[]>("GET", `/api/classes/${cls}/suggestions?k=${k}${shortcuts ? `&shortcuts=${shortcuts}` : ""}`),
  conceptMap: () => request<ConceptMap>("GET", "/api/concepts/map"),
  concept: (concept: number, cls: number | null, factor: number | null = null) =>
    request<ConceptDetail>("GET", `/api/concepts/${concept}${cls === null ? "" : `?cls=${cls}${factor === null ? "" : `&factor=${factor}`}`}`),
  addConcepts: (words: string[]) => request<AddConceptsResult>("POST", "/api/concepts", { words }),
  tune: (instructions: Instruction[], factor = 0.5, onConflict: "error" | "replace" = "error", erase = false) =>
    request<TuneResult>("POST", "/api/tune", { instructions, factor, on_conflict: onConflict, ...(erase ? { erase } : {}) }),
  provenance: () => request<Provenance>("GET", "/api/provenance"),
  undo: () => request<Provenance>("POST", "/api/provenance/undo"),
  revert: (stateId: number | string) => request<Provenance>("POST", "/api/provenance/revert", { state_id: stateId }),
  export: () => request<ExportResult>("POST", "/api/export"),
  patchUrl: (id: string | number) => mediaUrl(`/api/media/patches/${enc(String(id))}`),
  imageUrl: (idx: number) => mediaUrl(`/api/media/images/${idx}`),
};
