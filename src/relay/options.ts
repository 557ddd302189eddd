// Options of `createRelay()`: typed, documented, defaulted and validated in one place.
import type pg from "pg";
import { resolveDatabase } from "../config/database.js";
import { redactUrl, secretScrubber } from "../config/redact.js";
import {
  booleanOption,
  clockOption,
  durationOption,
  enumOption,
  exchangesOption,
  expectUrl,
  functionOption,
  integerOption,
  rejectUnknownKeys,
  schemaOption,
} from "../config/validate.js";
import { OutboxConfigError } from "../errors.js";
import { defaultOutboxQueue, type OutboxQueue } from "../handoff/outbox-queue.js";
import { type DoctorThresholds, doctorThresholdsOption } from "../ops/doctor-options.js";
import type { Clock } from "../runtime/clock.js";
import { type Logger, loggerOption, scrubbingLogger } from "../runtime/logger.js";
import type { DatabaseSource } from "../runtime/pg.js";
import type { KeyAfterDeadLetter } from "../sql/outbox/claim.js";
import type { ExchangeSpec, Transport } from "../transport/transport.js";
import { type CloudEventsOptions, cloudEventsOption } from "./cloud-events.js";
import type { RefusedMessage } from "./give-up.js";

/** @deprecated Use `Logger`: one logger type for every part. */
export type RelayLogger = Logger;

export interface RelayOptions {
  /**
   * PostgreSQL connection string of the database that holds the outbox table. Give this or `database`. May point at
   * a transaction-mode pooler (PgBouncer, Supabase, Neon...): the relay sets its timeouts per transaction
   * (`SET LOCAL`), not at connection start-up. LISTEN then needs `listenUrl` (or `listen: false`).
   */
  databaseUrl?: string;
  /**
   * Where to LISTEN for the writers' NOTIFY when the database goes through a transaction-mode pooler: a direct
   * connection to the same database (LISTEN needs a session; a pooler hands each transaction to any server
   * connection, and notifications get lost).
   * @defaultValue the relay's database (`databaseUrl` or `database`)
   */
  listenUrl?: string;
  /**
   * Instead of `databaseUrl`:
   * - a pg connection config (`{ host, port, user, password, database, ssl, ... }` or `{ connectionString, ssl }`):
   *   the relay makes its own pool and LISTEN connection from it, with its own application name and timeouts;
   * - or the app's `pg.Pool`: the relay borrows clients for its batches (up to `concurrency` at once, plus the
   *   in-process queue's) and holds one more for LISTEN while it runs (so the pool's `max` must be at least 2 with
   *   `listen`); it never ends the pool. A pool that goes through a transaction-mode pooler cannot LISTEN: use
   *   `listen: false` there.
   */
  database?: pg.PoolConfig | pg.Pool;
  /**
   * The PostgreSQL schema of the outbox tables (`outbox_message`, `outbox_dead_letter`): where Prisma created them
   * (the `?schema=` of the migration's URL, or `@@schema`). Must match the `schema` of `outbox()`.
   * @defaultValue "public"
   */
  schema?: string;
  /** RabbitMQ URL (amqp:// or amqps://). Required unless `transport` is given. */
  amqpUrl?: string;
  /**
   * Another transport (e.g. the in-memory one for tests and demos) instead of amqplib.
   * @defaultValue an `AmqpTransport` on `amqpUrl`
   */
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
   * Most payload bytes (and headers) published as one part of a batch: a batch whose rows hold more is published in
   * parts of at most this many bytes, one after the other, each waiting for its confirms. A single larger message is
   * published alone.
   * @defaultValue 4_194_304 (4 MiB)
   */
  batchMaxBytes?: number;
  /**
   * How often the LISTEN connection proves it still hears notifications (a NOTIFY to itself that must come back
   * within this time, else it reconnects). A connection silently lost (a NAT or a pooler dropped it) would otherwise
   * leave only the sweeper to publish until TCP keepalive gave up, minutes later.
   * @defaultValue 5_000
   */
  listenCheckIntervalMs?: number;
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
   * @defaultValue 5_000, or 0 when there is no fast path (`listen: false` and `queue: false`)
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
  /**
   * Longest retry delay.
   * @defaultValue 300_000 (5 minutes)
   */
  retryMaxDelayMs?: number;
  /**
   * What the later messages of an ordering key do once one of its messages was dead-lettered (docs/ordering.md):
   * - `"stop"`: they wait, while a dead letter of the key with a lower id is in outbox_dead_letter. An operator
   *   moves it back to the outbox (it is then published first, with its id) or deletes it; the key then goes on.
   * - `"continue"`: they are published; the key's order has a gap where the dead letter was.
   * Every relay of one outbox must be given the same.
   * @defaultValue "stop"
   */
  keyAfterDeadLetter?: KeyAfterDeadLetter;
  /**
   * Publish every message as a CloudEvent (AMQP binding, binary content mode: `cloudEvents:` headers from its id,
   * type or routing key, this `source` and its creation time), for consumers in other languages: docs/cloudevents.md.
   * @defaultValue undefined (plain messages)
   */
  cloudEvents?: CloudEventsOptions | false;
  /**
   * Whether a message the broker refused (unroutable, nacked, a channel closed by it alone: 403, 406 above
   * `max_message_size`) is worth another attempt. `false` moves it to the dead letters at once with its error
   * (event `dead-lettered` with reason "non-retryable"), whatever `maxAttempts` says: for failures you know no retry
   * fixes. A predicate that throws counts as `true`. The inbox option of the same name does the same for handlers.
   * @defaultValue every refusal is retried up to `maxAttempts`
   */
  isRetryable?: (error: Error, message: RefusedMessage) => boolean;
  /**
   * How long `stop()` lets the batches in flight finish before it aborts them (they roll back). `stop()` resolves at
   * most 5 s later even when a connection hangs (a broker or database that stopped answering).
   * @defaultValue 10_000
   */
  stopTimeoutMs?: number;
  /**
   * The time the relay's statements compare with (a retry's backoff, a delayed message's `availableAt`): the test
   * kit's `TestClock` (`prisma-outbox/testing`), which a test moves forward instead of waiting; the relay installs it
   * in its database at start and wakes when it moves. Rows are still written on the database's time.
   * @defaultValue PostgreSQL's now()
   */
  clock?: Clock;
  /**
   * How often the relay runs the doctor's cheap checks on its database (the xmin horizon, autovacuum, bloat, schema
   * drift, the outbox backlog: docs/operating.md#doctor) and surfaces what they find: a warning log once per change,
   * `health().warnings` and `health().doctor` (/readyz), and the `prisma_outbox.doctor.warnings` gauge. The first
   * check runs one interval after start. 0 turns the checks off.
   * @defaultValue 60_000
   */
  doctorIntervalMs?: number;
  /**
   * The thresholds of those checks (`doctor()`'s options of the same names, e.g. `{ xminHorizonWarnMs: 60_000 }`).
   * @defaultValue doctor()'s defaults
   */
  doctorThresholds?: DoctorThresholds;
  /**
   * Where the relay says what it does; `false` for nothing. What the logger throws is ignored.
   * @defaultValue warnings and errors as lines on stderr (info is dropped)
   */
  logger?: Logger | false;
}

