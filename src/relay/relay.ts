// The relay: the facade over its parts, which publish the outbox's rows over one pool, one transport and one LISTEN
// connection.
//
// States: idle -> starting -> running -> stopping -> stopped. start() and stop() are idempotent and race-safe: each
// keeps its promise. start() opens the resources in order (startup.ts); a step that fails, or stop() called during
// any step, closes what the earlier steps opened and start() rejects: a failed start leaves nothing running. Once
// running, every failure is retried and logged.
//
// Paths that claim batches (all run the cycle in batch.ts, through cycle-runner.ts):
//   queue   ids the extension handed over after COMMIT in this process: claimed by id, at once (queue-path.ts).
//   listen  a NOTIFY from a writer in any process, a broker reconnect, or start(): up to `concurrency` drain loops
//           claim the oldest due rows until a claim from the start of the index comes back short (drain-loops.ts).
//   sweep   every sweepIntervalMs, due rows older than sweepMinAgeMs, until such a claim comes back short
//           (sweeper.ts).
// The drain loops and the sweeper share one skeleton (claim-loop.ts): while the broker is disconnected or blocked
// (including blocked from the start) no path claims anything: rows stay where they are, and the broker's return
// wakes the drain loops. Once the outbox holds keyed rows, they claim with claimKeyed instead (keyed-lanes.ts).
//
// Batch limit: claims take at most `limit` rows, `batchSize` at first. A batch that times out as a whole halves it
// (the broker is slower than the batch needs); it doubles back after 30 s without a timeout (batch-limit.ts).
// So a slow but healthy broker costs at most one timed-out batch (published again: duplicates) per drain loop and
// 30 s once the limit has adapted, instead of one every publishTimeoutMs.

import { DoctorWatch } from "../ops/doctor-watch.js";
import { safeEmit } from "../runtime/emitter.js";
import { type OutboxNames, outboxNames } from "../sql/names.js";
import { hasKeyedRowsSql } from "../sql/outbox/claim.js";
import type { TransportEvent } from "../transport/transport.js";
import { BatchLimit } from "./batch-limit.js";
import { BrokerGate } from "./broker-gate.js";
import type { ClaimLoopGates } from "./claim-loop.js";
import { CycleRunner } from "./cycle-runner.js";
import { DrainLoops } from "./drain-loops.js";
import type { RelayEvent, RelayEventListener } from "./events.js";
import { type RelayHealth, RelayRecord, type RelayState, type RelayStats, relayHealth } from "./health.js";
import { KeyedMode } from "./keyed-lanes.js";
import { type RelayConnections, type RelayOptions, type ResolvedRelayOptions, resolveRelayOptions } from "./options.js";
import { PublishLock } from "./publish-lock.js";
import { publishQueued } from "./queue-path.js";
import { CLEANUP_WAIT_MS, RelayResources, withDeadline } from "./startup.js";
import { runSweeper } from "./sweeper.js";

export type { RelayHealth, RelayStats } from "./health.js";

/** How long stop() waits, past its deadline, for what it aborted and for connections to close. */
const STOP_GRACE_MS = 5_000;

export class Relay {
  /** The settings in effect, defaults applied; connection strings shown without their password. */
  readonly options: ResolvedRelayOptions;
  /** The connections, passwords included: private, so that logging the relay or its options shows none. */
  readonly #connections: RelayConnections;
  readonly #names: OutboxNames;
  #state: RelayState = "idle";
  #starting: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  #listeners = new Set<RelayEventListener>();
  readonly #record = new RelayRecord();
  readonly #resources = new RelayResources();
  /** Aborts the batches in flight when stop() passes its deadline. */
  #abort = new AbortController();
  /** Ends waits (backoff, sweep interval, broker gate) as soon as stop() begins. */
  #halt = new AbortController();
  readonly #broker = new BrokerGate(this.#halt.signal, () => this.wake());
  readonly #limit: BatchLimit;
  readonly #keyed: KeyedMode;
  readonly #publishLock = new PublishLock();
  #drainLoops: DrainLoops | undefined;
  /** Starts the sweeper (set once the resources are open). */
  #runSweeper: (() => Promise<void>) | undefined;
  #sweeper: Promise<void> | undefined;
  /** Ends the wake-ups on the clock's moves (set while running). */
  #stopClock: (() => void) | undefined;
  /** The doctor's periodic checks (doctorIntervalMs), once running. */
  #doctor: DoctorWatch | undefined;

  constructor(options: RelayOptions) {
    const resolved = resolveRelayOptions(options);
    this.options = resolved.options;
    this.#connections = resolved.connections;
    this.#names = outboxNames(resolved.options.schema, resolved.options.clock);
    this.#limit = new BatchLimit(this.options.batchSize, this.options.publishTimeoutMs, this.options.logger);
    this.#keyed = new KeyedMode(this.options.concurrency);
  }

  get state() {
    return this.#state;
  }

  stats(): RelayStats {
    return this.#record.snapshot(this.#limit.value);
  }

