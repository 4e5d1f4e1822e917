// Patch thumbnails as data URLs, asked for in one request per list instead of one per image.
// Measured on the development workspace: 40 patch requests (a class's top 10 concepts, 4 each)
// held the single-process server for ~160 ms, and the next class's concepts queued behind them.
// A patch's file never changes, so each id is asked for once per page.

export class PatchSource {
  private urls = new Map<string, string>();
  private pending = new Map<string, Promise<void>>();

  /** `fetchBatch` answers ids -> data URLs (the server's GET /api/media/patches?ids=...). */
  constructor(private fetchBatch: (ids: string[]) => Promise<Record<string, string>>) {}

  /** The data URL of a patch already loaded, else undefined. */
  url(id: string): string | undefined {
    return this.urls.get(id);
  }

  /** Loads the ids not yet loaded or asked for (one request), then resolves; a failed batch can be asked again. */
  load(ids: string[]): Promise<void> {
    const missing = [...new Set(ids)].filter((i) => !this.urls.has(i) && !this.pending.has(i));
    const waits = [...new Set(ids)].map((i) => this.pending.get(i)).filter((p): p is Promise<void> => !!p);
    if (missing.length) {
      const p = this.fetchBatch(missing).then((got) => {
        for (const [i, u] of Object.entries(got)) this.urls.set(i, u);
      }).finally(() => { for (const i of missing) if (this.pending.get(i) === p) this.pending.delete(i); });
      for (const i of missing) this.pending.set(i, p);
      waits.push(p);
    }
    return Promise.all(waits).then(() => undefined);
  }
}
