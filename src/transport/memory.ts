// A broker in memory, for unit tests and demos: records what was published and fails on demand, the way RabbitMQ
// would (per message: nacked or unroutable; per batch: connection lost, timeout, abort).
//
// Two modes. Made with `new MemoryTransport()`, it is its own broker: everything routes, or what route() declares.
// Made by MemoryBroker.transport(), it publishes into that broker (memory-broker.ts), which routes as RabbitMQ does:
// start() asserts the exchanges (its own `exchanges` and the relay's, given by useExchanges()), a message no queue
// takes is `{ ok: false }` (the mandatory return, NO_ROUTE 312) and one to a missing exchange `{ ok: false }` with
// NOT_FOUND (404), as AmqpTransport reports both. The failure controls (failNext, closeChannelOn, disconnect, block)
// work in both modes.
import { durationOption, exchangesOption } from "../config/validate.js";
import { OutboxConfigError, OutboxPublishError } from "../errors.js";
import type { BrokerMessage } from "./memory-queue.js";
import type {
  ExchangeSpec,
  OutboundMessage,
  PublishOptions,
  PublishOutcome,
  Transport,
  TransportEvent,
} from "./transport.js";

export interface MemoryTransportOptions {
  /** Delay before a batch is confirmed, to let tests see batches in flight. @defaultValue 0 */
  confirmLatencyMs?: number | undefined;
  /** More delay per message of the batch, as a broker slow on bytes behaves. @defaultValue 0 */
  perMessageLatencyMs?: number | undefined;
  /**
   * Exchanges to assert at start(), besides the relay's `exchanges` (a transport made by MemoryBroker.transport()
   * only; the standalone one has no exchanges to declare).
   * @defaultValue []
   */
  exchanges?: ExchangeSpec[] | undefined;
}

/** @internal Where a MemoryTransport made by MemoryBroker.transport() publishes. */
export interface MemoryTransportSink {
  /** Throws OutboxConfigError when the exchange exists with other settings. */
  assertExchange(spec: ExchangeSpec): void;
  hasExchange(name: string): boolean;
  /** The queues the message reached ([] = unroutable). */
  publish(exchange: string, routingKey: string, message: Omit<BrokerMessage, "exchange" | "routingKey">): string[];
}

export class MemoryTransport implements Transport {
  /** Every message the broker accepted and routed, in order. */
  readonly published: OutboundMessage[] = [];
  readonly #latencyMs: number;
  readonly #perMessageMs: number;
  /** exchange => routing keys (`*` for any); undefined until route() is first called: everything routes. */
  #routes: Map<string, Set<string>> | undefined;
  #failures: { count: number; error: Error } | undefined;
  #poison: ((message: OutboundMessage) => boolean) | undefined;
  #blocked: string | undefined;
  #connected = true;
  #closed = false;
  readonly #inFlight = new Set<(error: Error) => void>();
  readonly #listeners = new Set<(event: TransportEvent) => void>();
  readonly #sink: MemoryTransportSink | undefined;
  readonly #exchanges: ExchangeSpec[];

  /** `sink` is @internal: MemoryBroker.transport() passes itself. */
  constructor(options: MemoryTransportOptions = {}, sink?: MemoryTransportSink) {
    this.#latencyMs = durationOption("confirmLatencyMs", options.confirmLatencyMs, 0, 0);
    this.#perMessageMs = durationOption("perMessageLatencyMs", options.perMessageLatencyMs, 0, 0);
    this.#exchanges = exchangesOption("exchanges", options.exchanges);
    if (this.#exchanges.length > 0 && !sink) {
      throw new OutboxConfigError(
        "Expected no `exchanges` for a standalone MemoryTransport (it routes everything, or what route() declares); " +
          "use MemoryBroker.transport({ exchanges }) for exchanges routed as RabbitMQ routes them.",
      );
    }
    this.#sink = sink;
  }

