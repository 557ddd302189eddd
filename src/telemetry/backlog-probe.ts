// The backlog, read by one query at most once per CACHE_MS and only when asked (the metrics gauges when a reader
// collects, health()). Shared by the relay and the inbox: the same shape, each with its own statement (under src/sql/).
import type { BacklogSnapshot } from "./metrics.js";

/** How long a reading is reused: scrapes every few seconds and probes every second cost one query per 5 s. */
const CACHE_MS = 5_000;
/** A database that does not answer makes the reading unknown, not a hung scrape or health check. */
const TIMEOUT_MS = 2_000;

export class BacklogProbe {
  readonly #query: () => Promise<{ due: number; deferred: number; oldest_due_ms: number }>;
  #last: { at: number; value: BacklogSnapshot } | undefined;
  #inFlight: Promise<BacklogSnapshot | undefined> | undefined;

  constructor(query: () => Promise<{ due: number; deferred: number; oldest_due_ms: number }>) {
    this.#query = query;
  }

  /** The last reading when younger than CACHE_MS, else a new one; undefined when the query failed or timed out. */
  read(): Promise<BacklogSnapshot | undefined> {
    const last = this.#last;
    if (last && Date.now() - last.at < CACHE_MS) return Promise.resolve(last.value);
    this.#inFlight ??= this.#refresh().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  async #refresh(): Promise<BacklogSnapshot | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), TIMEOUT_MS);
    });
    try {
      const row = await Promise.race([this.#query(), timeout]);
      if (!row) return undefined;
      const value = { due: row.due, deferred: row.deferred, oldestDueAgeMs: Math.max(0, row.oldest_due_ms) };
      this.#last = { at: Date.now(), value };
      return value;
    } catch {
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }
}
