// Runs one claim-publish-commit cycle (batch.ts) for any path, and does what every path does around it: adapts the
// batch limit (batch-limit.ts), records whether the database answered and when the last cycle ended well (health.ts),
// counts isolations and nacks, logs what failed, and tells the drain loops when keys moved. Built once the relay's
// resources are open, with the batch context built once.
import { BatchTimeoutError, OutboxPublishError } from "../errors.js";
import { describePgError } from "../runtime/pg.js";
import { type BatchContext, type Claim, runBatch } from "./batch.js";
import type { BatchLimit } from "./batch-limit.js";
import type { ClaimPath } from "./events.js";
import type { RelayRecord } from "./health.js";
import type { ResolvedRelayOptions } from "./options.js";

export interface CycleResult {
  claimed: number;
  /** Keyed rows left the table: the next rows of their keys may be claimed now. */
  keysMoved: boolean;
}

export class CycleRunner {
  constructor(
    private readonly context: BatchContext,
    private readonly limit: BatchLimit,
    private readonly record: RelayRecord,
    /** Ends waits as soon as stop() begins: failures from then on are expected, and not logged. */
    private readonly halt: AbortSignal,
    /** Takes a database error message's secrets out (connection strings). */
    private readonly scrub: (message: string) => string,
    /** A path other than the drain loops' moved keys: a drain loop takes the keys' next rows (drain-loops.ts). */
    private readonly onKeysMoved: () => void,
  ) {}

  get options(): ResolvedRelayOptions {
    return this.context.options;
  }

  /** Runs one cycle; rejects when the whole batch failed (logged here). */
  async run(claim: Claim): Promise<CycleResult> {
    const log = this.context.options.logger;
    try {
      const startedAt = Date.now();
      const { claimed, isolations, keysMoved, nacked } = await runBatch(this.context, claim).catch((error: unknown) => {
        // A batch claimed before the last lowering failed under the old limit: it says nothing new.
        if (error instanceof BatchTimeoutError) this.limit.timedOut(error.claimed, startedAt);
        throw error;
      });
      if (isolations > 0) {
        this.record.stats.isolatedBatches++;
        log.warn("a batch failed as a whole because of one message: published in parts to find it", {
          path: claim.path,
          claimed,
          parts: isolations,
        });
      }
      if (nacked > 0) {
        this.record.stats.nacked += nacked;
        // RabbitMQ's nack names no queue: every nack may be a partial delivery.
        log.warn(
          "the broker nacked messages: a queue refused them (full with x-overflow reject-publish?); other queues bound to the same exchange may have them already and get them again at the next attempt",
          { path: claim.path, nacked },
        );
      }
      if (claimed > 0) this.limit.succeeded();
      this.record.database = { connected: true };
      this.record.lastCycleAt = Date.now();
      // A key's next row became claimable (the one before it left the table): a drain loop takes it now, rather than
      // at the next wake-up or sweep (a claim skips a key's later rows while an earlier one is in flight).
      if (keysMoved && claim.path !== "listen") this.onKeysMoved();
      return { claimed, keysMoved };
    } catch (error) {
      // A publish that failed says nothing about the database; anything else (connect, claim, COMMIT) does.
      if (!(error instanceof OutboxPublishError)) {
        this.record.database = { connected: false, error: this.scrub(describePgError(error).message) };
      }
      this.#logFailure(claim.path, error);
      throw error;
    }
  }

  #logFailure(path: ClaimPath, error: unknown): void {
    if (this.halt.aborted) return; // stopping: aborted batches are expected
    const { message, code, permanent } = describePgError(error);
    this.context.options.logger[permanent ? "error" : "warn"]("batch failed; retrying", {
      path,
      error: message,
      ...(code ? { code } : {}),
    });
  }
}
