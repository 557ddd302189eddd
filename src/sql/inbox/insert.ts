import { type InboxNames, quoteLiteral } from "../names.js";

/** One row to store: a delivery for one handler (or, with status 'dead', a delivery no handler can take). */
export interface InboxRowInput {
  messageId: string | null;
  handler: string;
  exchange: string;
  routingKey: string;
  /** JSON text of the body (parsed by the receiver: it is joined into a JSON array unchecked), or null when the body
   * was not JSON. */
  payload: string | null;
  /** The raw body, kept only when it was not JSON (or not storable as JSON); null also when not kept at all. */
  body: Buffer | null;
  /** JSON text of the AMQP headers, or null. */
  headers: string | null;
  type: string | null;
  correlationId: string | null;
  status: "pending" | "dead";
  lastError: string | null;
  /** The ordering key (AMQP header x-ordering-key), or null. */
  key: string | null;
  /** Leased at once to this process's processor (claimed in the INSERT: attempts 1, due after the lease). */
  leased: boolean;
}

/**
 * Stores the deliveries of one receive batch in one statement, before the broker ack.
 * - ON CONFLICT (message_id, handler) DO NOTHING is the deduplication: a redelivered or re-published message finds
 *   its rows and adds nothing, so it is acknowledged and dropped. DO NOTHING (unlike DO UPDATE) also accepts the same
 *   key twice within the statement (a duplicate inside one batch). Rows without a message id (NULL) never conflict.
 * - One array per column, zipped by ROWS FROM: the same statement text and parameters for any batch size. The
 *   payloads are not a text[] but one JSON array, the bodies' texts joined with commas (each one was parsed as JSON by
 *   the receiver, so the join is JSON): PostgreSQL parses it once, and neither side escapes 500-byte texts for an array
 *   literal (~13% less of PostgreSQL's CPU per row than a text[] cast to json row by row). A body that is not JSON
 *   stands as `null` there and is stored as SQL NULL ($15 says which rows have a payload; the bytes of a body that is
 *   not JSON go to `body`, and a body over maxPayloadBytes goes nowhere), unlike a body that is JSON null.
 * - RETURNING gives the ids of the rows actually inserted and pending, for the in-process hand-off to the processor.
 * - Leased rows are claimed by the INSERT itself (attempts 1, due only after the lease $13 ms, as the processor's claim
 *   would set them: claim.ts, from the same clock, names.now), for the processor of this process, which has room
 *   for them: it starts them without a claim round trip. A duplicate is not inserted, so never leased twice.
 *   `leased` comes back for those rows only (NULL otherwise), with the message id and handler that say which input
 *   row each one is.
 * - Rows go into the unique index in (message_id, handler) order, whatever the delivery order: two INSERTs in flight
 *   at once (the receiver's two batches, or two inbox processes) holding the same keys (duplicate publishes) then
 *   take them in the same order, so one waits for the other instead of each waiting for a key the other holds
 *   (deadlock, 40P01). The ids are still drawn in delivery order (the CTE numbers the rows sorted by position; a
 *   volatile output is evaluated after its query's ORDER BY), which is the order the processors take a key's rows in.
 *   Duplicates draw an id too, as they did through the column default.
 * - With `waiting` (the inbox's `unhandledGraceMs` > 0), a row under the queue's placeholder handler (a delivery no
 *   handler of this inbox takes) is due only at the end of its grace: no claim takes it (claims take their own
 *   handlers' rows), an inbox with a handler moves it before then, and the grace's end is when it becomes dead
 *   (unhandled.ts). Written in as literals (fixed per inbox), so an inbox without a grace runs the statement as before.
 *   Such a row comes back with status 'waiting': it is not handed to the processor (nothing of its would take it).
 */
