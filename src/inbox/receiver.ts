// The receiver: deliveries -> inbox rows -> COMMIT -> ack. Never an ack before the rows are committed, so a crash
// anywhere loses nothing: the broker redelivers what was not acked, and the unique (message_id, handler) key turns
// the redelivery into nothing.
//
// State machine of one batch (a flush): buffered --next macrotask--> inserting --COMMIT--> waiting for the previous
//   batch's acks --> acked (then the "received" event and the hand-off) ; inserting --database error--> retrying
//   (backoff, deliveries held unacked; logged) --> inserting
// Up to MAX_FLUSHES batches are inserting at once, so the broker's next deliveries and the next INSERT overlap the
// previous INSERT and its commit instead of waiting for them (stop-and-wait capped receiving at about half of what
// the database and the broker each allow: bench/inbox.ts). Acks still go out in delivery order, which keeps the
// `multiple` acks safe: a batch acks only after the batch before it acked, and not at all if that one gave up.
//   any --drain()--> resolves once nothing is buffered or in flight; --abort()--> gives up retrying (not acked)
import type pg from "pg";
import type { InvalidMessagePolicy } from "../config/inbox-options.js";
import type { RelayLogger } from "../config/relay-options.js";
import { coerceError } from "../message/errors.js";
import { backoffDelay, sleep } from "../relay/backoff.js";
import type { ClaimedInboxRow } from "../sql/claim-inbox-messages.js";
import {
  INSERT_INBOX_MESSAGES_SQL,
  type InboxRowInput,
  type InsertedInboxRow,
  insertInboxParams,
} from "../sql/insert-inbox-messages.js";
import type { Delivery } from "../transport/amqp-consumer.js";
import type { InboxEvent } from "./events.js";
import type { HandlerRegistry } from "./registry.js";

/** Batches inserting at once (each on its own connection of the inbox's pool). */
const MAX_FLUSHES = 2;

export interface ReceiverDeps {
  pool: pg.Pool;
  registry: HandlerRegistry;
  invalidMessages: InvalidMessagePolicy;
  /** Most deliveries per INSERT. */
  batchSize: number;
  ack(delivery: Delivery, multiple: boolean): boolean;
  reject(delivery: Delivery): boolean;
  /** Ids of new pending rows not leased in the INSERT, after COMMIT (the processor claims them). */
  handoff(ids: string[]): void;
  /** The lease of a row leased in the INSERT (the processor's claim lease). */
  leaseMs: number;
  /** How many of the next INSERT's rows the processor can take (Processor.reserve). */
  reserve(wanted: number): number;
  /** The rows the INSERT leased, after COMMIT, and the count reserved for it (Processor.adopt). */
  adopt(rows: ClaimedInboxRow[], reserved: number): void;
  logger: RelayLogger;
  emit(event: InboxEvent): void;
}

/** Why a delivery cannot be handled, or undefined when it can. */
function invalidReason(delivery: Delivery, handlers: number, json: boolean): string | undefined {
  if (delivery.undecodable !== undefined) return delivery.undecodable;
  if (delivery.messageId === undefined || delivery.messageId.length === 0) {
    return "the delivery has no messageId, so it cannot be deduplicated (publish with a messageId)";
  }
  if (Buffer.byteLength(delivery.messageId) > 255) return "the messageId is longer than 255 bytes";
  if (!json) return "the body is not JSON";
  if (handlers === 0) {
    return `no handler takes routing key "${delivery.routingKey}"${delivery.type ? ` or type "${delivery.type}"` : ""}`;
  }
  return undefined;
}

const NOT_JSON = Symbol("not JSON");

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return NOT_JSON;
  }
}

/** The ordering key a delivery carries (header x-ordering-key, set by the outbox's relay), or null. */
function orderingKey(headers: Record<string, unknown> | undefined): string | null {
  const key = headers?.["x-ordering-key"];
  const text = Buffer.isBuffer(key) ? key.toString("utf8") : key;
  return typeof text === "string" && text.length > 0 && Buffer.byteLength(text) <= 255 ? text : null;
}

