// Where a claim loop's next claim starts in claim order (available_at, id): from the start of the due rows, or after
// the last row the loop claimed (keyset). One position per kind of loop: the drain loops share one, the sweeper has
// its own.
//
// States:
//   from-start   the next claim walks the index from its start. Initial state, and after any reset.
//   after(place) the next claim starts after `place`, the highest row claimed since the last walk from the start.
//
//   from-start --claim came back full--> after(last row of the batch)
//   after(p)   --claim came back full--> after(max(p, last row))
//   any        --claim came back short, or a batch failed--> from-start
//   after(p)   --RESCAN_MS since the last walk from the start--> from-start (for one claim)
//
// Why: a walk from the start reads every index entry before the first due live row, including rows deleted by
// earlier batches that vacuum has not removed yet (and cannot, while an older transaction runs anywhere in the
// database). After a million-row drain that is a million heap visits per claim. While claims come back full, the
// loop is working through a backlog, and starting after its last row skips all of that.
// What the keyset misses, the walks from the start catch: a row whose place is below the position but committed after
// the loop passed it (a writer transaction slower than the drain), and rows of batches that rolled back. Those wait
// at most RESCAN_MS during a backlog, and none at its end, since the short claim that ends a drain resets the
// position and the loop stops only after a short claim from the start.
import { type ClaimedRow, type ClaimPlace, comparePlaces, placeOf } from "../sql/outbox/claim.js";

/** Longest time a backlog drain goes without a claim from the start. */
export const RESCAN_MS = 1_000;

export class ClaimPosition {
  #place: ClaimPlace | undefined;
  #lastFromStart = 0;

  constructor(private readonly now: () => number = Date.now) {}

  /** Where the next claim starts: undefined for the start. */
  next(): ClaimPlace | undefined {
    if (this.#place && this.now() - this.#lastFromStart >= RESCAN_MS) this.#place = undefined;
    if (!this.#place) this.#lastFromStart = this.now();
    return this.#place;
  }

  /** After a claim: keeps the highest row when the claim came back full, else goes back to the start. */
  claimed(rows: readonly ClaimedRow[], full: boolean): void {
    if (!full || rows.length === 0) {
      this.#place = undefined;
      return;
    }
    for (const row of rows) {
      const place = placeOf(row);
      if (!this.#place || comparePlaces(place, this.#place) > 0) this.#place = place;
    }
    // A row written by hand with available_at 'infinity' has no position a keyset could start after.
    if (!Number.isFinite(this.#place?.availableAt)) this.#place = undefined;
  }

  /** A batch failed: its rows are back, below the position. */
  reset(): void {
    this.#place = undefined;
  }
}
