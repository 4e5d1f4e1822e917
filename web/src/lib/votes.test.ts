import { describe, expect, it } from "vitest";
import { castVote, countVotes, removeVote, toInstructions, voteFor, votesForClass, type Vote } from "./votes";

const v = (conceptIdx: number, direction: "up" | "down", classIdx = 0): Vote =>
  ({ classIdx, conceptIdx, word: `c${conceptIdx}`, direction });

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

  it("a vote for another class starts a new batch", () => {
    let votes = castVote([], v(1, "up", 0));
    votes = castVote(votes, v(3, "down", 4));
    expect(votes).toHaveLength(1);
    expect(votes[0].classIdx).toBe(4);
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
    expect(removeVote(votes, 1)).toEqual([v(5, "down", 2)]);
  });
});
