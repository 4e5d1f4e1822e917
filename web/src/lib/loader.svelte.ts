// Fetch state for one view: data, a loading flag and an error. A newer request makes the
// answer of an older one stale, so a slow reply never overwrites a fresh one.
import { untrack } from "svelte";
import { ApiError } from "./api";

export class Loader<T> {
  // raw: answers are replaced whole, never changed in place, and views share one answer per
  // request (lib/api.ts); a deep proxy of every answer cost render time for nothing
  data = $state.raw<T | null>(null);
  loading = $state(false);
  error = $state<string | null>(null);
  #req = 0;

  run(fn: () => Promise<T>, keep = true): void {
    untrack(() => {
      const my = ++this.#req;
      this.loading = true;
      if (!keep) this.data = null;
      fn().then(
        (d) => { if (my === this.#req) { this.data = d; this.error = null; } },
        (e) => { if (my === this.#req) this.error = e instanceof ApiError ? `${e.title}: ${e.detail}` : String(e); },
      ).finally(() => { if (my === this.#req) this.loading = false; });
    });
  }

  clear(): void {
    this.#req++;
    this.data = null;
    this.loading = false;
    this.error = null;
  }
}
