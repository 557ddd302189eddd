// The RabbitMQ transport: one connection, one confirm channel, a confirm per message.
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
// - publish() sends only in `connected` with a confirm channel open; in any other state, and while the channel is
//   being reopened, it waits (within its timeoutMs and signal). While `blocked` (a RabbitMQ resource alarm) and while
//   the socket is full (`publish` returned false, until `drain`) it sends nothing more, so nothing piles up in memory.
// - Batches share the channel: each message has its own confirm callback and each batch resolves when its own
//   messages are all confirmed, so concurrent batches never wait for each other (no waitForConfirms).
// - Unroutable messages: RabbitMQ sends basic.return before the basic.ack of the same message on the same channel,
//   so a returned messageId is remembered and that message's ack becomes `{ ok: false }`.
// - Missing exchanges: publishing to one makes the broker close the channel (404), which would fail every batch in
//   flight, over and over. So each exchange not yet seen on this connection is first checked passively on a
//   throwaway channel; messages to a missing one get `{ ok: false }` and the others are published. An exchange
//   deleted after its check still closes the channel: the batches in flight reject, the channel is reopened and the
//   checks are forgotten, so the relay's retry gets the per-message outcome.
//   Other channel errors a publish can cause (403: no write permission; 406: message too large) are not checked
//   beforehand: they reject the whole batch, every time it is retried.
// - Losing the channel (connection alive) reopens it and asserts the configured exchanges again; losing the
//   connection reconnects with capped exponential backoff and full jitter. Either way the batches that had sent
//   messages reject: some of them may have reached the broker, so they count as not sent but possibly delivered.
//   A batch still waiting for the connection or checking its exchanges waits for the new connection instead.
// - close() waits for the broker's close-ok at most connectTimeoutMs, then drops the socket: a dead network must not
//   keep the process alive.
// - start() retries until connected, except for errors retrying cannot fix, rejected as OutboxConfigError: an
//   exchange existing with other settings (406), the broker refusing the credentials (403 ACCESS_REFUSED) or the
//   virtual host. Once connected, every error is retried in the background (credentials may be rotated, an exchange
//   redeclared) and reported by `reconnecting` events, since nobody is there to catch a rejection.
// - The password of the URL never appears in an error or event: every error that comes from amqplib or the socket is
//   copied with the URL and password redacted, and the original is not kept as `cause`.
import type { ChannelModel, ConfirmChannel, Message, MessageFields, Options, SocketOptions } from "amqplib";
import { coerceError, OutboxConfigError, OutboxError, OutboxPublishError } from "../message/errors.js";
import type {
  ExchangeSpec,
  OutboundMessage,
  PublishOptions,
  PublishOutcome,
  Transport,
  TransportEvent,
} from "./transport.js";

export interface AmqpTransportOptions {
  /** `amqp://user:password@host:port/vhost` or `amqps://...`; its password is never shown. */
  url: string;
  /** Exchanges asserted at every (re)connection. @defaultValue [] */
  exchanges?: ExchangeSpec[] | undefined;
  /** AMQP heartbeat, which notices a silently dead connection; 0 disables it. @defaultValue 10 */
  heartbeatSeconds?: number | undefined;
  /** Delays between connection attempts: full jitter over an exponential backoff, capped. */
  reconnect?: { initialDelayMs?: number | undefined; maxDelayMs?: number | undefined } | undefined;
  /**
   * Give up one connection attempt (TCP and AMQP handshake) after this long; also how long close() waits for the
   * broker to answer before dropping the socket. @defaultValue 10_000
   */
  connectTimeoutMs?: number | undefined;
  /** Passed to amqplib's `connect`: TLS options, `keepAlive`, `clientProperties`... */
  socketOptions?: SocketOptions | undefined;
}

export type AmqpTransportState = "idle" | "connecting" | "connected" | "blocked" | "disconnected" | "closed";

/** The URL with its password replaced by `***`, to show in messages. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    // Not a URL: hide everything up to the last `@`, where credentials would be.
    return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)?.*@/i, "$1***@");
  }
}

/** Forgetting known exchanges now and then bounds the memory a relay publishing to ever new exchanges would use. */
const MAX_KNOWN_EXCHANGES = 10_000;
const EXCHANGE_TYPES = new Set(["direct", "topic", "fanout", "headers"]);

