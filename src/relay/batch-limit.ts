// The adaptive batch limit. A whole batch that times out while the broker is connected means the broker is slower
// than the batch needs: the limit halves (never below 1) and claims pause for one publish timeout, so what the
// timed-out batches sent can reach the broker before new batches queue behind it. Without a timeout for
// LIMIT_RECOVERY_MS, the limit doubles back toward `batchSize`.
import type { Logger } from "../runtime/logger.js";

const LIMIT_RECOVERY_MS = 30_000;

export class BatchLimit {
  #limit: number;
  #changedAt = 0;
  /** No claims before this (ms since the epoch). */
  #cooldownUntil = 0;

  constructor(
    private readonly batchSize: number,
    private readonly publishTimeoutMs: number,
    private readonly logger: Logger,
  ) {
    this.#limit = batchSize;
  }

  get value(): number {
    return this.#limit;
  }

  /** Ms left of the pause after the last lowering (0 when none). */
  get cooldownMs(): number {
    return Math.max(0, this.#cooldownUntil - Date.now());
  }

  /**
   * A batch that started at `startedAt` and claimed `claimed` rows timed out. One claimed before the last lowering
   * failed under the old limit: it says nothing new.
   */
  timedOut(claimed: number, startedAt: number): void {
    if (startedAt < this.#changedAt) return;
    const limit = Math.max(1, Math.min(this.#limit, Math.floor(claimed / 2)));
    if (limit === this.#limit) return;
    this.#limit = limit;
    this.#changedAt = Date.now();
    this.#cooldownUntil = Date.now() + this.publishTimeoutMs;
    this.logger.warn("publish timed out: batch limit lowered", {
      batchLimit: limit,
      publishTimeoutMs: this.publishTimeoutMs,
    });
  }

  /** A batch went through: raise the limit if it has been low long enough. */
  succeeded(): void {
    if (this.#limit >= this.batchSize || Date.now() - this.#changedAt < LIMIT_RECOVERY_MS) return;
    this.#limit = Math.min(this.batchSize, this.#limit * 2);
    this.#changedAt = Date.now();
    this.logger.info("batch limit raised", { batchLimit: this.#limit });
  }
}
