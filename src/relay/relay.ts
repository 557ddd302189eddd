// The relay: publisher (fast path) + sweeper (fallback) over one pool, one transport and one LISTEN connection.
//
// States: idle -> starting -> running -> stopping -> stopped. start() and stop() are idempotent and race-safe: each
// keeps its promise. start() runs its steps in order (queue free, database pool and table, broker, LISTEN, then the
// paths below); a step that fails, or stop() called during any step, closes what the earlier steps opened and
// start() rejects: a failed start leaves nothing running. Once running, every failure is retried and logged.
//
// Paths that claim batches (all run the cycle in batch.ts):
//   queue   ids the extension handed over after COMMIT in this process: claimed by id, at once.
//   listen  a NOTIFY from a writer in any process, a broker reconnect, or start(): up to `concurrency` drain loops
//           claim the oldest due rows until a claim from the start of the index comes back short.
//   sweep   every sweepIntervalMs, due rows older than sweepMinAgeMs, until such a claim comes back short.
// While claims come back full, the drain loops (and, apart, the sweeper) claim after the last row they took instead of
// from the start (claim-position.ts): rows just deleted and not yet vacuumed are not walked again.
// Once the outbox holds keyed rows, the drain loops and the sweeper claim with claimKeyed instead (bounded walks, a
// share of the keys per claim; see #keyed and claim-messages.ts); the queue path keeps claiming by id.
// While the broker is disconnected or blocked (including blocked from the start) no path claims anything: rows stay
// where they are, and the broker's return wakes the drain loops.
//
// Batch limit: claims take at most `limit` rows, `batchSize` at first. A batch that times out as a whole halves it
// (the broker is slower than the batch needs); it doubles back after 30 s without a timeout (batch-limit.ts).
// So a slow but healthy broker costs at most one timed-out batch (published again: duplicates) per drain loop and
// 30 s once the limit has adapted, instead of one every publishTimeoutMs.

import type pg from "pg";
import { BatchTimeoutError, OutboxConfigError, OutboxError, OutboxPublishError, OutboxStartError } from "../errors.js";
import { backoffDelay, sleep } from "../runtime/backoff.js";
import { safeEmit } from "../runtime/emitter.js";
import { describePgError, type OwnedPool, openPool } from "../runtime/pg.js";
import { checkTableSql, UNDEFINED_TABLE } from "../sql/check-table.js";
import { type OutboxNames, outboxNames } from "../sql/names.js";
import { type BacklogRow, outboxBacklogGaugesSql } from "../sql/outbox/backlog.js";
import {
  beginClaimByIds,
  beginClaimKeyed,
  beginClaimKeyHeads,
  beginClaimNext,
  beginClaimSweep,
  type ClaimedRow,
  hasKeyedRowsSql,
} from "../sql/outbox/claim.js";
import { BacklogProbe } from "../telemetry/backlog-probe.js";
import { type BacklogSnapshot, RelayMetrics } from "../telemetry/metrics.js";
import type { Transport, TransportEvent } from "../transport/transport.js";
import { type Claim, runBatch } from "./batch.js";
import { BatchLimit } from "./batch-limit.js";
import { BrokerGate } from "./broker-gate.js";
import { ClaimPosition } from "./claim-position.js";
import type { ClaimPath, RelayEvent, RelayEventListener } from "./events.js";
import { LISTEN_FAILING_AFTER, OutboxListener } from "./listener.js";
import { type RelayConnections, type RelayOptions, type ResolvedRelayOptions, resolveRelayOptions } from "./options.js";
import { PublishLock } from "./publish-lock.js";

/** How long stop() waits, past its deadline, for what it aborted and for connections to close. */
const STOP_GRACE_MS = 5_000;

/** After a drain loop of a keyed relay found nothing, how long full claims do not start others (see #drain). */
const KEYED_IDLE_MS = 250;

/** How long a drain loop of a keyed relay takes no more keyed rows than its last short claim got (see #drain). */
const KEYED_FEW_MS = 250;

/**
 * How long a drain loop keeps claiming only the next rows of the keys it holds (a lane, see #drain); a wake-up (new
 * rows) ends it sooner, after KEYED_FEW_MS.
 */
const KEYED_LANE_MS = 1_000;

/** How long a failed start() waits for what it opened to close. */
const CLEANUP_WAIT_MS = 1_000;