  /**
   * Whether the relay is doing its job, from what it already knows plus the backlog (one query at most every few
   * seconds, shared with the metrics gauges). For an app's health endpoint; the CLI serves it as /readyz.
   */
  async health(): Promise<RelayHealth> {
    const backlog = this.#state === "running" ? await this.#resources.probe?.read() : undefined;
    return relayHealth({
      state: this.#state,
      record: this.#record,
      broker: this.#broker.state,
      listener: this.#resources.listener,
      backlog,
      sweepIntervalMs: this.options.sweepIntervalMs,
      publishTimeoutMs: this.options.publishTimeoutMs,
      doctor: this.#doctor,
    });
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
    this.#drainLoops?.wake();
  }

  async #start(): Promise<void> {
    const o = this.options;
    this.#state = "starting";
    try {
      await this.#resources.open({
        options: o,
        connections: this.#connections,
        names: this.#names,
        halt: this.#halt.signal,
        record: this.#record,
        keyed: this.#keyed,
        broker: this.#broker,
        onTransportEvent: (event) => this.#onTransportEvent(event),
        onNotify: () => this.wake(),
        emit: (event) => this.#emit(event),
        opened: (resources) => this.#assemble(resources),
      });
    } catch (error) {
      this.#state = "stopped";
      throw error;
    }
    this.#state = "running";
    this.#sweeper = this.#runSweeper?.();
    // A test clock moved forward: retries and delayed rows may be due now, which no NOTIFY announces.
    this.#stopClock = o.clock.onAdvance(() => this.wake());
    if (o.doctorIntervalMs > 0) {
      this.#doctor = new DoctorWatch({
        pool: this.#resources.pool!,
        doctor: { ...o.doctorThresholds, schema: o.schema, parts: ["outbox"] },
        intervalMs: o.doctorIntervalMs,
        logger: o.logger,
        component: "relay",
      });
      this.#doctor.start();
    }
    this.wake(); // what was written while no relay ran
    o.logger.info("relay started", { batchSize: o.batchSize, concurrency: o.concurrency, listen: o.listen });
    this.#emit({ type: "started" });
  }

  /** Builds the paths over the open resources (the batch context once); returns the queue path's entry. */
  #assemble(resources: RelayResources): (ids: string[]) => Promise<void> {
    const o = this.options;
    const cycles = new CycleRunner(
      {
        pool: resources.pool!,
        transport: resources.transport!,
        options: o,
        emit: (e: RelayEvent) => this.#emit(e),
        signal: this.#abort.signal,
        brokerReady: () => this.#broker.ready(),
        lock: this.#publishLock,
        metrics: resources.metrics!,
      },
      this.#limit,
      this.#record,
      this.#halt.signal,
      (message) => this.#connections.scrub(message),
      () => this.#drainLoops?.keyedWake(),
    );
    const gates: ClaimLoopGates = { halt: this.#halt.signal, broker: this.#broker, limit: this.#limit };
    const names = this.#names;
    const keyed = this.#keyed;
    const drainLoops = new DrainLoops({ gates, cycles, names, keyed, running: () => this.#state === "running" });
    this.#drainLoops = drainLoops;
    const pool = resources.pool!;
    this.#runSweeper = () =>
      runSweeper({
        gates,
        cycles,
        names,
        keyed,
        hasKeyedRows: async () => (await pool.query<{ keyed: boolean }>(hasKeyedRowsSql(names))).rows[0]!.keyed,
        drainLoops: () => drainLoops.size,
      });
    return (ids) => publishQueued({ gates, cycles, names, keyed }, ids);
  }

  async #stop(): Promise<void> {
    if (this.#state === "starting") {
      // start() may be waiting for an unreachable broker: closing the transport makes it give up; every other step
      // checks the halt signal when it ends.
      this.#halt.abort();
      this.#broker.release();
      // Not waited for beyond a moment: a connection attempt under way ends (and is closed) at its own timeout.
      await withDeadline(this.#resources.transport?.close() ?? Promise.resolve(), CLEANUP_WAIT_MS);
    }
    await this.#starting?.catch(() => {});
    if (this.#state === "stopped" || this.#state === "idle") {
      this.#state = "stopped";
      return;
    }
    this.#state = "stopping";
    this.#stopClock?.();
    this.#halt.abort();
    this.#broker.release();
    const deadline = setTimeout(() => this.#abort.abort(), this.options.stopTimeoutMs);
    // Past the deadline the batches in flight are aborted and roll back; a connection that hangs even then (a
    // swallowed network) gets a few more seconds before stop() closes everything regardless.
    const hardDeadline = Date.now() + this.options.stopTimeoutMs + STOP_GRACE_MS;
    const work = Promise.all([
      this.#resources.stopIntake(),
      this.#sweeper,
      this.#drainLoops?.settled(),
      this.#doctor?.stop(),
    ]);
    await withDeadline(work, hardDeadline - Date.now());
    clearTimeout(deadline);
    // A hung client keeps pool.end() waiting until its query_timeout: stop() does not wait for that.
    await withDeadline(this.#resources.close(), Math.max(hardDeadline - Date.now(), 500));
    this.#state = "stopped";
    this.options.logger.info("relay stopped", { ...this.stats() });
    this.#emit({ type: "stopped" });
  }

  #emit(event: RelayEvent): void {
    this.#record.count(event, this.options.logger);
    safeEmit(this.#listeners, event);
  }

  #onTransportEvent(event: TransportEvent): void {
    this.#broker.observe(event, this.options.logger, this.#state === "running");
    this.#emit({ type: "transport", event });
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
