// Errors a user may catch, by name. Every message says what to fix.
//
// One rule for what start() (and a constructor) throws: OutboxConfigError when a person must change something (an
// option, a URL's user or password, a missing table or schema); OutboxStartError when waiting may fix it (a database
// or broker that is down, starting, or refusing connections for now). The CLI exits 2 for the first, 1 for the second.

import type { StandardSchemaV1 } from "./message/standard-schema.js";

/** Base class of every error this library throws on purpose. */
export class OutboxError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A message given to the outbox is invalid (bad exchange, routing key, id, headers, or options of one message). */
export class OutboxMessageError extends OutboxError {}

/** A payload cannot be stored as JSON faithfully, or is larger than the configured limit. */
export class OutboxPayloadError extends OutboxMessageError {
  /** Where in the payload the problem is, e.g. `$.items[2].price`. */
  readonly path: string;
  constructor(message: string, path: string, options?: { cause?: unknown }) {
    super(message, options);
    this.path = path;
  }
}

/**
 * A payload does not match its message contract's schema (`defineMessage`): thrown by `$enqueue(contract, payload)`
 * before anything is written; a received one is dead with this error, its handler not run.
 */
export class OutboxSchemaError extends OutboxMessageError {
  /** The contract's routing key. */
  readonly routingKey: string;
  /** The schema's issues, as its library gave them (Standard Schema: `message` and `path`). */
  readonly issues: ReadonlyArray<StandardSchemaV1.Issue>;
  constructor(message: string, routingKey: string, issues: ReadonlyArray<StandardSchemaV1.Issue>) {
    super(message);
    this.routingKey = routingKey;
    this.issues = issues;
  }
}

/**
 * A person must change something: options of `outbox()`, `createRelay()`, `inbox()`, `requests()`, a transport or the
 * CLI are invalid, or start() found a credential refused, a table or schema missing. Retrying as is fails the same way.
 */
export class OutboxConfigError extends OutboxError {}

/**
 * The inbox's partitioned queue (`queue.partitions`) cannot start as declared: the broker has another partition count
 * for the queue (keys would move between partitions, docs/scaling.md#changing-the-partition-count), or RabbitMQ lacks
 * the consistent-hash exchange plugin. A person must change something.
 */
export class InboxPartitionsError extends OutboxConfigError {}

/** A declared event was written inside a batch `$transaction([...])`, where the outbox cannot take part. */
export class OutboxBatchTransactionError extends OutboxError {}

/**
 * Why a whole batch failed, when it did (transports set it; the relay decides on it):
 * - `channel-closed`: the broker closed the channel (connection alive) because of one message of the batch, such as
 *   403 (no write permission on its exchange) or 406 (larger than the broker's max_message_size). Retrying the same
 *   batch fails the same way; the relay publishes its parts to find the culprit.
 * - `timeout`: not every confirm arrived in time (a slow broker, a large batch, or a silent network).
 * - `connection-lost`, `closed`, `aborted`: not the messages' fault; the batch is retried as it was.
 */
export type BatchFailureReason = "channel-closed" | "timeout" | "connection-lost" | "closed" | "aborted";

/** Publishing to the broker failed (for one message: returned as unroutable, nacked; or for a whole batch). */
export class OutboxPublishError extends OutboxError {
  /** Set when the whole batch failed, to say why. */
  readonly reason: BatchFailureReason | undefined;
  constructor(message: string, options?: { cause?: unknown; reason?: BatchFailureReason }) {
    super(message, options);
    this.reason = options?.reason;
  }
}

/**
 * The broker nacked one message: a queue it was routed to refused it (a full queue with `x-overflow: reject-publish`
 * or `reject-publish-dlx`, or a queue that is down). RabbitMQ's nack does not say which queue, nor whether others took
 * it: the other queues bound to its exchange may already have it, so each new attempt is a duplicate for them (a
 * partial delivery). The relay retries it like any refused message, then dead-letters it with this message.
 */
export class OutboxNackError extends OutboxPublishError {
  readonly messageId: string;
  constructor(messageId: string, exchange: string, routingKey: string) {
    super(
      `broker nacked message ${messageId} (exchange ${exchange} routing key ${routingKey}): a queue it routes to ` +
        "refused it (full with x-overflow reject-publish, or down); RabbitMQ does not say which, and other queues " +
        "bound to the exchange may already have it (each new attempt is a duplicate for them)",
    );
    this.messageId = messageId;
  }
}

/**
 * start() failed on something waiting may fix: the database or broker is down, starting, or did not answer. The message
 * says which and why; starting again later may succeed.
 */
