// What the test kit's harnesses read to know when the relay and the inbox are done: a test awaits these instead of
// sleeping. `now` is the SQL for the current time the relay and the inbox use (PostgreSQL's now(), or the test
// clock's), so "due" means what it means to them.
import type { InboxNames, OutboxNames } from "../names.js";

export interface OutboxStateRow {
  /** Rows the relay would claim now: published (and deleted) once the relay has caught up. */
  due: number;
  /** Rows waiting for a later time (a retry's backoff, or a message written for later). */
  waiting: number;
  next_at: Date | null;
  /** The last error of a waiting row, the most recent first. */
  last_error: string | null;
  dead_letters: number;
}

/**
 * One pass over the outbox and its dead letters; the harness runs it between the relay's batches. A batch in flight
 * still holds its rows (deleted only at COMMIT), so `due` reaches 0 only after the broker has confirmed them.
 */
export function outboxStateSql(names: OutboxNames, now: string): string {
  return `SELECT count(*) FILTER (WHERE available_at <= ${now})::int AS due,
  count(*) FILTER (WHERE available_at > ${now})::int AS waiting,
  min(available_at) FILTER (WHERE available_at > ${now}) AS next_at,
  (SELECT last_error FROM ${names.outboxTable} WHERE last_error IS NOT NULL ORDER BY id DESC LIMIT 1) AS last_error,
  (SELECT count(*)::int FROM ${names.deadLetterTable}) AS dead_letters
FROM ${names.outboxTable}`;
}

export interface InboxStateRow {
  message_id: string;
  handler: string;
  status: "pending" | "processed" | "dead";
  attempts: number;
  last_error: string | null;
  available_at: Date;
  /** The row waits for a later time (a retry's backoff, or a running attempt's lease). */
  later: boolean;
}

/** The rows of the given message ids ($1: text[]), by the inbox's unique key. */
export function inboxStateSql(names: InboxNames, now: string): string {
  return `SELECT message_id, handler, status, attempts, last_error, available_at, available_at > ${now} AS later
FROM ${names.inboxTable} WHERE message_id = ANY($1::text[]) ORDER BY message_id, handler`;
}

/** Whether the inbox holds a message id already ($1): a delivery of it is a duplicate. */
export function inboxHoldsSql(names: InboxNames): string {
  return `SELECT EXISTS (SELECT 1 FROM ${names.inboxTable} WHERE message_id = $1::text) AS held`;
}
