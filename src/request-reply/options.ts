// Options of `requests()`: typed, documented, defaulted and validated in one place.

import {
  durationOption,
  expectExchangeName,
  integerOption,
  rejectUnknownKeys,
  schemaOption,
  stringOption,
} from "../config/validate.js";
import { OutboxConfigError } from "../errors.js";
import { type Logger, loggerOption } from "../runtime/logger.js";

export interface RequestsOptions<TClient> {
  /**
   * Your Prisma client, extended with `outbox()`: `submit` writes the outbox message that starts the work with
   * `tx.$enqueue`, and the handlers' status writes use it.
   */
  prisma: TClient;
  /** The exchange the messages that start the work are published to. */
  exchange: string;
  /**
   * The routing key of a request of type `t` is `${routingKeyPrefix}${t}`: bind the workers' inbox queue to it
   * (`handler()` takes exactly that key).
   * @defaultValue "request."
   */
  routingKeyPrefix?: string;
  /**
   * How long a finished request (succeeded, failed, cancelled) is kept for its pollers, and its idempotency key with
   * it; then it is deleted, in batches, by `purgeExpired()` / `startRetention()`.
   * @defaultValue 86_400_000 (24 hours)
   */
  retentionMs?: number;
  /** How often `startRetention()` deletes expired requests. @defaultValue 60_000 */
  purgeIntervalMs?: number;
  /** Requests deleted per statement. @defaultValue 500 */
  purgeBatchSize?: number;
  /**
   * While a work runs, how often its handler reads the request's status to notice a cancellation made in another
   * process (progress reports notice it too, at once). @defaultValue 500
   */
  cancelCheckIntervalMs?: number;
  /**
   * The PostgreSQL schema of the request table (`outbox_request`): where Prisma created it (the `?schema=` of the
   * migration's URL, or `@@schema`). The web side and the workers must be given the same.
   * @defaultValue "public"
   */
  schema?: string;
  /** @defaultValue warnings and errors on stderr */
  logger?: Logger;
}

export interface ResolvedRequestsOptions {
  exchange: string;
  routingKeyPrefix: string;
  retentionMs: number;
  purgeIntervalMs: number;
  purgeBatchSize: number;
  cancelCheckIntervalMs: number;
  schema: string;
  logger: Logger;
}

/** A request type: words of letters, digits, `_` and `-` separated by dots, so it is a plain routing key suffix. */
export const REQUEST_TYPE = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

/** Every option of requests(): any other key is refused. */
const REQUESTS_OPTION_KEYS = {
  prisma: true,
  exchange: true,
  routingKeyPrefix: true,
  retentionMs: true,
  purgeIntervalMs: true,
  purgeBatchSize: true,
  cancelCheckIntervalMs: true,
  logger: true,
  schema: true,
} satisfies Record<keyof RequestsOptions<unknown>, true>;

export function resolveRequestsOptions(options: RequestsOptions<unknown>): ResolvedRequestsOptions {
  if (typeof options !== "object" || options === null) {
    throw new OutboxConfigError("Expected requests() options to be an object.");
  }
  rejectUnknownKeys("requests()", options, Object.keys(REQUESTS_OPTION_KEYS));
  const prisma = options.prisma as Record<string, unknown> | undefined;
  if (
    typeof prisma?.$transaction !== "function" ||
    typeof prisma.$executeRawUnsafe !== "function" ||
    typeof prisma.$queryRawUnsafe !== "function"
  ) {
    throw new OutboxConfigError("Expected `prisma` to be your Prisma client, extended with outbox().");
  }
  if (typeof prisma.$enqueue !== "function") {
    throw new OutboxConfigError(
      "Expected `prisma` to be extended with outbox(): submit writes the message that starts the work with $enqueue.",
    );
  }
  // 200 bytes leave room for the request type in a routing key of at most 255.
  const routingKeyPrefix = stringOption("routingKeyPrefix", options.routingKeyPrefix, "request.", { maxBytes: 200 });
  return {
    exchange: expectExchangeName("exchange", options.exchange),
    routingKeyPrefix,
    retentionMs: integerOption("retentionMs", options.retentionMs, 24 * 3_600_000, 0),
    purgeIntervalMs: durationOption("purgeIntervalMs", options.purgeIntervalMs, 60_000, 10),
    purgeBatchSize: integerOption("purgeBatchSize", options.purgeBatchSize, 500, 1, 100_000),
    cancelCheckIntervalMs: durationOption("cancelCheckIntervalMs", options.cancelCheckIntervalMs, 500, 10),
    schema: schemaOption("schema", options.schema),
    logger: loggerOption(options.logger, "requests"),
  };
}