/** Resolves when the promise settles or after `ms`, whichever comes first. */
async function withDeadline(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise.catch(() => {}), new Promise((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

export interface RelayStats {
  published: number;
  deadLettered: number;
  retried: number;
  failedBatches: number;
  /** Batches that failed as a whole because of one message, and were published in parts to find it. */
  isolatedBatches: number;
  /** The current most rows per claim (batchSize, or less after timeouts). */
  batchLimit: number;
  /**
   * Publish attempts the broker nacked (a queue refused the message, e.g. full with `x-overflow: reject-publish`).
   * Each is a partial delivery when other queues are bound to the exchange: they may have the message already, and
   * get it again at the next attempt. Counted in `retried` or `deadLettered` as well.
   */
  nacked: number;
}

/** What to do when LISTEN keeps being lost: said in the error log and in health(). */
const LISTEN_FAILING_HINT =
  "messages are delivered by the sweeper meanwhile (seconds late). If the database URL goes through a " +
  "transaction-mode pooler (PgBouncer, Supabase, Neon, RDS Proxy), give LISTEN a direct connection: `listenUrl` " +
  "(worker: --listen-url / OUTBOX_LISTEN_URL), or turn it off: `listen: false` (--no-listen)";

/** What `relay.health()` reports (and the CLI's /readyz serves). */
export interface RelayHealth {
  /** Running, database and broker connected, and claiming: the last cycle is recent, or nothing is due. */
  ok: boolean;
  state: Relay["state"];
  /** Whether the last claim (or, before any, start()'s check) reached the database; its error when it did not. */
  database: { connected: boolean; error?: string };
  /** What the broker connection said last; `blocked`: connected, but refusing publishes (a resource alarm). */
  broker: { connected: boolean; state: "unknown" | "ready" | "down" | "blocked" };
  /** When the last claim-publish-commit cycle ended well (an empty claim counts: the sweeper claims every interval). */
  lastBatchAt: Date | undefined;
  /** The outbox's backlog (cached for a few seconds); undefined when it could not be read. */
  backlog: BacklogSnapshot | undefined;
  /**
   * The LISTEN connection (undefined with `listen: false`). `lostInARow`: losses in a row, a connection that lived
   * less than a minute (or 4 check intervals) not ending the row; from 3, LISTEN is failing: see `warnings`.
   */
  listen: { listening: boolean; lostInARow: number; error?: string } | undefined;
  /** Why `ok` is false, in words. */
  problems: string[];
  /** What needs a person but does not make `ok` false (messages still flow, later): a failing LISTEN. */
  warnings: string[];
}

export class Relay {
  /** The settings in effect, defaults applied; connection strings shown without their password. */
  readonly options: ResolvedRelayOptions;
  /** The connections, passwords included: private, so that logging the relay or its options shows none. */
  readonly #connections: RelayConnections;
  readonly #names: OutboxNames;
  #state: "idle" | "starting" | "running" | "stopping" | "stopped" = "idle";
  #starting: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  #listeners = new Set<RelayEventListener>();
  #stats: RelayStats;
  #pool: pg.Pool | undefined;
  #relayPool: OwnedPool | undefined;
  #transport: Transport | undefined;
  #listener: OutboxListener | undefined;
  #detachQueue: (() => Promise<void>) | undefined;
  #stopTransportEvents: (() => void) | undefined;
  /** Aborts the batches in flight when stop() passes its deadline. */
  #abort = new AbortController();
  /** Ends waits (backoff, sweep interval, broker gate) as soon as stop() begins. */
  #halt = new AbortController();
  readonly #broker = new BrokerGate(this.#halt.signal, () => this.wake());
  #wakeSeq = 0;
  /** Bumped when the queue path or the sweeper published keyed rows (see #keyedWake). */
  #keyedSeq = 0;
  /**
   * Whether the outbox holds keyed rows: the drain loops and the sweeper then claim with claimKeyed, whose walks are
   * bounded (claim-messages.ts). Probed at start and by every sweep, set by any claim that returns a keyed row. Only a
   * choice of plan: both statements claim a keyed row only when it is the first of its key.
   */
  #keyed = false;
  /** When a drain loop of this relay last ended on an empty keyed claim. */
  #keyedIdleAt = 0;
  #drainLoops = new Set<Promise<void>>();
  /** Where the drain loops' and the sweeper's next claims start (see claim-position.ts). */
  #drainPosition = new ClaimPosition();
  #sweepPosition = new ClaimPosition();
  #sweeper: Promise<void> | undefined;
  readonly #limit: BatchLimit;
  readonly #publishLock = new PublishLock();
  #metrics: RelayMetrics | undefined;
  #probe: BacklogProbe | undefined;
  /** Set by each cycle: whether its queries reached the database, and when the last one ended well. */
  #database: { connected: boolean; error?: string } = { connected: false };
  #lastCycleAt: number | undefined;

  constructor(options: RelayOptions) {
    const resolved = resolveRelayOptions(options);
    this.options = resolved.options;
    this.#connections = resolved.connections;
    this.#names = outboxNames(resolved.options.schema);
    this.#limit = new BatchLimit(this.options.batchSize, this.options.publishTimeoutMs, this.options.logger);
    this.#stats = {
      published: 0,
      deadLettered: 0,
      retried: 0,
      failedBatches: 0,
      isolatedBatches: 0,
      batchLimit: this.#limit.value,
      nacked: 0,
    };
  }

  get state() {
    return this.#state;
  }

  stats(): RelayStats {
    return { ...this.#stats, batchLimit: this.#limit.value };
  }

  /**
   * Whether the relay is doing its job, from what it already knows plus the backlog (one query at most every few
   * seconds, shared with the metrics gauges). For an app's health endpoint; the CLI serves it as /readyz.
   */
  async health(): Promise<RelayHealth> {
    const backlog = this.#state === "running" ? await this.#probe?.read() : undefined;
    const problems: string[] = [];
    if (this.#state !== "running") problems.push(`the relay is ${this.#state}`);
    if (!this.#database.connected) problems.push(`database: ${this.#database.error ?? "not connected"}`);
    const broker = this.#broker.state;
    if (broker !== "ready") problems.push(`broker: ${broker === "blocked" ? "blocked" : "not connected"}`);
    // A cycle runs at least every sweepIntervalMs; one may take a publish timeout, and a timeout pauses claims for
    // another.
    const staleAfterMs = this.options.sweepIntervalMs + 2 * this.options.publishTimeoutMs + 10_000;
    const recent = this.#lastCycleAt !== undefined && Date.now() - this.#lastCycleAt <= staleAfterMs;
    if (this.#state === "running" && !recent && backlog?.due !== 0) {
      problems.push(
        this.#lastCycleAt === undefined
          ? "no batch has run yet"
          : `no batch for ${Date.now() - this.#lastCycleAt} ms with messages due`,
      );
    }
    const warnings: string[] = [];
    let listen: RelayHealth["listen"];
    const ls = this.#listener?.status();
    if (ls) {
      const error = ls.lastError ? describePgError(ls.lastError).message : undefined;
      listen = { listening: ls.listening, lostInARow: ls.lostInARow, ...(error ? { error } : {}) };
      if (ls.lostInARow >= LISTEN_FAILING_AFTER) {
        warnings.push(`LISTEN lost ${ls.lostInARow} times in a row (last: ${error}); ${LISTEN_FAILING_HINT}`);
      }
    }
    return {
      ok: problems.length === 0,
      state: this.#state,
      database: { ...this.#database },
      broker: { connected: broker === "ready" || broker === "blocked", state: broker },
      lastBatchAt: this.#lastCycleAt === undefined ? undefined : new Date(this.#lastCycleAt),
      backlog,
      listen,
      problems,
      warnings,
    };
  }

  /** Subscribes to relay events; returns the unsubscribe function. A listener that throws is ignored. */
  onEvent(listener: RelayEventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Connects to the database and the broker and starts publishing. Resolves once the broker is connected. Rejects,
   * with everything it opened closed again, when a step fails: the database refuses or does not answer
   * (OutboxStartError, or OutboxConfigError for a wrong password, role or database), the table is missing, the queue
   * has a relay already, the broker refuses (OutboxConfigError), or stop() was called meanwhile.
   */
  start(): Promise<void> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  /**
   * Stops claiming, lets the batches in flight finish (or, past `stopTimeoutMs`, aborts them: they roll back),
   * closes every connection, and resolves. Idempotent; during start() it makes start() give up.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  /** Wakes the drain loops, as a NOTIFY does. */
  wake(): void {
    if (this.#state !== "running") return;
    this.#wakeSeq++;
    while (this.#drainLoops.size < this.options.concurrency) this.#startDrainLoop();
  }

  /**
   * After the in-process queue or the sweeper published keyed rows: the keys' next rows may be claimed now. A drain
   * loop takes them: one starts if none runs, and the running ones go on past their next short claim. (A drain loop
   * that published keyed rows goes on by itself. Waking every loop would make them race for the same few rows: the
   * losers find them taken and walk every blocked row for nothing.)
   */
  #keyedWake(): void {
    if (this.#state !== "running") return;
    this.#keyedSeq++;
    if (this.#drainLoops.size === 0) this.#startDrainLoop();
  }

  #startDrainLoop(): void {
    const loop: Promise<void> = this.#drain().finally(() => this.#drainLoops.delete(loop));
    this.#drainLoops.add(loop);
  }

  #checkHalted(step: string): void {
    if (this.#halt.signal.aborted) throw new OutboxError(`The relay was stopped while it was starting (${step}).`);
  }

  /**
   * One step of start(): rejects as soon as stop() is called, without waiting for the step (a database that does
   * not answer holds a connection attempt for connectionTimeoutMillis); what the step opened is closed by start().
   */
  async #step<T>(step: string, work: Promise<T>): Promise<T> {
    work.catch(() => {}); // abandoned when halted: its failure is expected
    let onHalt!: () => void;
    const halted = new Promise<never>((_, reject) => {
      onHalt = () => reject(new OutboxError(`The relay was stopped while it was starting (${step}).`));
      if (this.#halt.signal.aborted) onHalt();
      else this.#halt.signal.addEventListener("abort", onHalt, { once: true });
    });
    halted.catch(() => {});
    try {
      return await Promise.race([work, halted]);
    } finally {
      this.#halt.signal.removeEventListener("abort", onHalt);
    }
  }

  async #start(): Promise<void> {
    const o = this.options;
    this.#state = "starting";
    try {
      // Checked before anything is opened; attached only once running.
      if (o.queue?.attached) {
        throw new OutboxConfigError(
          "This outbox queue already has a relay attached: start one relay per queue (pass `queue: false` for a relay that only drains the table, or give each relay its own OutboxQueue).",
        );
      }
      this.#relayPool = openPool(this.#connections.database, {
        max: o.concurrency + (o.queue?.concurrency ?? 0) + 1,
        keepAlive: true,
        application_name: "prisma-outbox relay",
        // No statement_timeout / idle_in_transaction_session_timeout here: poolers refuse them as startup
        // parameters. Each claim sets them for its transaction (src/sql/outbox/transaction-timeouts.ts). A network that
        // swallows packets cannot hang a cycle either: these fail on the client's side.
        connectionTimeoutMillis: 10_000,
        query_timeout: o.publishTimeoutMs + 10_000,
      });
      this.#pool = this.#relayPool.pool;
      await this.#step("connecting to the database", this.#checkDatabase());
      this.#database = { connected: true };
      const pool = this.#pool;
      const backlogSql = outboxBacklogGaugesSql(this.#names);
      this.#probe = new BacklogProbe(async () => (await pool.query<BacklogRow>(backlogSql)).rows[0]!);
      // Taken here, not at construction: an app registers its MeterProvider before start() (telemetry/metrics.ts).
      this.#metrics = new RelayMetrics(() => this.#probe!.read());
      if (o.transport) this.#transport = o.transport;
      else {
        const { AmqpTransport } = await import("../transport/amqp.js");
        this.#checkHalted("loading the transport");
        this.#transport = new AmqpTransport({ url: this.#connections.amqpUrl!, exchanges: o.exchanges });
      }
      this.#stopTransportEvents = this.#transport.onEvent((event) => this.#onTransportEvent(event));
      await this.#step("connecting to the broker", this.#transport.start());
      this.#broker.started();
      if (o.listen) {
        this.#listener = new OutboxListener(
          { source: this.#connections.listen, names: this.#names, checkIntervalMs: o.listenCheckIntervalMs },
          {
            onNotify: () => this.wake(),
            onReconnecting: (attempt, delayMs, error) => {
              const { message, code, permanent } = describePgError(error);
              // Lost again and again (a wrong listenUrl, a pooler): the fast path is gone, say so as an error, with
              // what to do.
              const failing = attempt >= LISTEN_FAILING_AFTER;
              o.logger[permanent || failing ? "error" : "warn"]("LISTEN connection lost; reconnecting", {
                attempt,
                delayMs,
                error: message,
                ...(code ? { code } : {}),
                ...(failing ? { hint: LISTEN_FAILING_HINT } : {}),
              });
              this.#emit({ type: "listen-reconnecting", attempt, delayMs, error });
            },
          },
        );
        await this.#step("LISTEN", this.#listener.start());
      }
      this.#detachQueue = o.queue?.attach(
        (ids) => this.#runQueued(ids),
        () => {},
      );
    } catch (error) {
      const { message, code } = describePgError(error);
      if (this.#halt.signal.aborted) o.logger.info("relay stopped while starting", { error: message });
      else o.logger.error("relay could not start", { error: message, ...(code ? { code } : {}) });
      // A connection attempt still under way (a database or broker that does not answer) is closed by its own
      // timeout when it ends: start() does not wait for that.
      await withDeadline(this.#closeResources(), CLEANUP_WAIT_MS);
      this.#state = "stopped";
      throw error;
    }
    this.#state = "running";
    this.#sweeper = this.#sweep();
    this.wake(); // what was written while no relay ran
    o.logger.info("relay started", { batchSize: o.batchSize, concurrency: o.concurrency, listen: o.listen });
    this.#emit({ type: "started" });
  }

  /**
   * Fails start() with a message that says what to do when the database refuses, does not answer, or lacks the
   * outbox table; and opens the pool's connections now, so that the first messages do not pay for connection
   * set-up. Once running, the same failures are retried (and logged).
   */
  async #checkDatabase(): Promise<void> {
    const pool = this.#pool!;
    // The app's pool gets asked for one client only: it may allow fewer than `concurrency`, and holding them all here
    // would wait forever for a client that nobody releases.
    const warm = this.#connections.database.kind === "pool" ? 1 : this.options.concurrency;
    const clients = await Promise.allSettled(Array.from({ length: warm }, () => pool.connect()));
    try {
      const first = clients.find((c) => c.status === "fulfilled");
      if (!first) {
        const reason = (clients[0] as PromiseRejectedResult).reason;
        const { message, code, permanent } = describePgError(reason);
        const where = this.options.database;
        if (permanent) {
          throw new OutboxConfigError(
            `The database (${where}) refused the relay: ${message}; check the user, password and database name of \`databaseUrl\` (or \`database\`).`,
            { cause: reason },
          );
        }
        throw new OutboxStartError(`Could not connect to the database (${where}): ${message}.`, {
          cause: reason,
          code,
        });
      }
      await first.value.query(checkTableSql(this.#names)).catch((error: { code?: string }) => {
        if (error.code !== UNDEFINED_TABLE) throw error;
        const { schema } = this.#names;
        throw new OutboxConfigError(
          `The table outbox_message does not exist in schema "${schema}" of the database (${this.options.database}): ` +
            "add prisma-outbox's model (prisma/outbox.prisma) to your Prisma schema and run `prisma migrate dev` " +
            "(or `prisma migrate deploy`), or set `schema` to the schema that holds it.",
        );
      });
      this.#keyed = (await first.value.query<{ keyed: boolean }>(hasKeyedRowsSql(this.#names))).rows[0]!.keyed;
    } finally {
      for (const c of clients) if (c.status === "fulfilled") c.value.release();
    }
  }

  /** A claim returned these rows: a keyed one puts the relay in keyed mode (see #keyed). */
  #sawRows(rows: readonly ClaimedRow[]): void {
    if (!this.#keyed && rows.some((row) => row.ordering_key !== null)) this.#keyed = true;
  }

  /** The most keyed rows a claim of a keyed relay takes (see claimKeyed). */
  #keyLimit(limit: number): number {
    return Math.ceil(limit / this.options.concurrency);
  }

  async #stop(): Promise<void> {
    if (this.#state === "starting") {
      // start() may be waiting for an unreachable broker: closing the transport makes it give up; every other step
      // checks the halt signal when it ends.
      this.#halt.abort();
      this.#broker.release();
      // Not waited for beyond a moment: a connection attempt under way ends (and is closed) at its own timeout.
      await withDeadline(this.#transport?.close() ?? Promise.resolve(), CLEANUP_WAIT_MS);
    }
    await this.#starting?.catch(() => {});
    if (this.#state === "stopped" || this.#state === "idle") {
      this.#state = "stopped";
      return;
    }
    this.#state = "stopping";
    this.#halt.abort();
    this.#broker.release();
    const deadline = setTimeout(() => this.#abort.abort(), this.options.stopTimeoutMs);
    // Past the deadline the batches in flight are aborted and roll back; a connection that hangs even then (a
    // swallowed network) gets a few more seconds before stop() closes everything regardless.
    const hardDeadline = Date.now() + this.options.stopTimeoutMs + STOP_GRACE_MS;
    const work = Promise.all([this.#detachQueue?.(), this.#listener?.close(), this.#sweeper, ...this.#drainLoops]);
    await withDeadline(work, hardDeadline - Date.now());
    clearTimeout(deadline);
    // A hung client keeps pool.end() waiting until its query_timeout: stop() does not wait for that.
    await withDeadline(this.#closeResources(), Math.max(hardDeadline - Date.now(), 500));
    this.#state = "stopped";
    this.options.logger.info("relay stopped", { ...this.stats() });
    this.#emit({ type: "stopped" });
  }

  async #closeResources(): Promise<void> {
    this.#stopTransportEvents?.();
    this.#metrics?.close();
    await Promise.allSettled([
      this.#detachQueue?.(),
      this.#listener?.close(),
      this.#transport?.close(),
      this.#relayPool?.close(),
    ]);
  }

  #emit(event: RelayEvent): void {
    const log = this.options.logger;
    switch (event.type) {
      case "published":
        this.#stats.published += event.count;
        break;
      case "dead-lettered":
        this.#stats.deadLettered++;
        log.warn("message dead-lettered", {
          messageId: event.messageId,
          attempts: event.attempts,
          error: event.error.message,
        });
        break;
      case "retry-scheduled":
        this.#stats.retried++;
        break;
      case "batch-failed":
        this.#stats.failedBatches++;
        break;
    }
    safeEmit(this.#listeners, event);
  }

  #onTransportEvent(event: TransportEvent): void {
    this.#broker.observe(event, this.options.logger, this.#state === "running");
    this.#emit({ type: "transport", event });
  }

  /** Runs one cycle; adapts the batch limit and logs what failed. */
  async #batch(claim: Claim): Promise<{ claimed: number; keysMoved: boolean }> {
    const context = {
      pool: this.#pool!,
      transport: this.#transport!,
      options: this.options,
      emit: (e: RelayEvent) => this.#emit(e),
      signal: this.#abort.signal,
      brokerReady: () => this.#broker.ready(),
      lock: this.#publishLock,
      metrics: this.#metrics!,
    };
    try {
      const startedAt = Date.now();
      const { claimed, isolations, keysMoved, nacked } = await runBatch(context, claim).catch((error: unknown) => {
        // A batch claimed before the last lowering failed under the old limit: it says nothing new.
        if (error instanceof BatchTimeoutError) this.#limit.timedOut(error.claimed, startedAt);
        throw error;
      });
      if (isolations > 0) {
        this.#stats.isolatedBatches++;
        this.options.logger.warn("a batch failed as a whole because of one message: published in parts to find it", {
          path: claim.path,
          claimed,
          parts: isolations,
        });
      }
      if (nacked > 0) {
        this.#stats.nacked += nacked;
        // RabbitMQ's nack names no queue: every nack may be a partial delivery.
        this.options.logger.warn(
          "the broker nacked messages: a queue refused them (full with x-overflow reject-publish?); other queues bound to the same exchange may have them already and get them again at the next attempt",
          { path: claim.path, nacked },
        );
      }
      if (claimed > 0) this.#limit.succeeded();
      this.#database = { connected: true };
      this.#lastCycleAt = Date.now();
      // A key's next row became claimable (the one before it left the table): a drain loop takes it now, rather than
      // at the next wake-up or sweep (a claim skips a key's later rows while an earlier one is in flight).
      if (keysMoved && claim.path !== "listen") this.#keyedWake();
      return { claimed, keysMoved };
    } catch (error) {
      // A publish that failed says nothing about the database; anything else (connect, claim, COMMIT) does.
      if (!(error instanceof OutboxPublishError)) {
        this.#database = { connected: false, error: this.#connections.scrub(describePgError(error).message) };
      }
      this.#logBatchFailure(claim.path, error);
      throw error;
    }
  }

  /** Waits out the pause after a timeout lowered the batch limit. */
  async #cooldown(): Promise<void> {
    const ms = this.#limit.cooldownMs;
    if (ms > 0) await sleep(ms, this.#halt.signal);
  }

  #logBatchFailure(path: ClaimPath, error: unknown): void {
    if (this.#halt.signal.aborted) return; // stopping: aborted batches are expected
    const { message, code, permanent } = describePgError(error);
    this.options.logger[permanent ? "error" : "warn"]("batch failed; retrying", {
      path,
      error: message,
      ...(code ? { code } : {}),
    });
  }

  async #runQueued(ids: string[]): Promise<void> {
    // With the broker away, leave the ids: its return wakes the drain loops, which take the rows.
    for (let start = 0; start < ids.length; start += this.#limit.value) {
      if (!this.#broker.ready() || this.#halt.signal.aborted) return;
      const part = ids.slice(start, start + this.#limit.value);
      await this.#batch({
        path: "queue",
        sql: beginClaimByIds(this.#names, part, this.options.keyAfterDeadLetter),
        onClaimed: (rows) => this.#sawRows(rows),
      }).catch(() => {});
    }
  }

  /**
   * One drain loop: claims the oldest due rows until a claim comes back short and no wake-up came meanwhile.
   *
   * Keyed relays (#keyed) claim with claimKeyed, from the start of the due rows every time (a key's next row is
   * behind any position). A claim is short whenever the keys are fewer than the limit, so the loop goes on while
   * claims bring rows and ends on an empty one. After a short claim the loop takes no more keyed rows than it got,
   * for KEYED_FEW_MS: the window walk then stops at the keys' next rows instead of reading the whole window (with 10
   * keys, 10 rows instead of 2 x limit); then one claim of the full limit looks for more keys. A full claim may have
   * left more: it starts the relay's other drain loops (many keys: several batches of different keys in flight),
   * unless one of them just found nothing.
   *
   * Lanes: the keys of a general keyed claim stay with the loop that published them: for KEYED_LANE_MS it claims only
   * their next rows (claimKeyHeads, one probe a key), then makes a general claim again, which finds the keys freed
   * meanwhile and others. A wake-up (a NOTIFY, a hand-off: rows of other keys may have come) ends a lane after
   * KEYED_FEW_MS. General claims cost several times a lane claim a row (the window walk passes the rows of the keys
   * in flight, and an empty one scans every key): with lanes of 250 ms they were a quarter of the keyed rows claimed
   * and half of the claims' database time in bench:relay.
   */
  async #drain(): Promise<void> {
    let failures = 0;
    let few: { keyLimit: number; until: number } | undefined;
    let lane: { keys: string[]; until: number; since: number; seq: number } | undefined;
    while (!this.#halt.signal.aborted) {
      await this.#broker.wait();
      await this.#cooldown();
      if (this.#halt.signal.aborted) return;
      const seq = this.#wakeSeq;
      const keyedSeq = this.#keyedSeq;
      const position = this.#drainPosition;
      const keyed = this.#keyed;
      const after = keyed ? undefined : position.next();
      const limit = this.#limit.value;
      if (few && Date.now() >= few.until) few = undefined;
      const keyLimit = Math.min(this.#keyLimit(limit), few?.keyLimit ?? Number.POSITIVE_INFINITY);
      let keyedClaimed = 0;
      const now = Date.now();
      const wokenInLane = lane !== undefined && lane.seq !== seq && now - lane.since >= KEYED_FEW_MS;
      if (lane && (!keyed || now >= lane.until || wokenInLane)) lane = undefined;
      const laneClaim = lane;
      let claimedKeys: string[] = [];
      try {
        const { claimed: n, keysMoved } = await this.#batch({
          path: "listen",
          sql: laneClaim
            ? beginClaimKeyHeads(this.#names, laneClaim.keys.slice(0, limit), this.options.keyAfterDeadLetter)
            : keyed
              ? beginClaimKeyed(this.#names, limit, keyLimit, this.options.keyAfterDeadLetter)
              : beginClaimNext(this.#names, limit, after, this.options.keyAfterDeadLetter),
          onClaimed: (rows) => {
            this.#sawRows(rows);
            claimedKeys = rows.flatMap((row) => (row.ordering_key === null ? [] : [row.ordering_key]));
            keyedClaimed = claimedKeys.length;
            if (keyed) position.reset();
            else position.claimed(rows, rows.length === limit);
          },
        });
        failures = 0;
        // Keyed rows it published (or the other paths did) let the keys' next rows be claimed: it goes on for those.
        const woken = seq !== this.#wakeSeq || keyedSeq !== this.#keyedSeq || keysMoved;
        if (laneClaim) {
          lane = claimedKeys.length > 0 ? { ...laneClaim, keys: claimedKeys } : undefined;
          continue;
        }
        if (keyed && claimedKeys.length > 0) {
          lane = { keys: claimedKeys, until: Date.now() + KEYED_LANE_MS, since: Date.now(), seq };
        }
        if (keyed) {
          if (n === 0 && !woken) {
            this.#keyedIdleAt = Date.now();
            return;
          }
          if (keyedClaimed > 0 && keyedClaimed < keyLimit) {
            few = { keyLimit: keyedClaimed, until: few?.until ?? Date.now() + KEYED_FEW_MS };
          } else if (keyedClaimed === 0) few = undefined;
          if (n >= limit && Date.now() - this.#keyedIdleAt >= KEYED_IDLE_MS) this.#fillDrainLoops();
          continue;
        }
        // A short claim after a position resets it: the loop looks once more from the start before it ends.
        if (n < limit && after === undefined && !woken) return;
      } catch {
        position.reset();
        failures++;
        await sleep(Math.max(backoffDelay(failures, 100, 5_000), this.#limit.cooldownMs), this.#halt.signal);
      }
    }
  }

  /** Starts drain loops up to `concurrency`. */
  #fillDrainLoops(): void {
    if (this.#state !== "running") return;
    while (this.#drainLoops.size < this.options.concurrency) this.#startDrainLoop();
  }

  async #sweep(): Promise<void> {
    const o = this.options;
    let failures = 0;
    while (!this.#halt.signal.aborted) {
      await sleep(
        failures > 0 ? backoffDelay(failures, o.sweepIntervalMs, 30_000) : o.sweepIntervalMs,
        this.#halt.signal,
      );
      await this.#broker.wait();
      await this.#cooldown();
      try {
        const position = this.#sweepPosition;
        // Keyed mode follows the table: a sweep that finds no keyed row left puts the relay back on claimNext.
        this.#keyed = (await this.#pool!.query<{ keyed: boolean }>(hasKeyedRowsSql(this.#names))).rows[0]!.keyed;
        // Every drain loop of a keyed relay running: they hold lanes and look for other keys as their lanes end, so a
        // keyed sweep would only find what they find, at the price of a general keyed claim (the most costly one,
        // and empty while every key is in flight: a window walk and a key scan for nothing).
        if (this.#keyed && this.#drainLoops.size >= o.concurrency) continue;
        while (!this.#halt.signal.aborted) {
          const keyed = this.#keyed;
          const after = keyed ? undefined : position.next();
          const limit = this.#limit.value;
          const keyLimit = this.#keyLimit(limit);
          const { claimed: n } = await this.#batch({
            path: "sweep",
            sql: keyed
              ? beginClaimKeyed(this.#names, limit, keyLimit, o.keyAfterDeadLetter, o.sweepMinAgeMs)
              : beginClaimSweep(this.#names, limit, o.sweepMinAgeMs, after, o.keyAfterDeadLetter),
            onClaimed: (rows) => {
              this.#sawRows(rows);
              if (keyed) position.reset();
              else position.claimed(rows, rows.length === limit);
            },
          });
          // A keyed claim is short by design (its share of keys): the sweep goes on while it gets a full share.
          if (keyed ? n < keyLimit : n < limit && after === undefined) break;
        }
        failures = 0;
      } catch {
        this.#sweepPosition.reset();
        failures++; // logged by #batch
      }
    }
  }
}

/** Creates a relay; call `start()` to run it. */
export function createRelay(options: RelayOptions): Relay {
  return new Relay(options);
}

/** Creates and starts a relay inside the app's process, fed by the extension's in-process queue. */
export async function startRelay(options: RelayOptions): Promise<Relay> {
  const relay = new Relay(options);
  await relay.start();
  return relay;
}
