// Preloaded (`--import`, with `--expose-gc`) into each worker process of the soak run (test/soak/soak.ts): every
// SOAK_SAMPLE_MS it forces a full garbage collection and sends one sample up the IPC channel the harness opened
// (test/support/process-harness.ts). No library code is changed for it: the objects that reconnect are found by
// wrapping, from outside, the few places where they come to life:
//   pg clients         pg.Client.prototype.connect        (the relay's pool and LISTEN session, the inbox's pool,
//                                                          the handlers' Prisma adapter pool)
//   AMQP connections   amqplib's Connection.prototype.open (the socket-level connection behind a ChannelModel)
//   AbortSignals       globalThis.AbortController         (the library's close/stop signals, per-handler signals)
// Each is held through a WeakRef: what the library dropped is collected by the forced GC and leaves the count, what it
// still holds (a leak, or a live object) stays. The figures a leak would move are the live counts and the listeners
// on those objects; the process-level ones (RSS, heap after GC, active handles by type) catch the rest.
//
// Nothing here runs unless the process was spawned with an IPC channel and SOAK_SAMPLE_MS is set.

import type { EventEmitter } from "node:events";
import { getEventListeners } from "node:events";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import pg from "pg";

/** One sample of one process, as sent up the IPC channel (`{ soak: sample }`). */
export interface ProbeSample {
  pid: number;
  /** Date.now() when taken. */
  at: number;
  rssMiB: number;
  /** Heap used right after a forced full GC. */
  heapMiB: number;
  /** process.getActiveResourcesInfo(): every active handle and request. */
  resources: number;
  /** Of those, timers (Timeout, Immediate). */
  timers: number;
  /** Of those, sockets (TCPSocketWrap, TCPWrap). */
  sockets: number;
  /** pg clients still reachable (after GC), and of those, connected and not ending. */
  pgClients: number;
  pgOpen: number;
  /** Reachable pg clients of prisma-outbox's own pools (application_name prisma-outbox ...) that are closed: held by
   * someone after their end. */
  pgStale: number;
  /**
   * The same for the app's clients (the handlers' Prisma client): Prisma's transaction manager keeps its last 100
   * closed interactive transactions, each with the pg client it ran on, so a client the pool closed (idle timeout,
   * a terminated backend) stays reachable until 100 later transactions push it out: bounded by that, not a leak.
   */
  pgStaleApp: number;
  /** Listeners on the reachable pg clients, their Connection objects and sockets: all of them, and the most on one. */
  pgListeners: number;
  pgMaxListeners: number;
  /** amqplib connections still reachable, open ones, and the channels open on those. */
  amqpConnections: number;
  amqpOpen: number;
  amqpChannels: number;
  /** Listeners on the reachable amqplib connections, their sockets and their open channels. */
  amqpListeners: number;
  /** AbortSignals still reachable, and the 'abort' listeners on them. */
  signals: number;
  signalListeners: number;
  /** Listeners on `process` (signal handlers, 'exit', 'warning', ...). */
  processListeners: number;
  /** MaxListenersExceededWarning (and any other process warning) so far. */
  warnings: number;
}

const sampleMs = Number(process.env.SOAK_SAMPLE_MS ?? 0);

class Tracked<T extends object> {
  #refs = new Set<WeakRef<T>>();
  add(value: T): void {
    this.#refs.add(new WeakRef(value));
  }
  /** The ones still reachable (dropping the collected ones). */
  live(): T[] {
    const out: T[] = [];
    for (const ref of this.#refs) {
      const value = ref.deref();
      if (value === undefined) this.#refs.delete(ref);
      else out.push(value);
    }
    return out;
  }
}

function listeners(emitter: EventEmitter | undefined | null): number {
  if (!emitter || typeof emitter.eventNames !== "function") return 0;
  let n = 0;
  for (const name of emitter.eventNames()) n += emitter.listenerCount(name);
  return n;
}

