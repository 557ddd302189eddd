// `inbox()`: the consumer's mirror of the outbox. A definition (queue, handlers, options) that starts in the app's
// process or in the bundled CLI (`prisma-outbox inbox --handlers <module>`).
//
// Lifecycle (start() and stop() are idempotent and race-safe: each keeps its in-flight promise):
//   created --start()--> starting: database pool, inbox table check, processor (drains what is due), retention timer,
//            then the consumer (deliveries flow) --> running. Any step failing releases what was opened and rejects.
//   running --stop()--> stopping: consumer paused (no new deliveries), receiver drained (stored and acked), processor
//            stopped (handlers finish, or roll back past `stopTimeoutMs`), retention stopped, connections closed
//            --> stopped. stop() during start() waits for start to settle, then stops.
import type pg from "pg";
import {
  type InboxOptions,
  type ResolvedInboxOptions,
  resolveHandlers,
  resolveInboxOptions,
} from "../config/inbox-options.js";
import type { RelayLogger } from "../config/relay-options.js";
import { expectUrl } from "../config/validate.js";
import { coerceError, OutboxConfigError } from "../message/errors.js";
import { CHECK_INBOX_TABLE_SQL, UNDEFINED_TABLE } from "../sql/check-table.js";
import { INBOX_TABLE } from "../sql/names.js";
import { AmqpConsumer } from "../transport/amqp-consumer.js";
import { type InboxEvent, type InboxEventListener, safeEmitInbox } from "./events.js";
import { type PrismaLike, Processor } from "./processor.js";
import { Receiver } from "./receiver.js";
import { HandlerRegistry } from "./registry.js";
import { Retention } from "./retention.js";
import type { TransactionClientOf } from "./types.js";

/** Where the inbox connects: the consumer's database (holding the inbox table) and RabbitMQ. */
export interface InboxConnection {
  /** PostgreSQL URL of the database your Prisma client uses (the inbox table lives there). */
  databaseUrl: string;
  /** RabbitMQ URL (amqp:// or amqps://). */
  amqpUrl: string;
  /** Replaces the definition's logger for this run (the CLI passes its own). */
  logger?: RelayLogger;
}

const INBOX_BRAND = Symbol.for("prisma-outbox.inbox");

/** True for what `inbox()` returns (the CLI checks the module it loads with it). */
export function isInbox(value: unknown): value is Inbox {
  return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[INBOX_BRAND] === true;
}

export class Inbox {
  readonly [INBOX_BRAND] = true;
  readonly #prisma: PrismaLike;
  #options: ResolvedInboxOptions;
  readonly #registry: HandlerRegistry;
  readonly #listeners = new Set<InboxEventListener>();
  #starting: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  #parts:
    | { pool: pg.Pool; consumer: AmqpConsumer; receiver: Receiver; processor: Processor; retention: Retention }
    | undefined;

  constructor(options: InboxOptions<any, any, any>) {
    this.#options = resolveInboxOptions(options);
    this.#registry = new HandlerRegistry(resolveHandlers(options.handlers));
    this.#prisma = options.prisma as PrismaLike;
  }

  /** The queue this inbox consumes. */
  get queue(): string {
    return this.#options.queue.name;
  }

