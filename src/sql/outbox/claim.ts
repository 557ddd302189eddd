import type { OutboxNames } from "../names.js";

// Claiming is deleting. The relay deletes the rows it will publish, in the transaction that publishes them, and
// commits only after the broker confirmed them:
// - FOR UPDATE SKIP LOCKED in the subquery: concurrent relays never wait on each other and never get the same row;
//   a relay that loses the race gets no rows, so it publishes nothing and deletes nothing.
// - DELETE ... RETURNING claims and deletes in one round trip; on a crash or ROLLBACK before COMMIT the rows are
//   simply back (PostgreSQL never saw them deleted), so "published but not deleted" is the only outcome of a crash,
//   which means a duplicate, never a loss.
// - ORDER BY available_at, id walks the index (available_at, id) from its start and stops after `limit` rows: every
//   row it reads is due, so the cost is the batch, whatever the number of rows not yet due (retries backing off,
//   delayed messages: all after the due ones in that index). `ORDER BY id` is not used: its plans grow with the
//   table (the primary key walks past every deferred row of lower id, or every due row is read and sorted). For a
//   new message available_at is the time it was inserted (clock_timestamp(), see insert.ts), so the order is
//   write order for new messages, and a retry takes its place when its backoff ends. RETURNING has no order: the
//   relay sorts the batch with `byClaimOrder` before publishing.
// - `after`: the keyset form, `(available_at, id) > (...)`, starts the index walk after the last row this relay
//   claimed. Rows deleted and not yet vacuumed stay in the index, and while any transaction in the database is older
//   than their delete, vacuum cannot remove them and every walk from the start visits each of them in the heap.
//   While a backlog drains, the relay claims after its last row, and walks from the start only now and then (see
//   src/relay/claim-position.ts).
// - "Due" is `available_at <= names.now`: PostgreSQL's now() (the transaction's start), the one clock every relay
//   of the outbox shares; or the test kit's clock (now() plus an offset that only grows, src/runtime/clock.ts), so
//   that a retry's backoff or a delayed message ends when a test moves the clock, not when it waits. New rows are
//   written on the database's time (insert.ts), never ahead of either clock, so they are due at once with both.
// - payload::text returns the exact JSON text written, which becomes the message body without a parse/stringify.
// - BEGIN travels with the claim in one simple-protocol query: one round trip instead of two on the hot path. The
//   simple protocol takes no bind parameters, so the values are written into the text by the functions below, which
//   accept only what cannot inject anything: integers and ids made of digits. The table name is the schema-qualified,
//   quoted one of names.ts.
// - Ordering keys (keyHeadOnly): a row with a key is claimable only when no row of its key with a lower id is left in
//   the table (and, with keyAfterDeadLetter "stop", none in the dead letters). Per key, ids follow commit order (the
//   insert's key locks, insert.ts), and a row leaves the table only in the transaction that publishes it,
//   after the broker's confirm: a row in flight in any relay is still there for every other claim (its DELETE is not
//   committed), and a refused row is put back with its id in the same transaction. So at most one row of a key is in
//   flight across all relays, and the next is claimed only once the one before it is confirmed (or dead-lettered).
//   Rows without a key pass at the first test of the OR: unkeyed claims keep their plan and cost. A keyed row costs
//   one probe of the (ordering_key, id) index.
const RETURNING = `RETURNING id::text AS id, message_id::text AS message_id, exchange, routing_key, payload::text AS payload,
  headers, type, correlation_id, attempts, (extract(epoch FROM created_at) * 1000)::float8 AS created_at,
  (extract(epoch FROM available_at) * 1000)::float8 AS available_at, ordering_key`;

/** What a key's later rows do after one of its rows was dead-lettered. */
export type KeyAfterDeadLetter = "stop" | "continue";

/** The condition that keeps a keyed row until it is the first of its key (see above). */
export function keyHeadOnly(names: OutboxNames, afterDeadLetter: KeyAfterDeadLetter): string {
  const t = names.outboxTable;
  const deadLetters =
    afterDeadLetter === "stop"
      ? `
    AND NOT EXISTS (SELECT 1 FROM ${names.deadLetterTable} d WHERE d.ordering_key = ${t}.ordering_key AND d.id < ${t}.id)`
      : "";
  return `AND (${t}.ordering_key IS NULL OR (
    NOT EXISTS (SELECT 1 FROM ${t} e WHERE e.ordering_key = ${t}.ordering_key AND e.id < ${t}.id)${deadLetters}))`;
}

