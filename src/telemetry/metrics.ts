// Metrics of the relay and the inbox, through @opentelemetry/api: the app registers a MeterProvider (and its exporter),
// or the bundled CLI does for /metrics. Meter "prisma-outbox". docs/operating.md#metrics lists them.
//
// The meter is taken when a relay or an inbox starts, not when this module loads: the API hands out no-op meters
// until a MeterProvider is registered, and keeps handing out the same no-op ones afterwards (there is no proxy for
// meters as there is for tracers). So register the provider before start(). Without one, `enabled` is false and the
// relay skips the per-message work of its metrics entirely.
//
// Gauges (backlog, oldest due age) come from one query run when a reader collects, cached for a few seconds by the
// caller (backlog-probe.ts): nothing is queried unless something reads them.
import { type Attributes, createNoopMeter, type Meter, metrics, type ObservableResult } from "@opentelemetry/api";

const METER_NAME = "prisma-outbox";

const NoopMeter = createNoopMeter().constructor;

/** Bucket boundaries, in seconds, for durations and lags (the SDK's defaults are for milliseconds). */
const SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
const BATCH_SIZES = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];

/** The backlog as a probe reports it. */
export interface BacklogSnapshot {
  /** Rows due now. */
  due: number;
  /** Rows waiting for a later time (retry backoff, delayed messages, inbox leases). */
  deferred: number;
  /** Age of the oldest due row in milliseconds; 0 when none is due. */
  oldestDueAgeMs: number;
}

type BacklogSource = () => Promise<BacklogSnapshot | undefined>;

/** Whether a MeterProvider is registered globally (the API's meters are no-ops otherwise). */
export function meterProviderRegistered(): boolean {
  return !(metrics.getMeter(METER_NAME) instanceof NoopMeter);
}

function meter(): { meter: Meter; enabled: boolean } {
  const m = metrics.getMeter(METER_NAME);
  return { meter: m, enabled: !(m instanceof NoopMeter) };
}

/** Registers the backlog gauges on `m`; returns the function that removes them. */
function backlogGauges(m: Meter, prefix: string, attributes: Attributes, source: BacklogSource): () => void {
  const backlog = m.createObservableGauge(`${prefix}.backlog`, {
    description: "Rows waiting: due now (state=due) or later (state=deferred)",
    unit: "{message}",
  });
  const oldest = m.createObservableGauge(`${prefix}.oldest_due_age`, {
    description: "Age of the oldest due row (0 when nothing is due)",
    unit: "s",
  });
  let pending: Promise<BacklogSnapshot | undefined> | undefined;
  // One probe for both gauges of one collection.
  const read = () => {
    pending ??= source()
      .catch(() => undefined)
      .finally(() => setTimeout(() => (pending = undefined), 0).unref());
    return pending;
  };
  const onBacklog = async (result: ObservableResult) => {
    const b = await read();
    if (!b) return;
    result.observe(b.due, { ...attributes, state: "due" });
    result.observe(b.deferred, { ...attributes, state: "deferred" });
  };
  const onOldest = async (result: ObservableResult) => {
    const b = await read();
    if (b) result.observe(b.oldestDueAgeMs / 1000, attributes);
  };
  backlog.addCallback(onBacklog);
  oldest.addCallback(onOldest);
  return () => {
    backlog.removeCallback(onBacklog);
    oldest.removeCallback(onOldest);
  };
}

/** The relay's instruments. */
export class RelayMetrics {
  /** False when no MeterProvider is registered: callers skip what they would compute only for metrics. */
  readonly enabled: boolean;
  readonly #published;
  readonly #retried;
  readonly #dead;
  readonly #failed;
  readonly #size;
  readonly #duration;
  readonly #lag;
  readonly #removeGauges: () => void;

  constructor(source: BacklogSource) {
    const { meter: m, enabled } = meter();
    this.enabled = enabled;
    const p = "prisma_outbox.relay";
    this.#published = m.createCounter(`${p}.published`, {
      description: "Messages published and confirmed by the broker",
      unit: "{message}",
    });
    this.#retried = m.createCounter(`${p}.retries`, {
      description: "Messages refused by the broker (unroutable, nacked) and put back for a later attempt",
      unit: "{message}",
    });
    this.#dead = m.createCounter(`${p}.dead_letters`, {
      description:
        "Messages moved to the dead-letter table (reason: attempts = after their last attempt, non-retryable, expired)",
      unit: "{message}",
    });
    this.#failed = m.createCounter(`${p}.failed_batches`, {
      description: "Batches that failed as a whole and rolled back (published again later)",
      unit: "{batch}",
    });
    this.#size = m.createHistogram(`${p}.batch.size`, {
      description: "Messages per committed batch",
      unit: "{message}",
      advice: { explicitBucketBoundaries: BATCH_SIZES },
    });
    this.#duration = m.createHistogram(`${p}.batch.duration`, {
      description: "Claim to COMMIT of a batch",
      unit: "s",
      advice: { explicitBucketBoundaries: SECONDS },
    });
    this.#lag = m.createHistogram(`${p}.lag`, {
      description: "From the message's write (created_at) to its publish committed",
      unit: "s",
      advice: { explicitBucketBoundaries: SECONDS },
    });
    this.#removeGauges = backlogGauges(m, p, {}, source);
  }

  /** A committed batch: per message its exchange, when it was written, and what became of it. */
  committed(
    path: string,
    messages: ReadonlyArray<{
      exchange: string;
      createdAt: number;
      outcome: "published" | "retry" | "dead";
      /** Why a dead one is dead (attribute `reason`: attempts, non-retryable, expired). */
      reason?: string | undefined;
    }>,
    durationMs: number,
  ): void {
    const now = Date.now();
    // Per exchange: the counts, and one attributes object shared by its lag records.
    const byExchange = new Map<string, { a: Attributes; published: number; retried: number }>();
    for (const m of messages) {
      let e = byExchange.get(m.exchange);
      if (!e) {
        e = { a: { "messaging.destination.name": m.exchange }, published: 0, retried: 0 };
        byExchange.set(m.exchange, e);
      }
      if (m.outcome === "published") {
        e.published++;
        this.#lag.record(Math.max(0, now - m.createdAt) / 1000, e.a);
      } else if (m.outcome === "retry") e.retried++;
      else this.#dead.add(1, { ...e.a, reason: m.reason ?? "attempts" }); // rare: one add each
    }
    for (const { a, published, retried } of byExchange.values()) {
      if (published > 0) this.#published.add(published, a);
      if (retried > 0) this.#retried.add(retried, a);
    }
    if (messages.length > 0) this.#size.record(messages.length, { path });
    this.#duration.record(durationMs / 1000, { path });
  }

  /** A batch that failed as a whole (rolled back). */
  failed(path: string, reason: string): void {
    this.#failed.add(1, { path, "error.type": reason });
  }

  /** Stops the gauges' callbacks (the relay stopped). */
  close(): void {
    this.#removeGauges();
  }
}

