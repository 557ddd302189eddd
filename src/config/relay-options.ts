// Options of `createRelay()`: typed, documented, defaulted and validated in one place.
import { OutboxConfigError } from "../message/errors.js";
import { defaultOutboxQueue, type OutboxQueue } from "../queue/outbox-queue.js";
import type { ExchangeSpec, Transport } from "../transport/transport.js";

/** Where the relay reports what it does. Each method must not throw (what it throws is swallowed). */
export interface RelayLogger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export interface RelayOptions {
  /** PostgreSQL connection string of the database that holds the outbox table. */
  databaseUrl: string;
  /** RabbitMQ URL (amqp:// or amqps://). Required unless `transport` is given. */
  amqpUrl?: string;
  /** Another transport (e.g. the in-memory one for tests and demos) instead of amqplib. */
  transport?: Transport;
  /**
   * Exchanges to assert at start-up (and after every reconnect).
   * @defaultValue []
   */
  exchanges?: ExchangeSpec[];
  /**
   * The in-process queue to drain; `false` for none (a relay in its own process).
   * @defaultValue the process-wide `defaultOutboxQueue`, which `outbox()` also uses by default
   */
  queue?: OutboxQueue | false;
  /**
   * LISTEN for the writers' NOTIFY, to publish at once what other processes commit.
   * @defaultValue true
   */
  listen?: boolean;
  /**
   * Most messages per claim-publish-commit transaction.
   * @defaultValue 500
   */
  batchSize?: number;
  /**
   * Batches in flight at once for LISTEN wake-ups and backlog drains (each holds one database connection).
   * @defaultValue 2
   */
  concurrency?: number;
  /**
   * Longest wait for the broker's confirms of one batch; past it the batch rolls back and is retried. The batch's
   * database transaction is never open longer than this (plus a few seconds of PostgreSQL's own timeouts).
   * @defaultValue 10_000
   */
  publishTimeoutMs?: number;
  /**
   * How often the sweeper looks for messages the fast path missed.
   * @defaultValue 1_000
   */
  sweepIntervalMs?: number;
  /**
   * The sweeper leaves messages younger than this to the fast path.
   * @defaultValue 5_000
   */
  sweepMinAgeMs?: number;
  /**
   * Publish attempts (refused by the broker: unroutable or nacked) before a message moves to the dead letters.
   * Connection losses and timeouts do not count: they are not the message's fault.
   * @defaultValue 10
   */
  maxAttempts?: number;
  /**
   * First retry delay; doubles with each attempt, with jitter, up to `retryMaxDelayMs`.
   * @defaultValue 1_000
   */
  retryBaseDelayMs?: number;
  /** @defaultValue 300_000 (5 minutes) */
  retryMaxDelayMs?: number;
  /**
   * How long `stop()` lets the batches in flight finish before it aborts them (they roll back). `stop()` resolves at
   * most 5 s later even when a connection hangs (a broker or database that stopped answering).
   * @defaultValue 10_000
   */
  stopTimeoutMs?: number;
  /** @defaultValue a logger that writes nothing */
  logger?: RelayLogger;
}

export interface ResolvedRelayOptions {
  databaseUrl: string;
  amqpUrl: string | undefined;
  transport: Transport | undefined;
  exchanges: ExchangeSpec[];
  queue: OutboxQueue | undefined;
  listen: boolean;
  batchSize: number;
  concurrency: number;
  publishTimeoutMs: number;
  sweepIntervalMs: number;
  sweepMinAgeMs: number;
  maxAttempts: number;
  retryBaseDelayMs: number;
  retryMaxDelayMs: number;
  stopTimeoutMs: number;
  logger: RelayLogger;
}

const silent: RelayLogger = { info() {}, warn() {}, error() {} };

function integer(value: unknown, name: string, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min) {
    throw new OutboxConfigError(`Expected \`${name}\` to be an integer >= ${min}, got ${JSON.stringify(value)}.`);
  }
  return value;
}

function url(value: unknown, name: string, protocols: string[]): string {
  const shown = typeof value === "string" ? value.replace(/\/\/[^@/]*@/, "//***@") : String(value);
  if (typeof value !== "string") throw new OutboxConfigError(`Expected \`${name}\` to be a URL string, got ${shown}.`);
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new OutboxConfigError(`Expected \`${name}\` to be a URL (${protocols.join(" or ")}), got ${shown}.`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new OutboxConfigError(`Expected \`${name}\` to be a ${protocols.join(" or ")} URL, got ${shown}.`);
  }
  return value;
}

export function resolveRelayOptions(options: RelayOptions): ResolvedRelayOptions {
  if (typeof options !== "object" || options === null) {
    throw new OutboxConfigError("Expected createRelay() options to be an object.");
  }
  const databaseUrl = url(options.databaseUrl, "databaseUrl", ["postgres:", "postgresql:"]);
  if (options.transport === undefined && options.amqpUrl === undefined) {
    throw new OutboxConfigError("Expected `amqpUrl` (RabbitMQ URL) or `transport`; neither was given.");
  }
  const amqpUrl = options.amqpUrl === undefined ? undefined : url(options.amqpUrl, "amqpUrl", ["amqp:", "amqps:"]);
  const exchanges = options.exchanges ?? [];
  if (!Array.isArray(exchanges)) throw new OutboxConfigError("Expected `exchanges` to be an array.");
  for (const e of exchanges) {
    if (
      typeof e?.name !== "string" ||
      e.name.length === 0 ||
      !["direct", "topic", "fanout", "headers"].includes(e.type)
    ) {
      throw new OutboxConfigError(
        `Expected each of \`exchanges\` to be { name, type: "direct" | "topic" | "fanout" | "headers" }, got ${JSON.stringify(e)}.`,
      );
    }
  }
  const publishTimeoutMs = integer(options.publishTimeoutMs, "publishTimeoutMs", 10_000, 100);
  const retryBaseDelayMs = integer(options.retryBaseDelayMs, "retryBaseDelayMs", 1_000, 0);
  const retryMaxDelayMs = integer(options.retryMaxDelayMs, "retryMaxDelayMs", 300_000, 0);
  if (retryMaxDelayMs < retryBaseDelayMs) {
    throw new OutboxConfigError(
      `Expected \`retryMaxDelayMs\` (${retryMaxDelayMs}) to be >= \`retryBaseDelayMs\` (${retryBaseDelayMs}).`,
    );
  }
  return {
    databaseUrl,
    amqpUrl,
    transport: options.transport,
    exchanges,
    queue: options.queue === false ? undefined : (options.queue ?? defaultOutboxQueue),
    listen: options.listen ?? true,
    batchSize: integer(options.batchSize, "batchSize", 500, 1),
    concurrency: integer(options.concurrency, "concurrency", 2, 1),
    publishTimeoutMs,
    sweepIntervalMs: integer(options.sweepIntervalMs, "sweepIntervalMs", 1_000, 10),
    sweepMinAgeMs: integer(options.sweepMinAgeMs, "sweepMinAgeMs", 5_000, 0),
    maxAttempts: integer(options.maxAttempts, "maxAttempts", 10, 1),
    retryBaseDelayMs,
    retryMaxDelayMs,
    stopTimeoutMs: integer(options.stopTimeoutMs, "stopTimeoutMs", 10_000, 0),
    logger: options.logger ?? silent,
  };
}