function headersText(headers: Record<string, unknown> | undefined): string | null {
  if (!headers || Object.keys(headers).length === 0) return null;
  try {
    return JSON.stringify(headers, (_k, v) =>
      typeof v === "bigint" ? v.toString() : Buffer.isBuffer(v) ? v.toString("base64") : v,
    );
  } catch {
    return null;
  }
}

export class Receiver {
  readonly #deps: ReceiverDeps;
  #buffer: Delivery[] = [];
  #flushes = 0;
  #scheduled = false;
  /** The last batch's ack step: true once it acked, false if it gave up (aborted), so the next must not ack. */
  #acked: Promise<boolean> = Promise.resolve(true);
  /** Settles once the last batch's INSERT has ended (stored, or given up). */
  #inserted: Promise<void> = Promise.resolve();
  readonly #abort = new AbortController();

  constructor(deps: ReceiverDeps) {
    this.#deps = deps;
  }

  push(delivery: Delivery): void {
    this.#buffer.push(delivery);
    this.#schedule();
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
        this.#startFlush(this.#buffer.splice(0, this.#deps.batchSize));
      }
    });
  }

  #startFlush(batch: Delivery[]): void {
    this.#flushes++;
    const previous = this.#acked;
    const previousInserted = this.#inserted;
    let inserted!: () => void;
    this.#inserted = new Promise((resolve) => (inserted = resolve));
    const step = this.#flush(batch, previous, previousInserted, inserted).catch((thrown) => {
      // #flush handles the database's failures itself; reaching here is a bug. Nothing of the batch was acked.
      this.#deps.logger.error(
        `receiving ${batch.length} deliveries failed (not acked): ${coerceError(thrown).message}`,
      );
      return false;
    });
    this.#acked = step;
    void step.finally(() => {
      inserted();
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
    batch: Delivery[],
    previous: Promise<boolean>,
    previousInserted: Promise<void>,
    inserted: () => void,
  ): Promise<boolean> {
    const { registry, invalidMessages, logger, emit } = this.#deps;
    const rows: InboxRowInput[] = [];
    /** Rows that may be leased (pending, no ordering key): their indexes in `rows`, and their parsed payloads. */
    const leasable: Leasable = { indexes: [], payloads: [] };
    const rejected: Delivery[] = [];
    for (const d of batch) {
      const text = d.content.toString("utf8");
      const parsed = parseJson(text);
      const json = parsed !== NOT_JSON;
      const handlers = registry.match(d.routingKey, d.type);
      const reason = invalidReason(d, handlers.length, json);
      if (reason === undefined) {
        for (const h of handlers) {
          const row = inboxRow(d, json ? text : null, h.name, "pending", null);
          // Keyed rows are claimed only behind their key's earlier rows (claim-inbox-messages.ts): never leased here.
          if (row.key === null) {
            leasable.indexes.push(rows.length);
            leasable.payloads.push(parsed);
          }
          rows.push(row);
        }
        continue;
      }
      const outcome = invalidMessages === "reject" ? "rejected" : "dead";
      logger.warn(
        `invalid delivery ${outcome === "dead" ? "stored as dead" : "rejected to the dead-letter exchange"}: ${reason}`,
        {
          messageId: d.messageId,
          routingKey: d.routingKey,
        },
      );
      emit({ type: "invalid", messageId: d.messageId, routingKey: d.routingKey, reason, outcome });
      if (outcome === "rejected") rejected.push(d);
      else rows.push(inboxRow(d, json ? text : null, "", "dead", reason));
    }
    // The processor's free room goes to the first rows that can take it; the rest are handed over by id after COMMIT.
    const reserved = this.#deps.reserve(leasable.indexes.length);
    for (let i = 0; i < reserved; i++) rows[leasable.indexes[i]!]!.leased = true;

    if (rows.some((r) => r.key !== null)) {
      await previousInserted;
      // The batch before may have given up unstored (to be redelivered): storing this one now would put it first.
      if (this.#abort.signal.aborted) {
        inserted();
        return false;
      }
    }
    const stored = rows.length === 0 ? [] : await this.#insert(rows);
    inserted();
    // Leased rows are committed and this processor's: handed over at once, whatever becomes of the ack below. The
    // reservation is given back even if that goes wrong (a bug: the rows then wait for their lease to run out).
    let leased: ClaimedInboxRow[] = [];
    try {
      if (stored !== undefined) leased = leasedRows(rows, leasable, stored);
    } finally {
      this.#deps.adopt(leased, reserved);
    }
    // Acking after a batch that gave up would ack its deliveries too (`multiple`): after abort, nothing is acked,
    // and the broker redelivers (what was stored comes back as duplicates, dropped).
    if (!(await previous) || stored === undefined) return false;
    for (const d of rejected) this.#deps.reject(d);
    // One ack per channel generation: the last delivery of the batch acks it and every earlier one (`multiple`).
    const lastOfGeneration = new Map<number, Delivery>();
    for (const d of batch) if (!rejected.includes(d)) lastOfGeneration.set(d.tag.generation, d);
    for (const d of lastOfGeneration.values()) this.#deps.ack(d, true);
    const pending = stored.filter((r) => r.status === "pending" && r.leased_message_id === null).map((r) => r.id);
    emit({
      type: "received",
      deliveries: batch.length,
      stored: stored.length,
      duplicates: rows.length - stored.length,
    });
    if (pending.length > 0) this.#deps.handoff(pending);
    return true;
  }

  /** The INSERT, retried with backoff while the database fails; undefined when aborted. */
  async #insert(rows: InboxRowInput[]): Promise<InsertedInboxRow[] | undefined> {
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await this.#deps.pool.query<InsertedInboxRow>(
          INSERT_INBOX_MESSAGES_SQL,
          insertInboxParams(rows, this.#deps.leaseMs),
        );
        return result.rows;
      } catch (thrown) {
        const error = coerceError(thrown);
        const delayMs = backoffDelay(attempt, 100, 5_000);
        this.#deps.logger.warn(`storing ${rows.length} deliveries failed; retrying in ${delayMs} ms (not acked)`, {
          code: (thrown as { code?: string }).code,
          error: error.message,
        });
        if (this.#abort.signal.aborted) return undefined;
        await sleep(delayMs, this.#abort.signal);
        if (this.#abort.signal.aborted) return undefined;
      }
    }
  }
}

