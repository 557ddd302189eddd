// The receiver: deliveries -> inbox rows -> COMMIT -> ack. Never an ack before the rows are committed, so a crash
// anywhere loses nothing: the broker redelivers what was not acked, and the unique (message_id, handler) key turns
// the redelivery into nothing.
//
// State machine of one batch (a flush): buffered --next macrotask--> inserting --COMMIT--> waiting for the previous
//   batch's acks --> acked (then the "received" event and the hand-off) ; inserting --database error--> one of:
//   - transient (connection, deadlock, shutdown: relay/pg-errors.ts insertFailureKind): retrying (backoff,
//     deliveries held unacked; logged) --> inserting;
//   - data-class (22xxx, 54xxx), or the same other failure SAME_FAILURES times in a row: split --> each half
//     inserting in turn, with the same rule (a half that fails the same way splits at once), until the culprit is
//     alone --> the culprit is invalid (stored dead, its bytes kept where PostgreSQL can hold them, else without
//     them; or rejected, per `invalidMessages`) and the rest is stored --> waiting for the previous batch's acks.
// Up to MAX_FLUSHES batches are inserting at once, so the broker's next deliveries and the next INSERT overlap the
// previous INSERT and its commit instead of waiting for them (stop-and-wait capped receiving at about half of what
// the database and the broker each allow: bench/inbox.ts). Acks still go out in delivery order, which keeps the
// `multiple` acks safe: a batch acks only after the batch before it acked, and not at all if that one gave up. A
// split batch is one batch still: it acks once every part is stored.
//   any --drain()--> resolves once nothing is buffered or in flight; --abort()--> gives up retrying (not acked)
//
// What PostgreSQL cannot store is found before the INSERT where that is cheap, so that a split is the exception: a
// NUL character in a text column or in the headers (jsonb), JSON nested deeper than its parser goes, and bodies over
// `maxPayloadBytes` (their bytes are let go on arrival).
import type pg from "pg";
import { coerceError } from "../errors.js";
import { backoffDelay, sleep } from "../runtime/backoff.js";
import type { Logger } from "../runtime/logger.js";
import { insertFailureKind } from "../runtime/pg.js";
import type { ClaimedInboxRow } from "../sql/inbox/claim.js";
import {
  type InboxRowInput,
  type InsertedInboxRow,
  insertInboxMessagesSql,
  insertInboxParams,
} from "../sql/inbox/insert.js";
import type { InboxNames } from "../sql/names.js";
import type { Delivery } from "../transport/amqp/consumer.js";
import type { InboxEvent } from "./events.js";
import type { InvalidMessagePolicy } from "./options.js";
import type { HandlerRegistry } from "./registry.js";

/** Batches inserting at once (each on its own connection of the inbox's pool). */
const MAX_FLUSHES = 2;

/** A failure that is neither transient nor data-class splits the batch once it came back this many times in a row. */
export const SAME_FAILURES = 3;

/**
 * JSON nested deeper than this is not stored as JSON (the body is kept as bytes, the delivery is invalid).
 * PostgreSQL's json parser recurses per level and stops at `max_stack_depth` (2 MB by default: about 15,000 levels
 * of arrays, SQLSTATE 54001); a server with less stack refuses less, and the split finds those.
 */
export const MAX_JSON_DEPTH = 5_000;

/** The receiver's health reports a stall once deliveries have waited this long with no batch stored. */
export const RECEIVE_STALL_MS = 30_000;

export interface ReceiverDeps {
  pool: pg.Pool;
  /** The inbox table's names, in the inbox's schema. */
  names: InboxNames;
  registry: HandlerRegistry;
  invalidMessages: InvalidMessagePolicy;
  /** Most deliveries per INSERT. */
  batchSize: number;
  /** Most body bytes per INSERT (a larger single delivery goes alone). */
  batchMaxBytes: number;
  /** Larger bodies are invalid, and let go on arrival. */
  maxPayloadBytes: number;
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
  logger: Logger;
  emit(event: InboxEvent): void;
}

