// One claim-publish-commit cycle: the heart of the relay, shared by the in-process fast path, LISTEN wake-ups and
// the sweeper.
//
//   BEGIN; SET LOCAL timeouts (per transaction, so that poolers accept them)
//   claim = DELETE ... RETURNING (rows locked with SKIP LOCKED: another relay never gets them)
//   publish the rows on the confirm channel, in parts of at most batchMaxBytes (one part when they fit; a row that
//   failed before alone), each part waiting for every confirm (bounded by publishTimeoutMs); then per part:
//     confirmed or refused per message (unroutable, nacked) -> its outcome
//     failed as a whole, not the messages' fault (connection lost, transport closed, stop deadline)
//       -> ROLLBACK: every row is back, unchanged, no attempt counted
//     failed as a whole because of one message (the broker closed the channel: 403 on an exchange the user may not
//     write to, 406 above max_message_size) -> isolate the culprit, in this transaction: publish each half of the
//       part alone on the channel (publish-lock.ts: the culprit may have been another batch's), and each half of a
//       half that fails, recursively; a single message that fails alone gets the failure as its outcome
//     timed out -> a part of one message (with the broker connected): that message's outcome; a larger part: ROLLBACK,
//       and the relay halves its batch limit (isolating inside this transaction could hold it for many timeouts)
//   refused messages: put back with one more attempt and a later available_at, or moved to the dead letters after
//     the last attempt, in the same transaction
//   COMMIT
//   then the events (published, retry-scheduled, dead-lettered): listeners hear only what is committed
//
// So no message can fail its batch forever: every whole-batch failure a message can cause ends, within one batch
// (channel closed) or within log2(batchSize) batches (timeouts), with that message's attempt counted and the others
// published. A crash anywhere before COMMIT leaves the rows in place, so they are published again later:
// at-least-once. Messages of a part that failed as a whole may have reached the broker: publishing them again is
// the duplicate at-least-once allows.
import type pg from "pg";
import {
  BatchTimeoutError,
  coerceError,
  type DeadLetterReason,
  OutboxNackError,
  OutboxPublishError,
} from "../errors.js";
import { ORDERING_KEY_HEADER } from "../message/message.js";
import { backoffDelay } from "../runtime/backoff.js";
import { outboxNames } from "../sql/names.js";
import { byClaimOrder, type ClaimedRow } from "../sql/outbox/claim.js";
import { deadLetterMessagesSql } from "../sql/outbox/dead-letter.js";
import { requeueMessagesSql } from "../sql/outbox/requeue.js";
import { COMMIT_SQL, ROLLBACK_SQL } from "../sql/outbox/transaction.js";
import { withLocalTimeouts } from "../sql/outbox/transaction-timeouts.js";
import type { RelayMetrics } from "../telemetry/metrics.js";
import { endSpan, startPublishSpan } from "../telemetry/tracing.js";
import type { OutboundMessage, PublishOutcome, Transport } from "../transport/transport.js";
import { asCloudEvent } from "./cloud-events.js";
import type { ClaimPath, RelayEvent } from "./events.js";
import { deadReason, expiredOutcomes } from "./give-up.js";
import type { ResolvedRelayOptions } from "./options.js";
import type { PublishLock } from "./publish-lock.js";

export interface Claim {
  path: ClaimPath;
  /** BEGIN and the claim, from src/sql/outbox/claim.ts. */
  sql: string;
  /** Told the rows as soon as they are claimed (the drain loops keep their place in claim order with it). */
  onClaimed?: (rows: readonly ClaimedRow[]) => void;
}

/** What the cycle needs from its relay. */
export interface BatchContext {
  pool: pg.Pool;
  transport: Transport;
  options: ResolvedRelayOptions;
  emit: (event: RelayEvent) => void;
  /** Aborts the publish (stop() past its deadline). */
  signal: AbortSignal;
  /** Whether the broker is connected and not blocked: a timeout then is the batch's own. */
  brokerReady: () => boolean;
  /** Shared by the relay's batches: parts published to find a culprit go alone (see publish-lock.ts). */
  lock: PublishLock;
  /** The relay's instruments (no-ops without a MeterProvider). */
  metrics: RelayMetrics;
}

/** How a cycle ended when it did not throw. */
export interface BatchResult {
  claimed: number;
  /** Parts that failed as a whole because of one message and were isolated. */
  isolations: number;
  /** Keyed rows left the table (published or dead-lettered): the next rows of their keys may be claimed now. */
  keysMoved: boolean;
  /**
   * Messages the broker nacked (OutboxNackError): partial deliveries when other queues are bound to their exchange,
   * since those may have taken them. Retried or dead-lettered like any refused message.
   */
  nacked: number;
}

