// Retention of finished requests: deleted once expired (completion + retentionMs), a small batch per statement with a
// pause between, so the purge never holds many locks nor writes a burst of WAL, and yields to the app.

import { coerceError } from "../errors.js";
import { sleep } from "../runtime/backoff.js";
import { PURGE_REQUESTS_SQL } from "../sql/requests/read.js";
import type { RawClient } from "./handler.js";
import type { ResolvedRequestsOptions } from "./options.js";

export class RequestRetention {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<number> | undefined;
  #stop = new AbortController();

  constructor(
    private readonly prisma: RawClient,
    private readonly options: ResolvedRequestsOptions,
  ) {}

  start(): void {
    if (this.#timer) return;
    if (this.#stop.signal.aborted) this.#stop = new AbortController();
    this.#timer = setInterval(() => {
      this.#running ??= this.purge()
        .catch((error) => {
          this.options.logger.warn(
            `purging expired requests failed; next try in ${this.options.purgeIntervalMs} ms: ${coerceError(error).message}`,
            { code: (error as { code?: string }).code },
          );
          return 0;
        })
        .finally(() => {
          this.#running = undefined;
        });
    }, this.options.purgeIntervalMs);
    this.#timer.unref();
  }

  /** Deletes every expired request, batch by batch; resolves with how many. Rejects on a database error. */
  async purge(): Promise<number> {
    let total = 0;
    while (!this.#stop.signal.aborted) {
      const rows = await this.prisma.$queryRawUnsafe<Array<{ deleted: number }>>(
        PURGE_REQUESTS_SQL,
        this.options.purgeBatchSize,
      );
      const deleted = Number(rows[0]?.deleted ?? 0);
      total += deleted;
      if (deleted < this.options.purgeBatchSize) break;
      await sleep(10, this.#stop.signal);
    }
    if (total > 0) this.options.logger.info(`purged ${total} expired requests`);
    return total;
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#stop.abort();
    await this.#running;
  }
}