type Amqplib = typeof import("amqplib");
let amqplib: Promise<Amqplib> | undefined;
/** Loaded on first start(), so that an app that only writes to the outbox never loads amqplib. */
function loadAmqplib(): Promise<Amqplib> {
  amqplib ??= import("amqplib").then((module) => ((module as { default?: Amqplib }).default ?? module) as Amqplib);
  return amqplib;
}

/** The confirm channel and what is in flight on it. */
interface Lane {
  channel: ConfirmChannel;
  /** messageId => why the broker returned it, until that message's ack arrives. */
  returned: Map<string, string>;
  batches: Set<Batch>;
  closed: boolean;
  /** `publish` returned false: wait for `drain` before sending more. */
  full: boolean;
  error: Error | undefined;
}

/** One connection; replaced as a whole on reconnection. */
interface Link {
  conn: ChannelModel;
  lane: Lane | undefined;
  blocked: string | undefined;
  lost: boolean;
  error: Error | undefined;
  /** Exchanges that exist, as far as this connection knows. */
  known: Set<string>;
  checks: Map<string, Promise<boolean>>;
}

/** One publish() call: its deadline, its abort, and the reason it was given up. */
class Batch {
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;
  lane: Lane | undefined;

  constructor(
    timeoutMs: number,
    private readonly external: AbortSignal | undefined,
    private readonly registry: Set<Batch>,
  ) {
    this.timer = setTimeout(
      () => this.abort(new OutboxPublishError(`publish timed out after ${timeoutMs} ms before every confirm arrived`)),
      timeoutMs,
    );
    registry.add(this);
    if (external?.aborted) this.onExternalAbort();
    else external?.addEventListener("abort", this.onExternalAbort, { once: true });
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  abort(reason: Error): void {
    if (!this.signal.aborted) this.controller.abort(reason);
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.external?.removeEventListener("abort", this.onExternalAbort);
    this.registry.delete(this);
    this.lane?.batches.delete(this);
  }

  private readonly onExternalAbort = () => {
    this.abort(new OutboxPublishError("publish aborted", { cause: this.external?.reason }));
  };
}

export class AmqpTransport implements Transport {
  readonly #url: string;
  readonly #connectUrl: string;
  readonly #safeUrl: string;
  readonly #secrets: string[];
  readonly #exchanges: ExchangeSpec[];
  readonly #initialDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #connectTimeoutMs: number;
  readonly #socketOptions: SocketOptions;

  #state: AmqpTransportState = "idle";
  #link: Link | undefined;
  #starting: Promise<void> | undefined;
  #reconnecting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #sleep: { timer: NodeJS.Timeout; wake: () => void } | undefined;
  readonly #batches = new Set<Batch>();
  readonly #waiters = new Set<() => void>();
  readonly #listeners = new Set<(event: TransportEvent) => void>();

  constructor(options: AmqpTransportOptions) {
    const { url, exchanges = [], heartbeatSeconds = 10, reconnect = {}, connectTimeoutMs = 10_000 } = options;
    const { initialDelayMs = 100, maxDelayMs = 10_000 } = reconnect;
    let parsed: URL | undefined;
    try {
      parsed = new URL(url);
    } catch {}
    if (typeof url !== "string" || (parsed?.protocol !== "amqp:" && parsed?.protocol !== "amqps:")) {
      const shown = typeof url === "string" ? redactUrl(url) : typeof url;
      throw new OutboxConfigError(`Expected \`url\` to be an amqp:// or amqps:// URL, got ${shown}`);
    }
    if (!Array.isArray(exchanges)) throw new OutboxConfigError("Expected `exchanges` to be an array");
    for (const spec of exchanges) {
      if (typeof spec?.name !== "string" || spec.name === "" || !EXCHANGE_TYPES.has(spec?.type)) {
        throw new OutboxConfigError(
          `Expected each of \`exchanges\` to be { name, type: "direct" | "topic" | "fanout" | "headers", durable? }, got ${JSON.stringify(spec)}`,
        );
      }
    }
    expectNumber("heartbeatSeconds", heartbeatSeconds, 0, 3600, true);
    expectNumber("reconnect.initialDelayMs", initialDelayMs, 1);
    expectNumber("reconnect.maxDelayMs", maxDelayMs, initialDelayMs);
    expectNumber("connectTimeoutMs", connectTimeoutMs, 1);

    this.#url = url;
    if (!parsed.searchParams.has("heartbeat")) parsed.searchParams.set("heartbeat", String(heartbeatSeconds));
    this.#connectUrl = parsed.toString();
    this.#safeUrl = redactUrl(url);
    this.#secrets = parsed.password ? [...new Set([parsed.password, safeDecode(parsed.password)])] : [];
    this.#exchanges = exchanges.map((spec) => ({ ...spec }));
    this.#initialDelayMs = initialDelayMs;
    this.#maxDelayMs = maxDelayMs;
    this.#connectTimeoutMs = connectTimeoutMs;
    this.#socketOptions = {
      clientProperties: { connection_name: "prisma-outbox" },
      ...options.socketOptions,
      timeout: connectTimeoutMs,
    };
  }

