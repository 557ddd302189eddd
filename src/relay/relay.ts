// The relay: publisher (fast path) + sweeper (fallback) over one pool, one transport and one LISTEN connection.
//
// States: idle -> starting -> running -> stopping -> stopped. start() and stop() are idempotent and race-safe: each
// keeps its promise, and stop() during start() waits for the start to settle first.
//
// Paths that claim batches (all run the cycle in batch.ts):
//   queue   ids the extension handed over after COMMIT in this process: claimed by id, at once.
//   listen  a NOTIFY from a writer in any process, a broker reconnect, or start(): up to `concurrency` drain loops
//           claim the oldest due rows until a claim from the start of the index comes back short.
//   sweep   every sweepIntervalMs, due rows older than sweepMinAgeMs, until such a claim comes back short.
// While claims come back full, the drain loops (and, apart, the sweeper) claim after the last row they took instead of
// from the start (claim-position.ts): rows just deleted and not yet vacuumed are not walked again.
// While the broker is disconnected or blocked no path claims anything: rows stay where they are, and the broker's
// return wakes the drain loops.
import type pg from "pg";
import {
  type RelayConnections,
  type RelayOptions,
  type ResolvedRelayOptions,
  resolveRelayOptions,
} from "../config/relay-options.js";
import { coerceError, OutboxConfigError, OutboxError } from "../message/errors.js";
import { checkTableSql, UNDEFINED_TABLE } from "../sql/check-table.js";
import { beginClaimByIds, beginClaimNext, beginClaimSweep } from "../sql/claim-messages.js";
import { type OutboxNames, outboxNames } from "../sql/names.js";
import type { Transport, TransportEvent } from "../transport/transport.js";
import { backoffDelay, sleep } from "./backoff.js";
import { type Claim, runBatch } from "./batch.js";
import { ClaimPosition } from "./claim-position.js";
import { openPool, type RelayPool } from "./connections.js";
import { type RelayEvent, type RelayEventListener, safeEmit } from "./events.js";
import { OutboxListener } from "./listener.js";

