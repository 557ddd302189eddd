/**
 * Bounds how long a claim's transaction may keep its rows locked, set inside that transaction:
 * - `SET LOCAL`, not startup parameters: transaction-mode poolers (PgBouncer by default, Supabase, Neon, RDS Proxy)
 *   refuse `statement_timeout` and `idle_in_transaction_session_timeout` at connection start-up ("unsupported startup
 *   parameter"), and would not keep a session's settings anyway; and not `SET`, which would outlive the transaction
 *   on a pooled server connection and reach the pooler's next client.
 * - statement_timeout ends a statement that runs too long (a claim stuck behind a lock, a COMMIT that hangs);
 *   idle_in_transaction_session_timeout ends a transaction whose relay went silent between its claim and its COMMIT
 *   (hung, or cut off by the network), so that its rows are back for other relays.
 * - PostgreSQL 13+ applies statement_timeout to each statement of a multi-statement query, so settings sent in the
 *   same round trip as BEGIN and the claim already bound the claim.
 */
export function setLocalTimeouts(timeoutMs: number): string {
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) {
    throw new TypeError(`Expected a positive integer, got ${timeoutMs}`);
  }
  return `SET LOCAL statement_timeout = ${timeoutMs};
SET LOCAL idle_in_transaction_session_timeout = ${timeoutMs};`;
}

/**
 * The claim (BEGIN followed by its statement, see claim.ts) with the transaction's timeouts sent in the same
 * round trip, right after BEGIN.
 */
export function withLocalTimeouts(beginClaim: string, timeoutMs: number): string {
  const begin = /^\s*BEGIN;/.exec(beginClaim);
  if (!begin) throw new TypeError("Expected a claim that starts with BEGIN;");
  return `BEGIN;\n${setLocalTimeouts(timeoutMs)}${beginClaim.slice(begin[0].length)}`;
}