/**
 * The relay's settings, as `relay.options` shows them: defaults applied, and nothing secret. Connection strings are
 * shown with their password replaced by `***`; the connections themselves are in `RelayConnections`, kept private.
 */
export interface ResolvedRelayOptions {
  /** The database, as it may be shown: the redacted URL, the redacted config, or that the app's pool is used. */
  database: string;
  /** The URL given as `databaseUrl`, its password replaced by `***`; undefined when `database` was given. */
  databaseUrl: string | undefined;
  /** `listenUrl`, its password replaced by `***`; undefined when LISTEN uses the relay's database. */
  listenUrl: string | undefined;
  /** The broker URL with its password replaced by `***`. */
  amqpUrl: string | undefined;
  schema: string;
  transport: Transport | undefined;
  exchanges: ExchangeSpec[];
  queue: OutboxQueue | undefined;
  listen: boolean;
  batchSize: number;
  batchMaxBytes: number;
  listenCheckIntervalMs: number;
  concurrency: number;
  publishTimeoutMs: number;
  sweepIntervalMs: number;
  sweepMinAgeMs: number;
  maxAttempts: number;
  retryBaseDelayMs: number;
  retryMaxDelayMs: number;
  keyAfterDeadLetter: KeyAfterDeadLetter;
  cloudEvents: CloudEventsOptions | undefined;
  isRetryable: ((error: Error, message: RefusedMessage) => boolean) | undefined;
  stopTimeoutMs: number;
  clock: Clock;
  doctorIntervalMs: number;
  doctorThresholds: DoctorThresholds;
  logger: Logger;
}

/** What the relay connects with, passwords included: never shown, never public. */
export interface RelayConnections {
  database: DatabaseSource;
  /** Where LISTEN connects: `listenUrl`, else the database. */
  listen: DatabaseSource;
  amqpUrl: string | undefined;
  /** Takes the connection URLs and their secrets out of a text (a driver's error, before it is shown). */
  scrub: (text: string) => string;
}

/** Every option of createRelay(): any other key is refused (a misspelt option would be ignored). */
const RELAY_OPTION_KEYS = {
  databaseUrl: true,
  listenUrl: true,
  database: true,
  schema: true,
  amqpUrl: true,
  transport: true,
  exchanges: true,
  queue: true,
  listen: true,
  batchSize: true,
  batchMaxBytes: true,
  listenCheckIntervalMs: true,
  concurrency: true,
  publishTimeoutMs: true,
  sweepIntervalMs: true,
  sweepMinAgeMs: true,
  maxAttempts: true,
  retryBaseDelayMs: true,
  retryMaxDelayMs: true,
  keyAfterDeadLetter: true,
  cloudEvents: true,
  isRetryable: true,
  stopTimeoutMs: true,
  clock: true,
  doctorIntervalMs: true,
  doctorThresholds: true,
  logger: true,
} satisfies Record<keyof RelayOptions, true>;

