// A message broker inside the process, for tests and demos without RabbitMQ: exchanges, queues and bindings routed as
// RabbitMQ routes them (memory-routing.ts), queues handed to consumers with prefetch, acks, redelivery and
// dead-lettering (memory-queue.ts, memory-consumer.ts), and a publishing Transport for the relay (transport()).
//
// What it refuses, it refuses as RabbitMQ would, with a typed error: a declaration that conflicts with what exists
// (406 PRECONDITION_FAILED), a binding to a missing exchange or queue (404 NOT_FOUND) and a reserved name (403
// ACCESS_REFUSED) throw OutboxConfigError, as they fail an AmqpTransport's or AmqpConsumer's start(); publishing to a
// missing exchange throws OutboxPublishError with reason "channel-closed" (RabbitMQ closes the channel).
//
// What it does not model: connections and their loss, durability across restarts (nothing survives the process),
// exchange-to-exchange bindings, queue limits (x-max-length, x-message-ttl, x-expires: accepted, not applied),
// priorities, exclusive and auto-delete queues, alternate exchanges, publisher flow control.
import { OutboxConfigError, OutboxPublishError } from "../errors.js";
import { MemoryTransport, type MemoryTransportOptions } from "./memory.js";
import { MemoryConsumer } from "./memory-consumer.js";
import { type BrokerMessage, MemoryQueue } from "./memory-queue.js";
import {
  type Binding,
  EXCHANGE_TYPES,
  type ExchangeType,
  invalidHeadersBinding,
  routeBindings,
} from "./memory-routing.js";
import type { Consumer, ConsumerOptions, ExchangeSpec, InboxTransport } from "./transport.js";

export type { BrokerMessage } from "./memory-queue.js";
export type { ExchangeType } from "./memory-routing.js";

/** One entry of MemoryBroker.log: a published message and the queues it reached ([] = unroutable). */
export interface PublishedEntry {
  readonly message: BrokerMessage;
  readonly queues: readonly string[];
}

interface Exchange {
  type: ExchangeType;
  durable: boolean;
  bindings: Binding[];
}

/** Queue arguments RabbitMQ compares when a queue is declared again (a difference is 406). */
const EQUIVALENT_ARGS = [
  "x-queue-type",
  "x-dead-letter-exchange",
  "x-dead-letter-routing-key",
  "x-max-length",
  "x-max-length-bytes",
  "x-message-ttl",
  "x-expires",
  "x-overflow",
  "x-max-priority",
];

/** The exchanges every RabbitMQ virtual host has. */
const PREDECLARED: ReadonlyArray<[string, ExchangeType]> = [
  ["amq.direct", "direct"],
  ["amq.fanout", "fanout"],
  ["amq.topic", "topic"],
  ["amq.headers", "headers"],
  ["amq.match", "headers"],
];

export class MemoryBroker implements InboxTransport {
  readonly #exchanges = new Map<string, Exchange>();
  readonly #queues = new Map<string, MemoryQueue>();
  readonly #log: PublishedEntry[] = [];
  readonly #listeners = new Set<(entry: PublishedEntry) => void>();

  constructor() {
    for (const [name, type] of PREDECLARED) this.#exchanges.set(name, { type, durable: true, bindings: [] });
  }

  /** Every message published (publish(), a transport's batches) in order, with the queues each reached. */
  get log(): ReadonlyArray<PublishedEntry> {
    return this.#log;
  }

  /** Declares an exchange; again with the same settings is a no-op, with others a 406-like OutboxConfigError. */
  assertExchange(name: string, type: ExchangeType, options: { durable?: boolean | undefined } = {}): void {
    const durable = options.durable ?? true;
    if (!EXCHANGE_TYPES.includes(type)) {
      throw new OutboxConfigError(`exchange \`${name}\`: unknown type ${JSON.stringify(type)} (COMMAND_INVALID 503)`);
    }
    if (name === "") {
      throw new OutboxConfigError("the default exchange cannot be declared (ACCESS_REFUSED 403)");
    }
    const existing = this.#exchanges.get(name);
    if (existing) {
      if (existing.type !== type || existing.durable !== durable) {
        throw new OutboxConfigError(
          `exchange \`${name}\` exists with other settings (type ${existing.type}, durable ${existing.durable}) than ` +
            `declared (type ${type}, durable ${durable}) (PRECONDITION_FAILED 406); delete it or change the configuration`,
        );
      }
      return;
    }
    if (name.startsWith("amq.")) {
      throw new OutboxConfigError(`exchange name \`${name}\` uses the reserved prefix amq. (ACCESS_REFUSED 403)`);
    }
    this.#exchanges.set(name, { type, durable, bindings: [] });
  }

