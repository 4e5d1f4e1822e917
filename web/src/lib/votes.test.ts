import { describe, expect, it } from "vitest";
import {
  castVote, clearClass, countVotes, loadVotes, removeVote, saveVotes, storageKey, toInstructions, voteFor,
  votesForClass, type KV, type Vote,
} from "./votes";

const v = (conceptIdx: number, direction: "up" | "down", classIdx = 0): Vote =>
  ({ classIdx, conceptIdx, word: `c${conceptIdx}`, direction });

class MemKV implements KV {
  m = new Map<string, string>();
  getItem(k: string) { return this.m.has(k) ? this.m.get(k)! : null; }
  setItem(k: string, val: string) { this.m.set(k, val); }
  removeItem(k: string) { this.m.delete(k); }
  get length() { return this.m.size; }
  key(i: number) { return [...this.m.keys()][i] ?? null; }
}

describe("vote collection", () => {
  it("adds votes in click order", () => {
    let votes: Vote[] = [];
    votes = castVote(votes, v(1, "up"));
    votes = castVote(votes, v(2, "down"));
    expect(votes.map((x) => [x.conceptIdx, x.direction])).toEqual([[1, "up"], [2, "down"]]);
    expect(countVotes(votes)).toEqual({ up: 1, down: 1 });
  });

  it("the same vote twice withdraws it", () => {
    const votes = castVote(castVote([], v(1, "up")), v(1, "up"));
    expect(votes).toEqual([]);
  });

  it("the opposite vote flips it in place", () => {
    let votes = castVote(castVote([], v(1, "up")), v(2, "up"));
    votes = castVote(votes, v(1, "down"));
    expect(votes.map((x) => [x.conceptIdx, x.direction])).toEqual([[1, "down"], [2, "up"]]);
  });

  it("each class keeps its own batch", () => {
    let votes = castVote([], v(1, "up", 0));
    votes = castVote(votes, v(3, "down", 4));
    votes = castVote(votes, v(1, "down", 4)); // same concept, other class: a separate vote
    expect(votesForClass(votes, 0).map((x) => x.conceptIdx)).toEqual([1]);
    expect(votesForClass(votes, 4).map((x) => [x.conceptIdx, x.direction])).toEqual([[3, "down"], [1, "down"]]);
    expect(voteFor(votes, 0, 1)).toBe("up");
    expect(clearClass(votes, 4)).toEqual([v(1, "up", 0)]);
    expect(removeVote(votes, 4, 1)).toHaveLength(2);
  });

  it("looks votes up and turns them into instructions", () => {
    const votes = [v(1, "up", 2), v(5, "down", 2)];
    expect(voteFor(votes, 2, 5)).toBe("down");
    expect(voteFor(votes, 3, 5)).toBeNull();
    expect(votesForClass(votes, null)).toEqual([]);
    expect(toInstructions(votes)).toEqual([
      { class: 2, concept: 1, direction: "up" },
      { class: 2, concept: 5, direction: "down" },
    ]);
  });
});

describe("pending votes survive a reload", () => {
  it("round-trips per workspace and class", () => {
    const kv = new MemKV();
    const votes = [v(1, "up", 2), v(5, "down", 2), v(7, "up", 3)];
    saveVotes(kv, "/ws/a", votes);
    saveVotes(kv, "/ws/b", [v(9, "down", 2)]);
    expect(kv.getItem(storageKey("/ws/a", 2))).not.toBeNull();
    expect(loadVotes(kv, "/ws/a")).toEqual(votes);
    expect(loadVotes(kv, "/ws/b")).toEqual([v(9, "down", 2)]);
  });

  it("a class whose batch was tuned (emptied) loses its key; other workspaces are untouched", () => {
    const kv = new MemKV();
    saveVotes(kv, "/ws/a", [v(1, "up", 2), v(7, "up", 3)]);
    saveVotes(kv, "/ws/b", [v(9, "down", 2)]);
    saveVotes(kv, "/ws/a", [v(7, "up", 3)]);
    expect(kv.getItem(storageKey("/ws/a", 2))).toBeNull();
    expect(loadVotes(kv, "/ws/a")).toEqual([v(7, "up", 3)]);
    expect(loadVotes(kv, "/ws/b")).toHaveLength(1);
  });

  it("skips malformed entries", () => {
    const kv = new MemKV();
    kv.setItem(storageKey("/ws", 1), "{not json");
    kv.setItem(storageKey("/ws", 2), JSON.stringify([{ c: 3, w: "x", d: "sideways" }, { c: 4, w: "y", d: "up" }]));
    expect(loadVotes(kv, "/ws")).toEqual([{ classIdx: 2, conceptIdx: 4, word: "y", direction: "up" }]);
  });
});