export function insertInboxMessagesSql(names: InboxNames, waiting?: { handler: string; graceMs: number }): string {
  const placeholder = waiting === undefined ? "" : quoteLiteral(waiting.handler);
  const wait =
    waiting === undefined
      ? ""
      : `WHEN handler = ${placeholder} THEN ${names.now} + make_interval(secs => ${waiting.graceMs / 1000})
            `;
  // A waiting row is returned as 'waiting', not 'pending': the receiver hands pending rows to its processor by id,
  // and a waiting row is no row of its handlers.
  const status = waiting === undefined ? "status" : `CASE WHEN handler = ${placeholder} THEN 'waiting' ELSE status END`;
  return `
WITH input AS MATERIALIZED (
  SELECT nextval((SELECT pg_get_serial_sequence(${quoteLiteral(names.inboxTable)}, 'id'))) AS id, message_id, handler,
         exchange,
         routing_key, payload, body, headers, type, correlation_id, status, last_error, ordering_key, leased,
         has_payload
  FROM ROWS FROM (unnest($1::text[]), unnest($2::text[]), unnest($3::text[]), unnest($4::text[]),
                  json_array_elements($5::json), unnest($6::bytea[]), unnest($7::text[]), unnest($8::text[]),
                  unnest($9::text[]), unnest($10::text[]), unnest($11::text[]), unnest($12::text[]),
                  unnest($14::bool[]), unnest($15::bool[]))
    WITH ORDINALITY AS t(message_id, handler, exchange, routing_key, payload, body, headers, type, correlation_id,
                         status, last_error, ordering_key, leased, has_payload, n)
  ORDER BY n
)
INSERT INTO ${names.inboxTable} (id, message_id, handler, exchange, routing_key, payload, body, headers, type,
                                  correlation_id, status, last_error, ordering_key, attempts, available_at)
SELECT id, message_id, handler, exchange, routing_key, CASE WHEN has_payload THEN payload END, body, headers::jsonb,
       type, correlation_id, status, last_error, ordering_key, CASE WHEN leased THEN 1 ELSE 0 END,
       CASE WHEN leased THEN ${names.now} + make_interval(secs => $13::float8 / 1000)
            ${wait}ELSE ${names.now} END
FROM input
ORDER BY message_id, handler
ON CONFLICT (message_id, handler) DO NOTHING
RETURNING id::text AS id, ${status} AS status, CASE WHEN attempts > 0 THEN message_id END AS leased_message_id,
          CASE WHEN attempts > 0 THEN handler END AS leased_handler,
          CASE WHEN attempts > 0 THEN received_at END AS leased_received_at`;
}

/** A row the INSERT stored; `leased_*` are set for the rows it leased (claimed) to this process's processor. */
export interface InsertedInboxRow {
  id: string;
  /** 'waiting': a row under the queue's placeholder handler (not the column's value, which is 'pending'). */
  status: "pending" | "dead" | "waiting";
  leased_message_id: string | null;
  leased_handler: string | null;
  leased_received_at: Date | null;
}

/** The parameters of insertInboxMessagesSql; `leaseMs` is the lease of the rows marked `leased`. */
export function insertInboxParams(rows: readonly InboxRowInput[], leaseMs = 0): unknown[] {
  // One pass filling one array per column, in the statement's parameter order ($5, the payloads, is joined below):
  // a dozen rows.map() calls cost more per delivery on the receive path.
  const columns: unknown[][] = Array.from({ length: 12 }, () => new Array(rows.length));
  const leased = new Array<boolean>(rows.length);
  const hasPayload = new Array<boolean>(rows.length);
  rows.forEach((r, i) => {
    const values = [r.messageId, r.handler, r.exchange, r.routingKey, r.payload ?? "null", r.body, r.headers, r.type];
    values.push(r.correlationId, r.status, r.lastError, r.key);
    for (let c = 0; c < 12; c++) columns[c]![i] = values[c];
    leased[i] = r.leased;
    hasPayload[i] = r.payload !== null;
  });
  return [...columns.slice(0, 4), `[${columns[4]!.join(",")}]`, ...columns.slice(5), leaseMs, leased, hasPayload];
}
