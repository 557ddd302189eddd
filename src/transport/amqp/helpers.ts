// Small pieces the AMQP modules share: loading amqplib lazily, waiting for "something changed", and reading what
// amqplib's errors carry.
import type { ChannelModel } from "amqplib";

/**
 * How the inbox's consumers and the partitions' declarations connect: a connect that hangs fails in 10 s (the caller
 * retries on its backoff); noDelay because acks are small frames, and with Nagle's algorithm on (amqplib's default)
 * one waits for the broker's TCP ACK of the one before (AmqpTransportOptions.socketOptions says the same).
 */
export const CONNECT_OPTIONS = { timeout: 10_000, noDelay: true } as const;

export type Amqplib = typeof import("amqplib");
let amqplib: Promise<Amqplib> | undefined;
/** Loaded on first start(), so that an app that only writes to the outbox never loads amqplib. */
export function loadAmqplib(): Promise<Amqplib> {
  amqplib ??= import("amqplib").then((module) => ((module as { default?: Amqplib }).default ?? module) as Amqplib);
  return amqplib;
}

/**
 * A condition variable without the lock: publishes waiting for the state, the channel or the socket to change call
 * `next(signal)`; whoever changes one of those calls `notify()`, which wakes them all to look again.
 */
export class Changes {
  readonly #waiters = new Set<() => void>();

  notify(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const wake of waiters) wake();
  }

  /** Resolves at the next notify(); rejects with the signal's reason when it aborts first. */
  next(signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.#waiters.delete(wake);
        reject(signal.reason);
      };
      const wake = () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
      if (signal.aborted) return onAbort();
      this.#waiters.add(wake);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }
}

/** The promise's outcome, or the signal's reason as soon as it aborts. */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    // Even when aborted already: a promise left without a handler would reject unhandled.
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

/** Closes a channel or connection that may be closed already. */
export async function quietly(close: () => Promise<unknown>): Promise<void> {
  try {
    await close();
  } catch {
    // Already closed.
  }
}

export function socketOf(conn: ChannelModel): { destroy(error?: Error): void } | undefined {
  return (conn.connection as { stream?: { destroy(error?: Error): void } }).stream;
}

/** The AMQP reply code of a channel or connection error (404, 403, 406...). */
export function codeOf(error: unknown): unknown {
  return (error as { code?: unknown } | undefined)?.code;
}

/** What the broker said, e.g. `PRECONDITION_FAILED - inequivalent arg 'type' ...`, else the whole message. */
export function brokerText(error: Error): string {
  return /with message "(.*)"/.exec(error.message)?.[1] ?? error.message;
}

export function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
