// LISTEN on the outbox channel, for relays that do not share a process with the writers.
//
// States: idle -> connecting -> listening -> (lost) -> waiting (backoff) -> connecting ... -> closed.
// "Lost" is any of: the session errors or ends; or a liveness check fails. Every `checkIntervalMs` the listening
// session sends a NOTIFY on a channel of its own and must hear it back within `checkIntervalMs`: a connection that a
// NAT, a firewall or a pooler dropped without a word (no RST reaches us) would otherwise stay "listening" and deaf
// until TCP keepalive gives up, minutes later, while only the sweeper publishes.
// A notification is only a hint that rows may be due; missing one costs latency, never a message, because the
// sweeper polls anyway. On every (re)connect the relay is woken once, for what was committed while deaf.
// The first connection is start()'s: when it fails, start() fails (a wrong listenUrl is said at once, not retried in
// silence); later ones are retried with backoff.
import type pg from "pg";
import type { DatabaseSource } from "../config/database-options.js";
import { coerceError, OutboxStartError } from "../message/errors.js";
import { listenCheckChannel, listenSql, NOTIFY_CHECK_SQL } from "../sql/listen.js";
import type { OutboxNames } from "../sql/names.js";
import { backoffDelay, sleep } from "./backoff.js";
import { type ListenSession, openListenSession } from "./connections.js";
import { describePgError } from "./pg-errors.js";

/** The LISTEN session's own settings (a pool given by the app keeps its own). */
const LISTEN_SETTINGS: pg.ClientConfig = {
  keepAlive: true,
  keepAliveInitialDelayMillis: 10_000,
  connectionTimeoutMillis: 10_000,
  application_name: "prisma-outbox listener",
};

export interface ListenerHooks {
  onNotify(): void;
  onReconnecting(attempt: number, delayMs: number, error: Error): void;
}

export interface ListenerOptions {
  source: DatabaseSource;
  names: OutboxNames;
  checkIntervalMs: number;
}

export class OutboxListener {
  #closed = new AbortController();
  #running: Promise<void> | undefined;

  constructor(
    private readonly options: ListenerOptions,
    private readonly hooks: ListenerHooks,
  ) {}

  /** Starts listening in the background. Resolves once the first LISTEN succeeded; rejects when it failed. */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#running ??= this.#run(resolve, (error) => {
        this.#closed.abort();
        reject(error);
      });
    });
  }

  async #run(listening: () => void, failedFirst: (error: Error) => void): Promise<void> {
    let attempt = 0;
    let first = true;
    while (!this.#closed.signal.aborted) {
      const checkChannel = listenCheckChannel();
      let onLost!: (error: Error) => void;
      const lost = new Promise<Error>((resolve) => {
        onLost = resolve;
      });
      let checkTimer: NodeJS.Timeout | undefined;
      const opening = openListenSession(
        this.options.source,
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
          let heard = true;
          session.client.on("notification", (n: pg.Notification) => {
            if (n.channel === checkChannel) heard = true;
            else this.hooks.onNotify();
          });
          await session.client.query(listenSql(this.options.names, checkChannel));
          const check = () => {
            if (!heard) {
              onLost(
                new Error(
                  `LISTEN check: a NOTIFY to itself did not come back within ${this.options.checkIntervalMs} ms ` +
                    "(connection silently lost, or it goes through a transaction-mode pooler: LISTEN needs a direct connection, see listenUrl)",
                ),
              );
              return;
            }
            heard = false;
            session.client.query(NOTIFY_CHECK_SQL, [checkChannel]).catch((e: unknown) => onLost(coerceError(e)));
            checkTimer = setTimeout(check, this.options.checkIntervalMs);
          };
          attempt = 0;
          first = false;
          listening();
          this.hooks.onNotify();
          checkTimer = setTimeout(check, this.options.checkIntervalMs);
        })
        .catch((e) => onLost(coerceError(e)));
      const error = await Promise.race([
        lost,
        new Promise<undefined>((r) =>
          this.#closed.signal.addEventListener("abort", () => r(undefined), { once: true }),
        ),
      ]);
      clearTimeout(checkTimer);
      // A session that opened is ended here. One still opening when close() came is ended whenever it opens, without
      // waiting: the abort gives up a connection attempt, but a borrowed pool may take its time to hand a client over.
      const closing = opening.then(
        (session) => endSession(session),
        () => {},
      );
      if (settled || !this.#closed.signal.aborted) await closing;
      if (!error || this.#closed.signal.aborted) return;
      if (first) {
        const { message, code } = describePgError(error);
        failedFirst(
          new OutboxStartError(`could not LISTEN (on \`listenUrl\`, or the database without it): ${message}`, {
            cause: error,
            code,
          }),
        );
        return;
      }
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

/** How long a session gets to end politely before its socket is dropped (a dead connection would never end). */
const END_TIMEOUT_MS = 1_000;

async function endSession(session: ListenSession): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const ended = await Promise.race([
    session.close().then(() => true),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), END_TIMEOUT_MS);
    }),
  ]);
  clearTimeout(timer);
  if (!ended)
    (session.client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
}