  get state(): AmqpTransportState {
    return this.#state;
  }

  start(): Promise<void> {
    if (this.#isClosed()) return Promise.reject(closedBeforeConnected());
    this.#starting ??= this.#connectLoop(true).catch((error: unknown) => {
      this.#starting = undefined;
      if (!this.#isClosed()) this.#setState("idle");
      throw error;
    });
    return this.#starting;
  }

  async publish(messages: OutboundMessage[], { timeoutMs, signal }: PublishOptions): Promise<PublishOutcome[]> {
    expectNumber("timeoutMs", timeoutMs, 1);
    if (this.#isClosed()) throw new OutboxPublishError("transport closed");
    if (messages.length === 0) return [];
    const batch = new Batch(timeoutMs, signal, this.#batches);
    try {
      for (;;) {
        const { link, lane } = await this.#ready(batch);
        const missing = await abortable(this.#missingExchanges(link, messages), batch.signal).catch(
          (error: unknown) => {
            // Nothing was sent yet: a connection lost during the checks is waited out like any other.
            if (link.lost) return undefined;
            throw error;
          },
        );
        // The channel may have closed during the checks: wait for the next one.
        if (missing && !lane.closed) return await this.#send(link, lane, messages, missing, batch);
      }
    } catch (thrown) {
      if (thrown instanceof OutboxPublishError) throw thrown;
      const error = this.#scrub(thrown);
      throw new OutboxPublishError(`publish failed: ${error.message}`, { cause: error });
    } finally {
      batch.dispose();
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  onEvent(listener: (event: TransportEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async #shutdown(): Promise<void> {
    this.#setState("closed");
    const error = new OutboxPublishError("transport closed");
    for (const batch of this.#batches) batch.abort(error);
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

  // --- Connecting -------------------------------------------------------------------------------------------------

  async #connectLoop(starting: boolean): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      if (this.#isClosed()) throw closedBeforeConnected();
      this.#setState("connecting");
      try {
        const link = await this.#open();
        if (this.#isClosed()) {
          await this.#closeConnection(link.conn);
          throw closedBeforeConnected();
        }
        this.#link = link;
        this.#setState(link.blocked === undefined ? "connected" : "blocked");
        this.#emit({ type: "connected" });
        if (link.blocked !== undefined) this.#emit({ type: "blocked", reason: link.blocked });
        return;
      } catch (thrown) {
        if (this.#isClosed()) throw closedBeforeConnected();
        const error = this.#scrub(thrown);
        if (starting && error instanceof OutboxConfigError) throw error;
        const delayMs = Math.round(
          Math.random() * Math.min(this.#maxDelayMs, this.#initialDelayMs * 2 ** (attempt - 1)),
        );
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
    const amqp = await loadAmqplib();
    let conn: ChannelModel;
    try {
      conn = await amqp.connect(this.#connectUrl, this.#socketOptions);
    } catch (thrown) {
      throw this.#explainHandshakeError(this.#scrub(thrown));
    }
    const link: Link = {
      conn,
      lane: undefined,
      blocked: undefined,
      lost: false,
      error: undefined,
      known: new Set(this.#exchanges.map((spec) => spec.name)),
      checks: new Map(),
    };
    conn.on("error", (error: unknown) => {
      link.error = this.#scrub(error);
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
      await this.#assertExchanges(conn);
      link.lane = await this.#openLane(link);
      if (link.lost) throw link.error ?? new Error("connection lost while opening");
      return link;
    } catch (error) {
      await this.#closeConnection(conn);
      throw error;
    }
  }

  /** On a throwaway channel: a failed assertion closes the channel it was made on. */
  async #assertExchanges(conn: ChannelModel): Promise<void> {
    if (this.#exchanges.length === 0) return;
    const channel = await conn.createChannel();
    channel.on("error", () => {});
    try {
      for (const { name, type, durable = true } of this.#exchanges) {
        try {
          await channel.assertExchange(name, type, { durable });
        } catch (thrown) {
          const error = this.#scrub(thrown);
          const said = brokerText(error);
          if (codeOf(error) === 406) {
            throw new OutboxConfigError(
              `exchange \`${name}\` exists with other settings (type/durable) than configured (type ${type}, durable ${durable}): ${said}; delete it or change the configuration`,
            );
          }
          if (codeOf(error) === 403) {
            throw new OutboxConfigError(
              `the broker refused to declare exchange \`${name}\` (ACCESS_REFUSED 403): ${said}; grant the user configure permission on it or declare it beforehand`,
            );
          }
          throw error;
        }
      }
    } finally {
      await quietly(() => channel.close());
    }
  }

  #explainHandshakeError(error: Error): Error {
    if (/ACCESS[-_]REFUSED/.test(error.message)) {
      return new OutboxConfigError(
        `the broker at ${this.#safeUrl} refused the credentials (ACCESS_REFUSED 403): ${brokerText(error)}; check the user and password in \`url\``,
      );
    }
    if (/Expected ConnectionOpenOk; got <ConnectionClose/.test(error.message)) {
      return new OutboxConfigError(
        `the broker at ${this.#safeUrl} refused to open the virtual host (it does not exist or the user may not access it); check the path of \`url\``,
      );
    }
    return error;
  }

  async #openLane(link: Link): Promise<Lane> {
    const channel = await link.conn.createConfirmChannel();
    const lane: Lane = {
      channel,
      returned: new Map(),
      batches: new Set(),
      closed: false,
      full: false,
      error: undefined,
    };
    channel.on("error", (error: unknown) => {
      lane.error = this.#scrub(error);
    });
    channel.on("return", (message: Message) => {
      const id: unknown = message.properties.messageId;
      const fields = message.fields as MessageFields & { replyCode?: number; replyText?: string };
      if (typeof id !== "string") return;
      lane.returned.set(
        id,
        `unroutable: exchange ${fields.exchange} routing key ${fields.routingKey} returned ${fields.replyText ?? "NO_ROUTE"} (${fields.replyCode ?? 312})`,
      );
    });
    channel.on("drain", () => {
      lane.full = false;
      this.#changed();
    });
    // Before amqplib's own listener, which fails every pending confirm callback with "channel closed": the batches
    // must see a lost channel as such, not as nacks.
    channel.prependListener("close", () => {
      lane.closed = true;
      const cause = lane.error ?? link.error;
      const error = new OutboxPublishError(
        `${lane.error ? "channel" : "connection"} lost before every confirm arrived${cause ? `: ${cause.message}` : ""}`,
        { cause },
      );
      for (const batch of lane.batches) batch.abort(error);
      lane.batches.clear();
      lane.returned.clear();
      if (link.lane === lane) link.lane = undefined;
      // Most likely an exchange was deleted (404): check again before publishing to any.
      link.known = new Set();
      this.#changed();
      // When the whole connection is closing, its close event (right after this one) takes over.
      setImmediate(() => void this.#reopenLane(link));
    });
    return lane;
  }

  async #reopenLane(link: Link): Promise<void> {
    if (this.#link !== link || link.lost || link.lane || this.#isClosed()) return;
    try {
      // A configured exchange may be the one that was deleted.
      await this.#assertExchanges(link.conn);
      link.known = new Set(this.#exchanges.map((spec) => spec.name));
      link.lane = await this.#openLane(link);
      this.#changed();
    } catch (error) {
      // Cannot open a channel on this connection: start over with a new one.
      link.error = this.#scrub(error);
      await this.#closeConnection(link.conn);
    }
  }

  /** Closes gracefully, or drops the socket when the broker does not answer (e.g. the network is gone). */
  async #closeConnection(conn: ChannelModel): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([
      conn.close().then(
        () => false,
        () => false,
      ),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), this.#connectTimeoutMs);
      }),
    ]);
    clearTimeout(timer);
    // Destroying with an error makes amqplib finish closing, which stops its heartbeat timers.
    if (late) socketOf(conn)?.destroy(new Error(`no answer to connection.close within ${this.#connectTimeoutMs} ms`));
  }

  #onConnectionLost(link: Link, error: Error | undefined): void {
    link.lost = true;
    // After a heartbeat timeout amqplib only ends the socket, which lingers while the network is down.
    socketOf(link.conn)?.destroy();
    if (this.#link !== link) return;
    this.#link = undefined;
    if (this.#isClosed()) return;
    this.#setState("disconnected");
    this.#emit({ type: "disconnected", error: error ? this.#scrub(error) : link.error });
    this.#reconnecting = this.#connectLoop(false).catch(() => {});
  }

  // --- Publishing -------------------------------------------------------------------------------------------------

  async #ready(batch: Batch): Promise<{ link: Link; lane: Lane }> {
    for (;;) {
      const link = this.#link;
      const lane = link?.lane;
      if (link && lane && this.#state === "connected") return { link, lane };
      await this.#nextChange(batch.signal);
    }
  }

  async #missingExchanges(link: Link, messages: OutboundMessage[]): Promise<Set<string>> {
    const missing = new Set<string>();
    for (const name of new Set(messages.map((message) => message.exchange))) {
      // The default exchange always exists and cannot be checked (403).
      if (name === "" || link.known.has(name)) continue;
      let check = link.checks.get(name);
      if (!check) {
        check = this.#checkExchange(link, name).finally(() => link.checks.delete(name));
        link.checks.set(name, check);
      }
      if (!(await check)) missing.add(name);
    }
    return missing;
  }

  async #checkExchange(link: Link, name: string): Promise<boolean> {
    const channel = await link.conn.createChannel();
    channel.on("error", () => {});
    try {
      await channel.checkExchange(name);
      if (link.known.size >= MAX_KNOWN_EXCHANGES) link.known.clear();
      link.known.add(name);
      return true;
    } catch (error) {
      if (codeOf(error) === 404) return false;
      throw error;
    } finally {
      await quietly(() => channel.close());
    }
  }

  #send(
    link: Link,
    lane: Lane,
    messages: OutboundMessage[],
    missing: Set<string>,
    batch: Batch,
  ): Promise<PublishOutcome[]> {
    return new Promise((resolve, reject) => {
      const outcomes = new Array<PublishOutcome>(messages.length);
      let pending = messages.length;
      const settle = (index: number, outcome: PublishOutcome) => {
        outcomes[index] = outcome;
        if (--pending === 0) resolve(outcomes);
      };
      batch.signal.addEventListener("abort", () => reject(batch.signal.reason), { once: true });
      batch.lane = lane;
      lane.batches.add(batch);

      const write = async () => {
        for (const [index, message] of messages.entries()) {
          if (missing.has(message.exchange)) {
            const error = new OutboxPublishError(
              `exchange \`${message.exchange}\` does not exist (NOT_FOUND 404): message ${message.messageId} was not published`,
            );
            settle(index, { ok: false, error });
            continue;
          }
          while (lane.full || link.blocked !== undefined) {
            if (lane.closed) return;
            await this.#nextChange(batch.signal);
          }
          if (lane.closed || batch.signal.aborted) return;
          try {
            const sent = lane.channel.publish(
              message.exchange,
              message.routingKey,
              message.body,
              publishOptions(message),
              (error: unknown) => {
                // A lost channel fails every callback; its close listener has rejected the batches already.
                if (lane.closed) return;
                settle(index, this.#confirmed(lane, message, error));
              },
            );
            if (!sent) lane.full = true;
          } catch (thrown) {
            const error = this.#scrub(thrown);
            if (lane.closed) return;
            if (error.name === "IllegalOperationError") {
              // The connection is closing: its close event is coming.
              batch.abort(new OutboxPublishError(`connection lost before every confirm arrived: ${error.message}`));
              return;
            }
            // Not sent at all (e.g. headers too large to encode): only this message failed.
            settle(index, {
              ok: false,
              error: new OutboxPublishError(`message ${message.messageId} could not be sent: ${error.message}`, {
                cause: error,
              }),
            });
          }
        }
      };
      write().catch(reject);
    });
  }

  #confirmed(lane: Lane, message: OutboundMessage, nack: unknown): PublishOutcome {
    const where = `exchange ${message.exchange} routing key ${message.routingKey}`;
    if (nack)
      return { ok: false, error: new OutboxPublishError(`broker nacked message ${message.messageId} (${where})`) };
    const returned = lane.returned.get(message.messageId);
    if (returned === undefined) return { ok: true };
    lane.returned.delete(message.messageId);
    return { ok: false, error: new OutboxPublishError(returned) };
  }

  // --- Plumbing ---------------------------------------------------------------------------------------------------

  /** A method, not a comparison, so that TypeScript does not narrow the state across awaits. */
  #isClosed(): boolean {
    return this.#state === "closed";
  }

  #setState(state: AmqpTransportState): void {
    this.#state = state;
    this.#changed();
  }

  /** Wakes every publish() waiting for the state, the channel or the socket to change. */
  #changed(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const wake of waiters) wake();
  }

  #nextChange(signal: AbortSignal): Promise<void> {
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

  #emit(event: TransportEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch {
        // A listener's bug must not take the transport down.
      }
    }
  }

  /** A copy of an error from amqplib or the socket with the URL and password redacted; ours are safe already. */
  #scrub(thrown: unknown): Error {
    const error = coerceError(thrown);
    if (error instanceof OutboxError) return error;
    let message = error.message.split(this.#url).join(this.#safeUrl).split(this.#connectUrl).join(this.#safeUrl);
    for (const secret of this.#secrets) message = message.split(secret).join("***");
    const clean = new Error(message);
    clean.name = error.name;
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string" || typeof code === "number") Object.assign(clean, { code });
    return clean;
  }
}

