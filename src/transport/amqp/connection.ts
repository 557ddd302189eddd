// The connection state machine: one AMQP connection at a time, reconnected in the background, with its lane
// (channel.ts) and its exchange cache (exchanges.ts).
//
// States (`AmqpTransport.state`):
//
//   idle ──start()──▶ connecting ──connected, exchanges asserted──▶ connected ◀──unblocked──┐
//                      ▲     │                                       │     └──blocked──▶ blocked
//                      │     └──failed (retryable)──┐                │ connection lost    │
//                      │                            ▼                ▼                    │
//                      └────backoff elapsed──── disconnected ◀───────┴────────────────────┘
//
//   start() failing for good (see below) goes back to idle; close() goes from any state to closed, which is final.
//
// - start() retries until connected, except for errors retrying cannot fix, rejected as OutboxConfigError: an
//   exchange existing with other settings (406), the broker refusing the credentials (403 ACCESS_REFUSED) or the
//   virtual host. Once connected, every error is retried in the background (credentials may be rotated, an exchange
//   redeclared) and reported by `reconnecting` events, since nobody is there to catch a rejection.
// - Reconnecting uses capped exponential backoff with full jitter.
// - Losing the lane (connection alive) opens a new one and asserts the configured exchanges again; when that fails
//   the whole connection is dropped and replaced.
// - `blocked` (a RabbitMQ resource alarm): the connection is up but publishes wait (publish.ts).
// - close() waits for the broker's close-ok at most connectTimeoutMs, then drops the socket: a dead network must not
//   keep the process alive.
// Every change of state, lane or socket buffer is announced on `changes`, where waiting publishes look again.
import type { ChannelModel } from "amqplib";
import { OutboxConfigError, OutboxError } from "../../errors.js";
import type { TransportEvent } from "../transport.js";
import { type Lane, openLane } from "./channel.js";
import { assertExchanges, ExchangeCache } from "./exchanges.js";
import { brokerText, Changes, loadAmqplib, socketOf } from "./helpers.js";
import type { ResolvedAmqpOptions } from "./options.js";

export type AmqpTransportState = "idle" | "connecting" | "connected" | "blocked" | "disconnected" | "closed";

/** One connection; replaced as a whole on reconnection. */
export interface Link {
  conn: ChannelModel;
  lane: Lane | undefined;
  /** The broker's reason while it blocks publishing (resource alarm). */
  blocked: string | undefined;
  lost: boolean;
  error: Error | undefined;
  exchanges: ExchangeCache;
}

export function closedBeforeConnected(): OutboxError {
  return new OutboxError("transport closed before it connected");
}

export class AmqpConnection {
  /** Where publishes wait for a state, a lane or a drained socket. */
  readonly changes = new Changes();
  #state: AmqpTransportState = "idle";
  #link: Link | undefined;
  #starting: Promise<void> | undefined;
  #reconnecting: Promise<void> | undefined;
  #sleep: { timer: NodeJS.Timeout; wake: () => void } | undefined;
  readonly #listeners = new Set<(event: TransportEvent) => void>();

  constructor(private readonly options: ResolvedAmqpOptions) {}

  get state(): AmqpTransportState {
    return this.#state;
  }

  /** The current connection, when there is one. */
  get link(): Link | undefined {
    return this.#link;
  }

  /** A method, not a comparison, so that TypeScript does not narrow the state across awaits. */
  isClosed(): boolean {
    return this.#state === "closed";
  }

