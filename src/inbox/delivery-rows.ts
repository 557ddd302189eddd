// A delivery into inbox rows, without the database: what the receiver stores for each delivery of a batch (one
// pending row per matching handler, or one dead row with the reason when it cannot be handled), and the checks that
// find, before the INSERT, what PostgreSQL cannot store: a NUL character in a text column or in the headers (jsonb),
// JSON nested deeper than its parser goes, bodies over `maxPayloadBytes` (their bytes let go on arrival), ids over
// 255 bytes. What these checks miss, the INSERT's split finds (store-batch.ts).
import { expiresAtOf } from "../message/expiry.js";
import type { ClaimedInboxRow } from "../sql/inbox/claim.js";
import type { InboxRowInput, InsertedInboxRow } from "../sql/inbox/insert.js";
import type { Delivery } from "../transport/transport.js";
import { adoptCloudEvent } from "./cloud-event.js";
import type { InvalidMessagePolicy } from "./options.js";
import type { HandlerRegistry } from "./registry.js";

/**
 * JSON nested deeper than this is not stored as JSON (the body is kept as bytes, the delivery is invalid).
 * PostgreSQL's json parser recurses per level and stops at `max_stack_depth` (2 MB by default: about 15,000 levels
 * of arrays, SQLSTATE 54001); a server with less stack refuses less, and the split finds those.
 */
export const MAX_JSON_DEPTH = 5_000;

/** A delivery as the receiver holds it until it is stored. */
export interface Received {
  delivery: Delivery;
  /** The body's size as received (the body itself is let go when over maxPayloadBytes). */
  bytes: number;
  oversized: boolean;
}

/** One delivery's rows, stored or split off together: one per matching handler, or one dead row. */
export interface Entry {
  received: Received;
  rows: InboxRowInput[];
  /** Already found invalid (its rows are its dead row), so a failure alone is not reported twice as invalid. */
  invalid: boolean;
}

/** Shown in a reason: JSON-escaped (a NUL reads \u0000), and cut to 100 characters. */
function shown(value: string): string {
  const text = JSON.stringify(value);
  return text.length > 100 ? `${text.slice(0, 100)}..."` : text;
}

/** Why a delivery cannot be handled, or undefined when it can. */
function invalidReason(
  r: Received,
  handlers: number,
  json: boolean,
  deep: boolean,
  headers: string | undefined,
  cloudEvent: string | undefined,
) {
  const d = r.delivery;
  if (d.undecodable !== undefined) return d.undecodable;
  if (r.oversized) return `the body is ${r.bytes} bytes, above the limit of maxPayloadBytes (not kept)`;
  if (cloudEvent !== undefined) return cloudEvent;
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
  const expiry = expiresAtOf(d.headers); // decided at claim (give-up.ts); a malformed one can never be
  if (typeof expiry === "object") return expiry.problem;
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
export function headersProblem(headers: Record<string, unknown> | undefined): string | undefined {
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

/** A batch's rows, as built before its INSERT. */
export interface BatchRows {
  /** Each stored delivery's rows, in delivery order. */
  entries: Entry[];
  /** Rows that may be leased (pending, no ordering key), and their parsed payloads. */
  leasable: Map<InboxRowInput, unknown>;
  /** The invalid deliveries and why, in delivery order (stored dead in `entries`, or in `rejected`). */
  invalid: Array<{ delivery: Delivery; reason: string }>;
  /** Invalid deliveries to reject (`invalidMessages: "reject"`): no row. */
  rejected: Delivery[];
}

/**
 * The rows of a batch of deliveries, and which deliveries are invalid (see the top of the file). With `waiting` (the
 * queue's placeholder handler, when `unhandledGraceMs` > 0), a valid delivery no handler takes is one pending row under
 * it, never leased: it waits for an inbox with a handler (unhandled.ts).
 */
export function deliveryRows(
  batch: readonly Received[],
  registry: HandlerRegistry,
  invalidMessages: InvalidMessagePolicy,
  waiting?: string,
): BatchRows {
  const entries: Entry[] = [];
  /** Rows that may be leased (pending, no ordering key), and their parsed payloads. */
  const leasable = new Map<InboxRowInput, unknown>();
  const invalid: BatchRows["invalid"] = [];
  const rejected: Delivery[] = [];
  for (const r of batch) {
    const d = r.delivery;
    const text = r.oversized ? "" : d.content.toString("utf8");
    const parsed = r.oversized ? NOT_JSON : parseJson(text);
    const json = parsed !== NOT_JSON;
    const deep = json && jsonDeeperThan(text, MAX_JSON_DEPTH);
    const headers = headersProblem(d.headers);
    // Before the handlers are matched: a CloudEvent's type and id fill the delivery's when it has none.
    const cloudEvent = d.undecodable === undefined ? adoptCloudEvent(d) : undefined;
    const handlers = registry.match(d.routingKey, d.type);
    const waits = handlers.length === 0 && waiting !== undefined;
    const reason = invalidReason(r, waits ? 1 : handlers.length, json, deep, headers, cloudEvent);
    if (reason === undefined && waits) {
      entries.push({ received: r, rows: [inboxRow(r, text, waiting, "pending", null)], invalid: false });
      continue;
    }
    if (reason === undefined) {
      const rows: InboxRowInput[] = [];
      for (const h of handlers) {
        const row = inboxRow(r, text, h.name, "pending", null);
        // Keyed rows are claimed only behind their key's earlier rows (sql/inbox/claim.ts): never leased here.
        if (row.key === null) leasable.set(row, parsed);
        rows.push(row);
      }
      entries.push({ received: r, rows, invalid: false });
      continue;
    }
    invalid.push({ delivery: d, reason });
    if (invalidMessages === "reject") rejected.push(d);
    else {
      const row = inboxRow(r, json && !deep ? text : null, "", "dead", reason, headers === undefined);
      entries.push({ received: r, rows: [row], invalid: true });
    }
  }
  return { entries, leasable, invalid, rejected };
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
export function inboxRow(
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
export function bareDeadRow(r: Received, lastError: string): InboxRowInput {
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

/** The rows the INSERT leased, as the processor's claim returns them (sql/inbox/claim.ts). */
export function leasedRows(
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
