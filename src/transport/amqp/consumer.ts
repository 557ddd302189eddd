// The receiving side of the broker: one connection and one channel consuming one durable queue, with the queue, its
// arguments (quorum queues, dead-letter exchange) and its bindings asserted on every (re)connection. It knows nothing
// of SQL: the inbox receiver decides when to ack. A partitioned queue's partition consumers each have a channel on one
// shared connection instead (`connection`: shared-connection.ts): losing it loses every channel, and each consumer
// reconnects as it would alone, through the shared connection (the first one opens it, the others wait for it); closing
// or losing only its channel leaves the others alone.
//
// State machine:
//   idle --start()--> connecting --topology asserted, consuming--> consuming
//   connecting --fails, first start--> start() rejects (fail fast: bad URL, credentials, refused topology)
//   consuming --connection or channel lost--> waiting --backoff with jitter--> connecting --fails--> waiting ...
//   consuming --pause()--> paused (basic.cancel: no new deliveries; unacked ones may still be acked)
//   any --close()--> closed (idempotent)
// Deliveries carry the generation of the channel they came on. After a reconnection their delivery tags mean nothing
// (the broker has requeued them and will deliver them again), so acking them is skipped, never sent to a new channel.
// Each connection's frame decoding is guarded (amqp/header-guard.ts): a delivery whose header table amqplib cannot
// decode (nested too deep, malformed) arrives without its headers and with `undecodable` set, instead of dropping the
// connection and coming back first on every reconnection.
// Should a decoding failure still drop the connection (amqplib's internals not as the guard expects, a frame it does
// not cover), the loop is detected: LOOP_AFTER consecutive losses, each a decoding failure within LOOP_WINDOW_MS of
// consuming, emit `decode-loop` once; a connection that then stays up for LOOP_WINDOW_MS, or is lost for another
// reason, emits `decode-loop-ended`. Each such loss is reported as `decode-failure`.
import type { Channel, ChannelModel, ConsumeMessage } from "amqplib";
import { OutboxConfigError, OutboxStartError } from "../../errors.js";
import { backoffDelay, sleep } from "../../runtime/backoff.js";
import type { Consumer, ConsumerOptions, Delivery } from "../transport.js";
import { guardHeaderDecoding, undecodableReason } from "./header-guard.js";
import { brokerText, CONNECT_OPTIONS, codeOf, loadAmqplib, quietly } from "./helpers.js";
import { Scrubber } from "./options.js";
import type { SharedAmqpConnection } from "./shared-connection.js";

/** Losses in a row, each a decoding failure soon after consuming, that make a loop. */
export const LOOP_AFTER = 3;
/** How soon after consuming a decoding failure counts toward a loop; also how long a connection must live to end it. */
export const LOOP_WINDOW_MS = 10_000;

export interface AmqpConsumerOptions extends ConsumerOptions {
  url: string;
  reconnectBaseMs?: number;
  reconnectMaxMs?: number;
  /**
   * @internal Guard each connection's header decoding (amqp/header-guard.ts). Off only in tests that show what the
   * broker-side defence does without it. @defaultValue true
   */
  guardHeaders?: boolean;
  /**
   * @internal Consume on a channel of this connection, shared with other consumers (a partitioned queue's partitions:
   * shared-connection.ts), instead of a connection of its own. `url` and `guardHeaders` are then the shared one's.
   */
  connection?: SharedAmqpConnection;
}

type State = "idle" | "connecting" | "consuming" | "paused" | "waiting" | "closed";

export class AmqpConsumer implements Consumer {
  readonly #options: AmqpConsumerOptions;
  /** Keeps the URL's password out of every error the consumer lets out (the publisher's scrubber). */
  readonly #scrubber: Scrubber;
  #state: State = "idle";
  #connection: ChannelModel | undefined;
  /** Lets go of the current connection (its own) or channel (on a shared connection), with its listeners. */
  #release: (() => Promise<void>) | undefined;
  #channel: Channel | undefined;
  #consumerTag: string | undefined;
  #generation = 0;
  /** Consecutive losses that were decoding failures soon after consuming. */
  #decodeFailures = 0;
  #looping = false;
  #steadyTimer: NodeJS.Timeout | undefined;
  readonly #closing = new AbortController();
  #loop: Promise<void> | undefined;

  constructor(options: AmqpConsumerOptions) {
    this.#options = options;
    this.#scrubber = new Scrubber(options.url, options.url);
  }

  get state(): State {
    return this.#state;
  }