/** Where a claim in claim order starts: after this row (available_at in epoch milliseconds, id). */
export interface ClaimPlace {
  availableAt: number;
  id: string;
}

/** @deprecated Use `ClaimPlace` ("key" means an ordering key). */
export type ClaimKey = ClaimPlace;

function integer(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new TypeError(`Expected a non-negative integer, got ${n}`);
  return String(n);
}

function outboxId(id: string): string {
  if (!/^\d{1,19}$/.test(id)) throw new TypeError(`Expected an outbox id of digits, got ${id}`);
  return id;
}

/** Epoch milliseconds: negative before 1970 (a writer may ask for any past time as "due now"). */
function epochMs(n: number): string {
  if (!Number.isSafeInteger(n)) throw new TypeError(`Expected epoch milliseconds as an integer, got ${n}`);
  return String(n);
}

/** The keyset condition: rows after `place` in claim order (exact: available_at has millisecond precision). */
function afterPlace(place: ClaimPlace | undefined): string {
  if (!place) return "";
  return `AND (available_at, id) > (to_timestamp(${epochMs(place.availableAt)} / 1000.0), ${outboxId(place.id)})`;
}

/** Claims the given ids (the in-process fast path) where still present and due. */
export function claimByIds(
  names: OutboxNames,
  ids: readonly string[],
  afterDeadLetter: KeyAfterDeadLetter = "stop",
): string {
  return `DELETE FROM ${names.outboxTable} WHERE id IN (
  SELECT id FROM ${names.outboxTable} WHERE id = ANY('{${ids.map(outboxId).join(",")}}'::bigint[]) AND available_at <= ${names.now}
  ${keyHeadOnly(names, afterDeadLetter)}
  ORDER BY id FOR UPDATE SKIP LOCKED
) ${RETURNING}`;
}

/** Claims the oldest due rows (NOTIFY wake-ups and backlog drains), after `after` when given. */
export function claimNext(
  names: OutboxNames,
  limit: number,
  after?: ClaimPlace,
  afterDeadLetter: KeyAfterDeadLetter = "stop",
): string {
  return `DELETE FROM ${names.outboxTable} WHERE id IN (
  SELECT id FROM ${names.outboxTable} WHERE available_at <= ${names.now} ${afterPlace(after)}
  ${keyHeadOnly(names, afterDeadLetter)}
  ORDER BY available_at, id LIMIT ${integer(limit)} FOR UPDATE SKIP LOCKED
) ${RETURNING}`;
}

/**
 * The sweeper's claim: the oldest due rows written at least `minAgeMs` ago, so that it leaves fresh rows to the fast
 * paths and takes only what they missed (a crash after commit, a full in-process queue, a broker outage) and retries
 * whose backoff ended. Fresh rows are the last due ones in claim order, so the walk reaches them only when there is
 * nothing older left. created_at is the writer's database time: on a test clock moved ahead, fresh rows count as old,
 * as they would once that much time had passed.
 */
export function claimSweep(
  names: OutboxNames,
  limit: number,
  minAgeMs: number,
  after?: ClaimPlace,
  afterDeadLetter: KeyAfterDeadLetter = "stop",
): string {
  return `DELETE FROM ${names.outboxTable} WHERE id IN (
  SELECT id FROM ${names.outboxTable}
  WHERE available_at <= ${names.now} AND created_at <= ${names.now} - interval '${integer(minAgeMs)} milliseconds' ${afterPlace(after)}
  ${keyHeadOnly(names, afterDeadLetter)}
  ORDER BY available_at, id LIMIT ${integer(limit)} FOR UPDATE SKIP LOCKED
) ${RETURNING}`;
}

/** How far a keyed claim walks the due rows in claim order, in batches of its limit (see claimKeyed). */
export const KEYED_WINDOW_BATCHES = 2;

/** How many keys a keyed claim's key scan visits at most, in batches of its limit (see claimKeyed). */
export const KEYED_SCAN_BATCHES = 10;

