// Pending uptune/downtune votes collected in the student knowledge view's top bar.

import type { Direction, Instruction } from "./types";

export interface Vote {
  classIdx: number;
  conceptIdx: number;
  word: string;
  direction: Direction;
}

/**
 * Cast a vote. Voting the same direction again withdraws the vote; voting the other
 * direction flips it. Votes for another class are dropped: one fine-tune step tunes one class.
 */
export function castVote(votes: Vote[], vote: Vote): Vote[] {
  const same = votes.filter((v) => v.classIdx === vote.classIdx);
  const existing = same.find((v) => v.conceptIdx === vote.conceptIdx);
  const rest = same.filter((v) => v.conceptIdx !== vote.conceptIdx);
  if (existing && existing.direction === vote.direction) return rest;
  if (existing) return same.map((v) => (v.conceptIdx === vote.conceptIdx ? { ...vote } : v));
  return [...same, { ...vote }];
}

export function removeVote(votes: Vote[], conceptIdx: number): Vote[] {
  return votes.filter((v) => v.conceptIdx !== conceptIdx);
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
