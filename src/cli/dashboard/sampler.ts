// The charts' data: outboxStatus and the outbox's row counters every `intervalMs`, kept in memory, the newest
// `capacity` samples (older ones dropped: the memory is bounded whatever the uptime).
//
// States: idle -> start() -> sampling (one sample at once, then one per interval; a sample starts only after the
// previous one ended, so a slow database never piles them up) -> stop() -> stopped (the timer cleared; a sample in
// flight finishes and is kept, none follows). A failed sample is logged once per change of its error (not every
// interval) and shown in the overview until one succeeds.
import type pg from "pg";
import { type OutboxActivity, outboxActivity } from "../../ops/activity.js";
import { type OutboxStatus, outboxStatus } from "../../ops/status.js";
import type { Logger } from "../../runtime/logger.js";

/** One point of the charts. Counts are null when the table does not exist; rates are null at the first sample. */
export interface Sample {
  /** Epoch ms. */
  at: number;
  outboxDue: number | null;
  outboxDeferred: number | null;
  outboxDead: number | null;
  /** Age of the oldest due outbox row, ms (0 when none is due). */
  outboxLagMs: number | null;
  inboxDue: number | null;
  inboxDead: number | null;
  inboxLagMs: number | null;
  /** Rows written into the outbox per second, over the last interval. */
  writtenPerSec: number | null;
  /** Rows claimed by relays per second (see sql/ops/activity.ts for what that counts). */
  claimedPerSec: number | null;
  /** Inbox rows marked processed per second. */
  processedPerSec: number | null;
}

interface Counters {
  at: number;
  activity: OutboxActivity | null;
  processed: number | null;
}

const rate = (now: number | null | undefined, before: number | null | undefined, seconds: number) =>
  now == null || before == null || now < before || seconds <= 0 ? null : (now - before) / seconds;

export class Sampler {
  readonly #samples: Sample[] = [];
  #latest: OutboxStatus | undefined;
  #previous: Counters | undefined;
  #error: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #state: "idle" | "sampling" | "stopped" = "idle";

  constructor(
    private readonly pool: pg.Pool,
    private readonly schema: string,
    private readonly intervalMs: number,
    private readonly capacity: number,
    private readonly logger: Logger,
  ) {}

  start(): void {
    if (this.#state !== "idle") return;
    this.#state = "sampling";
    void this.#tick();
  }

  stop(): void {
    this.#state = "stopped";
    clearTimeout(this.#timer);
  }

  /** The samples, oldest first, the latest status, and the error of the last sample when it failed. */
  snapshot(): { samples: Sample[]; status: OutboxStatus | undefined; error: string | undefined } {
    return { samples: [...this.#samples], status: this.#latest, error: this.#error };
  }

  /** Takes one sample now (also what the timer runs). */
  async sample(): Promise<void> {
    const at = Date.now();
    const [status, activity] = await Promise.all([
      outboxStatus(this.pool, { schema: this.schema }),
      outboxActivity(this.pool, { schema: this.schema }),
    ]);
    const processed = status.inbox.present ? status.inbox.processed : null;
    const before = this.#previous;
    const seconds = before ? (at - before.at) / 1000 : 0;
    const outbox = status.outbox.present ? status.outbox : undefined;
    const inbox = status.inbox.present ? status.inbox : undefined;
    this.#samples.push({
      at,
      outboxDue: outbox?.due ?? null,
      outboxDeferred: outbox?.deferred ?? null,
      outboxDead: outbox?.deadLetters.total ?? null,
      outboxLagMs: outbox ? (outbox.oldestDueAgeMs ?? 0) : null,
      inboxDue: inbox?.due ?? null,
      inboxDead: inbox?.dead.total ?? null,
      inboxLagMs: inbox ? (inbox.oldestDueAgeMs ?? 0) : null,
      writtenPerSec: rate(activity?.written, before?.activity?.written, seconds),
      claimedPerSec: rate(activity?.claimed, before?.activity?.claimed, seconds),
      processedPerSec: rate(processed, before?.processed, seconds),
    });
    if (this.#samples.length > this.capacity) this.#samples.splice(0, this.#samples.length - this.capacity);
    this.#previous = { at, activity, processed };
    this.#latest = status;
  }

  async #tick(): Promise<void> {
    try {
      await this.sample();
      if (this.#error !== undefined) this.logger.info("dashboard sampling works again");
      this.#error = undefined;
    } catch (error) {
      const message = (error as Error)?.message ?? String(error);
      if (message !== this.#error) this.logger.warn("dashboard sampling failed", { error: message });
      this.#error = message;
    }
    if (this.#state === "sampling") {
      this.#timer = setTimeout(() => void this.#tick(), this.intervalMs);
      this.#timer.unref();
    }
  }
}