/**
 * The row's headers, with the ordering key's header set from the row's key only: a header of that name written by
 * other means (raw SQL, a row from before the writer refused it) must not pass for an ordering key.
 */
function headersOf(row: ClaimedRow): OutboundMessage["headers"] {
  const headers = row.headers
    ? Object.entries(row.headers).filter(([name]) => name.toLowerCase() !== ORDERING_KEY_HEADER)
    : [];
  if (row.ordering_key !== null) headers.push([ORDERING_KEY_HEADER, row.ordering_key]);
  return headers.length === 0 ? undefined : Object.fromEntries(headers);
}

function toOutbound(row: ClaimedRow): OutboundMessage {
  return {
    messageId: row.message_id,
    exchange: row.exchange,
    routingKey: row.routing_key,
    body: Buffer.from(row.payload),
    headers: headersOf(row),
    type: row.type ?? undefined,
    correlationId: row.correlation_id ?? undefined,
    createdAt: row.created_at,
  };
}

function sizeOf(message: OutboundMessage): number {
  return message.body.length + (message.headers ? JSON.stringify(message.headers).length : 0);
}

/** Consecutive parts of at most `maxBytes` each (a larger message alone), in order. */
export function partsByBytes<T>(items: T[], size: (item: T) => number, maxBytes: number): T[][] {
  const parts: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const n = size(item);
    if (current.length > 0 && bytes + n > maxBytes) {
      parts.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += n;
  }
  if (current.length > 0) parts.push(current);
  return parts;
}

function reasonOf(error: unknown): OutboxPublishError["reason"] {
  return error instanceof OutboxPublishError ? error.reason : undefined;
}

