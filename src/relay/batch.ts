// One claim-publish-commit cycle: the heart of the relay, shared by the in-process fast path, LISTEN wake-ups and
// the sweeper.
//
//   BEGIN
//   claim = DELETE ... RETURNING (rows locked with SKIP LOCKED: another relay never gets them)
//   publish every row on the confirm channel and wait for every confirm (bounded by publishTimeoutMs)
//     whole batch failed (connection lost, timeout, stop deadline) -> ROLLBACK: every row is back, unchanged
//     some messages refused (unroutable, nacked) -> in the same transaction put them back with one more attempt and
//       a later available_at, or move them to the dead letters after the last attempt
//   COMMIT
//
// A crash anywhere before COMMIT leaves the rows in place, so they are published again later: at-least-once, with
// duplicates only after a crash. COMMIT failing after the confirms has the same effect.
import type pg from "pg";
import type { ResolvedRelayOptions } from "../config/relay-options.js";
import { coerceError } from "../message/errors.js";
import { byClaimOrder, type ClaimedRow } from "../sql/claim-messages.js";
import { deadLetterMessagesSql } from "../sql/dead-letter-messages.js";
import { outboxNames } from "../sql/names.js";
import { requeueMessagesSql } from "../sql/requeue-messages.js";
import { COMMIT_SQL, ROLLBACK_SQL } from "../sql/transaction.js";
import type { OutboundMessage, Transport } from "../transport/transport.js";
import { backoffDelay } from "./backoff.js";
import type { ClaimPath, RelayEvent } from "./events.js";

export interface Claim {
  path: ClaimPath;
  /** BEGIN and the claim, from src/sql/claim-messages.ts. */
  sql: string;
  /** Told the rows as soon as they are claimed (the drain loops keep their place in claim order with it). */
  onClaimed?: (rows: readonly ClaimedRow[]) => void;
}

function toOutbound(row: ClaimedRow): OutboundMessage {
  return {
    messageId: row.message_id,
    exchange: row.exchange,
    routingKey: row.routing_key,
    body: Buffer.from(row.payload),
    headers: row.headers ?? undefined,
    type: row.type ?? undefined,
    correlationId: row.correlation_id ?? undefined,
    createdAt: row.created_at,
  };
}

/** Runs one cycle; resolves with the number of rows claimed. Rejects when the whole batch failed (rolled back). */
export async function runBatch(
  pool: pg.Pool,
  transport: Transport,
  options: ResolvedRelayOptions,
  claim: Claim,
  emit: (event: RelayEvent) => void,
  signal: AbortSignal,
): Promise<number> {
  const client = await pool.connect(); // its 'error' events are absorbed by the pool's owner (relay.ts)
  let broken: Error | undefined;
  let rows: ClaimedRow[] = [];
  try {
    // Two statements, one round trip: pg answers with one result per statement.
    const [, claimed] = (await client.query(claim.sql)) as unknown as [unknown, pg.QueryResult<ClaimedRow>];
    rows = claimed.rows;
    claim.onClaimed?.(rows);
    if (rows.length === 0) {
      await client.query(COMMIT_SQL);
      return 0;
    }
    rows.sort(byClaimOrder);
    const outcomes = await transport.publish(rows.map(toOutbound), { timeoutMs: options.publishTimeoutMs, signal });
    const retry: object[] = [];
    const dead: object[] = [];
    outcomes.forEach((outcome, i) => {
      if (outcome.ok) return;
      const row = rows[i]!;
      const attempts = row.attempts + 1;
      const error = outcome.error;
      const record = { ...row, attempts, last_error: error.message };
      if (attempts >= options.maxAttempts) {
        dead.push(record);
        emit({ type: "dead-lettered", messageId: row.message_id, attempts, error });
      } else {
        const delayMs = backoffDelay(attempts, options.retryBaseDelayMs, options.retryMaxDelayMs);
        retry.push({ ...record, delay_ms: delayMs });
        emit({ type: "retry-scheduled", messageId: row.message_id, attempts, delayMs, error });
      }
    });
    const names = outboxNames(options.schema);
    if (retry.length > 0) await client.query(requeueMessagesSql(names), [JSON.stringify(retry)]);
    if (dead.length > 0) await client.query(deadLetterMessagesSql(names), [JSON.stringify(dead)]);
    await client.query(COMMIT_SQL);
    const published = rows.length - retry.length - dead.length;
    if (published > 0) emit({ type: "published", path: claim.path, count: published });
    return rows.length;
  } catch (error) {
    // Publish failed as a whole, or a query failed (connection lost, timeout): every claimed row comes back.
    const failure = coerceError(error);
    if (rows.length > 0) emit({ type: "batch-failed", path: claim.path, count: rows.length, error: failure });
    try {
      await client.query(ROLLBACK_SQL);
    } catch {
      broken = failure; // the connection is gone: the pool must not hand it out again
    }
    throw failure;
  } finally {
    client.release(broken);
  }
}
