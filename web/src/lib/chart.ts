// Shared scales for small multiples: every sparkline of a list uses one y-range.

/** [lo, hi] over all curves' finite values, at least `minSpan` wide, clipped to [0, 1]. */
export function sharedDomain(curves: (number | null)[][], minSpan = 0.05): [number, number] {
  let lo = Infinity, hi = -Infinity;
  for (const c of curves) for (const v of c) if (v !== null && Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (!Number.isFinite(lo)) return [0, 1];
  if (hi - lo < minSpan) {
    const mid = (hi + lo) / 2;
    lo = mid - minSpan / 2; hi = mid + minSpan / 2;
  }
  return [Math.max(0, lo), Math.min(1, hi)];
}

/** Index of the grid value nearest to `x`. */
export function nearestIndex(grid: number[], x: number): number {
  let best = -1, bd = Infinity;
  grid.forEach((g, i) => { const d = Math.abs(g - x); if (d < bd) { bd = d; best = i; } });
  return best;
}

/** A vertical mark on a what-if chart (e.g. a proposed vote's bound) and the value read there. */
export interface Mark { x: number; y: number | null; color: string; label: string }
