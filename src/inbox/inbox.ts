import { OutboxConfigError } from "../errors.js";
import { DoctorWatch } from "../ops/doctor-watch.js";
import { installClock } from "../runtime/clock.js";
import { safeEmit } from "../runtime/emitter.js";
import { scrubbingLogger } from "../runtime/logger.js";
import { type OwnedPool, openPool } from "../runtime/pg.js";
import { type BacklogRow, inboxBacklogGaugesSql } from "../sql/inbox/backlog.js";
import { inboxNames } from "../sql/names.js";
import { BacklogProbe } from "../telemetry/backlog-probe.js";
import { InboxMetrics } from "../telemetry/metrics.js";
import type { Consumer, ConsumerOptions } from "../transport/transport.js";
import { consumerEventReporter } from "./consumer-events.js";
import type { InboxEvent, InboxEventListener } from "./events.js";
import { resolveHandlers } from "./handler-options.js";
import { decodeLoopText, type InboxHealth, receiverStallFinding } from "./health.js";
import { inboxConsumer } from "./inbox-consumer.js";
import { type InboxOptions, type ResolvedInboxOptions, resolveInboxOptions } from "./options.js";
import { warnUnusableOrderingKey } from "./ordering-key.js";
import { PartitionedConsumer } from "./partitions.js";
import { type PrismaLike, Processor } from "./processor.js";
import { RECEIVE_STALL_MS, Receiver } from "./receiver.js";
import { HandlerRegistry } from "./registry.js";
import { Retention } from "./retention.js";
import { checkConnection, checkTable, connectionScrubber, type InboxConnection } from "./startup.js";
import type { InferredHandlers, TransactionClientOf } from "./types.js";
import { type Timed, WaitingPass } from "./unhandled.js";

export type { InboxHealth } from "./health.js";
export type { InboxConnection } from "./startup.js";

const INBOX_BRAND = Symbol.for("prisma-outbox.inbox");

/** True for what `inbox()` returns (the CLI checks the module it loads with it). */
export function isInbox(value: unknown): value is Inbox {
  return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[INBOX_BRAND] === true;
}

export class Inbox {
  readonly [INBOX_BRAND] = true;
  readonly #prisma: PrismaLike;
  /** The options as given to inbox(); #options is them with this run's logger (wrapped once, at start). */
  readonly #given: ResolvedInboxOptions;
  #options: ResolvedInboxOptions;
  readonly #registry: HandlerRegistry;
  readonly #listeners = new Set<InboxEventListener>();
  #starting: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  #parts: { pool: OwnedPool; consumer: Consumer; receiver: Receiver; processor: Processor; timed: Timed[] } | undefined;
  /** Ends the processor's wake-ups on the clock's moves (set while running). */
  #stopClock: (() => void) | undefined;
  #doctor: DoctorWatch | undefined;
  #state: InboxHealth["state"] = "idle";
  #brokerConnected = false;
  /** Set while the consumer's connection drops on every reconnection decoding a delivery (transport/amqp/consumer.ts). */
  #decodeLoop: Error | undefined;
  #probe: BacklogProbe | undefined;
  #metrics: InboxMetrics | undefined;
  /** Takes the connection URLs and their secrets out of a text shown by health() (set at start). */
  #scrub: (text: string) => string = (text) => text;

  constructor(options: InboxOptions<any, any, any>) {
    this.#given = resolveInboxOptions(options);
    this.#options = this.#given;
    this.#registry = new HandlerRegistry(resolveHandlers(options.handlers));
    this.#prisma = options.prisma as PrismaLike;
  }

  /** The queue this inbox consumes. */
  get queue(): string {
    return this.#options.queue.name;
  }

  /** The queue's bindings, as given in `queue.bindings`. */
  get bindings(): ReadonlyArray<{ exchange: string; routingKey: string }> {
    return this.#options.queue.bindings ?? [];
  }

  /** The partitions this process consumes now, of a partitioned queue (`queue.partitions`); [] otherwise. */
  get partitions(): number[] {
    const consumer = this.#parts?.consumer;
    return consumer instanceof PartitionedConsumer ? consumer.owned : [];
  }

