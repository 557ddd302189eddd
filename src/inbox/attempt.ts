// One attempt of one claimed inbox row (the counterpart of relay/batch.ts): the handler and the row's completion in
// one interactive transaction of the user's Prisma client, so that a handler's effect commits exactly once per
// (message, handler):
//   claimed (attempts + 1, leased) -> handler + complete, in one transaction -> COMMIT -> "handled"
//   the handler throws or runs past handlerTimeoutMs -> ROLLBACK; the attempt stays counted, the error is stored and
//     the row is due again after a backoff ("retry-scheduled"), or dead after `maxAttempts` ("dead-lettered"; with
//     the handler's `dead` hook in the transaction that marks it)
//   the handler threw a NonRetryableError, or `isRetryable` said no -> dead at once ("dead-lettered", reason
//     "non-retryable"; the `dead` hook runs as for a last attempt); the row's `x-expires-at` passed before the
//     claim -> dead without running the handler (reason "expired"; give-up.ts)
//   the lease ran out meanwhile (another processor took the row over) -> nothing recorded: the new holder's attempt
//     counts
// The scheduling around it (claims, slots, the claim-ahead buffer) is the processor's (processor.ts).
import type pg from "pg";
import {
  coerceError,
  type DeadLetterReason,
  InboxHandlerTimeoutError,
  LeaseLostError,
  OutboxSchemaError,
} from "../errors.js";
import { validatePayload } from "../message/contract.js";
import { backoffDelay, sleep } from "../runtime/backoff.js";
import type { ClaimedInboxRow } from "../sql/inbox/claim.js";
import { completeInboxMessageSql } from "../sql/inbox/complete.js";
import { failInboxMessageSql } from "../sql/inbox/fail.js";
import type { InboxNames } from "../sql/names.js";
import { nowMsSql } from "../sql/now.js";
import { withConsumerSpan } from "../telemetry/tracing.js";
import { cloudEventOf } from "./cloud-event.js";
import type { InboxEvent } from "./events.js";
import { deadReason, expiredError } from "./give-up.js";
import type { ResolvedInboxOptions } from "./options.js";
import type { HandlerRegistry } from "./registry.js";
import type { InboxMessage } from "./types.js";

/** The Prisma client, as far as the processor uses it. */
export interface PrismaLike {
  $transaction(fn: (tx: any) => Promise<unknown>, options?: { maxWait?: number; timeout?: number }): Promise<unknown>;
}

/** Tries to record a failed attempt before giving up (the row then comes back when its lease runs out). */
const RECORD_ATTEMPTS = 3;

/** Runs attempts of claimed rows; one per processor, shared by its slots. */
export class InboxAttempts {
  readonly #pool: pg.Pool;
  readonly #prisma: PrismaLike;
  readonly #registry: HandlerRegistry;
  readonly #options: ResolvedInboxOptions;
  readonly #emit: (event: InboxEvent) => void;
  /** Built once: an attempt runs them on every row. */
  readonly #sql: { complete: string; fail: string; now: string };