  start(): Promise<void> {
    if (this.isClosed()) return Promise.reject(closedBeforeConnected());
    this.#starting ??= this.#connectLoop(true).catch((error: unknown) => {
      this.#starting = undefined;
      if (!this.isClosed()) this.#setState("idle");
      throw error;
    });
    return this.#starting;
  }

  /**
   * Goes to `closed` for good: `abortInFlight` runs first (the publishes in flight must learn that the transport
   * closed, not that a connection was lost), then the connection closes and any attempt in progress ends.
   */
  async close(abortInFlight: () => void): Promise<void> {
    this.#setState("closed");
    abortInFlight();
    if (this.#sleep) {
      clearTimeout(this.#sleep.timer);
      this.#sleep.wake();
    }
    const link = this.#link;
    this.#link = undefined;
    if (link) await this.#closeConnection(link.conn);
    // A connection attempt in progress sees `closed` when it ends and closes what it opened.
    await Promise.allSettled([this.#starting, this.#reconnecting]);
  }

  onEvent(listener: (event: TransportEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async #connectLoop(starting: boolean): Promise<void> {
    const { initialDelayMs, maxDelayMs, scrubber } = this.options;
    for (let attempt = 1; ; attempt++) {
      if (this.isClosed()) throw closedBeforeConnected();
      this.#setState("connecting");
      try {
        const link = await this.#open();
        if (this.isClosed()) {
          await this.#closeConnection(link.conn);
          throw closedBeforeConnected();
        }
        this.#link = link;
        this.#setState(link.blocked === undefined ? "connected" : "blocked");
        this.#emit({ type: "connected" });
        if (link.blocked !== undefined) this.#emit({ type: "blocked", reason: link.blocked });
        return;
      } catch (thrown) {
        if (this.isClosed()) throw closedBeforeConnected();
        const error = scrubber.scrub(thrown);
        if (starting && error instanceof OutboxConfigError) throw error;
        const delayMs = Math.round(Math.random() * Math.min(maxDelayMs, initialDelayMs * 2 ** (attempt - 1)));
        this.#setState("disconnected");
        this.#emit({ type: "reconnecting", attempt, delayMs, error });
        await new Promise<void>((wake) => {
          this.#sleep = { timer: setTimeout(wake, delayMs), wake };
        });
        this.#sleep = undefined;
      }
    }
  }

  async #open(): Promise<Link> {
    const { connectUrl, socketOptions, exchanges, scrubber } = this.options;
    const amqp = await loadAmqplib();
    let conn: ChannelModel;
    try {
      conn = await amqp.connect(connectUrl, socketOptions);
    } catch (thrown) {
      throw this.#explainHandshakeError(scrubber.scrub(thrown));
    }
    const link: Link = {
      conn,
      lane: undefined,
      blocked: undefined,
      lost: false,
      error: undefined,
      exchanges: new ExchangeCache(conn, exchanges),
    };
    conn.on("error", (error: unknown) => {
      link.error = scrubber.scrub(error);
    });
    conn.on("close", (error?: Error) => this.#onConnectionLost(link, error));
    conn.on("blocked", (reason: string) => {
      link.blocked = String(reason);
      if (this.#link !== link) return;
      this.#setState("blocked");
      this.#emit({ type: "blocked", reason: link.blocked });
    });
    conn.on("unblocked", () => {
      link.blocked = undefined;
      if (this.#link !== link) return;
      this.#setState("connected");
      this.#emit({ type: "unblocked" });
    });
    try {
      await assertExchanges(conn, exchanges, scrubber);
      link.lane = await this.#openLane(link);
      if (link.lost) throw link.error ?? new Error("connection lost while opening");
      return link;
    } catch (error) {
      await this.#closeConnection(conn);
      throw error;
    }
  }

  #explainHandshakeError(error: Error): Error {
    const { safeUrl } = this.options.scrubber;
    if (/ACCESS[-_]REFUSED/.test(error.message)) {
      return new OutboxConfigError(
        `the broker at ${safeUrl} refused the credentials (ACCESS_REFUSED 403): ${brokerText(error)}; check the user and password in \`url\``,
      );
    }
    if (/Expected ConnectionOpenOk; got <ConnectionClose/.test(error.message)) {
      return new OutboxConfigError(
        `the broker at ${safeUrl} refused to open the virtual host (it does not exist or the user may not access it); check the path of \`url\``,
      );
    }
    return error;
  }

  #openLane(link: Link): Promise<Lane> {
    return openLane(link.conn, {
      scrubber: this.options.scrubber,
      connectionError: () => link.error,
      drained: () => this.changes.notify(),
      closed: (lane) => {
        if (link.lane === lane) link.lane = undefined;
        // Most likely an exchange was deleted (404): check again before publishing to any.
        link.exchanges.forgetAll();
        this.changes.notify();
        // When the whole connection is closing, its close event (right after this one) takes over.
        setImmediate(() => void this.#reopenLane(link));
      },
    });
  }

  async #reopenLane(link: Link): Promise<void> {
    if (this.#link !== link || link.lost || link.lane || this.isClosed()) return;
    try {
      // A configured exchange may be the one that was deleted.
      await assertExchanges(link.conn, this.options.exchanges, this.options.scrubber);
      link.exchanges.trustConfigured();
      link.lane = await this.#openLane(link);
      this.changes.notify();
    } catch (error) {
      // Cannot open a channel on this connection: start over with a new one.
      link.error = this.options.scrubber.scrub(error);
      await this.#closeConnection(link.conn);
    }
  }

  /** Closes gracefully, or drops the socket when the broker does not answer (e.g. the network is gone). */
  async #closeConnection(conn: ChannelModel): Promise<void> {
    const { connectTimeoutMs } = this.options;
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([
      conn.close().then(
        () => false,
        () => false,
      ),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), connectTimeoutMs);
      }),
    ]);
    clearTimeout(timer);
    // Destroying with an error makes amqplib finish closing, which stops its heartbeat timers.
    if (late) socketOf(conn)?.destroy(new Error(`no answer to connection.close within ${connectTimeoutMs} ms`));
  }

  #onConnectionLost(link: Link, error: Error | undefined): void {
    link.lost = true;
    // After a heartbeat timeout amqplib only ends the socket, which lingers while the network is down.
    socketOf(link.conn)?.destroy();
    if (this.#link !== link) return;
    this.#link = undefined;
    if (this.isClosed()) return;
    this.#setState("disconnected");
    this.#emit({ type: "disconnected", error: error ? this.options.scrubber.scrub(error) : link.error });
    this.#reconnecting = this.#connectLoop(false).catch(() => {});
  }

  #setState(state: AmqpTransportState): void {
    this.#state = state;
    this.changes.notify();
  }

  #emit(event: TransportEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch {
        // A listener's bug must not take the transport down.
      }
    }
  }
}