  onEvent(listener: InboxEventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Starts receiving and handling. Resolves once consuming; rejects, with nothing left open, if a step fails. */
  start(connection: InboxConnection): Promise<void> {
    if (this.#stopping) return Promise.reject(new OutboxConfigError("this inbox was stopped; create a new one"));
    this.#starting ??= this.#start(connection);
    return this.#starting;
  }

  /** Graceful stop; idempotent. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  #emit = (event: InboxEvent) => safeEmitInbox(this.#listeners, event);

  async #start(connection: InboxConnection): Promise<void> {
    const { databaseUrl, amqpUrl } = checkConnection(connection);
    if (connection.logger) this.#options = { ...this.#options, logger: connection.logger };
    const { default: pgModule } = await import("pg");
    const pool = new pgModule.Pool({
      connectionString: databaseUrl,
      max: 4,
      application_name: "prisma-outbox inbox",
      connectionTimeoutMillis: 10_000,
    });
    const logger = this.#options.logger;
    pool.on("error", (error) => logger.warn(`inbox database connection lost: ${error.message}`));
    let consumer: AmqpConsumer | undefined;
    let processor: Processor | undefined;
    let retention: Retention | undefined;
    try {
      await checkTable(pool);
      processor = new Processor(pool, this.#prisma, this.#registry, this.#options, this.#emit);
      const receiver = new Receiver({
        pool,
        registry: this.#registry,
        invalidMessages: this.#options.invalidMessages,
        batchSize: this.#options.prefetch,
        ack: (d, multiple) => consumer?.ack(d, multiple) ?? false,
        reject: (d) => consumer?.reject(d) ?? false,
        handoff: (ids) => processor?.notify(ids),
        logger,
        emit: this.#emit,
      });
      retention = new Retention(pool, this.#options, logger, (count) => this.#emit({ type: "purged", count }));
      consumer = new AmqpConsumer({
        url: amqpUrl,
        queue: this.#options.queue,
        exchanges: this.#options.exchanges,
        prefetch: this.#options.prefetch,
        onDelivery: (d) => receiver.push(d),
        onEvent: (event) => {
          if (event.type === "reconnecting")
            logger.warn(`RabbitMQ reconnecting (attempt ${event.attempt}): ${event.error.message}`);
          if (event.type === "disconnected")
            logger.warn(`RabbitMQ connection lost${event.error ? `: ${event.error.message}` : ""}`);
          this.#emit({ type: "transport", event });
        },
      });
      processor.start();
      retention.start();
      await consumer.start();
      this.#parts = { pool, consumer, receiver, processor, retention };
      logger.info(`inbox started on queue ${this.#options.queue.name}`);
      this.#emit({ type: "started" });
    } catch (error) {
      await processor?.stop(0);
      await retention?.stop();
      await consumer?.close();
      await pool.end().catch(() => {});
      throw error;
    }
  }

  async #stop(): Promise<void> {
    await this.#starting?.catch(() => {});
    const parts = this.#parts;
    if (!parts) return;
    const { stopTimeoutMs } = this.#options;
    const deadline = Date.now() + stopTimeoutMs;
    await parts.consumer.pause();
    const drained = parts.receiver.drain();
    const timer = setTimeout(() => parts.receiver.abort(), stopTimeoutMs);
    await drained;
    clearTimeout(timer);
    await parts.processor.stop(Math.max(0, deadline - Date.now()));
    await parts.retention.stop();
    await parts.consumer.close();
    await parts.pool.end().catch(() => {});
    this.#options.logger.info("inbox stopped");
    this.#emit({ type: "stopped" });
  }
}

function checkConnection(connection: InboxConnection): InboxConnection {
  if (typeof connection !== "object" || connection === null) {
    throw new OutboxConfigError("Expected start() to get { databaseUrl, amqpUrl }.");
  }
  expectUrl("databaseUrl", connection.databaseUrl, ["postgres:", "postgresql:"]);
  expectUrl("amqpUrl", connection.amqpUrl, ["amqp:", "amqps:"]);
  return connection;
}

/** Fails fast, saying what to run, when the database is unreachable or the inbox table is missing. */
async function checkTable(pool: pg.Pool): Promise<void> {
  try {
    await pool.query(CHECK_INBOX_TABLE_SQL);
  } catch (thrown) {
    const code = (thrown as { code?: string }).code;
    if (code === UNDEFINED_TABLE) {
      throw new OutboxConfigError(
        `The table ${INBOX_TABLE} does not exist: add prisma/inbox.prisma of the package to your schema and migrate (see the README's Inbox section).`,
      );
    }
    throw new OutboxConfigError(
      `The inbox cannot use its database: ${coerceError(thrown).message}${code ? ` (${code})` : ""}`,
      {
        cause: thrown,
      },
    );
  }
}

/**
 * Defines an inbox: the queue it consumes and its handlers. Pass your message map and your Prisma client's type to
 * have payloads and transactions typed: `inbox<Messages, typeof prisma>({ prisma, queue, handlers })`.
 */
export function inbox<TMessages = Record<string, unknown>, TClient = PrismaLike>(
  options: InboxOptions<TMessages, TClient, TransactionClientOf<TClient>>,
): Inbox {
  return new Inbox(options);
}
