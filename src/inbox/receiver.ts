// The receiver: deliveries -> inbox rows -> COMMIT -> ack. Never an ack before the rows are committed, so a crash
// anywhere loses nothing: the broker redelivers what was not acked, and the unique (message_id, handler) key turns
// the redelivery into nothing.
//
// State machine of one batch (a flush): buffered --next macrotask--> rows built (delivery-rows.ts) --> inserting
//   --COMMIT--> waiting for the previous batch's acks --> acked (then the "received" event and the hand-off);
//   inserting --database error--> retried, or split until the delivery PostgreSQL refuses is alone (store-batch.ts)
//   --> the rest stored --> waiting for the previous batch's acks.
// Up to MAX_FLUSHES batches are inserting at once, so the broker's next deliveries and the next INSERT overlap the
// previous INSERT and its commit instead of waiting for them (stop-and-wait capped receiving at about half of what
// the database and the broker each allow). Acks still go out in delivery order, which keeps the `multiple` acks
// safe: a batch acks only after the batch before it acked, and not at all if that one gave up. A split batch is one
// batch still: it acks once every part is stored.
//   any --drain()--> resolves once nothing is buffered or in flight; --abort()--> gives up retrying (not acked)
import type pg from "pg";
import { coerceError } from "../errors.js";
import type { Logger } from "../runtime/logger.js";
import type { ClaimedInboxRow } from "../sql/inbox/claim.js";
import type { InboxNames } from "../sql/names.js";
import type { Delivery } from "../transport/transport.js";
import { deliveryRows, leasedRows, type Received } from "./delivery-rows.js";
import type { InboxEvent } from "./events.js";
import type { InvalidMessagePolicy } from "./options.js";
import type { ReceivedRows } from "./received-rows.js";
import type { HandlerRegistry } from "./registry.js";
import { BatchStore, type Stored } from "./store-batch.js";

/** Batches inserting at once (each on its own connection of the inbox's pool). */
const MAX_FLUSHES = 2;

/** The receiver's health reports a stall once deliveries have waited this long with no batch stored. */
export const RECEIVE_STALL_MS = 30_000;

export interface ReceiverDeps {
  pool: pg.Pool;
  registry: HandlerRegistry;
  invalidMessages: InvalidMessagePolicy;
  /** With `unhandledGraceMs` > 0: the placeholder handler and the grace of deliveries no handler takes (unhandled.ts). */
  waiting?: { handler: string; graceMs: number } | undefined;
  /** Most deliveries per INSERT. */
  batchSize: number;
  /** Most body bytes per INSERT (a larger single delivery goes alone). */
  batchMaxBytes: number;
  /** Larger bodies are invalid, and let go on arrival. */
  maxPayloadBytes: number;
  ack(delivery: Delivery, multiple: boolean): boolean;
  reject(delivery: Delivery): boolean;
  /** Where stored rows go: the processor (leased in the INSERT, or handed over by id after COMMIT). */
  rows: ReceivedRows;
  logger: Logger;
  /** The inbox table's names, in the inbox's schema. */
  names: InboxNames;
  emit(event: InboxEvent): void;
}

const EMPTY = Buffer.alloc(0);

export class Receiver {
  readonly #deps: ReceiverDeps;
  #buffer: Received[] = [];
  #flushes = 0;
  #scheduled = false;
  /** The last batch's ack step: true once it acked, false if it gave up (aborted), so the next must not ack. */
  #acked: Promise<boolean> = Promise.resolve(true);
  /** Settles once the last batch's INSERT has ended (stored, or given up). */
  #inserted: Promise<void> = Promise.resolve();
  readonly #abort = new AbortController();
  /** Deliveries received and not yet stored (buffered, or in a batch whose INSERT has not ended). */
  #unstored = 0;
  /** When the deliveries now unstored began waiting (undefined while none waits). */
  #waitingSince: number | undefined;
  readonly #batches: BatchStore;