/**
 * The claim of a relay that has seen keyed rows (drain loops and sweeper; the in-process queue keeps claimByIds).
 * claimNext's walk in claim order stops only after `limit` claimable rows, and while the first rows of the keys are
 * in flight every other row of those keys is blocked: a claim made while one batch holds the keys' first rows reads
 * the whole backlog (one index probe a row), and the sweeper and every idle drain loop make such claims. This
 * statement bounds every part of it:
 * - `keyed_window`: the walk in claim order, as claimNext's, over keyed rows, stopped by an index bound at the
 *   KEYED_WINDOW_BATCHES x limit first due rows (an InitPlan reads that many index entries, no probe). Where keys
 *   interleave (each key's next row near the front) it finds the next first rows at once, oldest first.
 * - `keyed_scan`, only when the window found fewer than `keyLimit`: the first row of each key, by a loose index scan
 *   of (ordering_key, id) (a recursive CTE: one index probe a key, up to KEYED_SCAN_BATCHES x limit keys), due and
 *   not behind a dead letter, oldest first. It finds the first rows of deep keys, wherever they are in the backlog.
 *   A key's first visible row is its first row: a row in flight in another relay is still visible (its DELETE is not
 *   committed) and locked, so SKIP LOCKED skips it and the key (busy); a row waiting for its backoff is not due, so
 *   its key waits. Same rule as keyHeadOnly, for the same snapshot.
 * - at most `keyLimit` keyed rows a claim (the relay passes limit / concurrency): with about one batch of keys, one
 *   claim would take every key's first row and leave the other drain loops and relays nothing until it commits (one
 *   batch at a time); with the keys split, two batches of different keys are in flight at once.
 * - `unkeyed`: rows without a key, from the (ordering_key, id) index (ordering_key IS NULL, in id order), so that a
 *   backlog of keyed rows is not walked to find them; then the whole is cut at `limit`.
 * Keys beyond the scan's bound are reached by the window when their rows come to the front of the claim order.
 */
export function claimKeyed(
  names: OutboxNames,
  limit: number,
  keyLimit: number,
  afterDeadLetter: KeyAfterDeadLetter = "stop",
  minAgeMs?: number,
): string {
  const t = names.outboxTable;
  const n = integer(limit);
  const k = integer(Math.max(1, Math.min(limit, keyLimit)));
  const due =
    minAgeMs === undefined
      ? `available_at <= ${names.now}`
      : `available_at <= ${names.now} AND created_at <= ${names.now} - interval '${integer(minAgeMs)} milliseconds'`;
  const notBehindDeadLetter =
    afterDeadLetter === "stop"
      ? `AND NOT EXISTS (SELECT 1 FROM ${names.deadLetterTable} d WHERE d.ordering_key = ${t}.ordering_key AND d.id < ${t}.id)`
      : "";
  return `WITH RECURSIVE key_heads AS (
  (SELECT ordering_key, id FROM ${t} WHERE ordering_key IS NOT NULL ORDER BY ordering_key, id LIMIT 1)
  UNION ALL
  SELECT h.ordering_key, h.id FROM key_heads p CROSS JOIN LATERAL (
    SELECT ordering_key, id FROM ${t} WHERE ordering_key > p.ordering_key ORDER BY ordering_key, id LIMIT 1) h
), keyed_window AS (
  SELECT id FROM ${t} WHERE ${due} AND ordering_key IS NOT NULL
    AND (available_at, id) <= (SELECT w.available_at, w.id FROM (
      SELECT available_at, id FROM ${t} WHERE ${due} ORDER BY available_at, id LIMIT ${integer(limit * KEYED_WINDOW_BATCHES)}
    ) w ORDER BY w.available_at DESC, w.id DESC LIMIT 1)
    ${keyHeadOnly(names, afterDeadLetter)}
  ORDER BY available_at, id LIMIT ${k} FOR UPDATE SKIP LOCKED
), keyed_scan AS (
  SELECT id FROM ${t} WHERE id IN (SELECT id FROM key_heads LIMIT ${integer(limit * KEYED_SCAN_BATCHES)}) AND ${due}
    ${notBehindDeadLetter} AND id NOT IN (SELECT id FROM keyed_window)
  ORDER BY available_at, id LIMIT ${k} FOR UPDATE SKIP LOCKED
), unkeyed AS (
  SELECT id FROM ${t} WHERE ordering_key IS NULL AND ${due}
  ORDER BY ordering_key, id LIMIT ${n} FOR UPDATE SKIP LOCKED
)
DELETE FROM ${t} WHERE id IN (
  SELECT id FROM (
    (SELECT id FROM (SELECT id FROM keyed_window UNION ALL SELECT id FROM keyed_scan) k LIMIT ${k})
    UNION ALL SELECT id FROM unkeyed
  ) c LIMIT ${n}
) ${RETURNING}`;
}