if (process.send && sampleMs > 0) {
  const pgClients = new Tracked<pg.Client>();
  const amqpConnections = new Tracked<AmqpConnection>();
  const signals = new Tracked<AbortSignal>();
  let warnings = 0;
  process.on("warning", (w) => {
    warnings++;
    process.stderr.write(`soak probe: process warning ${w.name}: ${w.message}\n`);
  });

  const connect = pg.Client.prototype.connect;
  pg.Client.prototype.connect = function (this: pg.Client, ...args: unknown[]) {
    pgClients.add(this);
    return (connect as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof connect;

  // amqplib's exports map hides lib/; the file is the one its main module loads (one module instance).
  const require = createRequire(import.meta.url);
  const amqpLib = join(dirname(require.resolve("amqplib")), "lib", "connection.js");
  const { Connection } = require(amqpLib) as { Connection: { prototype: { open(...a: unknown[]): unknown } } };
  const open = Connection.prototype.open;
  Connection.prototype.open = function (this: AmqpConnection, ...args: unknown[]) {
    amqpConnections.add(this);
    return open.apply(this, args);
  };

  const Base = globalThis.AbortController;
  globalThis.AbortController = class TrackedAbortController extends Base {
    constructor() {
      super();
      signals.add(this.signal);
    }
  };

  const sample = (): ProbeSample => {
    (globalThis as { gc?: () => void }).gc?.();
    const resources = process.getActiveResourcesInfo();
    const clients = pgClients.live();
    const open = clients.filter((c) => {
      const s = c as unknown as { _connected?: boolean; _ending?: boolean };
      return s._connected === true && s._ending !== true;
    });
    const closed = clients.filter((c) => !open.includes(c));
    const ours = (c: pg.Client) =>
      String(
        (c as unknown as { connectionParameters?: { application_name?: string } }).connectionParameters
          ?.application_name ?? "",
      ).startsWith("prisma-outbox");
    let pgListeners = 0;
    let pgMaxListeners = 0;
    for (const c of clients) {
      const connection = (c as unknown as { connection?: EventEmitter & { stream?: EventEmitter } }).connection;
      const n = listeners(c) + listeners(connection) + listeners(connection?.stream);
      pgListeners += n;
      pgMaxListeners = Math.max(pgMaxListeners, n);
    }
    const conns = amqpConnections.live();
    let amqpOpen = 0;
    let amqpChannels = 0;
    let amqpListeners = 0;
    for (const c of conns) {
      amqpListeners += listeners(c) + listeners(c.stream);
      if (!c.stream || c.stream.destroyed) continue;
      amqpOpen++;
      for (let i = 1; i < (c.channels?.length ?? 0); i++) {
        const ch = c.channels?.[i];
        if (!ch) continue;
        amqpChannels++;
        amqpListeners += listeners(ch.channel);
      }
    }
    const liveSignals = signals.live();
    const memory = process.memoryUsage();
    return {
      pid: process.pid,
      at: Date.now(),
      rssMiB: memory.rss / 2 ** 20,
      heapMiB: memory.heapUsed / 2 ** 20,
      resources: resources.length,
      timers: resources.filter((r) => r === "Timeout" || r === "Immediate").length,
      sockets: resources.filter((r) => r === "TCPSocketWrap" || r === "TCPWrap").length,
      pgClients: clients.length,
      pgOpen: open.length,
      pgStale: closed.filter(ours).length,
      pgStaleApp: closed.filter((c) => !ours(c)).length,
      pgListeners,
      pgMaxListeners,
      amqpConnections: conns.length,
      amqpOpen,
      amqpChannels,
      amqpListeners,
      signals: liveSignals.length,
      signalListeners: liveSignals.reduce((n, s) => n + getEventListeners(s, "abort").length, 0),
      processListeners: listeners(process),
      warnings,
    };
  };
  setInterval(() => {
    try {
      process.send?.({ soak: sample() });
    } catch {
      // the parent is gone: die-with-parent ends this process
    }
  }, sampleMs).unref();
}

interface AmqpConnection extends EventEmitter {
  stream?: EventEmitter & { destroyed: boolean };
  channels?: Array<{ channel: EventEmitter } | null>;
}
