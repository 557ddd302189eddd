// Retention: processed rows are the dedupe records; past the window they are deleted, a small batch at a time, by a
// timer of the inbox. Each batch is its own short statement, with a pause between, so the purge never holds many
// locks, never writes a burst of WAL, and yields to the handlers.
import type pg from "pg";
import { coerceError } from "../errors.js";
import { sleep } from "../runtime/backoff.js";
import type { Logger } from "../runtime/logger.js";
import { PURGE_INBOX_MESSAGES_SQL } from "../sql/inbox/purge.js";

export class Retention {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<number> | undefined;
  readonly #stop = new AbortController();

  constructor(
    private readonly pool: pg.Pool,
    private readonly options: { retentionMs: number; purgeIntervalMs: number; purgeBatchSize: number },
    private readonly logger: Logger,
    private readonly onPurged: (count: number) => void,
  ) {}

  start(): void {
    this.#timer = setInterval(() => {
      this.#running ??= this.purge().finally(() => {
        this.#running = undefined;
      });
    }, this.options.purgeIntervalMs);
    this.#timer.unref();
  }

  /** Deletes every expired dedupe record, batch by batch; resolves with how many. */
  async purge(): Promise<number> {
    let total = 0;
    try {
      while (!this.#stop.signal.aborted) {
        const { rows } = await this.pool.query<{ deleted: number }>(PURGE_INBOX_MESSAGES_SQL, [
          this.options.retentionMs,
          this.options.purgeBatchSize,
        ]);
        const deleted = rows[0]?.deleted ?? 0;
        total += deleted;
        if (deleted < this.options.purgeBatchSize) break;
        await sleep(10, this.#stop.signal);
      }
    } catch (thrown) {
      this.logger.warn(`purging expired inbox dedupe records failed; next try in ${this.options.purgeIntervalMs} ms`, {
        code: (thrown as { code?: string }).code,
        error: coerceError(thrown).message,
      });
    }
    if (total > 0) this.onPurged(total);
    return total;
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#stop.abort();
    await this.#running;
  }
}