export function resolveRelayOptions(options: RelayOptions): {
  options: ResolvedRelayOptions;
  connections: RelayConnections;
} {
  if (typeof options !== "object" || options === null) {
    throw new OutboxConfigError("Expected createRelay() options to be an object.");
  }
  rejectUnknownKeys("createRelay()", options, Object.keys(RELAY_OPTION_KEYS));
  const database = resolveDatabase(options.databaseUrl, options.database);
  if (options.listenUrl !== undefined) expectUrl("listenUrl", options.listenUrl, ["postgres:", "postgresql:"]);
  const listenSource: DatabaseSource =
    options.listenUrl === undefined
      ? database.source
      : { kind: "config", config: { connectionString: options.listenUrl } };
  if (options.transport === undefined && options.amqpUrl === undefined) {
    throw new OutboxConfigError("Expected `amqpUrl` (RabbitMQ URL) or `transport`; neither was given.");
  }
  if (options.amqpUrl !== undefined) expectUrl("amqpUrl", options.amqpUrl, ["amqp:", "amqps:"]);
  const exchanges = exchangesOption("exchanges", options.exchanges);
  const publishTimeoutMs = durationOption("publishTimeoutMs", options.publishTimeoutMs, 10_000, 100);
  const retryBaseDelayMs = durationOption("retryBaseDelayMs", options.retryBaseDelayMs, 1_000, 0);
  const retryMaxDelayMs = durationOption("retryMaxDelayMs", options.retryMaxDelayMs, 300_000, 0);
  if (retryMaxDelayMs < retryBaseDelayMs) {
    throw new OutboxConfigError(
      `Expected \`retryMaxDelayMs\` (${retryMaxDelayMs}) to be >= \`retryBaseDelayMs\` (${retryBaseDelayMs}).`,
    );
  }
  const listen = booleanOption("listen", options.listen, true);
  const concurrency = integerOption("concurrency", options.concurrency, 2, 1);
  const source = database.source;
  if (source.kind === "pool" && listen && options.listenUrl === undefined && (source.pool.options?.max ?? 10) < 2) {
    throw new OutboxConfigError(
      "Expected the pool given as `database` to allow at least 2 clients (`max`): LISTEN holds one while the relay runs, and batches need another. Raise its `max`, or set `listen: false`.",
    );
  }
  const queue = options.queue === false ? undefined : (options.queue ?? defaultOutboxQueue);
  const connectionString = source.kind === "config" ? source.config.connectionString : undefined;
  const scrub = secretScrubber(
    [options.databaseUrl, connectionString, options.listenUrl, options.amqpUrl].filter(
      (u): u is string => typeof u === "string",
    ),
  );
  const resolved: ResolvedRelayOptions = {
    database: database.shown,
    databaseUrl: options.databaseUrl === undefined ? undefined : database.shown,
    listenUrl: options.listenUrl === undefined ? undefined : redactUrl(options.listenUrl),
    amqpUrl: options.amqpUrl === undefined ? undefined : redactUrl(options.amqpUrl),
    schema: schemaOption("schema", options.schema),
    transport: options.transport,
    exchanges,
    queue,
    listen,
    batchSize: integerOption("batchSize", options.batchSize, 500, 1),
    batchMaxBytes: integerOption("batchMaxBytes", options.batchMaxBytes, 4 * 1024 * 1024, 1024),
    listenCheckIntervalMs: durationOption("listenCheckIntervalMs", options.listenCheckIntervalMs, 5_000, 100),
    concurrency,
    publishTimeoutMs,
    sweepIntervalMs: durationOption("sweepIntervalMs", options.sweepIntervalMs, 1_000, 10),
    // Without a fast path the sweeper is the only path: it must not wait for rows to age.
    sweepMinAgeMs: durationOption("sweepMinAgeMs", options.sweepMinAgeMs, listen || queue ? 5_000 : 0, 0),
    maxAttempts: integerOption("maxAttempts", options.maxAttempts, 10, 1),
    retryBaseDelayMs,
    retryMaxDelayMs,
    keyAfterDeadLetter: enumOption("keyAfterDeadLetter", options.keyAfterDeadLetter, ["stop", "continue"], "stop"),
    cloudEvents: cloudEventsOption("cloudEvents", options.cloudEvents),
    isRetryable: functionOption("isRetryable", options.isRetryable),
    stopTimeoutMs: durationOption("stopTimeoutMs", options.stopTimeoutMs, 10_000, 0),
    clock: clockOption("clock", options.clock),
    doctorIntervalMs: durationOption("doctorIntervalMs", options.doctorIntervalMs, 60_000, 0),
    doctorThresholds: doctorThresholdsOption("doctorThresholds", options.doctorThresholds),
    logger: scrubbingLogger(loggerOption(options.logger, "relay"), scrub),
  };
  return {
    options: resolved,
    connections: { database: source, listen: listenSource, amqpUrl: options.amqpUrl, scrub },
  };
}