  /** The schema of the inbox table. */
  get schema(): string {
    return this.#options.schema;
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

  /**
   * Whether the inbox is doing its job, from what it already knows plus the backlog (one query at most every few
   * seconds, shared with the metrics gauges). For an app's health endpoint; the CLI serves it as /readyz.
   */
  async health(): Promise<InboxHealth> {
    const parts = this.#parts;
    const running = this.#state === "running" && parts !== undefined;
    const backlog = running ? await this.#probe?.read() : undefined;
    const problems: string[] = [];
    if (!running) problems.push(`the inbox is ${this.#state}`);
    const claimError = parts?.processor.claimError === undefined ? undefined : this.#scrub(parts.processor.claimError);
    const lastClaimAt = parts?.processor.lastClaimAt;
    if (claimError !== undefined) problems.push(`database: ${claimError}`);
    const unstored = parts?.receiver.unstored ?? 0;
    const stalledSince = running ? parts.receiver.stalledSince(RECEIVE_STALL_MS) : undefined;
    if (stalledSince !== undefined) {
      problems.push(
        `receiving stalled since ${stalledSince.toISOString()}: ${unstored} deliveries received and not stored (see the log)`,
      );
    }
    if (!this.#brokerConnected) problems.push("broker: not connected");
    if (this.#decodeLoop !== undefined) problems.push(decodeLoopText(this.#options.queue.name, this.#decodeLoop));
    // Claims run at least every sweepIntervalMs unless every slot is busy with a handler (at most handlerTimeoutMs).
    const staleAfterMs = this.#options.sweepIntervalMs + this.#options.handlerTimeoutMs + 10_000;
    const recent = lastClaimAt !== undefined && Date.now() - lastClaimAt <= staleAfterMs;
    if (running && !recent && backlog?.due !== 0) {
      problems.push(
        lastClaimAt === undefined
          ? "no claim has run yet"
          : `no claim for ${Date.now() - lastClaimAt} ms with rows due`,
      );
    }
    return {
      ok: problems.length === 0,
      state: this.#state,
      database: claimError === undefined ? { connected: running } : { connected: false, error: claimError },
      broker: { connected: this.#brokerConnected },
      lastBatchAt: lastClaimAt === undefined ? undefined : new Date(lastClaimAt),
      receiving: { unstored, stalledSince },
      backlog,
      problems,
      warnings: this.#doctor?.warnings() ?? [],
      doctor: this.#doctor ? { findings: this.#doctor.findings() } : undefined,
    };
  }

  #emit = (event: InboxEvent) => {
    this.#measure(event);
    safeEmit(this.#listeners, event);
  };

  /** Metrics and the broker's state, from the inbox's own events. */
  #measure(event: InboxEvent): void {
    const m = this.#metrics;
    switch (event.type) {
      case "transport":
        if (event.event.type === "connected") this.#brokerConnected = true;
        else if (event.event.type === "disconnected") this.#brokerConnected = false;
        break;
      case "received":
        m?.received(event.stored, event.duplicates);
        break;
      case "invalid":
        if (event.outcome === "dead") m?.dead("", "invalid");
        break;
      case "handled":
        m?.handled(event.handler, event.durationMs);
        break;
      case "retry-scheduled":
        m?.failed(event.handler);
        break;
      case "dead-lettered":
        m?.dead(event.handler, event.reason);
        break;
      case "decode-failure":
        m?.decodeFailure();
        break;
      case "decode-loop":
        this.#decodeLoop = event.error;
        break;
      case "decode-loop-ended":
        this.#decodeLoop = undefined;
        break;
    }
  }

  async #start(connection: InboxConnection): Promise<void> {
    const { database, broker, clock, doctorIntervalMs } = checkConnection(connection);
    const amqpUrl = "amqpUrl" in broker ? broker.amqpUrl : undefined;
    // A driver's error may echo a URL, or name a piece of a misread password as the host it could not reach.
    const scrub = connectionScrubber(database.source, amqpUrl);
    this.#scrub = scrub;
    // Wrapped once, from the logger given (a restart must not wrap a wrapped one).
    this.#options = {
      ...this.#given,
      ...(doctorIntervalMs === undefined ? {} : { doctorIntervalMs }),
      logger: scrubbingLogger(connection.logger ?? this.#given.logger, scrub),
    };
    this.#state = "starting";
    const logger = this.#options.logger;
    // The app's pool is borrowed as it is (openPool guards the clients the inbox holds); a pool of the inbox's own
    // guards every client (runtime/pg.ts: a backend dying under a statement must not crash the process, reliability
    // row I4) and says when it loses one.
    const owned = openPool(database.source, {
      // A partitioned queue holds one more connection for its partition locks (partitions.ts).
      max: this.#options.partitions === undefined ? 4 : 5,
      application_name: "prisma-outbox inbox",
      connectionTimeoutMillis: 10_000,
    });
    const pool = owned.pool;
    if (database.source.kind === "config") {
      pool.on("error", (error) => logger.warn("inbox database connection lost", { error: error.message }));
    }
    let consumer: Consumer | undefined;
    let processor: Processor | undefined;
    let timed: Timed[] | undefined;
    try {
      // Every statement of this run (receiver, processor, attempts, retention, gauges) is built with the clock's SQL.
      const names = inboxNames(this.#options.schema, clock);
      await checkTable(pool, names, database.shown);
      await installClock(clock, pool, "inbox");
      const probe = new BacklogProbe(async () => (await pool.query<BacklogRow>(inboxBacklogGaugesSql(names))).rows[0]!);
      this.#probe = probe;
      // Taken here, not at construction: an app registers its MeterProvider before start() (telemetry/metrics.ts).
      let receiver: Receiver | undefined;
      this.#metrics = new InboxMetrics(
        this.#options.queue.name,
        () => probe.read(),
        () => receiver?.unstored ?? 0,
      );
      processor = new Processor(pool, this.#prisma, this.#registry, this.#options, names, this.#emit);
      receiver = new Receiver({
        pool,
        registry: this.#registry,
        invalidMessages: this.#options.invalidMessages,
        waiting: WaitingPass.receiving(this.#options),
        batchSize: this.#options.prefetch,
        batchMaxBytes: this.#options.batchMaxBytes,
        maxPayloadBytes: this.#options.maxPayloadBytes,
        ack: (d, multiple) => consumer?.ack(d, multiple) ?? false,
        reject: (d) => consumer?.reject(d) ?? false,
        rows: processor,
        logger,
        names,
        emit: this.#emit,
      });
      // Timers of their own: retention, and the pass over deliveries waiting for a handler (unhandled.ts).
      timed = [
        new Retention(pool, this.#options, names, logger, (count) => this.#emit({ type: "purged", count })),
        new WaitingPass({ pool, registry: this.#registry, names, options: this.#options, emit: this.#emit }),
      ];
      const consumerOptions: ConsumerOptions = {
        queue: this.#options.queue,
        exchanges: this.#options.exchanges,
        prefetch: this.#options.prefetch,
        onDelivery: (d) => {
          warnUnusableOrderingKey(d, logger);
          receiver?.push(d);
        },
        onEvent: consumerEventReporter(logger, this.#options.queue.name, this.#emit),
      };
      consumer = inboxConsumer({
        broker,
        options: consumerOptions,
        partitions: this.#options.partitions,
        guardHeaders: this.#options.guardHeaders,
        pool,
        logger,
      });
      processor.start();
      // A test clock moved forward: retries and leases may have ended, which only a claim finds.
      const wakes = processor;
      this.#stopClock = clock.onAdvance(() => wakes.wake());
      for (const part of timed) part.start();
      await consumer.start();
      this.#brokerConnected = true;
      this.#parts = { pool: owned, consumer, receiver, processor, timed };
      this.#state = "running";
      const o = this.#options;
      if (o.doctorIntervalMs > 0)
        this.#doctor = new DoctorWatch({
          pool,
          doctor: { ...o.doctorThresholds, schema: o.schema, parts: ["inbox"] },
          intervalMs: o.doctorIntervalMs,
          logger,
          component: "inbox",
          local: () => [receiverStallFinding(receiver.stalledSince(RECEIVE_STALL_MS), receiver.unstored)],
        });
      this.#doctor?.start();
      logger.info("inbox started", { queue: this.#options.queue.name, database: database.shown });
      this.#emit({ type: "started" });
    } catch (error) {
      this.#state = "stopped";
      this.#metrics?.close();
      this.#stopClock?.();
      await processor?.stop(0);
      for (const part of timed ?? []) await part.stop();
      await consumer?.close();
      await owned.close().catch(() => {});
      throw error;
    }
  }

  async #stop(): Promise<void> {
    await this.#starting?.catch(() => {});
    const parts = this.#parts;
    if (!parts) return;
    this.#state = "stopping";
    this.#metrics?.close();
    this.#stopClock?.();
    await this.#doctor?.stop();
    const { stopTimeoutMs } = this.#options;
    const deadline = Date.now() + stopTimeoutMs;
    await parts.consumer.pause();
    const drained = parts.receiver.drain();
    const timer = setTimeout(() => parts.receiver.abort(), stopTimeoutMs);
    await drained;
    clearTimeout(timer);
    await parts.processor.stop(Math.max(0, deadline - Date.now()));
    for (const part of parts.timed) await part.stop();
    await parts.consumer.close();
    await parts.pool.close().catch(() => {});
    this.#state = "stopped";
    this.#options.logger.info("inbox stopped");
    this.#emit({ type: "stopped" });
  }
}

/**
 * Defines an inbox: the queue it consumes and its handlers. Pass your message map and your Prisma client's type to
 * have payloads and transactions typed: `inbox<Messages, typeof prisma>({ prisma, queue, handlers })`.
 */
/** Without type arguments: each `{ contract, handle }` handler's payload is typed by its contract (docs/contracts.md). */
export function inbox<TClient, const H extends Record<string, unknown>>(
  options: Omit<InboxOptions<Record<string, unknown>, TClient, TransactionClientOf<TClient>>, "handlers"> & {
    handlers: InferredHandlers<H, TransactionClientOf<TClient>>;
  },
): Inbox;
export function inbox<TMessages = Record<string, unknown>, TClient = PrismaLike>(
  options: InboxOptions<TMessages, TClient, TransactionClientOf<TClient>>,
): Inbox;
export function inbox(options: InboxOptions<any, any, any>): Inbox {
  return new Inbox(options as never);
}