/** How long stop() waits, past its deadline, for what it aborted and for connections to close. */
const STOP_GRACE_MS = 5_000;

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
  #stats: RelayStats = { published: 0, deadLettered: 0, retried: 0, failedBatches: 0 };
  #pool: pg.Pool | undefined;
  #relayPool: RelayPool | undefined;
  #transport: Transport | undefined;
  #listener: OutboxListener | undefined;
  #detachQueue: (() => Promise<void>) | undefined;
  #stopTransportEvents: (() => void) | undefined;
  /** Aborts the batches in flight when stop() passes its deadline. */
  #abort = new AbortController();
  /** Ends waits (backoff, sweep interval, broker gate) as soon as stop() begins. */
  #halt = new AbortController();
  #brokerReady = false;
  #brokerWaiters: Array<() => void> = [];
  #wakeSeq = 0;
  #drainLoops = new Set<Promise<void>>();
  /** Where the drain loops' and the sweeper's next claims start (see claim-position.ts). */
  #drainPosition = new ClaimPosition();
  #sweepPosition = new ClaimPosition();
  #sweeper: Promise<void> | undefined;

  constructor(options: RelayOptions) {
    const resolved = resolveRelayOptions(options);
    this.options = resolved.options;
    this.#connections = resolved.connections;
    this.#names = outboxNames(resolved.options.schema);
  }

  get state() {
    return this.#state;
  }

  stats(): RelayStats {
    return { ...this.#stats };
  }

  /** Subscribes to relay events; returns the unsubscribe function. A listener that throws is ignored. */
  onEvent(listener: RelayEventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Connects to the database and the broker and starts publishing. Resolves once the broker is connected. */
  start(): Promise<void> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  /**
   * Stops claiming, lets the batches in flight finish (or, past `stopTimeoutMs`, aborts them: they roll back),
   * closes every connection, and resolves. Idempotent.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  /** Wakes the drain loops, as a NOTIFY does. */
  wake(): void {
    if (this.#state !== "running") return;
    this.#wakeSeq++;
    while (this.#drainLoops.size < this.options.concurrency) {
      const loop: Promise<void> = this.#drain().finally(() => this.#drainLoops.delete(loop));
      this.#drainLoops.add(loop);
    }
  }

  async #start(): Promise<void> {
    const o = this.options;
    this.#state = "starting";
    this.#relayPool = openPool(this.#connections.database, {
      max: o.concurrency + (o.queue?.concurrency ?? 0) + 1,
      keepAlive: true,
      application_name: "prisma-outbox relay",
      // Row locks are never held by a hung relay for long: PostgreSQL ends a transaction left idle longer than
      // the publish timeout (plus slack), and any statement running longer than that.
      idle_in_transaction_session_timeout: o.publishTimeoutMs + 5_000,
      statement_timeout: o.publishTimeoutMs + 5_000,
      // And a network that swallows packets cannot hang a cycle either: these fail on the client's side.
      connectionTimeoutMillis: 10_000,
      query_timeout: o.publishTimeoutMs + 10_000,
    });
    this.#pool = this.#relayPool.pool;
    try {
      await this.#checkTable();
    } catch (error) {
      await this.#closeResources();
      this.#state = "stopped";
      throw error;
    }
    if (o.transport) this.#transport = o.transport;
    else {
      const { AmqpTransport } = await import("../transport/amqp.js");
      this.#transport = new AmqpTransport({ url: this.#connections.amqpUrl!, exchanges: o.exchanges });
    }
    this.#stopTransportEvents = this.#transport.onEvent((event) => this.#onTransportEvent(event));
    try {
      await this.#transport.start();
      if (this.#halt.signal.aborted) throw new OutboxError("The relay was stopped while it was starting.");
    } catch (error) {
      await this.#closeResources();
      this.#state = "stopped";
      throw error;
    }
    this.#brokerReady = true;
    this.#state = "running";
    if (o.listen) {
      this.#listener = new OutboxListener(this.#connections.database, this.#names, {
        onNotify: () => this.wake(),
        onReconnecting: (attempt, delayMs, error) => {
          o.logger.warn("LISTEN connection lost; reconnecting", { attempt, delayMs, error: error.message });
          this.#emit({ type: "listen-reconnecting", attempt, delayMs, error });
        },
      });
      await this.#listener.start();
    }
    this.#detachQueue = o.queue?.attach(
      (ids) => this.#runQueued(ids),
      () => {},
    );
    this.#sweeper = this.#sweep();
    this.wake(); // what was written while no relay ran
    o.logger.info("relay started", { batchSize: o.batchSize, concurrency: o.concurrency, listen: o.listen });
    this.#emit({ type: "started" });
  }

  /**
   * Fails start() with a message that says what to do when the outbox table is missing, and opens the pool's
   * connections now, so that the first messages do not pay for connection set-up. A database that does not answer
   * is not an error here: the relay retries it like any other outage.
   */
  async #checkTable(): Promise<void> {
    const pool = this.#pool!;
    // The app's pool gets asked for one client only: it may allow fewer than `concurrency`, and holding them all here
    // would wait forever for a client that nobody releases.
    const warm = this.#connections.database.kind === "pool" ? 1 : this.options.concurrency;
    const clients = await Promise.allSettled(Array.from({ length: warm }, () => pool.connect()));
    try {
      const first = clients.find((c) => c.status === "fulfilled");
      if (!first) return;
      await first.value.query(checkTableSql(this.#names)).catch((error: { code?: string }) => {
        if (error.code !== UNDEFINED_TABLE) return;
        const { schema } = this.#names;
        throw new OutboxConfigError(
          `The table outbox_message does not exist in schema "${schema}" of the database (${this.options.database}): ` +
            "add prisma-outbox's model (prisma/outbox.prisma) to your Prisma schema and run `prisma migrate dev` " +
            "(or `prisma migrate deploy`), or set `schema` to the schema that holds it.",
        );
      });
    } finally {
      for (const c of clients) if (c.status === "fulfilled") c.value.release();
    }
  }

  async #stop(): Promise<void> {
    if (this.#state === "starting") {
      // start() may be waiting for an unreachable broker: closing the transport makes it give up.
      this.#halt.abort();
      await this.#transport?.close();
    }
    await this.#starting?.catch(() => {});
    if (this.#state === "stopped" || this.#state === "idle") {
      this.#state = "stopped";
      return;
    }
    this.#state = "stopping";
    this.#halt.abort();
    this.#releaseBrokerWaiters();
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
    this.options.logger.info("relay stopped", { ...this.#stats });
    this.#emit({ type: "stopped" });
  }

  async #closeResources(): Promise<void> {
    this.#stopTransportEvents?.();
    await Promise.allSettled([this.#transport?.close(), this.#relayPool?.close()]);
  }

  #emit(event: RelayEvent): void {
    switch (event.type) {
      case "published":
        this.#stats.published += event.count;
        break;
      case "dead-lettered":
        this.#stats.deadLettered++;
        this.options.logger.warn("message dead-lettered", {
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
    const log = this.options.logger;
    switch (event.type) {
      case "connected":
        if (this.#state === "running") log.info("broker reconnected");
        this.#brokerReady = true;
        this.#releaseBrokerWaiters();
        this.wake(); // publish what piled up while the broker was away
        break;
      case "unblocked":
        log.info("broker unblocked");
        this.#brokerReady = true;
        this.#releaseBrokerWaiters();
        this.wake();
        break;
      case "disconnected":
        log.warn("broker connection lost", { error: event.error?.message });
        this.#brokerReady = false;
        break;
      case "blocked":
        log.warn("broker blocked publishing (resource alarm)", { reason: event.reason });
        this.#brokerReady = false;
        break;
      case "reconnecting":
        log.warn("reconnecting to the broker", {
          attempt: event.attempt,
          delayMs: event.delayMs,
          error: event.error.message,
        });
        break;
    }
    this.#emit({ type: "transport", event });
  }

  #releaseBrokerWaiters(): void {
    const waiters = this.#brokerWaiters;
    this.#brokerWaiters = [];
    for (const w of waiters) w();
  }

  /** Resolves when the broker can take messages (or the relay stops). */
  #brokerGate(): Promise<void> | undefined {
    if (this.#brokerReady || this.#halt.signal.aborted) return undefined;
    return new Promise((resolve) => this.#brokerWaiters.push(resolve));
  }

  #batch(claim: Claim): Promise<number> {
    return runBatch(this.#pool!, this.#transport!, this.options, claim, (e) => this.#emit(e), this.#abort.signal);
  }

  async #runQueued(ids: string[]): Promise<void> {
    // With the broker away, leave the ids: its return wakes the drain loops, which take the rows.
    if (!this.#brokerReady || this.#halt.signal.aborted) return;
    await this.#batch({ path: "queue", sql: beginClaimByIds(this.#names, ids) }).catch(() => {});
  }

  /** One drain loop: claims the oldest due rows until a claim comes back short and no wake-up came meanwhile. */
  async #drain(): Promise<void> {
    let failures = 0;
    while (!this.#halt.signal.aborted) {
      await this.#brokerGate();
      if (this.#halt.signal.aborted) return;
      const seq = this.#wakeSeq;
      const position = this.#drainPosition;
      const after = position.next();
      const batchSize = this.options.batchSize;
      try {
        const n = await this.#batch({
          path: "listen",
          sql: beginClaimNext(this.#names, batchSize, after),
          onClaimed: (rows) => position.claimed(rows, rows.length === batchSize),
        });
        failures = 0;
        // A short claim after a position resets it: the loop looks once more from the start before it ends.
        if (n < batchSize && after === undefined && seq === this.#wakeSeq) return;
      } catch {
        position.reset();
        failures++;
        await sleep(backoffDelay(failures, 100, 5_000), this.#halt.signal);
      }
    }
  }

  async #sweep(): Promise<void> {
    const o = this.options;
    let failures = 0;
    while (!this.#halt.signal.aborted) {
      await sleep(
        failures > 0 ? backoffDelay(failures, o.sweepIntervalMs, 30_000) : o.sweepIntervalMs,
        this.#halt.signal,
      );
      await this.#brokerGate();
      try {
        const position = this.#sweepPosition;
        while (!this.#halt.signal.aborted) {
          const after = position.next();
          const n = await this.#batch({
            path: "sweep",
            sql: beginClaimSweep(this.#names, o.batchSize, o.sweepMinAgeMs, after),
            onClaimed: (rows) => position.claimed(rows, rows.length === o.batchSize),
          });
          if (n < o.batchSize && after === undefined) break;
        }
        failures = 0;
      } catch (error) {
        this.#sweepPosition.reset();
        failures++;
        o.logger.warn("sweep failed; retrying", { error: coerceError(error).message, failures });
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
