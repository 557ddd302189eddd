// Retention's loop, shared by the inbox (expired dedupe records) and request-reply (expired requests): each part
// gives only its statement. A pass deletes in small batches, each its own short statement, with a pause between, so
// no statement holds many locks or writes a burst of WAL, and the purge yields to the work around it; it ends at the
// first batch that comes back short (nothing more is expired).
//
// States: idle --start()--> timed (a pass every intervalMs; a tick while a pass runs is skipped) --stop()--> stopped
// (the timer cleared, the pass in flight cut short after its current batch and awaited). start() while timed and
// stop() while idle or stopped do nothing; start() after stop() starts over. A pass the timer runs logs its failure
// and the next tick tries again; purge() called directly rejects with it.
import { sleep } from "./backoff.js";
import type { Logger } from "./logger.js";

/** Between two batches of one pass. */
const PAUSE_MS = 10;

export interface PurgeLoopOptions {
  /** Deletes one batch of at most `batchSize` rows; resolves with how many it deleted. */
  batch: () => Promise<number>;
  batchSize: number;
  intervalMs: number;
  /** What is purged, as log lines name it ("expired requests"). */
  what: string;
  logger: Logger;
  /** After a pass that deleted rows (one cut short by an error too), with how many. */
  onPurged?: (count: number) => void;
}

export class PurgeLoop {
  readonly #options: PurgeLoopOptions;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<number> | undefined;
  #stop = new AbortController();

  constructor(options: PurgeLoopOptions) {
    this.#options = options;
  }

  /** Runs a pass every `intervalMs` until stop(). Idempotent. */
  start(): void {
    if (this.#timer) return;
    if (this.#stop.signal.aborted) this.#stop = new AbortController();
    const { intervalMs, logger, what } = this.#options;
    this.#timer = setInterval(() => {
      this.#running ??= this.purge()
        .catch((error: unknown) => {
          const message = error instanceof Error ? error.message : String(error);
          logger.warn(`purging ${what} failed; next try in ${intervalMs} ms: ${message}`, {
            code: (error as { code?: string } | undefined)?.code,
            error: message,
          });
          return 0;
        })
        .finally(() => {
          this.#running = undefined;
        });
    }, intervalMs);
    this.#timer.unref();
  }

  /** One pass: deletes everything expired, batch by batch; resolves with how many. Rejects on a database error. */
  async purge(): Promise<number> {
    const { batch, batchSize, onPurged } = this.#options;
    const signal = this.#stop.signal;
    let total = 0;
    try {
      while (!signal.aborted) {
        const deleted = await batch();
        total += deleted;
        if (deleted < batchSize) break;
        await sleep(PAUSE_MS, signal);
      }
    } finally {
      if (total > 0) onPurged?.(total);
    }
    return total;
  }

  /** Clears the timer and waits for the pass in flight, cut short after its current batch. Idempotent. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#stop.abort();
    await this.#running;
  }
}
