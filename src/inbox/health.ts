// What `inbox.health()` reports, and the words it uses for what it finds.
import type { Finding } from "../ops/doctor-finding.js";
import type { BacklogSnapshot } from "../telemetry/metrics.js";

/** What `inbox.health()` reports (and the CLI's /readyz serves). */
export interface InboxHealth {
  /** Running, database and broker connected, and claiming: the last claim is recent, or nothing is due. */
  ok: boolean;
  state: "idle" | "starting" | "running" | "stopping" | "stopped";
  /** Whether the processor's last claim reached the database; its error when it did not. */
  database: { connected: boolean; error?: string };
  /** Whether the consumer's connection is up, as its last event said. */
  broker: { connected: boolean };
  /** When the processor's last claim (of due rows or handed-over ids, even an empty one) ended well. */
  lastBatchAt: Date | undefined;
  /**
   * Deliveries received and not yet stored (unacknowledged), and since when receiving is stalled: deliveries have
   * waited 30 s with no batch stored (the database refusing every INSERT, or a batch retried for a long time).
   */
  receiving: { unstored: number; stalledSince: Date | undefined };
  /** Pending rows of the inbox table, all queues (cached for a few seconds); undefined when it could not be read. */
  backlog: BacklogSnapshot | undefined;
  /** Why `ok` is false, in words. */
  problems: string[];
  /**
   * What needs a person but does not make `ok` false: what the doctor's periodic checks found (`doctorIntervalMs`;
   * a held xmin horizon, drift, a backlog...: restarting the inbox fixes none of them, so they do not fail /readyz).
   */
  warnings: string[];
  /** The doctor's periodic checks: the findings of the last check that are not ok (undefined when they are off). */
  doctor: { findings: Finding[] } | undefined;
}

/** The receiver's stall as a doctor finding, for the inbox's own periodic check (log once per change, gauge). */
export function receiverStallFinding(stalledSince: Date | undefined, unstored: number): Finding {
  return {
    check: "receiver-stalled",
    level: stalledSince === undefined ? "ok" : "error",
    summary:
      stalledSince === undefined
        ? "the receiver stores what it receives"
        : `receiving stalled since ${stalledSince.toISOString()}: ${unstored} deliveries received and not stored`,
    cost: "deliveries wait unacknowledged in the broker's queue while the table looks empty: nothing is handled",
    action:
      "look at the inbox's log for the INSERT's error (the database refusing it, a lock, a full disk); the broker's " +
      "queue depth shows what waits",
    details: { stalledSince: stalledSince?.toISOString() ?? null, unstored },
  };
}

export const DECODE_LOOP_HINT =
  "move it away (docs/inbox.md#poison-header-tables: a quorum queue with x-delivery-limit and a dead-letter exchange ends it by itself)";

/** The loop, said so that an operator knows what is wrong and what to do. */
export function decodeLoopText(queue: string, error: Error): string {
  return (
    `broker: the connection drops on every reconnection (${error.message}): a message this client cannot decode ` +
    `heads queue "${queue}" and is redelivered forever; ${DECODE_LOOP_HINT}`
  );
}
