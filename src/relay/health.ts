// What the relay reports about itself: its counters (stats()), and whether it is doing its job (health(), the CLI's
// /readyz). The counters follow the relay's events; the cycle runner records whether the database answered and when
// the last cycle ended well.
import type { Finding } from "../ops/doctor-finding.js";
import type { DoctorWatch } from "../ops/doctor-watch.js";
import type { Logger } from "../runtime/logger.js";
import { describePgError } from "../runtime/pg.js";
import type { BacklogSnapshot } from "../telemetry/metrics.js";
import type { BrokerState } from "./broker-gate.js";
import type { RelayEvent } from "./events.js";
import { LISTEN_FAILING_AFTER, type OutboxListener } from "./listener.js";

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

/** The relay's lifecycle states (see relay.ts). */
export type RelayState = "idle" | "starting" | "running" | "stopping" | "stopped";

/** What `relay.health()` reports (and the CLI's /readyz serves). */
export interface RelayHealth {
  /** Running, database and broker connected, and claiming: the last cycle is recent, or nothing is due. */
  ok: boolean;
  state: RelayState;
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
  /**
   * What needs a person but does not make `ok` false (messages still flow, later): a failing LISTEN, and what the
   * doctor's periodic checks found (a held xmin horizon, autovacuum off, drift...: restarting the relay fixes none
   * of them, so they do not fail /readyz).
   */
  warnings: string[];
  /** The doctor's periodic checks (`doctorIntervalMs`): the findings of the last check that are not ok. */
  doctor: { findings: Finding[] } | undefined;
}

/** What to do when LISTEN keeps being lost: said in the error log and in health(). */
export const LISTEN_FAILING_HINT =
  "messages are delivered by the sweeper meanwhile (seconds late). If the database URL goes through a " +
  "transaction-mode pooler (PgBouncer, Supabase, Neon, RDS Proxy), give LISTEN a direct connection: `listenUrl` " +
  "(worker: --listen-url / OUTBOX_LISTEN_URL), or turn it off: `listen: false` (--no-listen)";

/** The relay's counters and what its cycles last said about the database. */
export class RelayRecord {
  readonly stats: Omit<RelayStats, "batchLimit"> = {
    published: 0,
    deadLettered: 0,
    retried: 0,
    failedBatches: 0,
    isolatedBatches: 0,
    nacked: 0,
  };
  /** Set by start()'s check and by each cycle: whether its queries reached the database. */
  database: { connected: boolean; error?: string } = { connected: false };
  /** When the last cycle ended well (ms since the epoch). */
  lastCycleAt: number | undefined;

  /** The counters, with the batch limit in its place (the order `relay stopped` logs them in). */
  snapshot(batchLimit: number): RelayStats {
    const { published, deadLettered, retried, failedBatches, isolatedBatches, nacked } = this.stats;
    return { published, deadLettered, retried, failedBatches, isolatedBatches, batchLimit, nacked };
  }

  /** Counts an event the relay is about to tell its listeners (and logs a dead letter). */
  count(event: RelayEvent, log: Logger): void {
    switch (event.type) {
      case "published":
        this.stats.published += event.count;
        break;
      case "dead-lettered":
        this.stats.deadLettered++;
        log.warn("message dead-lettered", {
          messageId: event.messageId,
          attempts: event.attempts,
          reason: event.reason,
          error: event.error.message,
        });
        break;
      case "retry-scheduled":
        this.stats.retried++;
        break;
      case "batch-failed":
        this.stats.failedBatches++;
        break;
    }
  }
}

/** What health() looks at. */
export interface HealthInputs {
  state: RelayState;
  record: RelayRecord;
  broker: BrokerState;
  listener: OutboxListener | undefined;
  backlog: BacklogSnapshot | undefined;
  sweepIntervalMs: number;
  publishTimeoutMs: number;
  doctor?: DoctorWatch | undefined;
}

/** The health report, from what the relay already knows plus the backlog. */
export function relayHealth(inputs: HealthInputs): RelayHealth {
  const { state, record, broker, backlog } = inputs;
  const lastCycleAt = record.lastCycleAt;
  const problems: string[] = [];
  if (state !== "running") problems.push(`the relay is ${state}`);
  if (!record.database.connected) problems.push(`database: ${record.database.error ?? "not connected"}`);
  if (broker !== "ready") problems.push(`broker: ${broker === "blocked" ? "blocked" : "not connected"}`);
  // A cycle runs at least every sweepIntervalMs; one may take a publish timeout, and a timeout pauses claims for
  // another.
  const staleAfterMs = inputs.sweepIntervalMs + 2 * inputs.publishTimeoutMs + 10_000;
  const recent = lastCycleAt !== undefined && Date.now() - lastCycleAt <= staleAfterMs;
  if (state === "running" && !recent && backlog?.due !== 0) {
    problems.push(
      lastCycleAt === undefined
        ? "no batch has run yet"
        : `no batch for ${Date.now() - lastCycleAt} ms with messages due`,
    );
  }
  const warnings: string[] = [];
  let listen: RelayHealth["listen"];
  const ls = inputs.listener?.status();
  if (ls) {
    const error = ls.lastError ? describePgError(ls.lastError).message : undefined;
    listen = { listening: ls.listening, lostInARow: ls.lostInARow, ...(error ? { error } : {}) };
    if (ls.lostInARow >= LISTEN_FAILING_AFTER) {
      warnings.push(`LISTEN lost ${ls.lostInARow} times in a row (last: ${error}); ${LISTEN_FAILING_HINT}`);
    }
  }
  if (inputs.doctor) warnings.push(...inputs.doctor.warnings());
  return {
    ok: problems.length === 0,
    state,
    database: { ...record.database },
    broker: { connected: broker === "ready" || broker === "blocked", state: broker },
    lastBatchAt: lastCycleAt === undefined ? undefined : new Date(lastCycleAt),
    backlog,
    listen,
    problems,
    warnings,
    doctor: inputs.doctor ? { findings: inputs.doctor.findings() } : undefined,
  };
}