/** A delivery as the receiver holds it until it is stored. */
interface Received {
  delivery: Delivery;
  /** The body's size as received (the body itself is let go when over maxPayloadBytes). */
  bytes: number;
  oversized: boolean;
}

/** One delivery's rows, stored or split off together: one per matching handler, or one dead row. */
interface Entry {
  received: Received;
  rows: InboxRowInput[];
  /** Already found invalid (its rows are its dead row), so a failure alone is not reported twice as invalid. */
  invalid: boolean;
}

const EMPTY = Buffer.alloc(0);

/** Shown in a reason: JSON-escaped (a NUL reads \u0000), and cut to 100 characters. */
function shown(value: string): string {
  const text = JSON.stringify(value);
  return text.length > 100 ? `${text.slice(0, 100)}..."` : text;
}

/** Why a delivery cannot be handled, or undefined when it can. */
function invalidReason(r: Received, handlers: number, json: boolean, deep: boolean, headers: string | undefined) {
  const d = r.delivery;
  if (d.undecodable !== undefined) return d.undecodable;
  if (r.oversized) return `the body is ${r.bytes} bytes, above the limit of maxPayloadBytes (not kept)`;
  if (d.messageId === undefined || d.messageId.length === 0) {
    return "the delivery has no messageId, so it cannot be deduplicated (publish with a messageId)";
  }
  if (Buffer.byteLength(d.messageId) > 255) return "the messageId is longer than 255 bytes";
  if (d.messageId.includes("\0")) return `the messageId ${shown(d.messageId)} contains a NUL character`;
  if (d.type?.includes("\0")) return `the type ${shown(d.type)} contains a NUL character (not kept)`;
  if (d.correlationId?.includes("\0")) {
    return `the correlationId ${shown(d.correlationId)} contains a NUL character (not kept)`;
  }
  if (d.routingKey.includes("\0")) return `the routing key ${shown(d.routingKey)} contains a NUL character`;
  if (headers !== undefined) return `${headers} (headers not kept)`;
  if (deep) return `the body is JSON nested deeper than ${MAX_JSON_DEPTH} levels (kept as bytes in \`body\`)`;
  if (!json) return "the body is not JSON";
  if (handlers === 0) {
    return `no handler takes routing key "${d.routingKey}"${d.type ? ` or type "${d.type}"` : ""}`;
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

/**
 * Whether JSON text (already parsed, so well formed) nests arrays and objects deeper than `limit`. Text too short to
 * hold that many brackets is not scanned: every level takes an opening and a closing one.
 */
export function jsonDeeperThan(text: string, limit: number): boolean {
  if (text.length <= 2 * limit) return false;
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 34) {
      // A string: skip to its closing quote, over escapes.
      for (i++; i < text.length; i++) {
        const s = text.charCodeAt(i);
        if (s === 92) i++;
        else if (s === 34) break;
      }
    } else if (c === 91 || c === 123) {
      if (++depth > limit) return true;
    } else if (c === 93 || c === 125) depth--;
  }
  return false;
}

/**
 * Why the headers cannot be stored in the jsonb column, or undefined: a NUL character in a key or a string (jsonb
 * refuses \u0000), or tables nested deeper than MAX_JSON_DEPTH. The header x-ordering-key is one of them.
 */
