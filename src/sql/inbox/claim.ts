import { type InboxNames, quoteLiteral } from "../names.js";

// Claiming an inbox row is leasing it, not locking it. The handler must run in the user's own Prisma transaction, on
// a connection the inbox does not own, so a row lock taken here could not be held there. Instead:
// - the claim moves available_at forward by the lease (handler timeout + margin), so other processors' claims skip
//   the row until the lease runs out, and counts the attempt as started (attempts + 1): a processor that dies inside
//   a handler still used an attempt, so a message that crashes every processor ends dead, not in a loop;
// - the handler's transaction completes the row with `attempts = <the claimed value>` as a guard (complete.ts): if
//   the lease ran out and another processor claimed it, the guard fails and the handler's writes roll back. One commit per (message, handler), whatever the races.
// - FOR UPDATE SKIP LOCKED in the subquery: concurrent claims never wait for each other or take the same row.
// - The (status, available_at, id) index serves `status = 'pending' AND available_at <= names.now ORDER BY
//   available_at, id`: due rows come first in the index, so deferred rows (backoff, leases) and processed rows are
//   never read. names.now is PostgreSQL's now(), or the test kit's clock (now() plus an offset that only grows): every
//   inbox statement that writes or compares available_at uses the same one, so a backoff or a lease ends when that
//   clock passes it (a test that moves the clock past a running handler's lease sees the lease run out, as waiting
//   would show).
// - Ordering keys: a row with a key is claimable only when no row of the same key and handler with a lower id is still
//   pending (due, backing off after a failure, or leased by a processor in any process) or, with keyAfterDead
//   "stop", dead. The receiver stores a queue's deliveries in the order it got them (receiver.ts), so per key and
//   handler, rows are handled one at a time in the order received; a failing row holds back its key (for its handler
//   only) until it succeeds or is dead. The (ordering_key, handler, status, id) index answers the probe; rows without
//   a key pass at the first test of the OR.
// - With `waiting` (the queue's placeholder handler: `unhandledGraceMs` > 0, inbox/unhandled.ts), a keyed row also
//   waits behind an earlier row of its key that waits, pending, for a handler: that row may be moved to this very
//   handler (keeping its id), and must then come first. A second probe of the same index; without a grace the
//   statement is as before. A dead waiting row (no handler came) holds back nothing: it was never a handler's.
const RETURNING = `RETURNING m.id::text AS id, m.message_id, m.handler, m.exchange, m.routing_key, m.payload, m.headers,
  m.type, m.correlation_id, m.attempts, m.received_at, m.ordering_key, m.last_error IS NOT NULL AS failed_before`;

/** What a key's later rows do once one of its rows is dead. */
export type KeyAfterDead = "stop" | "continue";

/** The ordering-key condition on the candidate row `r`. */
function keyHeadOnly(names: InboxNames, afterDead: KeyAfterDead, waiting?: string): string {
  const statuses = afterDead === "stop" ? "('pending', 'dead')" : "('pending')";
  const behindWaiting =
    waiting === undefined
      ? ""
      : ` OR EXISTS (SELECT 1 FROM ${names.inboxTable} w WHERE w.ordering_key = r.ordering_key
    AND w.handler = ${quoteLiteral(waiting)} AND w.status = 'pending' AND w.id < r.id)`;
  return `AND (r.ordering_key IS NULL OR NOT (EXISTS (
    SELECT 1 FROM ${names.inboxTable} e WHERE e.ordering_key = r.ordering_key AND e.handler = r.handler
    AND e.status IN ${statuses} AND e.id < r.id)${behindWaiting}))`;
}

/**
 * Only the rows of this inbox's handlers: several inboxes (each with its queue and handlers) may share one table, and
 * a row claimed by an inbox without its handler could only fail. Written in as literals (the names are the inbox's
 * own, fixed at its creation); the (status, available_at, id) walk filters the other inboxes' rows as it goes.
 */
function ownHandlers(handlers: readonly string[] | undefined): string {
  return handlers === undefined ? "" : `AND r.handler IN (${handlers.map(quoteLiteral).join(", ")})`;
}

