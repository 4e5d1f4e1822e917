// Pending uptune/downtune votes, one batch per class (one fine-tune step tunes one class).
// Pending votes are kept in localStorage, keyed by workspace and class, so a reload keeps them.

import type { Direction, Instruction } from "./types";

export interface Vote {
  classIdx: number;
  conceptIdx: number;
  word: string;
  direction: Direction;
}

/**
 * Cast a vote. Voting the same direction again withdraws the vote; voting the other
 * direction flips it. Each class keeps its own batch: votes for other classes are kept.
 */
export function castVote(votes: Vote[], vote: Vote): Vote[] {
  const existing = votes.find((v) => v.classIdx === vote.classIdx && v.conceptIdx === vote.conceptIdx);
  if (existing && existing.direction === vote.direction) return votes.filter((v) => v !== existing);
  if (existing) return votes.map((v) => (v === existing ? { ...vote } : v));
  return [...votes, { ...vote }];
}

export function removeVote(votes: Vote[], classIdx: number, conceptIdx: number): Vote[] {
  return votes.filter((v) => !(v.classIdx === classIdx && v.conceptIdx === conceptIdx));
}

/** Drop a class's batch (after it was fine-tuned). */
export function clearClass(votes: Vote[], classIdx: number): Vote[] {
  return votes.filter((v) => v.classIdx !== classIdx);
}

export function voteFor(votes: Vote[], classIdx: number | null, conceptIdx: number): Direction | null {
  const v = votes.find((x) => x.classIdx === classIdx && x.conceptIdx === conceptIdx);
  return v ? v.direction : null;
}

export function votesForClass(votes: Vote[], classIdx: number | null): Vote[] {
  return classIdx === null ? [] : votes.filter((v) => v.classIdx === classIdx);
}

export function toInstructions(votes: Vote[]): Instruction[] {
  return votes.map((v) => ({ class: v.classIdx, concept: v.conceptIdx, direction: v.direction }));
}

export function countVotes(votes: Vote[]): { up: number; down: number } {
  return {
    up: votes.filter((v) => v.direction === "up").length,
    down: votes.filter((v) => v.direction === "down").length,
  };
}

// ---------------------------------------------------------------- persistence
/** The minimal Storage interface (window.localStorage, or a Map-backed one in tests). */
export interface KV {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
  readonly length: number;
  key(i: number): string | null;
}

const PREFIX = "inficond-votes";
export const storageKey = (workspace: string, classIdx: number) => `${PREFIX}:${workspace}:${classIdx}`;

/** Write each class's batch under its own key; remove keys of classes without pending votes. */
export function saveVotes(kv: KV, workspace: string, votes: Vote[]): void {
  const byClass = new Map<number, Vote[]>();
  for (const v of votes) byClass.set(v.classIdx, [...(byClass.get(v.classIdx) ?? []), v]);
  const mine = `${PREFIX}:${workspace}:`;
  const stale: string[] = [];
  for (let i = 0; i < kv.length; i++) {
    const k = kv.key(i);
    if (k && k.startsWith(mine) && !byClass.has(Number(k.slice(mine.length)))) stale.push(k);
  }
  for (const k of stale) kv.removeItem(k);
  for (const [c, vs] of byClass) {
    kv.setItem(storageKey(workspace, c), JSON.stringify(vs.map((v) => ({ c: v.conceptIdx, w: v.word, d: v.direction }))));
  }
}

/** Read back every class's batch of this workspace; malformed entries are skipped. */
export function loadVotes(kv: KV, workspace: string): Vote[] {
  const mine = `${PREFIX}:${workspace}:`;
  const out: Vote[] = [];
  for (let i = 0; i < kv.length; i++) {
    const k = kv.key(i);
    if (!k || !k.startsWith(mine)) continue;
    const classIdx = Number(k.slice(mine.length));
    if (!Number.isInteger(classIdx) || classIdx < 0) continue;
    let items: unknown;
    try { items = JSON.parse(kv.getItem(k) ?? "[]"); } catch { continue; }
    if (!Array.isArray(items)) continue;
    for (const it of items as { c?: unknown; w?: unknown; d?: unknown }[]) {
      if (typeof it?.c === "number" && typeof it.w === "string" && (it.d === "up" || it.d === "down")) {
        out.push({ classIdx, conceptIdx: it.c, word: it.w, direction: it.d });
      }
    }
  }
  return out;
}