export class OutboxStartError extends OutboxError {
  /** PostgreSQL's SQLSTATE, or the socket's error code (ECONNREFUSED...), when there is one. */
  readonly code: string | undefined;
  constructor(message: string, options?: { cause?: unknown; code?: string | undefined }) {
    super(message, options);
    this.code = options?.code;
  }
}

/** A handler of the inbox ran past `handlerTimeoutMs`. */
export class InboxHandlerTimeoutError extends OutboxError {}

/** @internal The inbox row's lease ran out and another processor took it over: this attempt's writes were rolled back. */
export class LeaseLostError extends OutboxError {}

/** @internal A whole batch timed out and rolled back: the relay lowers its batch limit. */
export class BatchTimeoutError extends OutboxPublishError {
  readonly claimed: number;
  constructor(error: Error, claimed: number) {
    super(error.message, { cause: error, reason: "timeout" });
    this.claimed = claimed;
  }
}

// Request-reply: every message says what happened and what to do.

/**
 * `submit` got an idempotency key that an earlier request of the same type holds with a different input. HTTP: 422
 * (or 409). Use a new key for a new request; repeat the same input to get the earlier request back.
 */
export class RequestIdempotencyError extends OutboxError {
  /** The request that holds the key. */
  readonly requestId: string;
  readonly idempotencyKey: string;
  constructor(message: string, requestId: string, idempotencyKey: string) {
    super(message);
    this.requestId = requestId;
    this.idempotencyKey = idempotencyKey;
  }
}

/** Invalid arguments to `submit`, `status`, `cancel` or a progress report (type, input, key, percent). */
export class RequestInputError extends OutboxError {}

/**
 * The reason of a work's aborted signal (and what its progress report throws) when the request was cancelled, or is
 * otherwise no longer running, while the work ran. Its writes roll back.
 */
export class RequestCancelledError extends OutboxError {
  readonly requestId: string;
  constructor(message: string, requestId: string) {
    super(message);
    this.requestId = requestId;
  }
}

/** Turns anything thrown into an Error, keeping the original as `cause` when it was not one. */
export function coerceError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  return new Error(typeof thrown === "string" ? thrown : `Non-error thrown: ${String(thrown)}`, { cause: thrown });
}

/**
 * An expectation of the test kit (`prisma-outbox/testing`) failed, or what it waited for did not happen in time. The
 * message lists what was expected and what happened instead.
 */
export class OutboxExpectationError extends OutboxError {}

/**
 * Throw it from an inbox handler for a message that no retry can fix (a payload your code refuses, a referenced
 * record that will never exist): the message is dead at once, after this attempt, with this error as its last error,
 * and the handler's `dead` hook runs as for a last attempt. Its subclasses and an error whose `cause` chain holds one
 * count too. The inbox option `isRetryable(error, message)` classifies any other error the same way (docs/inbox.md).
 */
export class NonRetryableError extends OutboxError {}

/**
 * The message's expiry (`expiresAt` / `ttlMs` when written; the header `x-expires-at` on the wire) passed before it
 * was published (the relay) or handled (the inbox): it went to the dead letters with this error, unpublished or
 * unhandled (docs/writing-messages.md#expiry).
 */
export class MessageExpiredError extends OutboxError {
  /** When the message expired (ms since the epoch). */
  readonly expiresAt: number;
  constructor(message: string, expiresAt: number) {
    super(message);
    this.expiresAt = expiresAt;
  }
}

/**
 * A delivery no handler took within the inbox's `unhandledGraceMs`: it waited (no attempt spent) for an inbox with a
 * handler for it, and none came (docs/inbox.md#rolling-deploys). The error of its `dead-lettered` event.
 */
export class InboxUnhandledError extends OutboxError {
  /** The grace it waited, in ms. */
  readonly graceMs: number;
  constructor(message: string, graceMs: number) {
    super(message);
    this.graceMs = graceMs;
  }
}

/**
 * Why a message went to the dead letters (events `dead-lettered`, metrics attribute `reason`), the same words on the
 * relay and the inbox: its last allowed attempt failed ("attempts"), a failure no retry fixes ("non-retryable": a
 * NonRetryableError, or `isRetryable` said so), its expiry passed ("expired"), or (inbox only) no handler took it
 * within `unhandledGraceMs` ("unhandled").
 */
export type DeadLetterReason = "attempts" | "non-retryable" | "expired" | "unhandled";

/** Whether `error`, or an error in its `cause` chain, is a NonRetryableError (by class, or by name across copies). */
export function isNonRetryable(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 10; e = e.cause, depth++) {
    if (e instanceof NonRetryableError || e.name === "NonRetryableError") return true;
  }
  return false;
}
