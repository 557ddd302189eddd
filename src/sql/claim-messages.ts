import { OUTBOX_TABLE } from "./names.js";

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
const RETURNING = `RETURNING id::text AS id, message_id::text AS message_id, exchange, routing_key, payload::text AS payload,
  headers, type, correlation_id, attempts, (extract(epoch FROM created_at) * 1000)::float8 AS created_at`;

/** Claims the given ids (the in-process fast path), where still present and due. $1: bigint[] */
export const CLAIM_BY_IDS_SQL = `
DELETE FROM ${OUTBOX_TABLE} WHERE id IN (
  SELECT id FROM ${OUTBOX_TABLE} WHERE id = ANY($1::bigint[]) AND available_at <= now()
  ORDER BY id FOR UPDATE SKIP LOCKED
) ${RETURNING}`;

/** Claims the oldest due rows (LISTEN wake-ups and backlog drains). $1: limit */
export const CLAIM_NEXT_SQL = `
DELETE FROM ${OUTBOX_TABLE} WHERE id IN (
  SELECT id FROM ${OUTBOX_TABLE} WHERE available_at <= now()
  ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
) ${RETURNING}`;

/**
 * The sweeper: the oldest due rows written at least $2 ms ago, so that it leaves fresh rows to the fast path and
 * only takes what the fast path missed (a crash after commit, a full in-process queue, a broker outage).
 * $1: limit, $2: minimum age in ms
 */
export const CLAIM_SWEEP_SQL = `
DELETE FROM ${OUTBOX_TABLE} WHERE id IN (
  SELECT id FROM ${OUTBOX_TABLE}
  WHERE available_at <= now() AND created_at <= now() - make_interval(secs => $2::float8 / 1000)
  ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
) ${RETURNING}`;

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
