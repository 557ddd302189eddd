// How the relay claims once the outbox holds rows with an ordering key ("keyed rows"; "key" below always means an
// ordering key). Pure: no database, no timers; the clock is injected.
//
// Relay-wide (KeyedMode): whether the drain loops and the sweeper claim with claimKeyed (bounded walks, a share of
// the keys per claim) instead of claimNext. Probed at start and by every sweep, set by any claim that returns a keyed
// row. Only a choice of plan: both statements claim a keyed row only when it is the first of its key.
//
// Per drain loop (KeyedLanes), two pieces of state:
//
//   lane   none | held(keys, until, since, wakeSeq)
//          The keys of a general keyed claim stay with the loop that published them: while it holds a lane it claims
//          only their next rows (claimKeyHeads, one probe a key).
//     none      --general keyed claim got keyed rows-->           held(their keys, now + LANE_MS, now, wakeSeq)
//     held(k)   --lane claim got keyed rows-->                    held(their keys, same until/since/wakeSeq)
//     held      --lane claim got no keyed row-->                  none
//     held      --until passed, or the relay left keyed mode-->   none   (checked before each claim)
//     held      --a wake-up came, and FEW_MS since it began-->    none   (rows of other keys may have come)
//
//   few    none | capped(keyLimit, until)
//          After a short general claim the loop takes no more keyed rows than it got, for FEW_MS: the window walk then
//          stops at the keys' next rows instead of reading the whole window; then one claim of the full share looks
//          for more keys.
//     none/capped --general claim got 0 < n < share keyed rows-->  capped(n, the same until, or now + FEW_MS)
//     capped      --general claim got no keyed row-->              none
//     capped      --until passed-->                                none   (checked before each claim)
//
// After a general keyed claim the loop:
//   ends              when the claim was empty and no wake-up came (and marks the relay idle: KeyedMode.idleAt);
//   fills the loops   when the claim came back full, unless a loop of the relay found nothing in the last IDLE_MS
//                     (many keys: several batches of different keys in flight);
//   goes on           otherwise (a claim is short whenever the keys are fewer than the limit).
// A lane claim always goes on. Why lanes: general claims cost several times a lane claim a row (the window walk
// passes the rows of the keys in flight, and an empty one scans every key).
import type { ClaimedRow } from "../sql/outbox/claim.js";

/** After a drain loop of a keyed relay found nothing, how long full claims do not start others. */
export const KEYED_IDLE_MS = 250;

/** How long a drain loop of a keyed relay takes no more keyed rows than its last short claim got. */
export const KEYED_FEW_MS = 250;

/** How long a drain loop holds a lane; a wake-up ends it sooner, after KEYED_FEW_MS. */
export const KEYED_LANE_MS = 1_000;

/** Relay-wide: whether the relay claims with claimKeyed, and when a drain loop last ended on an empty keyed claim. */
export class KeyedMode {
  on = false;
  idleAt = 0;

  constructor(private readonly concurrency: number) {}

  /** A claim returned these rows: a keyed one puts the relay in keyed mode. */
  saw(rows: readonly ClaimedRow[]): void {
    if (!this.on && rows.some((row) => row.ordering_key !== null)) this.on = true;
  }

  /** The most keyed rows a claim of a keyed relay takes (its share of the keys, see claimKeyed). */
  keyShare(limit: number): number {
    return Math.ceil(limit / this.concurrency);
  }
}

/** The keys of the keyed rows among `rows`, in their order. */
export function keysOf(rows: readonly ClaimedRow[]): string[] {
  return rows.flatMap((row) => (row.ordering_key === null ? [] : [row.ordering_key]));
}

/** What a drain loop of a keyed relay claims next. */
export type KeyedClaim = { kind: "lane"; keys: string[] } | { kind: "general"; keyLimit: number } | { kind: "unkeyed" };

/** What a drain loop does after a keyed claim. */
export type KeyedVerdict = "go-on" | "fill-loops" | "end";

interface Lane {
  keys: string[];
  until: number;
  since: number;
  wakeSeq: number;
}

/** One drain loop's lane and cap (see the top of this module). */
export class KeyedLanes {
  #lane: Lane | undefined;
  #few: { keyLimit: number; until: number } | undefined;

  constructor(
    private readonly mode: KeyedMode,
    private readonly now: () => number = Date.now,
  ) {}

  /** The lane held, if any (for tests and logs). */
  get lane(): readonly string[] | undefined {
    return this.#lane?.keys;
  }

  /**
   * Decides the next claim. `keyed`: the relay's mode when the claim is made; `limit`: the batch limit; `wakeSeq`:
   * the relay's wake-up count now.
   */
  next(keyed: boolean, limit: number, wakeSeq: number): KeyedClaim {
    if (this.#few && this.now() >= this.#few.until) this.#few = undefined;
    const now = this.now();
    const lane = this.#lane;
    const wokenInLane = lane !== undefined && lane.wakeSeq !== wakeSeq && now - lane.since >= KEYED_FEW_MS;
    if (lane && (!keyed || now >= lane.until || wokenInLane)) this.#lane = undefined;
    if (this.#lane) return { kind: "lane", keys: this.#lane.keys.slice(0, limit) };
    if (!keyed) return { kind: "unkeyed" };
    return {
      kind: "general",
      keyLimit: Math.min(this.mode.keyShare(limit), this.#few?.keyLimit ?? Number.POSITIVE_INFINITY),
    };
  }

  /**
   * After a lane or general claim went through. `keys`: the keys of the keyed rows it claimed; `claimed`: all its
   * rows; `woken`: a wake-up, a hand-off of keyed rows or keys moved by this claim since the claim began.
   */
  claimed(
    claim: Exclude<KeyedClaim, { kind: "unkeyed" }>,
    result: { keys: string[]; claimed: number; limit: number; wakeSeq: number; woken: boolean },
  ): KeyedVerdict {
    const { keys, claimed, limit, woken } = result;
    if (claim.kind === "lane") {
      this.#lane = keys.length > 0 && this.#lane ? { ...this.#lane, keys } : undefined;
      return "go-on";
    }
    if (keys.length > 0) {
      this.#lane = { keys, until: this.now() + KEYED_LANE_MS, since: this.now(), wakeSeq: result.wakeSeq };
    }
    if (claimed === 0 && !woken) {
      this.mode.idleAt = this.now();
      return "end";
    }
    if (keys.length > 0 && keys.length < claim.keyLimit) {
      this.#few = { keyLimit: keys.length, until: this.#few?.until ?? this.now() + KEYED_FEW_MS };
    } else if (keys.length === 0) this.#few = undefined;
    return claimed >= limit && this.now() - this.mode.idleAt >= KEYED_IDLE_MS ? "fill-loops" : "go-on";
  }
}