/** The inbox's instruments. Attributes: the queue, and the handler where one is known. */
export class InboxMetrics {
  readonly enabled: boolean;
  readonly #received;
  readonly #handled;
  readonly #failed;
  readonly #dead;
  readonly #decodeFailures;
  readonly #duration;
  readonly #queue: string;
  readonly #removeGauges: () => void;

  /** `unstored`: deliveries received and not yet stored, read when a reader collects. */
  constructor(queue: string, source: BacklogSource, unstored: () => number = () => 0) {
    const { meter: m, enabled } = meter();
    this.enabled = enabled;
    this.#queue = queue;
    const p = "prisma_outbox.inbox";
    this.#received = m.createCounter(`${p}.received`, {
      description: "Deliveries stored (outcome=stored) or dropped as duplicates (outcome=duplicate), then acked",
      unit: "{message}",
    });
    this.#handled = m.createCounter(`${p}.handled`, {
      description: "Handlings committed",
      unit: "{message}",
    });
    this.#failed = m.createCounter(`${p}.failed`, {
      description: "Handlings that threw or timed out and were scheduled again",
      unit: "{message}",
    });
    this.#dead = m.createCounter(`${p}.dead`, {
      description:
        "Messages dead for a handler (reason: attempts, non-retryable, expired) and invalid deliveries stored dead (reason: invalid)",
      unit: "{message}",
    });
    this.#decodeFailures = m.createCounter(`${p}.decode_failures`, {
      description:
        "Broker connections lost because a delivery could not be decoded, soon after consuming (a loop when it keeps rising: see health)",
      unit: "{connection}",
    });
    this.#duration = m.createHistogram(`${p}.handle.duration`, {
      description: "A handler's transaction, from start to COMMIT",
      unit: "s",
      advice: { explicitBucketBoundaries: SECONDS },
    });
    const removeBacklog = backlogGauges(m, p, { "messaging.destination.subscription.name": queue }, source);
    // The backlog gauges count stored rows: deliveries the database does not take (yet) show here instead.
    const waiting = m.createObservableGauge(`${p}.unstored`, {
      description: "Deliveries received from the broker and not yet stored (unacknowledged)",
      unit: "{message}",
    });
    const onWaiting = (result: ObservableResult) => result.observe(unstored(), this.#attributes());
    waiting.addCallback(onWaiting);
    this.#removeGauges = () => {
      removeBacklog();
      waiting.removeCallback(onWaiting);
    };
  }

  #attributes(handler?: string): Attributes {
    const a: Attributes = { "messaging.destination.subscription.name": this.#queue };
    if (handler !== undefined) a["messaging.consumer.group.name"] = handler;
    return a;
  }

  received(stored: number, duplicates: number): void {
    if (stored > 0) this.#received.add(stored, { ...this.#attributes(), outcome: "stored" });
    if (duplicates > 0) this.#received.add(duplicates, { ...this.#attributes(), outcome: "duplicate" });
  }

  handled(handler: string, durationMs: number): void {
    const a = this.#attributes(handler);
    this.#handled.add(1, a);
    this.#duration.record(durationMs / 1000, a);
  }

  failed(handler: string): void {
    this.#failed.add(1, this.#attributes(handler));
  }

  /** `reason`: attempts, non-retryable, expired, or invalid (a delivery that cannot be handled). */
  dead(handler: string, reason = "attempts"): void {
    this.#dead.add(1, { ...this.#attributes(handler), reason });
  }

  decodeFailure(): void {
    this.#decodeFailures.add(1, this.#attributes());
  }

  close(): void {
    this.#removeGauges();
  }
}

/**
 * The doctor's periodic checks in a relay or an inbox (ops/doctor-watch.ts): `prisma_outbox.doctor.warnings`, one
 * series per check (attribute `check`) and component (`relay` or `inbox`): 0 ok, 1 warning, 2 error, as of the last
 * check. An alert rule fires on `> 0` (docs/operating.md#what-to-alert-on). Returns the function that removes the gauge.
 */
export function doctorGauge(component: "relay" | "inbox", levels: () => ReadonlyMap<string, number>): () => void {
  const { meter: m } = meter();
  const gauge = m.createObservableGauge("prisma_outbox.doctor.warnings", {
    description: "The doctor's periodic checks: 0 ok, 1 warning, 2 error (attribute check)",
    unit: "1",
  });
  const onCollect = (result: ObservableResult) => {
    for (const [check, level] of levels()) result.observe(level, { check, component });
  };
  gauge.addCallback(onCollect);
  return () => gauge.removeCallback(onCollect);
}
