// When the inbox gives a message up before its last attempt (the counterpart of relay/give-up.ts):
// - expired: the delivery's `x-expires-at` (message/expiry.ts) passed before it was handled. Decided when the row is
//   claimed, not when it is received: a delivery that waited in the table (a backlog, retries backing off, an
//   ordering key held up) past its expiry is caught too, and one test decides both cases. Judged on the inbox's clock
//   (the database's, or the test kit's: sql/now.ts), asked only for rows that carry the header. The receiver has
//   already stored a delivery with a malformed header as invalid (delivery-rows.ts), so a pending row's header is
//   well formed unless written by other means; such a row is dead too, as non-retryable.
// - non-retryable: the handler threw a NonRetryableError (or one is in its `cause` chain), or the `isRetryable`
//   option says no.
import type pg from "pg";
import { type DeadLetterReason, isNonRetryable, MessageExpiredError, NonRetryableError } from "../errors.js";
import { expiresAtOf } from "../message/expiry.js";
import type { ResolvedInboxOptions } from "./options.js";
import type { InboxMessage } from "./types.js";

/** Why a row is not handled at all (expired, or a malformed expiry), or undefined when it may be. */
export async function expiredError(
  pool: pg.Pool,
  nowSql: string,
  headers: unknown,
): Promise<{ error: Error; reason: DeadLetterReason } | undefined> {
  const expiry = expiresAtOf(headers);
  if (expiry === undefined) return undefined;
  if (typeof expiry === "object") return { error: new NonRetryableError(expiry.problem), reason: "non-retryable" };
  const nowMs = (await pool.query<{ now_ms: number }>(nowSql)).rows[0]!.now_ms;
  if (expiry > nowMs) return undefined;
  const at = new Date(expiry).toISOString();
  return {
    error: new MessageExpiredError(`expired at ${at}, before it was handled (x-expires-at)`, expiry),
    reason: "expired",
  };
}

/** Why a failed attempt makes the message dead now, or undefined when it is retried later. */
export function deadReason(
  error: Error,
  message: InboxMessage,
  options: ResolvedInboxOptions,
): DeadLetterReason | undefined {
  if (isNonRetryable(error)) return "non-retryable";
  if (options.isRetryable !== undefined) {
    try {
      if (options.isRetryable(error, message) === false) return "non-retryable";
    } catch (thrown) {
      options.logger.warn("isRetryable threw; the message is retried", {
        messageId: message.messageId,
        handler: message.handler,
        error: thrown instanceof Error ? thrown.message : String(thrown),
      });
    }
  }
  return message.attempt >= options.maxAttempts ? "attempts" : undefined;
}