  /**
   * The relay's `exchanges` option, given before start() (transport.ts): asserted at start() with this transport's
   * own. The standalone transport has nothing to assert and ignores them.
   */
  useExchanges(exchanges: readonly ExchangeSpec[]): void {
    if (this.#sink) this.#exchanges.push(...exchanges);
  }

  /**
   * Declares that messages to this exchange (and routing key; any when omitted) reach a queue. Once a route is
   * declared, every other message is unroutable, as with RabbitMQ's `mandatory`.
   */
  route(exchange: string, routingKey = "*"): this {
    if (this.#sink) {
      throw new OutboxConfigError(
        "route() is for a standalone MemoryTransport: this one publishes into a MemoryBroker, whose bindings route",
      );
    }
    this.#routes ??= new Map();
    const keys = this.#routes.get(exchange) ?? new Set();
    keys.add(routingKey);
    this.#routes.set(exchange, keys);
    return this;
  }

  /** The next `count` messages (across batches) fail with `{ ok: false, error }`, as if nacked. */
  failNext(count: number, error: Error = new OutboxPublishError("broker nacked the message")): void {
    this.#failures = { count, error };
  }

  /**
   * From now on, a batch holding a message for which `isPoison` is true rejects as a whole, the way RabbitMQ closes
   * the channel for one message (403 on an exchange the user may not write to, 406 above max_message_size); the
   * messages of that batch before the poison one are published (they reached the broker before it closed the channel).
   */
  closeChannelOn(isPoison: ((message: OutboundMessage) => boolean) | undefined): void {
    this.#poison = isPoison;
  }

  /** Batches in flight and new ones reject until reconnect(). */
  disconnect(error: Error = new Error("connection lost")): void {
    this.#connected = false;
    const lost = new OutboxPublishError(`connection lost before every confirm arrived: ${error.message}`, {
      cause: error,
      reason: "connection-lost",
    });
    for (const fail of this.#inFlight) fail(lost);
    this.#emit({ type: "disconnected", error });
  }

  reconnect(): void {
    this.#connected = true;
    this.#emit({ type: "connected" });
  }

  /** A resource alarm: the relay must stop publishing until unblock(). */
  block(reason = "low on memory"): void {
    this.#blocked = reason;
    this.#emit({ type: "blocked", reason });
  }

  unblock(): void {
    this.#blocked = undefined;
    this.#emit({ type: "unblocked" });
  }

  /** Connects at once; a broker blocked beforehand (block()) says so right after, as RabbitMQ does. */
  async start(): Promise<void> {
    for (const spec of this.#exchanges) this.#sink?.assertExchange(spec);
    this.#emit({ type: "connected" });
    if (this.#blocked !== undefined) this.#emit({ type: "blocked", reason: this.#blocked });
  }

  async publish(messages: OutboundMessage[], { timeoutMs, signal }: PublishOptions): Promise<PublishOutcome[]> {
    if (this.#closed) throw new OutboxPublishError("transport closed", { reason: "closed" });
    if (!this.#connected) throw new OutboxPublishError("not connected", { reason: "connection-lost" });
    await this.#confirmDelay(this.#latencyMs + this.#perMessageMs * messages.length, timeoutMs, signal);
    const poison = this.#poison ? messages.findIndex(this.#poison) : -1;
    if (poison >= 0) {
      for (const message of messages.slice(0, poison)) {
        if (this.#sink) this.#intoBroker(this.#sink, message);
        else this.published.push(message);
      }
      throw new OutboxPublishError(
        `channel lost before every confirm arrived: ACCESS_REFUSED (403) for message ${messages[poison]!.messageId}`,
        { reason: "channel-closed" },
      );
    }
    return messages.map((message) => {
      if (this.#failures && this.#failures.count > 0) {
        this.#failures.count--;
        return { ok: false, error: this.#failures.error };
      }
      if (this.#sink) return this.#intoBroker(this.#sink, message);
      const keys = this.#routes?.get(message.exchange);
      if (!this.#routes || keys?.has("*") || keys?.has(message.routingKey)) {
        this.published.push(message);
        return { ok: true };
      }
      const error = new OutboxPublishError(
        `unroutable: exchange ${message.exchange} routing key ${message.routingKey} returned NO_ROUTE (312)`,
      );
      return { ok: false, error };
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const fail of this.#inFlight) fail(new OutboxPublishError("transport closed", { reason: "closed" }));
  }

  onEvent(listener: (event: TransportEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** One message into the broker: its outcome as AmqpTransport reports it (amqp/publish.ts, amqp/channel.ts). */
  #intoBroker(sink: MemoryTransportSink, message: OutboundMessage): PublishOutcome {
    if (!sink.hasExchange(message.exchange)) {
      const error = new OutboxPublishError(
        `exchange \`${message.exchange}\` does not exist (NOT_FOUND 404): message ${message.messageId} was not published`,
      );
      return { ok: false, error };
    }
    const queues = sink.publish(message.exchange, message.routingKey, {
      content: message.body,
      messageId: message.messageId,
      headers: message.headers === undefined ? undefined : { ...message.headers },
      type: message.type,
      correlationId: message.correlationId,
      // AMQP's timestamp is in seconds (amqp/publish.ts sends Math.floor(createdAt / 1000)).
      timestamp: Math.floor(message.createdAt / 1000) * 1000,
    });
    if (queues.length === 0) {
      const error = new OutboxPublishError(
        `unroutable: exchange ${message.exchange} routing key ${message.routingKey} returned NO_ROUTE (312)`,
      );
      return { ok: false, error };
    }
    this.published.push(message);
    return { ok: true };
  }

  /** Waits for the confirm latency; rejects on disconnect, close, timeout or abort, as the real transport does. */
  #confirmDelay(latencyMs: number, timeoutMs: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = (error?: Error) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.#inFlight.delete(finish);
        if (error) reject(error);
        else resolve();
      };
      const onAbort = () =>
        finish(new OutboxPublishError("publish aborted", { cause: signal?.reason, reason: "aborted" }));
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#inFlight.add(finish);
      timer =
        latencyMs >= timeoutMs
          ? setTimeout(
              () => finish(new OutboxPublishError(`publish timed out after ${timeoutMs} ms`, { reason: "timeout" })),
              timeoutMs,
            )
          : setTimeout(() => finish(), latencyMs);
    });
  }

  #emit(event: TransportEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch {
        // Listeners must not throw; if one does, the transport goes on.
      }
    }
  }
}