function headersProblem(headers: Record<string, unknown> | undefined): string | undefined {
  if (headers === undefined) return undefined;
  const walk = (value: unknown, path: string, depth: number): string | undefined => {
    if (typeof value === "string") {
      return value.includes("\0") ? `the header ${path} contains a NUL character` : undefined;
    }
    if (typeof value !== "object" || value === null || Buffer.isBuffer(value)) return undefined;
    if (depth > MAX_JSON_DEPTH) return `the headers are nested deeper than ${MAX_JSON_DEPTH} levels`;
    for (const [k, v] of Object.entries(value)) {
      const at = Array.isArray(value) ? `${path}[${k}]` : path === "" ? shown(k) : `${path}.${shown(k)}`;
      if (k.includes("\0")) return `the header name ${at} contains a NUL character`;
      const problem = walk(v, at, depth + 1);
      if (problem !== undefined) return problem;
    }
    return undefined;
  };
  return walk(headers, "", 1);
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

/** What a batch's INSERTs stored, and how many rows they were given (the rest were duplicates). */
interface Stored {
  rows: InsertedInboxRow[];
  attempted: number;
}

/** The failure of an INSERT that retrying will not fix. */
interface Refusal {
  error: Error;
  /** Code and message: a part failing with the same one splits at once. */
  signature: string;
}

function signatureOf(thrown: unknown): string {
  return `${(thrown as { code?: string }).code ?? ""} ${coerceError(thrown).message}`;
}

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
  /** When an INSERT last committed (undefined before the first). */
  #lastStoredAt: number | undefined;

  constructor(deps: ReceiverDeps) {
    this.#deps = deps;
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
    const since = Math.max(this.#waitingSince, this.#lastStoredAt ?? 0);
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
      this.#deps.logger.error(
        `receiving ${batch.length} deliveries failed (not acked): ${coerceError(thrown).message}`,
      );
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
    const { registry } = this.#deps;
    const entries: Entry[] = [];
    /** Rows that may be leased (pending, no ordering key), and their parsed payloads. */
    const leasable = new Map<InboxRowInput, unknown>();
    const rejected: Delivery[] = [];
    for (const r of batch) {
      const d = r.delivery;
      const text = r.oversized ? "" : d.content.toString("utf8");
      const parsed = r.oversized ? NOT_JSON : parseJson(text);
      const json = parsed !== NOT_JSON;
      const deep = json && jsonDeeperThan(text, MAX_JSON_DEPTH);
      const headers = headersProblem(d.headers);
      const handlers = registry.match(d.routingKey, d.type);
      const reason = invalidReason(r, handlers.length, json, deep, headers);
      if (reason === undefined) {
        const rows: InboxRowInput[] = [];
        for (const h of handlers) {
          const row = inboxRow(r, text, h.name, "pending", null);
          // Keyed rows are claimed only behind their key's earlier rows (claim-inbox-messages.ts): never leased here.
          if (row.key === null) leasable.set(row, parsed);
          rows.push(row);
        }
        entries.push({ received: r, rows, invalid: false });
        continue;
      }
      const outcome = this.#invalid(d, reason);
      if (outcome === "rejected") rejected.push(d);
      else {
        const row = inboxRow(r, json && !deep ? text : null, "", "dead", reason, headers === undefined);
        entries.push({ received: r, rows: [row], invalid: true });
      }
    }
    // The processor's free room goes to the first rows that can take it; the rest are handed over by id after COMMIT.
    const reserved = this.#deps.reserve(leasable.size);
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
        this.#deps.adopt([], reserved);
        return false;
      }
    }
    const stored: Stored = { rows: [], attempted: 0 };
    const complete = entries.length === 0 || (await this.#store(entries, undefined, stored, rejected));
    inserted();
    // Leased rows are committed and this processor's: handed over at once, whatever becomes of the ack below (parts
    // of a split batch stored before it gave up included). The reservation is given back even if that goes wrong (a
    // bug: the rows then wait for their lease to run out).
    let leased: ClaimedInboxRow[] = [];
    try {
      leased = leasedRows(leasable, stored.rows);
    } finally {
      this.#deps.adopt(leased, reserved);
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
    if (pending.length > 0) this.#deps.handoff(pending);
    return true;
  }

  /** Logs and reports an invalid delivery; what becomes of it. */
  #invalid(d: Delivery, reason: string): "dead" | "rejected" {
    const outcome = this.#deps.invalidMessages === "reject" ? "rejected" : "dead";
    this.#deps.logger.warn(
      `invalid delivery ${outcome === "dead" ? "stored as dead" : "rejected to the dead-letter exchange"}: ${reason}`,
      { messageId: d.messageId, routingKey: d.routingKey },
    );
    this.#deps.emit({ type: "invalid", messageId: d.messageId, routingKey: d.routingKey, reason, outcome });
    return outcome;
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
      `storing ${entries.length} deliveries failed the same way again; storing them in halves to find the delivery it is about (not acked meanwhile)`,
      { error: result.signature },
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
    if (entry.invalid) this.#deps.logger.warn(`invalid delivery: ${why}`, { messageId: d.messageId });
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
        `PostgreSQL refuses even a dead row without body for an invalid delivery: the inbox table needs a look; retrying in ${delayMs} ms (not acked)`,
        { messageId: d.messageId, error: refusal.signature },
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
          insertInboxMessagesSql(this.#deps.names),
          insertInboxParams(rows, this.#deps.leaseMs),
        );
        this.#lastStoredAt = Date.now();
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

/** A text PostgreSQL can store, or null (a NUL character cannot be stored in text). */
function storableText(value: string | undefined): string | null {
  return value === undefined || value.includes("\0") ? null : value;
}

/** An id column's value: null when there is none, or it cannot be a key (over 255 bytes, a NUL). */
function storableId(value: string | undefined): string | null {
  return value && Buffer.byteLength(value) <= 255 ? storableText(value) : null;
}

/** A NOT NULL name column (exchange, routing key): a NUL shows as U+FFFD. */
function storableName(value: string): string {
  return value.includes("\0") ? value.replaceAll("\0", "\uFFFD") : value;
}

/**
 * One row to store, all fields in one order (one object shape for every row). Without a payload, the body is kept as
 * bytes unless it was over maxPayloadBytes. `keepHeaders` false leaves out headers that jsonb cannot hold.
 */
function inboxRow(
  r: Received,
  payload: string | null,
  handler: string,
  status: "pending" | "dead",
  lastError: string | null,
  keepHeaders = true,
): InboxRowInput {
  const d = r.delivery;
  const headers = keepHeaders ? d.headers : undefined;
  return {
    messageId: storableId(d.messageId),
    handler,
    exchange: storableName(d.exchange),
    routingKey: storableName(d.routingKey),
    payload,
    body: payload === null && !r.oversized ? d.content : null,
    headers: headers === undefined ? null : headersText(headers),
    type: storableText(d.type),
    correlationId: storableText(d.correlationId),
    status,
    lastError,
    key: headers === undefined ? null : orderingKey(headers),
    leased: false,
  };
}

/** A dead row with nothing of the delivery but its names: what is left when PostgreSQL refuses the rest. */
function bareDeadRow(r: Received, lastError: string): InboxRowInput {
  const d = r.delivery;
  return {
    messageId: storableId(d.messageId),
    handler: "",
    exchange: storableName(d.exchange),
    routingKey: storableName(d.routingKey),
    payload: null,
    body: null,
    headers: null,
    type: null,
    correlationId: null,
    status: "dead",
    lastError,
    key: null,
    leased: false,
  };
}

/** The rows the INSERT leased, as the processor's claim returns them (claim-inbox-messages.ts). */
function leasedRows(
  leasable: ReadonlyMap<InboxRowInput, unknown>,
  stored: readonly InsertedInboxRow[],
): ClaimedInboxRow[] {
  const leased = stored.filter((r) => r.leased_message_id !== null);
  if (leased.length === 0) return [];
  const byKey = new Map<string, [InboxRowInput, unknown]>();
  for (const [row, payload] of leasable)
    if (row.leased) byKey.set(`${row.messageId}\u0000${row.handler}`, [row, payload]);
  return leased.map((r) => {
    const [row, payload] = byKey.get(`${r.leased_message_id}\u0000${r.leased_handler}`)!;
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