interface Leasable {
  indexes: number[];
  payloads: unknown[];
}

/** One row to store, all fields in one order (one object shape for every row). */
function inboxRow(
  d: Delivery,
  payload: string | null,
  handler: string,
  status: "pending" | "dead",
  lastError: string | null,
): InboxRowInput {
  return {
    messageId: d.messageId && Buffer.byteLength(d.messageId) <= 255 ? d.messageId : null,
    handler,
    exchange: d.exchange,
    routingKey: d.routingKey,
    payload,
    body: payload === null ? d.content : null,
    headers: d.headers === undefined ? null : headersText(d.headers),
    type: d.type ?? null,
    correlationId: d.correlationId ?? null,
    status,
    lastError,
    key: d.headers === undefined ? null : orderingKey(d.headers),
    leased: false,
  };
}

/** The rows the INSERT leased, as the processor's claim returns them (claim-inbox-messages.ts). */
function leasedRows(
  rows: readonly InboxRowInput[],
  leasable: Leasable,
  stored: readonly InsertedInboxRow[],
): ClaimedInboxRow[] {
  const leased = stored.filter((r) => r.leased_message_id !== null);
  if (leased.length === 0) return [];
  const byKey = new Map<string, number>();
  leasable.indexes.forEach((index, i) => {
    const row = rows[index]!;
    if (row.leased) byKey.set(`${row.messageId}\u0000${row.handler}`, i);
  });
  return leased.map((r) => {
    const i = byKey.get(`${r.leased_message_id}\u0000${r.leased_handler}`)!;
    const row = rows[leasable.indexes[i]!]!;
    const payload = leasable.payloads[i];
    const headers = row.headers;
    return {
      id: r.id,
      message_id: row.messageId,
      handler: row.handler,
      exchange: row.exchange,
      routing_key: row.routingKey,
      payload,
      // As PostgreSQL's jsonb gives them back to a claim (headersText() made them JSON-safe).
      headers: headers === null ? null : (JSON.parse(headers) as Record<string, unknown>),
      type: row.type,
      correlation_id: row.correlationId,
      attempts: 1,
      received_at: r.leased_received_at!,
      ordering_key: null,
    };
  });
}