  constructor(
    pool: pg.Pool,
    prisma: PrismaLike,
    registry: HandlerRegistry,
    options: ResolvedInboxOptions,
    names: InboxNames,
    emit: (event: InboxEvent) => void,
  ) {
    this.#pool = pool;
    this.#prisma = prisma;
    this.#registry = registry;
    this.#options = options;
    this.#emit = emit;
    this.#sql = {
      complete: completeInboxMessageSql(names),
      fail: failInboxMessageSql(names),
      now: nowMsSql(names.now),
    };
  }

  /** One attempt of a claimed row; `controller` aborts the handler (its timeout, or stop() past its deadline). */
  run(row: ClaimedInboxRow, controller: AbortController): Promise<void> {
    return this.#handle(row, controller);
  }

  async #handle(row: ClaimedInboxRow, controller: AbortController): Promise<void> {
    const { maxAttempts, handlerTimeoutMs, logger } = this.#options;
    const messageId = row.message_id ?? "";
    const handler = this.#registry.byName(row.handler);
    const message = inboxMessageOf(row);
    if (row.attempts > maxAttempts) {
      // Every allowed attempt started and none finished: the processor died or timed out inside the handler each time.
      const error = new Error(
        `${maxAttempts} attempts started and none finished (a crash or timeout inside the handler?)`,
      );
      return this.#fail(row, message, error, "attempts");
    }
    // Expired (or a malformed expiry): dead without running the handler; its `dead` hook runs (give-up.ts).
    const expired = await expiredError(this.#pool, this.#sql.now, row.headers);
    if (expired) return this.#fail(row, message, expired.error, expired.reason);
    if (!handler) {
      return this.#fail(
        row,
        message,
        new Error(`no handler named "${row.handler}" is registered in this inbox`),
        undefined,
      );
    }
    if (handler.contract !== undefined) {
      // Dead at once with the schema's issues, the handler never run: no retry makes the payload valid. A schema that
      // throws (not an issue: a bug, or an async check that failed) is an attempt that failed.
      try {
        message.payload = await validatePayload(handler.contract, row.payload, "received");
      } catch (thrown) {
        const reason =
          thrown instanceof OutboxSchemaError ? "non-retryable" : row.attempts >= maxAttempts ? "attempts" : undefined;
        return this.#fail(row, message, coerceError(thrown), reason);
      }
    }
    const started = performance.now();
    const timer = setTimeout(
      () => controller.abort(new InboxHandlerTimeoutError(`handler "${row.handler}" ran past ${handlerTimeoutMs} ms`)),
      handlerTimeoutMs,
    );
    try {
      // In a CONSUMER span whose parent is the writer's trace context, stored with the message (telemetry/tracing.ts).
      await withConsumerSpan({ ...message, headers: row.headers }, () =>
        this.#prisma.$transaction(
          async (tx) => {
            await untilAborted(handler.handle(message, tx, { signal: controller.signal }), controller.signal);
            const count = await (
              tx as { $executeRawUnsafe(sql: string, ...v: unknown[]): Promise<number> }
            ).$executeRawUnsafe(this.#sql.complete, row.id, row.attempts);
            if (count !== 1) throw new LeaseLostError(`inbox row ${row.id} was taken over by another processor`);
          },
          { timeout: handlerTimeoutMs + 5_000 },
        ),
      );
      this.#emit({
        type: "handled",
        messageId,
        handler: row.handler,
        attempts: row.attempts,
        attempt: row.attempts,
        durationMs: performance.now() - started,
      });
    } catch (thrown) {
      if (thrown instanceof LeaseLostError) {
        logger.warn("inbox row taken over by another processor (its lease ran out): this attempt rolled back", {
          id: row.id,
          messageId,
          handler: row.handler,
          attempts: row.attempts,
        });
        return;
      }
      const error = coerceError(thrown);
      await this.#fail(row, message, error, deadReason(error, message, this.#options));
    } finally {
      clearTimeout(timer);
    }
  }

  /** Records a failed attempt: dead when `reason` is given, else retried after a backoff. */
  async #fail(row: ClaimedInboxRow, message: InboxMessage, error: Error, reason: DeadLetterReason | undefined) {
    const { retryBaseDelayMs, retryMaxDelayMs, logger } = this.#options;
    const dead = reason !== undefined;
    const onDead = dead ? this.#registry.byName(row.handler)?.dead : undefined;
    const delayMs = dead ? 0 : backoffDelay(row.attempts, retryBaseDelayMs, retryMaxDelayMs);
    const text = `${error.name}: ${error.message}`.slice(0, 8_000); // the name says why: MessageExpiredError...
    const params = [row.id, row.attempts, delayMs, text, dead];
    // Retried a few times: a handler that failed because the database connection was lost often meets the same loss
    // here, and an outcome left unrecorded keeps the row leased (handlerTimeoutMs + leaseMarginMs) before its next attempt.
    // Repeating is harmless: the guard on attempts makes a second run match nothing or write the same values.
    let recorded: number;
    for (let attempt = 1; ; attempt++) {
      try {
        recorded = onDead
          ? await this.#recordDead(params, (tx) => onDead(message, tx, error))
          : ((await this.#pool.query(this.#sql.fail, params)).rowCount ?? 0);
        break;
      } catch (thrown) {
        if (attempt >= RECORD_ATTEMPTS) throw thrown;
        await sleep(backoffDelay(attempt, 50, 500));
      }
    }
    if (recorded === 0) return; // taken over meanwhile
    const messageId = row.message_id ?? "";
    if (dead) {
      logger.error("message dead-lettered", {
        messageId,
        handler: row.handler,
        attempts: row.attempts,
        reason,
        error: error.message,
      });
      this.#emit({ type: "dead-lettered", messageId, handler: row.handler, attempts: row.attempts, error, reason });
      // The deprecated name, right after, for the listeners written against it.
      this.#emit({
        type: "dead",
        messageId,
        handler: row.handler,
        attempts: row.attempts,
        attempt: row.attempts,
        error,
      });
    } else {
      logger.warn("handler failed; retry scheduled", {
        messageId,
        handler: row.handler,
        attempts: row.attempts,
        delayMs,
        error: error.message,
      });
      this.#emit({
        type: "retry-scheduled",
        messageId,
        handler: row.handler,
        attempts: row.attempts,
        attempt: row.attempts,
        delayMs,
        error,
      });
    }
  }

  /**
   * The dead transition of a handler with a `dead` hook: the mark and the hook's writes in one transaction of the
   * user's client (request-reply's `failed` status commits with it, or neither does). Resolves with the rows marked.
   */
  async #recordDead(params: unknown[], hook: (tx: unknown) => Promise<unknown>): Promise<number> {
    let count = 0;
    await this.#prisma.$transaction(async (tx) => {
      count = await (tx as { $executeRawUnsafe(sql: string, ...v: unknown[]): Promise<number> }).$executeRawUnsafe(
        this.#sql.fail,
        ...params,
      );
      if (count === 1) await hook(tx);
    });
    return count;
  }
}

/** A claimed row as its handler receives it (one attempt's message, or one message of a batch). */
export function inboxMessageOf(row: ClaimedInboxRow): InboxMessage {
  return {
    id: row.id,
    messageId: row.message_id ?? "",
    handler: row.handler,
    exchange: row.exchange,
    routingKey: row.routing_key,
    payload: row.payload,
    headers: (row.headers ?? {}) as Record<string, unknown>,
    type: row.type ?? undefined,
    correlationId: row.correlation_id ?? undefined,
    attempt: row.attempts,
    receivedAt: row.received_at,
    key: row.ordering_key ?? undefined,
    cloudEvent: cloudEventOf(row.headers),
  };
}

/** The handler's promise, or a rejection as soon as the signal aborts (a handler that never settles is let go). */
export function untilAborted(work: Promise<unknown>, signal: AbortSignal): Promise<unknown> {
  work.catch(() => {}); // settled later, after the abort: its outcome no longer matters
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}
