// App-wide state that the views share through subscriptions only.

import { Selection } from "./selection";
import { Store } from "./store";
import { loadVotes, saveVotes, type Vote } from "./votes";

/** The selected class (index): the performance view commits it, the others follow. */
export const classSelection = new Selection<number>();
/** The selected concept (index): knowledge rows and embedding points commit it. */
export const conceptSelection = new Selection<number>();
/** Bumped whenever the student changes (tune, undo, revert, new concepts): views refetch. */
export const epoch = new Store(0);
export const bumpEpoch = () => epoch.update((n) => n + 1);
/** Bumped when concept words are added: only the concept map depends on the corpus alone. */
export const corpusEpoch = new Store(0);
export const bumpCorpus = () => corpusEpoch.update((n) => n + 1);
/** Pending uptune/downtune votes, one batch per class. */
export const votes = new Store<Vote[]>([]);
/** Vote strength f sent with a fine-tune step (see inficond.students.tuning); 0.5 by default. */
export const voteFactor = new Store<number>(0.5);

let persisting: string | null = null;
/** Keep pending votes in localStorage under this workspace, so a reload keeps them (once per page). */
export function persistVotes(workspace: string): void {
  if (persisting !== null || typeof localStorage === "undefined") return;
  persisting = workspace;
  try {
    const saved = loadVotes(localStorage, workspace);
    if (saved.length) votes.set([...saved, ...votes.get().filter((v) => !saved.some((s) => s.classIdx === v.classIdx && s.conceptIdx === v.conceptIdx))]);
  } catch { /* storage disabled */ }
  votes.subscribe((vs) => { try { saveVotes(localStorage, workspace, vs); } catch { /* full or disabled */ } });
}
/** A short message for the status line (e.g. the result of the last action). */
export const notice = new Store<{ kind: "info" | "error" | "warn"; text: string } | null>(null);

export interface Tip { x: number; y: number; title: string; lines: [string, string][] }
/** The one floating hover card (details on demand). */
export const tooltip = new Store<Tip | null>(null);
export function showTip(ev: MouseEvent, title: string, lines: [string, string][]): void {
  tooltip.set({ x: ev.clientX, y: ev.clientY, title, lines });
}
export const hideTip = () => tooltip.set(null);
