// LISTEN on the outbox channel, for relays that do not share a process with the writers.
//
// States: idle -> connecting -> listening -> (connection lost) -> waiting (backoff) -> connecting ... -> closed.
// A notification is only a hint that rows may be due; missing one costs latency, never a message, because the
// sweeper polls anyway. On every (re)connect the relay is woken once, for what was committed while deaf.
import type pg from "pg";
import type { DatabaseSource } from "../config/database-options.js";
import { coerceError } from "../message/errors.js";
import { listenSql } from "../sql/listen.js";
import type { OutboxNames } from "../sql/names.js";
import { backoffDelay, sleep } from "./backoff.js";
import { openListenSession } from "./connections.js";

/** The LISTEN session's own settings (a pool given by the app keeps its own). */
const LISTEN_SETTINGS: pg.ClientConfig = {
  keepAlive: true,
  // A dead peer behind a silent network is noticed by TCP keepalive within about a minute.
  keepAliveInitialDelayMillis: 10_000,
  connectionTimeoutMillis: 10_000,
  application_name: "prisma-outbox listener",
};

export interface ListenerHooks {
  onNotify(): void;
  onReconnecting(attempt: number, delayMs: number, error: Error): void;
}

export class OutboxListener {
  #closed = new AbortController();
  #running: Promise<void> | undefined;

  constructor(
    private readonly source: DatabaseSource,
    private readonly names: OutboxNames,
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
      let onLost!: (error: Error) => void;
      const lost = new Promise<Error>((resolve) => {
        onLost = resolve;
      });
      const opening = openListenSession(
        this.source,
        LISTEN_SETTINGS,
        (e) => onLost(coerceError(e)),
        this.#closed.signal,
      );
      let settled = false;
      opening
        .finally(() => {
          settled = true;
        })
        .then(async (session) => {
          session.client.on("notification", () => this.hooks.onNotify());
          await session.client.query(listenSql(this.names));
          attempt = 0;
          firstAttempt();
          this.hooks.onNotify();
        })
        .catch((e) => onLost(coerceError(e)));
      const error = await Promise.race([
        lost,
        new Promise<undefined>((r) =>
          this.#closed.signal.addEventListener("abort", () => r(undefined), { once: true }),
        ),
      ]);
      // A session that opened is ended here. One still opening when close() came is ended whenever it opens, without
      // waiting: the abort gives up a connection attempt, but a borrowed pool may take its time to hand a client over.
      const closing = opening.then(
        (session) => session.close(),
        () => {},
      );
      if (settled || !this.#closed.signal.aborted) await closing;
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