  /** Declares a queue; again with other arguments RabbitMQ compares (x-dead-letter-exchange...) is a 406. */
  assertQueue(name: string, options: { arguments?: Record<string, unknown> } = {}): void {
    const args = { ...options.arguments };
    if (name === "") throw new OutboxConfigError("a queue of the in-memory broker needs a name (server-named: no)");
    const existing = this.#queues.get(name);
    if (existing) {
      for (const key of EQUIVALENT_ARGS) {
        const was = argument(existing.args, key);
        const now = argument(args, key);
        if (String(was) !== String(now)) {
          throw new OutboxConfigError(
            `queue \`${name}\` exists with ${key} ${String(was)}, declared with ${String(now)} (PRECONDITION_FAILED 406: inequivalent arg)`,
          );
        }
      }
      return;
    }
    if (name.startsWith("amq.")) {
      throw new OutboxConfigError(`queue name \`${name}\` uses the reserved prefix amq. (ACCESS_REFUSED 403)`);
    }
    this.#queues.set(name, new MemoryQueue(name, args));
  }

  /** Binds a queue to an exchange (both must exist: 404 otherwise); `args` for a headers exchange. Idempotent. */
  bindQueue(queue: string, exchange: string, routingKey: string, args?: Record<string, unknown>): void {
    if (exchange === "") {
      throw new OutboxConfigError(`queue \`${queue}\` cannot be bound to the default exchange (ACCESS_REFUSED 403)`);
    }
    const x = this.#exchanges.get(exchange);
    if (!x) {
      throw new OutboxConfigError(
        `no exchange \`${exchange}\` to bind queue \`${queue}\` to (NOT_FOUND 404): declare it first (in \`exchanges\`)`,
      );
    }
    if (!this.#queues.has(queue)) throw new OutboxConfigError(`no queue \`${queue}\` to bind (NOT_FOUND 404)`);
    if (x.type === "headers") {
      const invalid = invalidHeadersBinding(args);
      if (invalid) throw new OutboxConfigError(`binding of queue \`${queue}\` to \`${exchange}\`: ${invalid} (406)`);
    }
    const same = (b: Binding) => b.queue === queue && b.routingKey === routingKey && sameArgs(b.arguments, args);
    if (!x.bindings.some(same))
      x.bindings.push({ queue, routingKey, arguments: args === undefined ? undefined : { ...args } });
  }

  /** The queues a message reaches, as RabbitMQ routes it ("" = the default exchange: the queue named routingKey). */
  route(exchange: string, routingKey: string, headers?: Record<string, unknown>): string[] {
    if (exchange === "") return this.#queues.has(routingKey) ? [routingKey] : [];
    const x = this.#exchanges.get(exchange);
    return x ? routeBindings(x.type, x.bindings, routingKey, headers) : [];
  }

  /**
   * Publishes; returns the queues reached ([] = unroutable: with `mandatory` RabbitMQ returns it). A missing exchange
   * throws OutboxPublishError (reason "channel-closed": RabbitMQ's 404 closes the channel).
   */
  publish(exchange: string, routingKey: string, message: Omit<BrokerMessage, "exchange" | "routingKey">): string[] {
    if (exchange !== "" && !this.#exchanges.has(exchange)) {
      throw new OutboxPublishError(`no exchange \`${exchange}\` (NOT_FOUND 404): the broker closed the channel`, {
        reason: "channel-closed",
      });
    }
    const published: BrokerMessage = { ...message, exchange, routingKey };
    const queues = this.#deliver(published);
    const entry: PublishedEntry = { message: published, queues };
    this.#log.push(entry);
    for (const listener of this.#listeners) {
      try {
        listener(entry);
      } catch {
        // A listener must not throw; if one does, publishing goes on.
      }
    }
    return queues;
  }

  /**
   * Puts a message straight into one queue, with the exchange and routing key it says it came by (what a test's
   * "deliver this" does). Not a publish: not in `log`, no onPublish. A missing queue throws OutboxConfigError.
   */
  sendToQueue(queue: string, message: BrokerMessage): void {
    this.#queue(queue).enqueue(copy(message));
  }

  /** The messages waiting in a queue (not delivered, or given back), in order. */
  messages(queue: string): BrokerMessage[] {
    return this.#queue(queue).ready.map((entry) => entry.message);
  }

  /** How many of a queue's messages are delivered and not yet acked or rejected. */
  unacked(queue: string): number {
    return this.#queue(queue).unacked;
  }

  /** Whether a queue exists. */
  hasQueue(queue: string): boolean {
    return this.#queues.has(queue);
  }

  /** Called after every publish (the message and the queues it reached). Returns the unsubscribe function. */
  onPublish(listener: (entry: PublishedEntry) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * A Transport for createRelay() that publishes into this broker: start() asserts its `exchanges` (and the relay's);
   * an unroutable message is `{ ok: false }` as RabbitMQ's mandatory return, a missing exchange as NOT_FOUND.
   */
  transport(options: MemoryTransportOptions = {}): MemoryTransport {
    return new MemoryTransport(options, {
      assertExchange: (spec: ExchangeSpec) => this.assertExchange(spec.name, spec.type, { durable: spec.durable }),
      hasExchange: (name: string) => name === "" || this.#exchanges.has(name),
      publish: (exchange, routingKey, message) => this.publish(exchange, routingKey, message),
    });
  }

  /** A consumer of `options.queue` (asserting options.exchanges, the queue and its bindings at start()). */
  consumer(options: ConsumerOptions): Consumer {
    return new MemoryConsumer(options, {
      declare: () => {
        for (const e of options.exchanges) this.assertExchange(e.name, e.type, { durable: e.durable });
        const { name, arguments: args, bindings = [] } = options.queue;
        this.assertQueue(name, { arguments: args ?? {} });
        for (const b of bindings) this.bindQueue(name, b.exchange, b.routingKey, b.arguments);
        return this.#queues.get(name)!;
      },
      deadLetter: (queue, message) => this.#deadLetter(queue, message),
    });
  }

  #queue(name: string): MemoryQueue {
    const queue = this.#queues.get(name);
    if (!queue) throw new OutboxConfigError(`no queue \`${name}\` (NOT_FOUND 404): declare it first`);
    return queue;
  }

  /** Routes a message and puts a copy in each queue reached. */
  #deliver(message: BrokerMessage): string[] {
    const queues = this.route(message.exchange, message.routingKey, message.headers);
    for (const name of queues) this.#queues.get(name)!.enqueue(copy(message));
    return queues;
  }

  /**
   * A rejected message goes to its queue's dead-letter exchange (with x-dead-letter-routing-key, or its own), with
   * RabbitMQ's x-death bookkeeping; without one, or when that exchange does not exist, it is dropped, as RabbitMQ
   * drops it.
   */
  #deadLetter(queue: MemoryQueue, message: BrokerMessage): void {
    const dlx = argument(queue.args, "x-dead-letter-exchange");
    if (typeof dlx !== "string" || (dlx !== "" && !this.#exchanges.has(dlx))) return;
    const key = argument(queue.args, "x-dead-letter-routing-key");
    const routingKey = typeof key === "string" ? key : message.routingKey;
    const headers = withDeath(message, queue.name);
    this.#deliver({ ...message, exchange: dlx, routingKey, headers });
  }
}

/** RabbitMQ's dead-letter headers for one more rejection from `queue`: x-death (newest first) and x-first-death-*. */
function withDeath(message: BrokerMessage, queue: string): Record<string, unknown> {
  const headers = { ...message.headers };
  const deaths = Array.isArray(headers["x-death"]) ? [...(headers["x-death"] as Array<Record<string, unknown>>)] : [];
  const index = deaths.findIndex((d) => d.queue === queue && d.reason === "rejected");
  const earlier = index >= 0 ? deaths.splice(index, 1)[0]! : undefined;
  deaths.unshift({
    count: typeof earlier?.count === "number" ? earlier.count + 1 : 1,
    reason: "rejected",
    queue,
    // As amqplib decodes RabbitMQ's AMQP timestamp: seconds, typed.
    time: { "!": "timestamp", value: Math.floor(Date.now() / 1000) },
    exchange: message.exchange,
    "routing-keys": [message.routingKey],
  });
  headers["x-death"] = deaths;
  if (headers["x-first-death-queue"] === undefined) {
    headers["x-first-death-exchange"] = message.exchange;
    headers["x-first-death-queue"] = queue;
    headers["x-first-death-reason"] = "rejected";
  }
  return headers;
}

/** An argument's value, amqplib's typed form `{ "!": type, value }` unwrapped; x-queue-type defaults to classic. */
function argument(args: Readonly<Record<string, unknown>>, key: string): unknown {
  const value = args[key];
  const plain = typeof value === "object" && value !== null && "value" in value ? value.value : value;
  return key === "x-queue-type" && plain === undefined ? "classic" : plain;
}

function sameArgs(a: Record<string, unknown> | undefined, b: Record<string, unknown> | undefined): boolean {
  return JSON.stringify(a ?? {}) === JSON.stringify(b ?? {});
}

/** Each queue's copy is its own: dead-lettering one must not change another's headers. */
function copy(message: BrokerMessage): BrokerMessage {
  return { ...message, headers: message.headers === undefined ? undefined : { ...message.headers } };
}