  /** Connects, asserts the topology and starts consuming. Rejects, with nothing left open, if the first try fails. */
  async start(): Promise<void> {
    if (this.#state !== "idle") throw new Error(`consumer already ${this.#state}`);
    this.#state = "connecting";
    try {
      await this.#connect();
    } catch (error) {
      this.#state = "closed";
      throw startError(this.#scrubber.scrub(error), codeOf(error), this.#scrubber.safeUrl, this.#options.queue.name);
    }
  }

  /** Stops new deliveries (basic.cancel); deliveries already received may still be acked. */
  async pause(): Promise<void> {
    if (this.#state !== "consuming") return;
    this.#state = "paused";
    const channel = this.#channel;
    const tag = this.#consumerTag;
    if (channel && tag) await channel.cancel(tag).catch(() => {});
  }

  /** Acks the delivery (and, with `multiple`, every earlier one of its channel). False if its channel is gone. */
  ack(delivery: Delivery, multiple = false): boolean {
    const channel = this.#channelOf(delivery);
    if (!channel) return false;
    channel.ack(delivery.tag.message as ConsumeMessage, multiple);
    return true;
  }

  /** Rejects without requeue: the queue's dead-letter exchange gets it, or the broker drops it. */
  reject(delivery: Delivery): boolean {
    const channel = this.#channelOf(delivery);
    if (!channel) return false;
    channel.nack(delivery.tag.message as ConsumeMessage, false, false);
    return true;
  }

  async close(): Promise<void> {
    if (this.#state === "closed" && !this.#connection) return;
    this.#state = "closed";
    this.#closing.abort();
    clearTimeout(this.#steadyTimer);
    const release = this.#release;
    this.#connection = undefined;
    this.#release = undefined;
    this.#channel = undefined;
    this.#generation++;
    await release?.();
    await this.#loop;
  }

  #channelOf(delivery: Delivery): Channel | undefined {
    return delivery.tag.generation === this.#generation ? this.#channel : undefined;
  }

  async #connect(): Promise<void> {
    const shared = this.#options.connection;
    const connection = shared
      ? await shared.acquire()
      : await (await loadAmqplib()).connect(this.#options.url, CONNECT_OPTIONS);
    // On a shared connection this consumer owns its channel and its listeners only: those go when it is done.
    const detach: Array<() => void> = [];
    const on = (event: string, listener: Parameters<ChannelModel["on"]>[1]) => {
      connection.on(event, listener);
      detach.push(() => connection.off(event, listener));
    };
    let channel: Channel | undefined;
    const release = async () => {
      for (const off of detach.splice(0)) off();
      const open = channel;
      await quietly(() => (shared ? (open?.close() ?? Promise.resolve()) : connection.close()));
    };
    try {
      // 'close' follows; a decoding failure is only seen here, since amqplib closes the channels (whose 'close' comes
      // first and carries no reason) before the connection. A shared connection records it for every consumer.
      let connectionError: unknown;
      if (!shared) {
        connection.on("error", (error: unknown) => {
          connectionError ??= error;
        });
        if (this.#options.guardHeaders !== false && !guardHeaderDecoding(connection)) {
          this.#options.onEvent({ type: "guard-unavailable" });
        }
      }
      channel = await connection.createChannel();
      const own = channel;
      own.on("error", () => {});
      const { queue, exchanges, prefetch } = this.#options;
      for (const e of exchanges) await own.assertExchange(e.name, e.type, { durable: e.durable ?? true });
      await own.assertQueue(queue.name, { durable: true, arguments: queue.arguments ?? {} });
      for (const b of queue.bindings ?? []) await own.bindQueue(queue.name, b.exchange, b.routingKey, b.arguments);
      await own.prefetch(prefetch);
      const generation = ++this.#generation;
      this.#connection = connection;
      this.#release = release;
      this.#channel = own;
      let consumingAt = Number.POSITIVE_INFINITY;
      const lost = (error?: Error) => {
        if (this.#generation !== generation) return;
        this.#generation++;
        this.#lostAfter(Date.now() - consumingAt, shared ? shared.errorOf(connection) : connectionError);
        this.#channel = undefined;
        this.#connection = undefined;
        this.#release = undefined;
        void release();
        if (this.#state === "closed") return;
        this.#options.onEvent({ type: "disconnected", error });
        this.#state = "waiting";
        this.#loop = this.#reconnect();
      };
      on("close", (error?: Error) => lost(error));
      own.on("close", () => lost(new Error("channel closed by the broker")));
      on("blocked", (reason: string) => this.#options.onEvent({ type: "blocked", reason }));
      on("unblocked", () => this.#options.onEvent({ type: "unblocked" }));
      const { consumerTag } = await own.consume(queue.name, (message) => {
        if (message === null) return lost(new Error("the broker cancelled the consumer (queue deleted?)"));
        const p = message.properties;
        const undecodable = undecodableReason(p);
        this.#options.onDelivery({
          content: message.content,
          messageId: p.messageId === undefined || p.messageId === null ? undefined : String(p.messageId),
          exchange: message.fields.exchange,
          routingKey: message.fields.routingKey,
          headers: p.headers,
          type: p.type ?? undefined,
          correlationId: p.correlationId ?? undefined,
          redelivered: message.fields.redelivered,
          ...(undecodable === undefined ? {} : { undecodable }),
          tag: { generation, deliveryTag: message.fields.deliveryTag, message },
        });
      });
      this.#consumerTag = consumerTag;
      consumingAt = Date.now();
      clearTimeout(this.#steadyTimer);
      this.#steadyTimer = setTimeout(() => {
        if (this.#generation === generation) this.#endLoop();
      }, LOOP_WINDOW_MS);
      this.#steadyTimer.unref();
      if (this.#state !== "closed") this.#state = "consuming";
      this.#options.onEvent({ type: "connected" });
    } catch (error) {
      await release();
      throw error;
    }
  }

  /** Counts a loss toward the decode loop, or ends the loop (see the top of the file). */
  #lostAfter(consumedMs: number, error: unknown): void {
    clearTimeout(this.#steadyTimer);
    if (this.#state === "closed" || consumedMs > LOOP_WINDOW_MS || !isDecodeFailure(error)) {
      this.#endLoop();
      return;
    }
    const failures = ++this.#decodeFailures;
    // In our words: the message of a decoding error may quote the broker's (untrusted) bytes.
    const what = /call stack/i.test(error.message) ? "a table nested too deeply (stack overflow)" : error.name;
    const reason = new Error(`decoding a frame from the broker failed: ${what}`);
    this.#options.onEvent({ type: "decode-failure", failures, error: reason });
    if (failures >= LOOP_AFTER && !this.#looping) {
      this.#looping = true;
      this.#options.onEvent({ type: "decode-loop", failures, error: reason });
    }
  }

  #endLoop(): void {
    this.#decodeFailures = 0;
    if (!this.#looping) return;
    this.#looping = false;
    this.#options.onEvent({ type: "decode-loop-ended" });
  }

  async #reconnect(): Promise<void> {
    const base = this.#options.reconnectBaseMs ?? 500;
    const max = this.#options.reconnectMaxMs ?? 30_000;
    for (let attempt = 1; !this.#closing.signal.aborted; attempt++) {
      const delayMs = backoffDelay(attempt, base, max);
      await sleep(delayMs, this.#closing.signal);
      if (this.#closing.signal.aborted) return;
      try {
        this.#state = "connecting";
        await this.#connect();
        return;
      } catch (error) {
        this.#state = "waiting";
        this.#options.onEvent({ type: "reconnecting", attempt, delayMs, error: this.#scrubber.scrub(error) });
      }
    }
  }
}

/**
 * Errors amqplib's decoders throw while reading a frame (then reported as a socket error): a stack overflow, a read
 * past the end of the frame (RangeError), an unknown field type (TypeError). Never a broker's close or a socket's
 * error (those are plain Errors).
 */
function isDecodeFailure(error: unknown): error is RangeError | TypeError {
  return error instanceof RangeError || error instanceof TypeError;
}

/**
 * What a failed first start means, as the publisher's transport says it: OutboxConfigError when a person must change
 * something (credentials, the virtual host, the queue's arguments or bindings), OutboxStartError when waiting may
 * fix it (the broker down, not answering, or closing the connection).
 */
function startError(e: Error, code: unknown, where: string, queue: string): Error {
  if (code === 403 || /ACCESS[-_]REFUSED/.test(e.message)) {
    return new OutboxConfigError(
      `RabbitMQ at ${where} refused access (check the user and its permissions): ${brokerText(e)}`,
    );
  }
  if (/Expected ConnectionOpenOk; got <ConnectionClose/.test(e.message)) {
    return new OutboxConfigError(
      `RabbitMQ at ${where} refused to open the virtual host (it does not exist or the user may not access it); check the path of \`amqpUrl\``,
    );
  }
  if (code === 406 || code === 404 || /PRECONDITION_FAILED|NOT_FOUND/.test(e.message)) {
    return new OutboxConfigError(
      `RabbitMQ refused the inbox queue "${queue}" or its bindings (an existing queue with other ` +
        `arguments, or a binding to a missing exchange: declare it in \`exchanges\`): ${e.message}`,
    );
  }
  return new OutboxStartError(`cannot connect to RabbitMQ at ${where}: ${e.message}`, {
    cause: e,
    code: typeof code === "string" ? code : undefined,
  });
}