/** Runs one cycle. Rejects when the whole batch failed (rolled back); see the top of this module. */
export async function runBatch(context: BatchContext, claim: Claim): Promise<BatchResult> {
  const { pool, transport, options, signal } = context;
  await context.lock.whenShared();
  const client = await pool.connect(); // its 'error' events are absorbed by the pool's owner (runtime/pg.ts)
  let broken: Error | undefined;
  let rows: ClaimedRow[] = [];
  let isolations = 0;
  const startedAt = performance.now();

  /** One PRODUCER span per publish, linked to the context each message was written in (telemetry/tracing.ts). */
  const publish = async (part: OutboundMessage[]) => {
    const span = startPublishSpan(part);
    if (span === undefined) return transport.publish(part, { timeoutMs: options.publishTimeoutMs, signal });
    try {
      const outcomes = await transport.publish(part, { timeoutMs: options.publishTimeoutMs, signal });
      const refused = outcomes.find((o) => !o.ok);
      endSpan(span, refused?.ok === false ? refused.error : undefined);
      return outcomes;
    } catch (error) {
      endSpan(span, error);
      throw error;
    }
  };
  /** Publishes a part; `alone`: with no other batch on the channel (when looking for a culprit). */
  const publishIsolating = async (part: OutboundMessage[], alone: boolean): Promise<PublishOutcome[]> => {
    try {
      return await (alone ? context.lock.exclusive(() => publish(part)) : context.lock.shared(() => publish(part)));
    } catch (error) {
      const reason = reasonOf(error);
      // A lone message published alone that closes the channel is the culprit; a lone message that times out while the
      // broker is connected has had its chance too.
      const single = part.length === 1;
      if (single && ((alone && reason === "channel-closed") || (reason === "timeout" && context.brokerReady()))) {
        return [{ ok: false, error: coerceError(error) }];
      }
      if (reason !== "channel-closed") throw error;
      isolations++;
      // Alone on the channel from here on (another batch's culprit may have closed it): a lone message again, a larger
      // part in halves (bisecting at once rather than publishing the part again first, which would duplicate its
      // messages before the culprit once more).
      if (single) return publishIsolating(part, true);
      const half = Math.ceil(part.length / 2);
      const first = await publishIsolating(part.slice(0, half), true);
      return [...first, ...(await publishIsolating(part.slice(half), true))];
    }
  };

  try {
    // BEGIN, the timeouts and the claim: one round trip, one result per statement; the claim's is the last.
    const results = (await client.query(
      withLocalTimeouts(claim.sql, options.publishTimeoutMs + 5_000),
    )) as unknown as pg.QueryResult<ClaimedRow>[];
    rows = results[results.length - 1]!.rows;
    claim.onClaimed?.(rows);
    if (rows.length === 0) {
      await client.query(COMMIT_SQL);
      return { claimed: 0, isolations: 0, keysMoved: false, nacked: 0 };
    }
    rows.sort(byClaimOrder);
    const names = outboxNames(options.schema, options.clock);
    const messages = rows.map((row) => asCloudEvent(toOutbound(row), options.cloudEvents));
    const outcomes = new Array<PublishOutcome>(rows.length);
    // Expired rows are not published (expiry.ts): their outcome is set here, and they stay out of every part.
    const expired = await expiredOutcomes(client, names, rows, messages);
    for (const [i, outcome] of expired) outcomes[i] = outcome;
    // Rows that failed before (attempts > 0) go one by one: a culprit found once would otherwise fail, and be looked
    // for again in, every batch it is retried in. The rest in parts bounded in bytes.
    const fresh: number[] = [];
    const parts: number[][] = [];
    rows.forEach((row, i) => {
      if (expired.has(i)) return;
      if (row.attempts > 0) parts.push([i]);
      else fresh.push(i);
    });
    parts.push(...partsByBytes(fresh, (i) => sizeOf(messages[i]!), options.batchMaxBytes));
    for (const part of parts) {
      const partOutcomes = await publishIsolating(
        part.map((i) => messages[i]!),
        false,
      );
      part.forEach((i, j) => {
        outcomes[i] = partOutcomes[j]!;
      });
    }
    const retry: object[] = [];
    const dead: object[] = [];
    const events: RelayEvent[] = [];
    let keysMoved = false;
    let nacked = 0;
    const reasons = new Map<number, DeadLetterReason>();
    outcomes.forEach((outcome, i) => {
      const row = rows[i]!;
      const attempts = row.attempts + 1;
      const reason = outcome.ok ? undefined : deadReason(outcome.error, row, attempts, options);
      if (outcome.ok || reason !== undefined) keysMoved ||= row.ordering_key !== null;
      if (outcome.ok) return;
      const error = outcome.error;
      if (error instanceof OutboxNackError) nacked++;
      // The error's class names the reason in the dead letter (`dead-letters list` shows it): MessageExpiredError...
      const record = {
        ...row,
        attempts,
        last_error: reason === "attempts" ? error.message : `${error.name}: ${error.message}`,
      };
      if (reason !== undefined) {
        reasons.set(i, reason);
        dead.push(record);
        events.push({ type: "dead-lettered", messageId: row.message_id, attempts, error, reason });
      } else {
        const delayMs = backoffDelay(attempts, options.retryBaseDelayMs, options.retryMaxDelayMs);
        retry.push({ ...record, delay_ms: delayMs });
        events.push({ type: "retry-scheduled", messageId: row.message_id, attempts, delayMs, error });
      }
    });
    if (retry.length > 0) await client.query(requeueMessagesSql(names), [JSON.stringify(retry)]);
    if (dead.length > 0) await client.query(deadLetterMessagesSql(names), [JSON.stringify(dead)]);
    await client.query(COMMIT_SQL);
    // Committed: from here on nothing may throw (a throw would make the caller treat the batch as failed).
    const published = rows.length - retry.length - dead.length;
    if (context.metrics.enabled) {
      context.metrics.committed(
        claim.path,
        rows.map((row, i) => ({
          exchange: row.exchange,
          createdAt: row.created_at,
          outcome: outcomes[i]!.ok ? "published" : reasons.has(i) ? "dead" : "retry",
          reason: reasons.get(i),
        })),
        performance.now() - startedAt,
      );
    }
    if (published > 0) events.unshift({ type: "published", path: claim.path, count: published });
    for (const event of events) context.emit(event);
    return { claimed: rows.length, isolations, keysMoved, nacked };
  } catch (error) {
    // Publish failed as a whole, or a query failed (connection lost, timeout): every claimed row comes back.
    const failure = coerceError(error);
    if (rows.length > 0) {
      context.metrics.failed(claim.path, reasonOf(failure) ?? failure.name);
      context.emit({ type: "batch-failed", path: claim.path, count: rows.length, error: failure });
    }
    try {
      await client.query(ROLLBACK_SQL);
    } catch {
      broken = failure; // the connection is gone: the pool must not hand it out again
    }
    if (reasonOf(failure) === "timeout" && rows.length > 1) throw new BatchTimeoutError(failure, rows.length);
    throw failure;
  } finally {
    client.release(broken);
  }
}
