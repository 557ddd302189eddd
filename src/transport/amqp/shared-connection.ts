// One AMQP connection shared by the consumers of a partitioned inbox queue's partitions (one channel each), so that a
// process consuming 16 partitions runs one socket, one heartbeat and one frame reader instead of 16, as RabbitMQ
// advises (a connection is a process and buffers on the broker; channels are cheap). CPU per message did not move
// with it in bench:inbox (p): docs/performance.md#partitioned-queues.
//
// State machine:
//   none --acquire()--> opening --connected--> open --acquire()--> open (the same connection)
//   opening --fails--> none (acquire() rejects; each consumer retries on its own backoff, as with its own connection)
//   open --connection lost--> none (every channel on it closed with it: each consumer sees its channel's close and
//     reconnects through acquire(), the first opening the new connection and the others waiting for it)
//   any --close()--> closed (idempotent; acquire() rejects)
// A channel closed alone (its queue deleted, a refused declaration) leaves the connection and the other partitions
// alone: the consumer opens a new channel on the same connection.
import type { ChannelModel } from "amqplib";
import type { ConsumerEvent } from "../transport.js";
import { guardHeaderDecoding } from "./header-guard.js";
import { CONNECT_OPTIONS, loadAmqplib, quietly } from "./helpers.js";

interface Open {
  connection: ChannelModel;
  lost: boolean;
}

export class SharedAmqpConnection {
  readonly #url: string;
  readonly #guardHeaders: boolean;
  readonly #onEvent: (event: ConsumerEvent) => void;
  #current: Promise<Open> | undefined;
  readonly #errors = new WeakMap<ChannelModel, unknown>();
  #closed = false;

  constructor(url: string, guardHeaders: boolean, onEvent: (event: ConsumerEvent) => void) {
    this.#url = url;
    this.#guardHeaders = guardHeaders;
    this.#onEvent = onEvent;
  }

  /** The open connection, opened if there is none (one attempt: the caller retries). */
  async acquire(): Promise<ChannelModel> {
    if (this.#closed) throw new Error("shared connection closed");
    const current = this.#current ?? this.#open();
    this.#current = current;
    let open: Open;
    try {
      open = await current;
    } catch (error) {
      if (this.#current === current) this.#current = undefined;
      throw error;
    }
    if (open.lost) {
      if (this.#current === current) this.#current = undefined;
      return this.acquire();
    }
    return open.connection;
  }

  /** The first error the connection reported, if it did (a decoding failure is only seen there: consumer.ts). */
  errorOf(connection: ChannelModel): unknown {
    return this.#errors.get(connection);
  }

  async close(): Promise<void> {
    this.#closed = true;
    const current = this.#current;
    this.#current = undefined;
    const open = await current?.catch(() => undefined);
    if (open) await quietly(() => open.connection.close());
  }

  async #open(): Promise<Open> {
    const amqp = await loadAmqplib();
    const connection = await amqp.connect(this.#url, CONNECT_OPTIONS);
    // A listener per partition consumer (close, blocked, unblocked): more than Node's default warning threshold.
    connection.setMaxListeners(0);
    const open: Open = { connection, lost: false };
    connection.on("error", (error: unknown) => {
      if (!this.#errors.has(connection)) this.#errors.set(connection, error);
    });
    connection.on("close", () => {
      open.lost = true;
    });
    if (this.#guardHeaders && !guardHeaderDecoding(connection)) this.#onEvent({ type: "guard-unavailable" });
    if (this.#closed) {
      await quietly(() => connection.close());
      throw new Error("shared connection closed");
    }
    return open;
  }
}
