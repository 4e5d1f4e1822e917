// App-wide state that the views share through subscriptions only.

import { Selection } from "./selection";
import { Store } from "./store";
import type { Vote } from "./votes";

/** The selected class (index): the performance view commits it, the others follow. */
export const classSelection = new Selection<number>();
/** The selected concept (index): knowledge rows and embedding points commit it. */
export const conceptSelection = new Selection<number>();
/** Bumped whenever the student changes (tune, undo, revert, new concepts): views refetch. */
export const epoch = new Store(0);
export const bumpEpoch = () => epoch.update((n) => n + 1);
/** Pending uptune/downtune votes. */
export const votes = new Store<Vote[]>([]);
/** A short message for the status line (e.g. the result of the last action). */
export const notice = new Store<{ kind: "info" | "error" | "warn"; text: string } | null>(null);

export interface Tip { x: number; y: number; title: string; lines: [string, string][] }
/** The one floating hover card (details on demand). */
export const tooltip = new Store<Tip | null>(null);
export function showTip(ev: MouseEvent, title: string, lines: [string, string][]): void {
  tooltip.set({ x: ev.clientX, y: ev.clientY, title, lines });
}
export const hideTip = () => tooltip.set(null);
