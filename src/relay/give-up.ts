// The relay's side of message expiry (message/expiry.ts) and of failures not worth retrying: which claimed rows are
// not published at all, and which refused ones go to the dead letters before their last attempt.
//
// An expired row is not published: RabbitMQ would accept it, and the consumer would only store it dead (or the queue
// drop it), so the relay moves it to the dead letters itself, in the claiming transaction, with a
// MessageExpiredError, without spending a publish. The rows still alive are published with the AMQP `expiration` set
// to the time they have left, judged on the database's clock (sql/now.ts), as of the claim.
import type pg from "pg";
import { type DeadLetterReason, isNonRetryable, MessageExpiredError, OutboxMessageError } from "../errors.js";
import { expiresAtOf } from "../message/expiry.js";
import type { OutboxNames } from "../sql/names.js";
import { nowMsSql } from "../sql/now.js";
import type { ClaimedRow } from "../sql/outbox/claim.js";
import type { OutboundMessage, PublishOutcome } from "../transport/transport.js";
import type { ResolvedRelayOptions } from "./options.js";

/** What `isRetryable` is told of a message the broker refused. */
export interface RefusedMessage {
  messageId: string;
  exchange: string;
  routingKey: string;
  /** Failed publish attempts, this one included. */
  attempts: number;
}

/**
 * For rows with an expiry: the outcome of those that must not be published (expired; or a malformed expiry written
 * by other means than the outbox, which no retry fixes), by index; sets `expiration` on the messages of the others.
 * Empty, with no query, when no row has an expiry.
 */
export async function expiredOutcomes(
  client: pg.PoolClient,
  names: OutboxNames,
  rows: readonly ClaimedRow[],
  messages: OutboundMessage[],
): Promise<Map<number, PublishOutcome>> {
  const outcomes = new Map<number, PublishOutcome>();
  const expiries = rows.map((row) => expiresAtOf(row.headers));
  if (expiries.every((e) => e === undefined)) return outcomes;
  const result = await client.query<{ now_ms: number }>(nowMsSql(names.now));
  const nowMs = result.rows[0]!.now_ms;
  expiries.forEach((expiry, i) => {
    if (expiry === undefined) return;
    if (typeof expiry === "object") {
      outcomes.set(i, { ok: false, error: new OutboxMessageError(`The row cannot be published: ${expiry.problem}.`) });
    } else if (expiry <= nowMs) {
      const at = new Date(expiry).toISOString();
      const error = new MessageExpiredError(`expired at ${at}, before it was published (x-expires-at)`, expiry);
      outcomes.set(i, { ok: false, error });
    } else {
      messages[i]!.expiration = expiry - nowMs;
    }
  });
  return outcomes;
}

/**
 * Why a refused row goes to the dead letters now, or undefined when it is put back for another attempt: expired, a
 * failure the user's `isRetryable` (or a NonRetryableError) says no retry fixes, or its last allowed attempt.
 */
export function deadReason(
  error: Error,
  row: ClaimedRow,
  attempts: number,
  options: ResolvedRelayOptions,
): DeadLetterReason | undefined {
  if (error instanceof MessageExpiredError) return "expired";
  if (error instanceof OutboxMessageError || isNonRetryable(error)) return "non-retryable";
  if (options.isRetryable !== undefined && !retryable(options, error, row, attempts)) return "non-retryable";
  return attempts >= options.maxAttempts ? "attempts" : undefined;
}

/** The user's predicate; one that throws counts as "retry" (the default), logged. */
function retryable(options: ResolvedRelayOptions, error: Error, row: ClaimedRow, attempts: number): boolean {
  try {
    const message = {
      messageId: row.message_id,
      exchange: row.exchange,
      routingKey: row.routing_key,
      attempts,
    };
    return options.isRetryable!(error, message) !== false;
  } catch (thrown) {
    options.logger.warn("isRetryable threw; the message is retried", {
      messageId: row.message_id,
      error: thrown instanceof Error ? thrown.message : String(thrown),
    });
    return true;
  }
}
