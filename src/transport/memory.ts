// A broker in memory, for unit tests and demos: records what was published and fails on demand, the way RabbitMQ
// would (per message: nacked or unroutable; per batch: connection lost, timeout, abort).
import { OutboxPublishError } from "../message/errors.js";
import type { OutboundMessage, PublishOptions, PublishOutcome, Transport, TransportEvent } from "./transport.js";

export interface MemoryTransportOptions {
  /** Delay before a batch is confirmed, to let tests see batches in flight. @defaultValue 0 */
  confirmLatencyMs?: number | undefined;
}

export class MemoryTransport implements Transport {
  /** Every message the broker accepted and routed, in order. */
  readonly published: OutboundMessage[] = [];
  readonly #latencyMs: number;
  /** exchange => routing keys (`*` for any); undefined until route() is first called: everything routes. */
  #routes: Map<string, Set<string>> | undefined;
  #failures: { count: number; error: Error } | undefined;
  #connected = true;
  #closed = false;
  readonly #inFlight = new Set<(error: Error) => void>();
  readonly #listeners = new Set<(event: TransportEvent) => void>();

  constructor(options: MemoryTransportOptions = {}) {
    this.#latencyMs = options.confirmLatencyMs ?? 0;
  }

  /**
   * Declares that messages to this exchange (and routing key; any when omitted) reach a queue. Once a route is
   * declared, every other message is unroutable, as with RabbitMQ's `mandatory`.
   */
  route(exchange: string, routingKey = "*"): this {
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

  /** Batches in flight and new ones reject until reconnect(). */
  disconnect(error: Error = new Error("connection lost")): void {
    this.#connected = false;
    const lost = new OutboxPublishError(`connection lost before every confirm arrived: ${error.message}`, {
      cause: error,
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
    this.#emit({ type: "blocked", reason });
  }

  unblock(): void {
    this.#emit({ type: "unblocked" });
  }

  async start(): Promise<void> {
    this.#emit({ type: "connected" });
  }

  async publish(messages: OutboundMessage[], { timeoutMs, signal }: PublishOptions): Promise<PublishOutcome[]> {
    if (this.#closed) throw new OutboxPublishError("transport closed");
    if (!this.#connected) throw new OutboxPublishError("not connected");
    await this.#confirmDelay(timeoutMs, signal);
    return messages.map((message) => {
      if (this.#failures && this.#failures.count > 0) {
        this.#failures.count--;
        return { ok: false, error: this.#failures.error };
      }
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
    for (const fail of this.#inFlight) fail(new OutboxPublishError("transport closed"));
  }

  onEvent(listener: (event: TransportEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Waits for the confirm latency; rejects on disconnect, close, timeout or abort, as the real transport does. */
  #confirmDelay(timeoutMs: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = (error?: Error) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.#inFlight.delete(finish);
        if (error) reject(error);
        else resolve();
      };
      const onAbort = () => finish(new OutboxPublishError("publish aborted", { cause: signal?.reason }));
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#inFlight.add(finish);
      timer =
        this.#latencyMs >= timeoutMs
          ? setTimeout(() => finish(new OutboxPublishError(`publish timed out after ${timeoutMs} ms`)), timeoutMs)
          : setTimeout(() => finish(), this.#latencyMs);
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
