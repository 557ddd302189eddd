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
// Losses are counted in a row, and a connection that lived less than `stableAfterMs` does not end the row: through a
// transaction-mode pooler every LISTEN connects fine and fails its first check a few seconds later, for ever. Were the
// count reset by each successful connect, that would read as "lost once" every time, never as the error it is.
// Every wait in a loop turn removes its abort listener when the turn ends: one reconnect a turn, thousands a day.
import type pg from "pg";
import { coerceError, OutboxStartError } from "../errors.js";
import { backoffDelay, sleep } from "../runtime/backoff.js";
import type { DatabaseSource } from "../runtime/pg.js";
import { describePgError } from "../runtime/pg.js";
import type { OutboxNames } from "../sql/names.js";
import { listenCheckChannel, listenSql, NOTIFY_CHECK_SQL } from "../sql/outbox/listen.js";
import { type ListenSession, openListenSession } from "./connections.js";

/** The LISTEN session's own settings (a pool given by the app keeps its own). */
const LISTEN_SETTINGS: pg.ClientConfig = {
  keepAlive: true,
  keepAliveInitialDelayMillis: 10_000,
  connectionTimeoutMillis: 10_000,
  application_name: "prisma-outbox listener",
};

/** From this many losses in a row, LISTEN is failing: a person must look (logged as an error, shown in health). */
export const LISTEN_FAILING_AFTER = 3;

/**
 * How long a LISTEN connection must live to count as working again. Longer than a connection through a
 * transaction-mode pooler survives (it fails its second check: 2 x `checkIntervalMs`), and at least a minute, so that
 * a connection that keeps being cut soon after it opens is also counted as lost again and again.
 */
export function listenStableAfterMs(checkIntervalMs: number): number {
  return Math.max(60_000, 4 * checkIntervalMs);
}

export interface ListenerHooks {
  onNotify(): void;
  /** `attempt`: losses in a row (connections that lived less than `stableAfterMs` do not end a row), from 1. */
  onReconnecting(attempt: number, delayMs: number, error: Error): void;
}

export interface ListenerOptions {
  source: DatabaseSource;
  names: OutboxNames;
  checkIntervalMs: number;
  /** Default: listenStableAfterMs(checkIntervalMs). */
  stableAfterMs?: number;
  /** The reconnect backoff's first and largest delay. Default: 100 ms, 10 s. */
  backoff?: { baseMs: number; maxMs: number };
}

export interface ListenerStatus {
  /** Whether a LISTEN connection is open now (it may still be one that is about to fail its check). */
  listening: boolean;
  /** Losses in a row; 0 once a connection has lived `stableAfterMs`. */
  lostInARow: number;
  /** The last loss's error, while `lostInARow` > 0. */
  lastError: Error | undefined;
}

export class OutboxListener {
  #closed = new AbortController();
  #running: Promise<void> | undefined;
  #lostInARow = 0;
  #lastError: Error | undefined;
  /** When the open connection's LISTEN succeeded; undefined while there is none. */
  #listeningSince: number | undefined;
  readonly #stableAfterMs: number;

  constructor(
    private readonly options: ListenerOptions,
    private readonly hooks: ListenerHooks,
  ) {
    this.#stableAfterMs = options.stableAfterMs ?? listenStableAfterMs(options.checkIntervalMs);
  }

  /** The signal close() aborts: tests read its listener count (it must stay flat across reconnects). */
  get closeSignal(): AbortSignal {
    return this.#closed.signal;
  }

  status(): ListenerStatus {
    const since = this.#listeningSince;
    const stable = since !== undefined && Date.now() - since >= this.#stableAfterMs;
    const lostInARow = stable ? 0 : this.#lostInARow;
    return { listening: since !== undefined, lostInARow, lastError: lostInARow > 0 ? this.#lastError : undefined };
  }

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
      /** Set when this turn is over: a LISTEN that succeeds after its connection was given up starts nothing. */
      let over = false;
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
          if (over) return;
          const check = () => {
            if (!heard) {
              onLost(
                new Error(
                  `LISTEN check: a NOTIFY to itself did not come back within ${this.options.checkIntervalMs} ms ` +
                    "(connection silently lost, or it goes through a transaction-mode pooler: LISTEN needs a direct connection, " +
                    "see listenUrl; worker: --listen-url)",
                ),
              );
              return;
            }
            heard = false;
            session.client.query(NOTIFY_CHECK_SQL, [checkChannel]).catch((e: unknown) => onLost(coerceError(e)));
            checkTimer = setTimeout(check, this.options.checkIntervalMs);
          };
          first = false;
          this.#listeningSince = Date.now();
          listening();
          this.hooks.onNotify();
          checkTimer = setTimeout(check, this.options.checkIntervalMs);
        })
        .catch((e) => onLost(coerceError(e)));
      let onClose!: () => void;
      const closed = new Promise<undefined>((r) => {
        onClose = () => r(undefined);
        this.#closed.signal.addEventListener("abort", onClose, { once: true });
      });
      const error = await Promise.race([lost, closed]);
      this.#closed.signal.removeEventListener("abort", onClose);
      over = true;
      clearTimeout(checkTimer);
      const livedMs = this.#listeningSince === undefined ? undefined : Date.now() - this.#listeningSince;
      this.#listeningSince = undefined;
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
      if (livedMs !== undefined && livedMs >= this.#stableAfterMs) this.#lostInARow = 0;
      const attempt = ++this.#lostInARow;
      this.#lastError = error;
      const { baseMs, maxMs } = this.options.backoff ?? { baseMs: 100, maxMs: 10_000 };
      const delayMs = backoffDelay(attempt, baseMs, maxMs);
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
