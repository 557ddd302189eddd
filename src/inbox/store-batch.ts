// Storing one batch's rows, and finding the delivery PostgreSQL refuses: the INSERT retried with backoff while it
// fails in a way that waiting may fix (the connection, a deadlock, a shutdown: runtime/pg.ts insertFailureKind); a
// data-class refusal (22xxx, 54xxx), or the same other failure SAME_FAILURES times in a row, splits the rows in halves,
// stored one after the other (a half failing the same way splits at once), until the culprit is alone; the culprit is
// invalid: rejected, or stored dead with what PostgreSQL takes of it (its body as bytes, else nothing but its names).
import type pg from "pg";
import { coerceError } from "../errors.js";
import { backoffDelay, sleep } from "../runtime/backoff.js";
import type { Logger } from "../runtime/logger.js";
import { insertFailureKind } from "../runtime/pg.js";
import {
  type InboxRowInput,
  type InsertedInboxRow,
  insertInboxMessagesSql,
  insertInboxParams,
} from "../sql/inbox/insert.js";
import type { InboxNames } from "../sql/names.js";
import type { Delivery } from "../transport/transport.js";
import { bareDeadRow, type Entry, headersProblem, inboxRow } from "./delivery-rows.js";

/** A failure that is neither transient nor data-class splits the batch once it came back this many times in a row. */
export const SAME_FAILURES = 3;

/** What a batch's INSERTs stored, and how many rows they were given (the rest were duplicates). */
export interface Stored {
  rows: InsertedInboxRow[];
  attempted: number;
}

/** The failure of an INSERT that retrying will not fix. */
export interface Refusal {
  error: Error;
  /** Code and message: a part failing with the same one splits at once. */
  signature: string;
}

function signatureOf(thrown: unknown): string {
  return `${(thrown as { code?: string }).code ?? ""} ${coerceError(thrown).message}`;
}

export interface BatchStoreDeps {
  pool: pg.Pool;
  /** The lease of a row leased in the INSERT (the processor's claim lease). */
  leaseMs: number;
  logger: Logger;
  /** The inbox table's names, in the inbox's schema. */
  names: InboxNames;
  /** Rows under this placeholder handler are due at the end of the grace (sql/inbox/insert.ts). */
  waiting?: { handler: string; graceMs: number } | undefined;
}

/** The receiver's INSERTs; one per receiver, shared by its batches. */
export class BatchStore {
  readonly #deps: BatchStoreDeps;
  /** Aborted by the receiver's abort(): retrying stops, what is not stored stays unacked. */
  readonly #abort: { readonly signal: AbortSignal };
  /** Logs and reports an invalid delivery; what becomes of it (the receiver's). */
  readonly #invalid: (d: Delivery, reason: string) => "dead" | "rejected";
  /** When an INSERT last committed (undefined before the first). */
  lastStoredAt: number | undefined;
  /** Built once: every batch runs it. */
  readonly #insertSql: string;

  constructor(
    deps: BatchStoreDeps,
    abort: { readonly signal: AbortSignal },
    invalid: (d: Delivery, reason: string) => "dead" | "rejected",
  ) {
    this.#deps = deps;
    this.#abort = abort;
    this.#invalid = invalid;
    this.#insertSql = insertInboxMessagesSql(deps.names, deps.waiting);
  }

  /** Stores the entries' rows (see #store), appending what was stored to `stored` and the culprits to `rejected`. */
  store(entries: Entry[], stored: Stored, rejected: Delivery[]): Promise<boolean> {
    return this.#store(entries, undefined, stored, rejected);
  }