  constructor(deps: ReceiverDeps) {
    this.#deps = deps;
    this.#batches = new BatchStore(
      { pool: deps.pool, leaseMs: deps.rows.leaseMs, logger: deps.logger, names: deps.names, waiting: deps.waiting },
      this.#abort,
      (d, reason) => this.#invalid(d, reason),
    );
  }

  push(delivery: Delivery): void {
    const bytes = delivery.content.length;
    const oversized = bytes > this.#deps.maxPayloadBytes;
    if (oversized) {
      // Never parsed, stored or handled: let go of the bytes now (the ack needs only the delivery tag).
      delivery.content = EMPTY;
      (delivery.tag.message as { content: Buffer }).content = EMPTY;
    }
    this.#buffer.push({ delivery, bytes, oversized });
    if (this.#unstored++ === 0) this.#waitingSince = Date.now();
    this.#schedule();
  }

  /** Deliveries received and not yet stored (the metric `prisma_outbox.inbox.unstored`). */
  get unstored(): number {
    return this.#unstored;
  }

  /**
   * Since when receiving is stalled: deliveries wait and no batch has been stored for `boundMs` (the later of the last
   * commit and the moment they began waiting); undefined when not stalled.
   */
  stalledSince(boundMs: number, now = Date.now()): Date | undefined {
    if (this.#unstored === 0 || this.#waitingSince === undefined) return undefined;
    const since = Math.max(this.#waitingSince, this.#batches.lastStoredAt ?? 0);
    return now - since > boundMs ? new Date(since) : undefined;
  }

  /** Resolves when everything received so far is stored and acked (or given up after abort()). */
  async drain(): Promise<void> {
    while (this.#flushes > 0 || this.#scheduled || (this.#buffer.length > 0 && !this.#abort.signal.aborted)) {
      if (this.#flushes > 0) await this.#acked;
      await new Promise((r) => setImmediate(r));
    }
  }

  /** Stops retrying a failing INSERT: what is buffered stays unacked, and the broker delivers it again. */
  abort(): void {
    this.#abort.abort();
  }

  #schedule(): void {
    if (this.#scheduled || this.#flushes >= MAX_FLUSHES || this.#buffer.length === 0) return;
    // Let the deliveries that arrived together join one INSERT: flush on the next macrotask.
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      while (this.#flushes < MAX_FLUSHES && this.#buffer.length > 0 && !this.#abort.signal.aborted) {
        this.#startFlush(this.#take());
      }
    });
  }

  /** The next batch: up to batchSize deliveries and batchMaxBytes of bodies (at least one delivery). */
  #take(): Received[] {
    const { batchSize, batchMaxBytes } = this.#deps;
    let n = 0;
    let bytes = 0;
    while (n < this.#buffer.length && n < batchSize) {
      const next = this.#buffer[n]!;
      const size = next.oversized ? 0 : next.bytes;
      if (n > 0 && bytes + size > batchMaxBytes) break;
      bytes += size;
      n++;
    }
    return this.#buffer.splice(0, n);
  }

  #startFlush(batch: Received[]): void {
    this.#flushes++;
    const previous = this.#acked;
    const previousInserted = this.#inserted;
    let inserted!: () => void;
    this.#inserted = new Promise((resolve) => (inserted = resolve));
    let counted = false;
    // The batch's deliveries stop counting as unstored once its INSERT has ended, stored or given up.
    const ended = () => {
      if (counted) return;
      counted = true;
      inserted();
      this.#unstored -= batch.length;
      if (this.#unstored === 0) this.#waitingSince = undefined;
    };
    const step = this.#flush(batch, previous, previousInserted, ended).catch((thrown) => {
      // #flush handles the database's failures itself; reaching here is a bug. Nothing of the batch was acked.
      this.#deps.logger.error("receiving deliveries failed (not acked)", {
        deliveries: batch.length,
        error: coerceError(thrown).message,
      });
      return false;
    });
    this.#acked = step;
    void step.finally(() => {
      ended();
      this.#flushes--;
      this.#schedule();
    });
  }

  /**
   * Stores the batch, then acks it once the batch before it acked. True when acked. A batch with ordering keys is
   * stored only after the batch before it: its rows' ids then follow delivery order, which is the order the
   * processors handle a key in (two INSERTs in flight could otherwise commit, and draw ids, in either order).
   */
  async #flush(
    batch: Received[],
    previous: Promise<boolean>,
    previousInserted: Promise<void>,
    inserted: () => void,
  ): Promise<boolean> {
    const { entries, leasable, invalid, rejected } = deliveryRows(
      batch,
      this.#deps.registry,
      this.#deps.invalidMessages,
      this.#deps.waiting?.handler,
    );
    for (const { delivery, reason } of invalid) this.#invalid(delivery, reason);
    // The processor's free room goes to the first rows that can take it; the rest are handed over by id after COMMIT.
    const reserved = this.#deps.rows.reserve(leasable.size);
    let granted = 0;
    for (const row of leasable.keys()) {
      if (granted++ >= reserved) break;
      row.leased = true;
    }

    if (entries.some((e) => e.rows.some((row) => row.key !== null))) {
      await previousInserted;
      // The batch before may have given up unstored (to be redelivered): storing this one now would put it first.
      if (this.#abort.signal.aborted) {
        inserted();
        this.#deps.rows.adopt([], reserved);
        return false;
      }
    }
    const stored: Stored = { rows: [], attempted: 0 };
    const complete = entries.length === 0 || (await this.#batches.store(entries, stored, rejected));
    inserted();
    // Leased rows are committed and this processor's: handed over at once, whatever becomes of the ack below (parts
    // of a split batch stored before it gave up included). The reservation is given back even if that goes wrong (a
    // bug: the rows then wait for their lease to run out).
    let leased: ClaimedInboxRow[] = [];
    try {
      leased = leasedRows(leasable, stored.rows);
    } finally {
      this.#deps.rows.adopt(leased, reserved);
    }
    // Acking after a batch that gave up would ack its deliveries too (`multiple`): after abort, nothing is acked,
    // and the broker redelivers (what was stored comes back as duplicates, dropped).
    if (!(await previous) || !complete) return false;
    for (const d of rejected) this.#deps.reject(d);
    // One ack per channel generation: the last delivery of the batch acks it and every earlier one (`multiple`).
    const lastOfGeneration = new Map<number, Delivery>();
    for (const { delivery: d } of batch) if (!rejected.includes(d)) lastOfGeneration.set(d.tag.generation, d);
    for (const d of lastOfGeneration.values()) this.#deps.ack(d, true);
    const pending = stored.rows.filter((r) => r.status === "pending" && r.leased_message_id === null).map((r) => r.id);
    this.#deps.emit({
      type: "received",
      deliveries: batch.length,
      stored: stored.rows.length,
      duplicates: stored.attempted - stored.rows.length,
    });
    if (pending.length > 0) this.#deps.rows.handoff(pending);
    return true;
  }

  /** Logs and reports an invalid delivery; what becomes of it. */
  #invalid(d: Delivery, reason: string): "dead" | "rejected" {
    const outcome = this.#deps.invalidMessages === "reject" ? "rejected" : "dead";
    this.#deps.logger.warn(
      outcome === "dead" ? "invalid delivery stored as dead" : "invalid delivery rejected to the dead-letter exchange",
      { messageId: d.messageId, routingKey: d.routingKey, reason },
    );
    this.#deps.emit({ type: "invalid", messageId: d.messageId, routingKey: d.routingKey, reason, outcome });
    return outcome;
  }
}
