// Map layout helpers: spread overlapping highlighted points apart (so none hides another, e.g.
// "sofa" under "couch") and place their labels without overlap.

export interface Circle { id: number; x: number; y: number; r: number }
export interface Box { x0: number; y0: number; x1: number; y1: number }

/**
 * Push overlapping circles apart until no two overlap (a gap of `gap` px), moving each as
 * little as possible. Identical points are separated on a small ring, in input order.
 */
export function spreadPoints(circles: Circle[], gap = 1, iterations = 80): (Circle & { moved: boolean })[] {
  const p = circles.map((c) => ({ ...c }));
  // identical positions: seed a deterministic separation direction
  for (let i = 0; i < p.length; i++) {
    for (let j = 0; j < i; j++) {
      if (Math.abs(p[i].x - p[j].x) < 1e-6 && Math.abs(p[i].y - p[j].y) < 1e-6) {
        const a = (i * 2.399963) % (2 * Math.PI); // golden angle
        p[i].x += Math.cos(a) * 0.5;
        p[i].y += Math.sin(a) * 0.5;
      }
    }
  }
  for (let it = 0; it < iterations; it++) {
    let moved = false;
    for (let i = 0; i < p.length; i++) {
      for (let j = i + 1; j < p.length; j++) {
        const dx = p[j].x - p[i].x, dy = p[j].y - p[i].y;
        const d = Math.hypot(dx, dy) || 1e-6;
        const need = p[i].r + p[j].r + gap;
        if (d >= need - 1e-6) continue;
        const push = (need - d) / 2 + 0.01;
        const ux = dx / d, uy = dy / d;
        p[i].x -= ux * push; p[i].y -= uy * push;
        p[j].x += ux * push; p[j].y += uy * push;
        moved = true;
      }
    }
    if (!moved) break;
  }
  return p.map((q, i) => ({ ...q, moved: Math.hypot(q.x - circles[i].x, q.y - circles[i].y) > 0.5 }));
}

export function overlaps(a: Box, b: Box, pad = 0): boolean {
  return a.x0 < b.x1 + pad && b.x0 < a.x1 + pad && a.y0 < b.y1 + pad && b.y0 < a.y1 + pad;
}

export interface LabelIn extends Circle { text: string; width: number; height: number }
export interface LabelOut { id: number; x: number; y: number; anchor: "start" | "end" | "middle"; box: Box; leader: boolean; hidden: boolean }

/**
 * Place one label per circle, in input order (put the most important first): try eight
 * positions around the point, then the same further out with a leader line; a label that
 * fits nowhere is hidden (the point still shows it on hover). Labels avoid each other, every
 * circle and the edges of `bounds`.
 */
export function placeLabels(items: LabelIn[], bounds: Box, extraObstacles: Box[] = []): LabelOut[] {
  const circleBox = (c: Circle): Box => ({ x0: c.x - c.r, y0: c.y - c.r, x1: c.x + c.r, y1: c.y + c.r });
  const placed: Box[] = [];
  const out: LabelOut[] = [];
  for (const it of items) {
    const others = items.filter((o) => o.id !== it.id).map(circleBox);
    let done: LabelOut | null = null;
    for (const dist of [3, 12, 24]) {
      const d = it.r + dist;
      const w = it.width, h = it.height;
      // [x of the box's left edge, y of its top, anchor, text x]
      const cands: [number, number, LabelOut["anchor"], number][] = [
        [it.x + d, it.y - h / 2, "start", it.x + d],
        [it.x - d - w, it.y - h / 2, "end", it.x - d],
        [it.x - w / 2, it.y - d - h, "middle", it.x],
        [it.x - w / 2, it.y + d, "middle", it.x],
        [it.x + d * 0.7, it.y - d * 0.7 - h, "start", it.x + d * 0.7],
        [it.x + d * 0.7, it.y + d * 0.7, "start", it.x + d * 0.7],
        [it.x - d * 0.7 - w, it.y - d * 0.7 - h, "end", it.x - d * 0.7],
        [it.x - d * 0.7 - w, it.y + d * 0.7, "end", it.x - d * 0.7],
      ];
      for (const [bx, by, anchor, tx] of cands) {
        const box = { x0: bx, y0: by, x1: bx + w, y1: by + h };
        if (box.x0 < bounds.x0 || box.y0 < bounds.y0 || box.x1 > bounds.x1 || box.y1 > bounds.y1) continue;
        if (placed.some((b) => overlaps(b, box, 1))) continue;
        if (others.some((b) => overlaps(b, box))) continue;
        if (extraObstacles.some((b) => overlaps(b, box))) continue;
        done = { id: it.id, x: tx, y: by + h / 2, anchor, box, leader: dist > 3, hidden: false };
        break;
      }
      if (done) break;
    }
    if (done) placed.push(done.box);
    out.push(done ?? { id: it.id, x: it.x, y: it.y, anchor: "start", box: { x0: 0, y0: 0, x1: 0, y1: 0 }, leader: false, hidden: true });
  }
  return out;
}