  /**
   * Stores the entries' rows in delivery order, appending what was stored to `stored` and the culprits to reject to
   * `rejected`. A refusal that retrying will not fix splits the entries in halves, stored one after the other (a half
   * failing with `poison`, the refusal that split its parent, splits at once), down to the culprit alone. False when
   * aborted before everything was stored.
   */
  async #store(entries: Entry[], poison: string | undefined, stored: Stored, rejected: Delivery[]): Promise<boolean> {
    const rows = entries.flatMap((e) => e.rows);
    const result = await this.#insert(rows, poison);
    if (result === undefined) return false;
    if (Array.isArray(result)) {
      stored.rows.push(...result);
      stored.attempted += rows.length;
      return true;
    }
    if (entries.length === 1) return this.#storeCulprit(entries[0]!, result, stored, rejected);
    this.#deps.logger.warn(
      "storing deliveries failed the same way again; storing them in halves to find the delivery it is about (not acked meanwhile)",
      { deliveries: entries.length, error: result.signature },
    );
    const half = Math.ceil(entries.length / 2);
    return (
      (await this.#store(entries.slice(0, half), result.signature, stored, rejected)) &&
      (await this.#store(entries.slice(half), result.signature, stored, rejected))
    );
  }

  /**
   * The delivery PostgreSQL refuses to store, alone: invalid. Rejected, or stored dead: with its body as bytes (and its
   * headers, type and correlationId) if PostgreSQL takes that, else without them (the reason says so). A database
   * that refuses even that refuses the inbox table itself: retried with backoff and logged as an error.
   */
  async #storeCulprit(entry: Entry, refusal: Refusal, stored: Stored, rejected: Delivery[]): Promise<boolean> {
    const d = entry.received.delivery;
    const why = `PostgreSQL refused to store the delivery: ${refusal.error.message}`;
    const reason = entry.invalid ? `${entry.rows[0]!.lastError}; ${why}` : why;
    if (!entry.invalid && this.#invalid(d, reason) === "rejected") {
      rejected.push(d);
      return true;
    }
    if (entry.invalid)
      this.#deps.logger.warn("invalid delivery refused by PostgreSQL", { messageId: d.messageId, reason: why });
    const kept = inboxRow(entry.received, null, "", "dead", reason, headersProblem(d.headers) === undefined);
    const bare = bareDeadRow(entry.received, `${reason} (body, headers, type and correlationId not kept)`);
    for (let attempt = 1; ; attempt++) {
      for (const row of attempt === 1 ? [kept, bare] : [bare]) {
        // Refused the same way as alone: given up at once for the next, barer, row.
        const result = await this.#insert([row], refusal.signature);
        if (result === undefined) return false;
        if (Array.isArray(result)) {
          stored.rows.push(...result);
          stored.attempted += 1;
          return true;
        }
      }
      const delayMs = backoffDelay(attempt, 1_000, 60_000);
      this.#deps.logger.error(
        "PostgreSQL refuses even a dead row without body for an invalid delivery: the inbox table needs a look; retrying (not acked)",
        { messageId: d.messageId, delayMs, error: refusal.signature },
      );
      await sleep(delayMs, this.#abort.signal);
      if (this.#abort.signal.aborted) return false;
    }
  }

  /**
   * The INSERT, retried with backoff while it fails in a way that waiting may fix. The stored rows; or the refusal
   * retrying will not fix (data-class, `poison` again, or the same other failure SAME_FAILURES times in a row);
   * undefined when aborted.
   */
  async #insert(rows: InboxRowInput[], poison: string | undefined): Promise<InsertedInboxRow[] | Refusal | undefined> {
    let last: string | undefined;
    let same = 0;
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await this.#deps.pool.query<InsertedInboxRow>(
          this.#insertSql,
          insertInboxParams(rows, this.#deps.leaseMs),
        );
        this.lastStoredAt = Date.now();
        return result.rows;
      } catch (thrown) {
        const error = coerceError(thrown);
        const kind = insertFailureKind(thrown);
        const signature = signatureOf(thrown);
        if (kind === "other") {
          same = signature === last ? same + 1 : 1;
          last = signature;
        }
        if (kind === "data" || signature === poison || same >= SAME_FAILURES) return { error, signature };
        const delayMs = backoffDelay(attempt, 100, 5_000);
        this.#deps.logger.warn("storing deliveries failed; retrying (not acked)", {
          deliveries: rows.length,
          delayMs,
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