/** The due claim, with its lease (ms) and limit given as SQL text: parameters, or integers written in. */
function dueClaim(
  names: InboxNames,
  afterDead: KeyAfterDead,
  leaseMs: string,
  limit: string,
  handlers: readonly string[] | undefined,
  waiting?: string,
): string {
  return `
UPDATE ${names.inboxTable} m SET attempts = m.attempts + 1, available_at = ${names.now} + make_interval(secs => ${leaseMs}::float8 / 1000)
FROM (
  SELECT r.id FROM ${names.inboxTable} r WHERE r.status = 'pending' AND r.available_at <= ${names.now}
  ${ownHandlers(handlers)}
  ${keyHeadOnly(names, afterDead, waiting)}
  ORDER BY r.available_at, r.id LIMIT ${limit} FOR UPDATE SKIP LOCKED
) c
WHERE m.id = c.id
${RETURNING}`;
}

/** Claims the oldest due rows (of these handlers' only, when given). $1: lease ms, $2: limit. */
export function claimDueInboxSql(
  names: InboxNames,
  afterDead: KeyAfterDead = "stop",
  handlers?: readonly string[],
): string {
  return dueClaim(names, afterDead, "$1", "$2", handlers);
}

function integer(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new TypeError(`Expected a non-negative integer, got ${n}`);
  return String(n);
}

/**
 * The processor's due claim: claimDueInboxSql in a transaction of its own that forbids bitmap scans, in one
 * simple-protocol round trip (BEGIN; SET LOCAL; claim; COMMIT: the values are written into the text, integers only).
 * The claim must walk the (status, available_at, id) index in claim order and stop after `limit` claimable rows. With
 * statistics that do not know the table's size yet (a backlog that arrived within seconds, before any ANALYZE, or
 * with autovacuum off) the planner estimates a handful of due rows and prefers a bitmap scan and a sort, which reads
 * every due row before the sort, and probes the key of every keyed one: 350-900 ms a claim with 35,000 due rows,
 * against 2 ms for the index walk. Without bitmap scans the index walk is the cheapest plan whatever the estimates (a
 * sequential scan reads the whole table). SET LOCAL ends with the transaction, so the connection is left as it was.
 * Rows without a key walk the same index as before, and gain the same protection.
 */
export function claimDueInbox(
  names: InboxNames,
  afterDead: KeyAfterDead,
  leaseMs: number,
  limit: number,
  handlers?: readonly string[],
  waiting?: string,
): string {
  const claim = dueClaim(names, afterDead, integer(leaseMs), integer(limit), handlers, waiting);
  return `BEGIN;\nSET LOCAL enable_bitmapscan = off;\n${claim};\nCOMMIT`;
}

/** Claims the given rows (the receiver's in-process hand-off) where still pending and due. $1: lease ms, $2: ids. */
export function claimInboxByIdsSql(names: InboxNames, afterDead: KeyAfterDead = "stop", waiting?: string): string {
  return `
UPDATE ${names.inboxTable} m SET attempts = m.attempts + 1, available_at = ${names.now} + make_interval(secs => $1::float8 / 1000)
FROM (
  SELECT r.id FROM ${names.inboxTable} r
  WHERE r.id = ANY($2::bigint[]) AND r.status = 'pending' AND r.available_at <= ${names.now}
  ${keyHeadOnly(names, afterDead, waiting)}
  ORDER BY r.id FOR UPDATE SKIP LOCKED
) c
WHERE m.id = c.id
${RETURNING}`;
}

/** A claimed row. */
export interface ClaimedInboxRow {
  id: string;
  message_id: string | null;
  handler: string;
  exchange: string;
  routing_key: string;
  payload: unknown;
  headers: Record<string, unknown> | null;
  type: string | null;
  correlation_id: string | null;
  attempts: number;
  received_at: Date;
  ordering_key: string | null;
  /**
   * An attempt failed before (its error is stored): a batch handler's row then runs alone, not in a batch
   * (batch-attempt.ts). Absent on rows the receiver leased, which are new.
   */
  failed_before?: boolean;
}
