// How a handler handles: one message (`handle`) or a batch (`handleBatch` + `batch`), validated here so that the
// inbox's options module stays about the inbox. A batch handler is also given a `handle` that calls it with a
// one-message array: that is the one-message path every retry, dead transition and lease take-over goes through
// (attempt.ts), so a batch handler's message retried alone runs exactly as a plain handler's would.
import { integerOption, rejectUnknownKeys } from "../config/validate.js";
import { OutboxConfigError } from "../errors.js";

/** A batch handler's batches, validated. */
export interface ResolvedBatch {
  size: number;
  waitMs: number;
}

/**
 * Largest batch: the handler holds its whole batch in one transaction, and the processor claims ahead up to twice
 * `concurrency` batches of rows (processor.ts): beyond a few hundred rows a transaction gains nothing (bench:inbox
 * (c) with batches) and a failure sends more messages through the one-by-one path.
 */
const MAX_BATCH_SIZE = 1_000;

/**
 * Longest wait for a batch to fill. A claimed row is leased, and the processor releases rows buffered longer than a
 * third of `leaseMarginMs` (at least 1,000 ms, so 333 ms): a wait must end well before that.
 */
const MAX_BATCH_WAIT_MS = 300;

/** A handler's handling, validated: `handle` always (a batch handler's is its one-message path). */
export interface ResolvedHandling {
  handle: (...args: any[]) => Promise<unknown>;
  handleBatch: ((...args: any[]) => Promise<unknown>) | undefined;
  batch: ResolvedBatch | undefined;
}

export function resolveHandling(
  name: string,
  spec: { handle?: unknown; handleBatch?: unknown; batch?: unknown },
): ResolvedHandling {
  const { handle, handleBatch, batch } = spec;
  if (handle !== undefined && handleBatch !== undefined) {
    throw new OutboxConfigError(
      `\`handlers.${name}\` has both \`handle\` and \`handleBatch\`: give one (a batch handler also handles retries).`,
    );
  }
  if (handleBatch === undefined) {
    if (typeof handle !== "function") {
      throw new OutboxConfigError(
        `Expected \`handlers.${name}\` to be { on | pattern | type, handle(message, tx) } or { ..., handleBatch(messages, tx) }.`,
      );
    }
    if (batch !== undefined) {
      throw new OutboxConfigError(
        `\`handlers.${name}.batch\` is for a \`handleBatch\` handler; this one has \`handle\`.`,
      );
    }
    return { handle: handle as ResolvedHandling["handle"], handleBatch: undefined, batch: undefined };
  }
  if (typeof handleBatch !== "function") {
    throw new OutboxConfigError(`Expected \`handlers.${name}.handleBatch\` to be a function (messages, tx, context).`);
  }
  const options = batch ?? {};
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new OutboxConfigError(`Expected \`handlers.${name}.batch\` to be { size?, waitMs? }.`);
  }
  rejectUnknownKeys(`handlers.${name}.batch`, options, ["size", "waitMs"]);
  const o = options as { size?: unknown; waitMs?: unknown };
  const fn = handleBatch as (messages: unknown[], ...rest: unknown[]) => Promise<unknown>;
  return {
    handle: (message: unknown, ...rest: unknown[]) => fn([message], ...rest),
    handleBatch: fn,
    batch: {
      size: integerOption(`handlers.${name}.batch.size`, o.size, 50, 1, MAX_BATCH_SIZE),
      waitMs: integerOption(`handlers.${name}.batch.waitMs`, o.waitMs, 20, 0, MAX_BATCH_WAIT_MS),
    },
  };
}