/**
 * A drain loop's claim of the next rows of the keys it just published (a lane: the keys stay with the loop that
 * holds them, see src/relay/keyed-lanes.ts): for each key its first visible row, one probe of the (ordering_key, id) index, taken
 * when due, not behind a dead letter, and not locked. The first visible row is the key's first row, as in claimKeyed:
 * no walk past other loops' rows in flight or the keys' later rows. The first row of a key is found by a LATERAL
 * join, evaluated once a key (a scalar subquery in `id IN (...)` is evaluated twice a key: for the IN's hash and
 * again for the primary key probe). The keys travel as hex-encoded JSON, which can inject nothing into the
 * simple-protocol text.
 */
export function claimKeyHeads(
  names: OutboxNames,
  keys: readonly string[],
  afterDeadLetter: KeyAfterDeadLetter = "stop",
): string {
  const t = names.outboxTable;
  const hex = Buffer.from(JSON.stringify(keys), "utf8").toString("hex");
  const notBehindDeadLetter =
    afterDeadLetter === "stop"
      ? `AND NOT EXISTS (SELECT 1 FROM ${names.deadLetterTable} d WHERE d.ordering_key = m.ordering_key AND d.id < m.id)`
      : "";
  return `DELETE FROM ${t} WHERE id IN (
  SELECT m.id FROM json_array_elements_text(convert_from(decode('${hex}', 'hex'), 'UTF8')::json) AS k(key)
  CROSS JOIN LATERAL (SELECT e.id FROM ${t} e WHERE e.ordering_key = k.key ORDER BY e.id LIMIT 1) h
  JOIN ${t} m ON m.id = h.id
  WHERE m.available_at <= ${names.now} ${notBehindDeadLetter}
  ORDER BY m.available_at, m.id LIMIT ${integer(keys.length)} FOR UPDATE OF m SKIP LOCKED
) ${RETURNING}`;
}

/** BEGIN, then claimKeyHeads. */
export function beginClaimKeyHeads(names: OutboxNames, keys: readonly string[], afterDeadLetter?: KeyAfterDeadLetter) {
  return `BEGIN;\n${claimKeyHeads(names, keys, afterDeadLetter)}`;
}

/** BEGIN, then claimKeyed. */
export function beginClaimKeyed(
  names: OutboxNames,
  limit: number,
  keyLimit: number,
  afterDeadLetter?: KeyAfterDeadLetter,
  minAgeMs?: number,
): string {
  return `BEGIN;\n${claimKeyed(names, limit, keyLimit, afterDeadLetter, minAgeMs)}`;
}

/** Whether the outbox holds any keyed row (one index probe): the relay then claims with claimKeyed. */
export function hasKeyedRowsSql(names: OutboxNames): string {
  return `SELECT EXISTS (SELECT 1 FROM ${names.outboxTable} WHERE ordering_key IS NOT NULL) AS keyed`;
}

/** BEGIN, then claimByIds. */
export function beginClaimByIds(
  names: OutboxNames,
  ids: readonly string[],
  afterDeadLetter?: KeyAfterDeadLetter,
): string {
  return `BEGIN;\n${claimByIds(names, ids, afterDeadLetter)}`;
}

/** BEGIN, then claimNext. */
export function beginClaimNext(
  names: OutboxNames,
  limit: number,
  after?: ClaimPlace,
  afterDeadLetter?: KeyAfterDeadLetter,
): string {
  return `BEGIN;\n${claimNext(names, limit, after, afterDeadLetter)}`;
}

/** BEGIN, then claimSweep. */
export function beginClaimSweep(
  names: OutboxNames,
  limit: number,
  minAgeMs: number,
  after?: ClaimPlace,
  afterDeadLetter?: KeyAfterDeadLetter,
): string {
  return `BEGIN;\n${claimSweep(names, limit, minAgeMs, after, afterDeadLetter)}`;
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
  /** Epoch milliseconds. */
  available_at: number;
  ordering_key: string | null;
}

/** Compares ids (bigint as text: shorter is smaller). */
export function compareIds(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

/** Claim order: available_at, then id (the order of the index the claims walk). */
export function comparePlaces(a: ClaimPlace, b: ClaimPlace): number {
  return a.availableAt - b.availableAt || compareIds(a.id, b.id);
}

/** A claimed row's place in claim order. */
export function placeOf(row: ClaimedRow): ClaimPlace {
  return { availableAt: row.available_at, id: row.id };
}

/** @deprecated Use `placeOf` ("key" means an ordering key). */
export const keyOf = placeOf;

/** Sorts claimed rows in claim order. */
export function byClaimOrder(a: ClaimedRow, b: ClaimedRow): number {
  return comparePlaces(placeOf(a), placeOf(b));
}
