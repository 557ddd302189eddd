// Errors of request-reply a user may catch, by name. Every message says what happened and what to do.
import { OutboxError } from "../message/errors.js";

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
