export function pct(v: number | null | undefined, digits = 1): string {
  return v === null || v === undefined || Number.isNaN(v) ? "–" : `${(v * 100).toFixed(digits)}%`;
}

/** A signed change in percentage points: "+1.3", "−0.4". */
export function delta(v: number | null | undefined, digits = 1): string {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const s = (v * 100).toFixed(digits);
  if (Number(s) === 0) return `±${(0).toFixed(digits)}`;
  return v > 0 ? `+${s}` : `−${s.replace("-", "")}`;
}

export function num(v: number | null | undefined, digits = 3): string {
  return v === null || v === undefined || Number.isNaN(v) ? "–" : v.toFixed(digits);
}

export function shortPath(p: string | null | undefined): string {
  if (!p) return "–";
  const parts = p.replace(/\/+$/, "").split("/");
  return parts[parts.length - 1] || p;
}

/** Local wall-clock time as HH:MM:SS. Not toLocaleTimeString: its first call loads the locale
 *  data, 30 ms of the first render in the browser profile, for one time stamp per step. */
export function clockTime(d: Date): string {
  const two = (n: number) => String(n).padStart(2, "0");
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}
