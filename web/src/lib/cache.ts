// A request cache keyed by string, emptied when the student changes (epoch), and a debouncer:
// hovering over rows asks the server once per class and state, and only where the pointer rests.

export class RequestCache<T> {
  // the answers of the two latest epochs: a step asks for the next state's answers before it
  // makes that state current (lib/api.ts prefetchState), while the views still show this one
  private m = new Map<number, Map<string, Promise<T>>>();

  private of(epoch: number): Map<string, Promise<T>> {
    let e = this.m.get(epoch);
    if (!e) {
      e = new Map();
      this.m.set(epoch, e);
      if (this.m.size > 2) this.m.delete(Math.min(...this.m.keys()));
    }
    return e;
  }

  /** The cached answer for `key` in `epoch`, or a new request (a failed one is not kept). */
  get(key: string, epoch: number, fn: () => Promise<T>): Promise<T> {
    const m = this.of(epoch);
    let p = m.get(key);
    if (!p) {
      p = fn();
      m.set(key, p);
      p.catch(() => { if (m.get(key) === p) m.delete(key); });
    }
    return p;
  }

  /** Keep `value` as the answer for `key` in `epoch` (e.g. one a state-changing call returned). */
  put(key: string, epoch: number, value: T): void {
    this.of(epoch).set(key, Promise.resolve(value));
  }

  has(key: string, epoch: number): boolean {
    return this.m.get(epoch)?.has(key) ?? false;
  }
}

/** Call `fn` once the calls stop for `ms`; `cancel` drops a pending call. */
export function debounce<A extends unknown[]>(fn: (...a: A) => void, ms: number): ((...a: A) => void) & { cancel: () => void } {
  let t: ReturnType<typeof setTimeout> | undefined;
  const d = ((...a: A) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); }) as ((...a: A) => void) & { cancel: () => void };
  d.cancel = () => clearTimeout(t);
  return d;
}
