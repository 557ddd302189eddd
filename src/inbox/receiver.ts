// The receiver: deliveries -> inbox rows -> COMMIT -> ack. Never an ack before the rows are committed, so a crash
// anywhere loses nothing: the broker redelivers what was not acked, and the unique (message_id, handler) key turns
// the redelivery into nothing.
//
// State machine (one flush at a time, so acks go out in delivery order and `multiple` acks are safe):
//   idle --delivery--> scheduled --next macrotask--> flushing --COMMIT, acks--> idle (or flushing again if more came)
//   flushing --database error--> retrying (backoff, deliveries held unacked; logged) --> flushing
//   any --drain()--> resolves once nothing is buffered or in flight; --abort()--> gives up retrying (not acked)
import type pg from "pg";
import type { InvalidMessagePolicy } from "../config/inbox-options.js";
import type { RelayLogger } from "../config/relay-options.js";
import { coerceError } from "../message/errors.js";
import { backoffDelay, sleep } from "../relay/backoff.js";
import { INSERT_INBOX_MESSAGES_SQL, type InboxRowInput, insertInboxParams } from "../sql/insert-inbox-messages.js";
import type { Delivery } from "../transport/amqp-consumer.js";
import type { InboxEvent } from "./events.js";
import type { HandlerRegistry } from "./registry.js";

export interface ReceiverDeps {
  pool: pg.Pool;
  registry: HandlerRegistry;
  invalidMessages: InvalidMessagePolicy;
  /** Most deliveries per INSERT. */
  batchSize: number;
  ack(delivery: Delivery, multiple: boolean): boolean;
  reject(delivery: Delivery): boolean;
  /** Ids of new pending rows, after COMMIT. */
  handoff(ids: string[]): void;
  logger: RelayLogger;
  emit(event: InboxEvent): void;
}

/** Why a delivery cannot be handled, or undefined when it can. */
function invalidReason(delivery: Delivery, handlers: number, json: boolean): string | undefined {
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

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
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
  #flushing: Promise<void> | undefined;
  #scheduled = false;
  readonly #abort = new AbortController();

  constructor(deps: ReceiverDeps) {
    this.#deps = deps;
  }

  push(delivery: Delivery): void {
    this.#buffer.push(delivery);
    if (this.#flushing || this.#scheduled) return;
    // Let the deliveries that arrived together join one INSERT: flush on the next macrotask.
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#flushing ??= this.#flushAll().finally(() => {
        this.#flushing = undefined;
      });
    });
  }

  /** Resolves when everything received so far is stored and acked (or given up after abort()). */
  async drain(): Promise<void> {
    while (this.#flushing || this.#scheduled || (this.#buffer.length > 0 && !this.#abort.signal.aborted)) {
      if (this.#flushing) await this.#flushing;
      else await new Promise((r) => setImmediate(r));
    }
  }

  /** Stops retrying a failing INSERT: what is buffered stays unacked, and the broker delivers it again. */
  abort(): void {
    this.#abort.abort();
  }

  async #flushAll(): Promise<void> {
    while (this.#buffer.length > 0 && !this.#abort.signal.aborted) {
      const batch = this.#buffer.splice(0, this.#deps.batchSize);
      await this.#flush(batch);
    }
  }

  async #flush(batch: Delivery[]): Promise<void> {
    const { registry, invalidMessages, logger, emit } = this.#deps;
    const rows: InboxRowInput[] = [];
    const rejected: Delivery[] = [];
    for (const d of batch) {
      const text = d.content.toString("utf8");
      const json = isJson(text);
      const handlers = registry.match(d.routingKey, d.type);
      const reason = invalidReason(d, handlers.length, json);
      const common = {
        messageId: d.messageId && Buffer.byteLength(d.messageId) <= 255 ? d.messageId : null,
        exchange: d.exchange,
        routingKey: d.routingKey,
        payload: json ? text : null,
        body: json ? null : d.content,
        headers: headersText(d.headers),
        type: d.type ?? null,
        correlationId: d.correlationId ?? null,
      };
      if (reason === undefined) {
        for (const h of handlers) rows.push({ ...common, handler: h.name, status: "pending", lastError: null });
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
      else rows.push({ ...common, handler: "", status: "dead", lastError: reason });
    }

    const inserted = rows.length === 0 ? [] : await this.#insert(rows);
    if (inserted === undefined) return; // aborted: nothing acked, the broker redelivers
    for (const d of rejected) this.#deps.reject(d);
    // One ack per channel generation: the last delivery of the batch acks it and every earlier one (`multiple`).
    const lastOfGeneration = new Map<number, Delivery>();
    for (const d of batch) if (!rejected.includes(d)) lastOfGeneration.set(d.tag.generation, d);
    for (const d of lastOfGeneration.values()) this.#deps.ack(d, true);
    const pending = inserted.filter((r) => r.status === "pending").map((r) => r.id);
    emit({
      type: "received",
      deliveries: batch.length,
      stored: inserted.length,
      duplicates: rows.length - inserted.length,
    });
    if (pending.length > 0) this.#deps.handoff(pending);
  }

  /** The INSERT, retried with backoff while the database fails; undefined when aborted. */
  async #insert(rows: InboxRowInput[]): Promise<Array<{ id: string; status: string }> | undefined> {
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await this.#deps.pool.query<{ id: string; status: string }>(
          INSERT_INBOX_MESSAGES_SQL,
          insertInboxParams(rows),
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
