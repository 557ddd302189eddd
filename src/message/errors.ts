// Errors a user may catch, by name. Every message says what to fix.

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

/** Options passed to `outbox()`, `createRelay()` or the worker are invalid. */
export class OutboxConfigError extends OutboxError {}

/** A declared event was written inside a batch `$transaction([...])`, where the outbox cannot take part. */
export class OutboxBatchTransactionError extends OutboxError {}

/** Publishing to the broker failed (for one message: returned as unroutable, nacked; or for a whole batch). */
export class OutboxPublishError extends OutboxError {}

/** Turns anything thrown into an Error, keeping the original as `cause` when it was not one. */
export function coerceError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  return new Error(typeof thrown === "string" ? thrown : `Non-error thrown: ${String(thrown)}`, { cause: thrown });
}