function publishOptions(message: OutboundMessage): Options.Publish {
  const options: Options.Publish = {
    persistent: true,
    mandatory: true,
    messageId: message.messageId,
    timestamp: Math.floor(message.createdAt / 1000),
    contentType: "application/json",
  };
  if (message.type !== undefined) options.type = message.type;
  if (message.correlationId !== undefined) options.correlationId = message.correlationId;
  if (message.headers !== undefined) options.headers = message.headers;
  return options;
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
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

async function quietly(close: () => Promise<unknown>): Promise<void> {
  try {
    await close();
  } catch {
    // Already closed.
  }
}

function socketOf(conn: ChannelModel): { destroy(error?: Error): void } | undefined {
  return (conn.connection as { stream?: { destroy(error?: Error): void } }).stream;
}

function codeOf(error: unknown): unknown {
  return (error as { code?: unknown } | undefined)?.code;
}

/** What the broker said, e.g. `PRECONDITION_FAILED - inequivalent arg 'type' ...`, else the whole message. */
function brokerText(error: Error): string {
  return /with message "(.*)"/.exec(error.message)?.[1] ?? error.message;
}

function closedBeforeConnected(): OutboxError {
  return new OutboxError("transport closed before it connected");
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** The longest delay setTimeout takes (about 24.8 days); longer ones would fire at once. */
const MAX_TIMER_MS = 2_147_483_647;

function expectNumber(name: string, value: unknown, min: number, max = MAX_TIMER_MS, integer = false): void {
  if (typeof value !== "number" || !(value >= min && value <= max) || (integer && !Number.isInteger(value))) {
    throw new OutboxConfigError(
      `Expected \`${name}\` to be ${integer ? "an integer" : "a number"} from ${min} to ${max}, got ${String(value)}`,
    );
  }
}
