// LISTEN on the outbox channel, for relays that do not share a process with the writers.
//
// States: idle -> connecting -> listening -> (connection lost) -> waiting (backoff) -> connecting ... -> closed.
// A notification is only a hint that rows may be due; missing one costs latency, never a message, because the
// sweeper polls anyway. On every (re)connect the relay is woken once, for what was committed while deaf.
import pg from "pg";
import { coerceError } from "../message/errors.js";
import { NOTIFY_CHANNEL } from "../sql/names.js";
import { backoffDelay, sleep } from "./backoff.js";

export interface ListenerHooks {
  onNotify(): void;
  onReconnecting(attempt: number, delayMs: number, error: Error): void;
}

export class OutboxListener {
  #client: pg.Client | undefined;
  #closed = new AbortController();
  #running: Promise<void> | undefined;

  constructor(
    private readonly databaseUrl: string,
    private readonly hooks: ListenerHooks,
  ) {}

  /** Starts listening in the background; resolves once the first LISTEN succeeded or failed. */
  start(): Promise<void> {
    let firstAttempt!: () => void;
    const first = new Promise<void>((resolve) => {
      firstAttempt = resolve;
    });
    this.#running ??= this.#run(firstAttempt);
    return first;
  }

  async #run(firstAttempt: () => void): Promise<void> {
    let attempt = 0;
    while (!this.#closed.signal.aborted) {
      const lost = new Promise<Error>((resolve) => {
        const client = new pg.Client({
          connectionString: this.databaseUrl,
          keepAlive: true,
          // A dead peer behind a silent network is noticed by TCP keepalive within about a minute.
          keepAliveInitialDelayMillis: 10_000,
          connectionTimeoutMillis: 10_000,
          application_name: "prisma-outbox listener",
        });
        this.#client = client;
        client.on("error", (e) => resolve(coerceError(e)));
        client.on("end", () => resolve(new Error("LISTEN connection ended")));
        client.on("notification", () => this.hooks.onNotify());
        client
          .connect()
          .then(() => client.query(`LISTEN ${NOTIFY_CHANNEL}`))
          .then(() => {
            attempt = 0;
            firstAttempt();
            this.hooks.onNotify();
          })
          .catch((e) => resolve(coerceError(e)));
      });
      const error = await Promise.race([
        lost,
        new Promise<undefined>((r) =>
          this.#closed.signal.addEventListener("abort", () => r(undefined), { once: true }),
        ),
      ]);
      const client = this.#client;
      this.#client = undefined;
      await client?.end().catch(() => {});
      firstAttempt();
      if (!error || this.#closed.signal.aborted) return;
      attempt++;
      const delayMs = backoffDelay(attempt, 100, 10_000);
      this.hooks.onReconnecting(attempt, delayMs, error);
      await sleep(delayMs, this.#closed.signal);
    }
  }

  async close(): Promise<void> {
    this.#closed.abort();
    await this.#running;
  }
}
