// Rows held back behind a busy ordering key. A claim by ids (the receiver's hand-off) skips a keyed row while an
// earlier row of its key and handler is pending (sql/inbox/claim.ts). When that earlier row is this processor's own
// (running, buffered), its end is the moment the later row becomes claimable: the processor then claims the ids held
// here again, by id, instead of waiting for the sweeper or running a due claim after every keyed message (which, at a
// low rate, is one statement per message that finds nothing).
// An id is kept only while a keyed row of this processor may be what holds it back, and, once claimed again in vain,
// at most a sweep interval from when it was first held (what holds it is then elsewhere: another process, a backoff;
// the sweeper's due claim finds it, as it finds any due row).
import type { ClaimedInboxRow } from "../sql/inbox/claim.js";

/**
 * Row ids (bigint text) in ascending order, which is delivery order. Handed-over ids are claimed lowest first, so that
 * a key's earlier row is claimed in the same claim as a later one, or in an earlier claim: a later row left unclaimed
 * then always has its key's earlier row running, buffered, or just finished here, or held elsewhere.
 */
export function byId(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

export class HeldBackIds {
  readonly #max: number;
  readonly #maxAgeMs: number;
  /** Held ids, waiting for a keyed row to finish, with when each was first held. */
  readonly #held = new Map<string, number>();
  /** Held ids given back to be claimed again (take()), until that claim answers (afterClaim()). */
  readonly #retrying = new Map<string, number>();
  /** Keyed rows running in the processor's slots, and how many have finished. */
  #running = 0;
  done = 0;

  constructor(max: number, maxAgeMs: number) {
    this.#max = max;
    this.#maxAgeMs = maxAgeMs;
  }

  /** A slot starts `rows`: returns how many are keyed (give it to finished()). */
  started(rows: readonly ClaimedInboxRow[]): number {
    const keyed = rows.filter((row) => row.ordering_key !== null).length;
    this.#running += keyed;
    return keyed;
  }

  /** A slot's rows finished (`keyed` from started()): true when held ids are to be claimed again now. */
  finished(keyed: number): boolean {
    if (keyed === 0) return false;
    this.#running -= keyed;
    this.done++;
    return this.#held.size > 0;
  }

  /**
   * After a claim of `ids` returned `rows`: holds the ids it left unclaimed when a keyed row of this processor may hold
   * them back (one running, `buffered`, among `rows`, or finished since `doneBefore`, while the claim ran). True when
   * they are to be claimed again now (a keyed row finished while the claim ran: it may have been the one).
   */
  afterClaim(
    ids: readonly string[],
    rows: readonly ClaimedInboxRow[],
    buffered: ReadonlyArray<{ row: ClaimedInboxRow }>,
    doneBefore: number,
  ): boolean {
    if (rows.length === ids.length && this.#retrying.size === 0) return false;
    const finishedMeanwhile = doneBefore !== this.done;
    const keyedHere =
      this.#running > 0 ||
      finishedMeanwhile ||
      rows.some((r) => r.ordering_key !== null) ||
      buffered.some((b) => b.row.ordering_key !== null);
    const claimed = new Set(rows.map((r) => r.id));
    const now = performance.now();
    for (const id of ids) {
      const since = this.#retrying.get(id);
      this.#retrying.delete(id);
      if (claimed.has(id) || !keyedHere) continue;
      // Claimed again in vain: dropped past the sweep interval.
      if (since !== undefined && now - since > this.#maxAgeMs) continue;
      if (this.#held.size < this.#max) this.#held.set(id, since ?? now);
    }
    return finishedMeanwhile && this.#held.size > 0;
  }

  /** The held ids (at most `max`, as held), to claim again now. */
  take(): string[] {
    const ids = [...this.#held.keys()];
    for (const id of ids) {
      this.#retrying.set(id, this.#held.get(id)!);
      this.#held.delete(id);
    }
    return ids;
  }
}
