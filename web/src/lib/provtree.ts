// Provenance as a tree: rows in depth-first order (the branch that leads to the current state
// first, so it reads top to bottom without interruption), each branch in its own lane.

export interface TreeStep { state_id: number | string; parent_id: number | string | null; on_head_path: boolean }

export interface TreeRow<S extends TreeStep> {
  step: S;
  row: number;
  lane: number;
  /** Vertical line pieces in this row: from the row top to the node's height (`top`) and from there to the row bottom (`bottom`). */
  pieces: { lane: number; top: boolean; bottom: boolean }[];
  /** Horizontal links at the node's height, from this node's lane out to a branch's lane. */
  elbows: { from: number; to: number }[];
  depth: number;
}

export function layoutTree<S extends TreeStep>(steps: S[]): { rows: TreeRow<S>[]; lanes: number } {
  const ids = new Set(steps.map((s) => s.state_id));
  const kids = new Map<number | string | null, S[]>();
  for (const s of steps) {
    const p = s.parent_id !== null && ids.has(s.parent_id) ? s.parent_id : null;
    kids.set(p, [...(kids.get(p) ?? []), s]);
  }
  const cmp = (a: S, b: S) => (Number(b.on_head_path) - Number(a.on_head_path)) || (Number(a.state_id) - Number(b.state_id));
  for (const [p, v] of kids) v.sort(p === null ? (a, b) => Number(a.state_id) - Number(b.state_id) : cmp);

  // depth-first rows; chains: a root or a non-first child, continued through first children
  const order: { s: S; depth: number; chain: number; parentRow: number | null }[] = [];
  const chains: { start: number; parentRow: number | null; end: number; onPath: boolean; lane: number }[] = [];
  const visit = (s: S, depth: number, chain: number, parentRow: number | null) => {
    const row = order.length;
    order.push({ s, depth, chain, parentRow });
    chains[chain].end = row;
    (kids.get(s.state_id) ?? []).forEach((c, i) => {
      if (i === 0) visit(c, depth + 1, chain, row);
      else {
        chains.push({ start: -1, parentRow: row, end: -1, onPath: c.on_head_path, lane: -1 });
        const ci = chains.length - 1;
        chains[ci].start = order.length;
        visit(c, depth + 1, ci, row);
      }
    });
  };
  for (const r of kids.get(null) ?? []) {
    chains.push({ start: order.length, parentRow: null, end: -1, onPath: r.on_head_path, lane: -1 });
    visit(r, 0, chains.length - 1, null);
  }

  // lanes: greedy interval colouring, the current state's branch first so it keeps lane 0
  const span = (c: (typeof chains)[number]) => [c.parentRow ?? c.start, c.end] as const;
  const byPriority = chains.map((_, i) => i).sort((a, b) => Number(chains[b].onPath) - Number(chains[a].onPath) || chains[a].start - chains[b].start);
  const placed: number[] = [];
  for (const i of byPriority) {
    const [a, b] = span(chains[i]);
    let lane = 0;
    for (;;) {
      const clash = placed.some((j) => {
        if (chains[j].lane !== lane) return false;
        const [c, d] = span(chains[j]);
        return a <= d && c <= b;
      });
      if (!clash) break;
      lane++;
    }
    chains[i].lane = lane;
    placed.push(i);
  }

  const rows: TreeRow<S>[] = order.map((o, row) => ({ step: o.s, row, lane: chains[o.chain].lane, pieces: [], elbows: [], depth: o.depth }));
  const piece = (row: number, lane: number, part: "top" | "bottom") => {
    const r = rows[row];
    let p = r.pieces.find((x) => x.lane === lane);
    if (!p) { p = { lane, top: false, bottom: false }; r.pieces.push(p); }
    p[part] = true;
  };
  for (const c of chains) {
    const first = c.parentRow ?? c.start;
    if (c.parentRow !== null) {
      const parentLane = rows[c.parentRow].lane;
      rows[c.parentRow].elbows.push({ from: parentLane, to: c.lane });
    }
    for (let r = first; r <= c.end; r++) {
      if (r > first) piece(r, c.lane, "top");
      if (r < c.end) piece(r, c.lane, "bottom");
    }
  }
  const lanes = chains.reduce((m, c) => Math.max(m, c.lane + 1), 0);
  return { rows, lanes };
}
