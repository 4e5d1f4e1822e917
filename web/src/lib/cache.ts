// A request cache keyed by string, emptied when the student changes (epoch), and a debouncer:
// hovering over rows asks the server once per class and state, and only where the pointer rests.

export class RequestCache<T> {
  private m = new Map<string, Promise<T>>();
  private epoch: number | null = null;

  /** The cached answer for `key` in `epoch`, or a new request (a failed one is not kept). */
  get(key: string, epoch: number, fn: () => Promise<T>): Promise<T> {
    if (epoch !== this.epoch) { this.m.clear(); this.epoch = epoch; }
    let p = this.m.get(key);
    if (!p) {
      p = fn();
      this.m.set(key, p);
      p.catch(() => { if (this.m.get(key) === p) this.m.delete(key); });
    }
    return p;
  }

  /** Keep `value` as the answer for `key` in `epoch` (e.g. one a state-changing call returned). */
  put(key: string, epoch: number, value: T): void {
    if (epoch !== this.epoch) { this.m.clear(); this.epoch = epoch; }
    this.m.set(key, Promise.resolve(value));
  }

  has(key: string, epoch: number): boolean {
    return epoch === this.epoch && this.m.has(key);
  }
}

/** Call `fn` once the calls stop for `ms`; `cancel` drops a pending call. */
export function debounce<A extends unknown[]>(fn: (...a: A) => void, ms: number): ((...a: A) => void) & { cancel: () => void } {
  let t: ReturnType<typeof setTimeout> | undefined;
  const d = ((...a: A) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); }) as ((...a: A) => void) & { cancel: () => void };
  d.cancel = () => clearTimeout(t);
  return d;
}
