/**
 * The relay's or the inbox's "now" in epoch milliseconds, for deciding whether a message with an expiry has expired.
 * Asked of the database, not of the process: the clock every relay and inbox already decides "due" on (names.now:
 * PostgreSQL's now(), or the test kit's clock, which a test moves instead of waiting). Run only for batches or rows
 * that carry an expiry, so messages without one cost nothing more. Inside the relay's claiming transaction now() is
 * that transaction's start: a message is judged as of its claim.
 */
export function nowMsSql(now: string): string {
  return `SELECT (extract(epoch FROM ${now}) * 1000)::float8 AS now_ms`;
}
