// A minimal readable/writable store (Svelte's store contract: `subscribe` returns an
// unsubscribe function), kept free of Svelte imports so view logic is testable in vitest.

export type Subscriber<T> = (value: T) => void;

export class Store<T> {
  private subs = new Set<Subscriber<T>>();
  constructor(protected value: T) {}

  get(): T {
    return this.value;
  }

  set(value: T): void {
    this.value = value;
    for (const fn of [...this.subs]) fn(value);
  }

  update(fn: (value: T) => T): void {
    this.set(fn(this.value));
  }

  subscribe(fn: Subscriber<T>): () => void {
    this.subs.add(fn);
    fn(this.value);
    return () => this.subs.delete(fn);
  }
}
