// Coordinated selection, after Mosaic's Selection: views never call each other. A view
// publishes a clause ({source, value}) and every other view subscribes to the selection.
// Hover publishes a *preview* clause; click publishes a *commit*. `active` is what views
// that follow the pointer show: the preview while there is one, else the committed value.

import { Store } from "./store";

export interface Clause<T> {
  source: string;
  value: T | null;
}

export interface SelectionState<T> {
  committed: Clause<T>;
  preview: Clause<T>;
  active: T | null;
}

const empty = <T>(): Clause<T> => ({ source: "", value: null });

export class Selection<T> extends Store<SelectionState<T>> {
  constructor(initial: T | null = null, source = "init") {
    super({
      committed: { source: initial === null ? "" : source, value: initial },
      preview: empty<T>(),
      active: initial,
    });
  }

  private emit(committed: Clause<T>, preview: Clause<T>): void {
    const active = preview.value !== null ? preview.value : committed.value;
    this.set({ committed, preview, active });
  }

  /** Click: make `value` the selection, published by view `source`. Clears any preview. */
  commit(source: string, value: T | null): void {
    this.emit({ source, value }, empty<T>());
  }

  /** Hover: show `value` tentatively; `null` ends the preview. */
  preview(source: string, value: T | null): void {
    const s = this.get();
    if (value === null && s.preview.value === null) return;
    if (value !== null && s.preview.value === value && s.preview.source === source) return;
    this.emit(s.committed, value === null ? empty<T>() : { source, value });
  }

  /** Click on the committed value again: deselect. */
  toggle(source: string, value: T): void {
    const cur = this.get().committed.value;
    this.commit(source, cur === value ? null : value);
  }

  get committed(): T | null {
    return this.get().committed.value;
  }
}
