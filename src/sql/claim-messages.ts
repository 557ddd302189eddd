import type { OutboxNames } from "./names.js";

// Claiming is deleting. The relay deletes the rows it will publish, in the transaction that publishes them, and
// commits only after the broker confirmed them:
// - FOR UPDATE SKIP LOCKED in the subquery: concurrent relays never wait on each other and never get the same row;
//   a relay that loses the race gets no rows, so it publishes nothing and deletes nothing.
// - DELETE ... RETURNING claims and deletes in one round trip; on a crash or ROLLBACK before COMMIT the rows are
//   simply back (PostgreSQL never saw them deleted), so "published but not deleted" is the only outcome of a crash,
//   which means a duplicate, never a loss.
// - ORDER BY id in the subquery takes the oldest rows first (publish order) through the primary key; RETURNING has
//   no order, so the relay sorts the batch by id before publishing.
// - payload::text returns the exact JSON text written, which becomes the message body without a parse/stringify.
// - BEGIN travels with the claim in one simple-protocol query: one round trip instead of two on the hot path. The
//   simple protocol takes no bind parameters, so the values are written into the text by the functions below, which
//   accept only what cannot inject anything: integers and ids made of digits.
const RETURNING = `RETURNING id::text AS id, message_id::text AS message_id, exchange, routing_key, payload::text AS payload,
  headers, type, correlation_id, attempts, (extract(epoch FROM created_at) * 1000)::float8 AS created_at`;

function integer(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new TypeError(`Expected a non-negative integer, got ${n}`);
  return String(n);
}

/** BEGIN, then claim the given ids (the in-process fast path) where still present and due. */
export function beginClaimByIds(names: OutboxNames, ids: readonly string[]): string {
  for (const id of ids) if (!/^\d{1,19}$/.test(id)) throw new TypeError(`Expected an outbox id of digits, got ${id}`);
  return `BEGIN;
DELETE FROM ${names.outboxTable} WHERE id IN (
  SELECT id FROM ${names.outboxTable} WHERE id = ANY('{${ids.join(",")}}'::bigint[]) AND available_at <= now()
  ORDER BY id FOR UPDATE SKIP LOCKED
) ${RETURNING}`;
}

/** BEGIN, then claim the oldest due rows (NOTIFY wake-ups and backlog drains). */
export function beginClaimNext(names: OutboxNames, limit: number): string {
  return `BEGIN;
DELETE FROM ${names.outboxTable} WHERE id IN (
  SELECT id FROM ${names.outboxTable} WHERE available_at <= now()
  ORDER BY id LIMIT ${integer(limit)} FOR UPDATE SKIP LOCKED
) ${RETURNING}`;
}

/**
 * BEGIN, then the sweeper's claim: the oldest due rows written at least `minAgeMs` ago, so that it leaves fresh rows
 * to the fast paths and takes only what they missed (a crash after commit, a full in-process queue, a broker outage).
 */
export function beginClaimSweep(names: OutboxNames, limit: number, minAgeMs: number): string {
  return `BEGIN;
DELETE FROM ${names.outboxTable} WHERE id IN (
  SELECT id FROM ${names.outboxTable}
  WHERE available_at <= now() AND created_at <= now() - interval '${integer(minAgeMs)} milliseconds'
  ORDER BY id LIMIT ${integer(limit)} FOR UPDATE SKIP LOCKED
) ${RETURNING}`;
}

/** A claimed row, as RETURNING gives it. */
export interface ClaimedRow {
  id: string;
  message_id: string;
  exchange: string;
  routing_key: string;
  payload: string;
  headers: Record<string, string | number | boolean | null> | null;
  type: string | null;
  correlation_id: string | null;
  attempts: number;
  created_at: number;
}

/** Sorts claimed rows by id (bigint as text: shorter is smaller). */
export function byId(a: ClaimedRow, b: ClaimedRow): number {
  return a.id.length - b.id.length || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}
