// Sharing a partitioned queue's N partitions among K inbox processes: each consumes about N/K of them, a process that
// dies gives its partitions to the others within a rebalance tick or two, a process that joins takes its share.
// RabbitMQ's single active consumer alone does not spread them: the first process to register on a partition queue
// stays its active consumer while it lives, so the first process would receive all N (test/inbox/partitions.test.ts
// measures it). Ownership is PostgreSQL session advisory locks (sql/inbox/partitions.ts says why), on one connection
// held by this process; single active consumer on each partition queue stays as the second fence.
//
// One rebalance tick, every `rebalanceMs` (one at a time):
//   no lock connection? take one from the pool and join the members (shared lock) --fails--> try again next tick
//   K = members holding the shared lock; share = ceil(N / K)
//   owning more than share -> release the highest: cancel its consumer (basic.cancel: nothing new arrives), wait until
//     every delivery it gave is stored and acked (at most drainTimeoutMs), close it, then unlock. Only then may another
//     process lock it and register: its first delivery of a key comes after every row this process stored of that key
//     (ids follow delivery order per key, which is the order the processors handle a key in: sql/inbox/claim.ts).
//   owning fewer -> try-lock free partitions (from a random start, so that joiners do not all race for the same ones)
//     and start a consumer on each one taken, until the share is reached.
// Lock connection lost (an error, or a tick's query failing): every partition consumer is closed at once, without
// waiting for acks (the broker requeues what was unacked, ahead of later messages), since the locks are gone and
// another process may take the partitions now. A delivery this process still stores after that is stored once (the
// unique (message_id, handler) key: the other process's INSERT of the redelivery waits for ours, or ours finds its row),
// and per key ids still follow delivery order, so the handling order holds.
// Hand-over bound: a process killed is seen by PostgreSQL when its socket closes (at once for a killed process on a
// live host; TCP keepalive for a lost host), and by RabbitMQ the same way (or its heartbeat, 60 s by default); the
// others take its partitions on their next tick: rebalanceMs + a consumer's start (about a second here).
import type pg from "pg";
import { coerceError } from "../errors.js";
import type { Logger } from "../runtime/logger.js";
import {
  countMembersSql,
  joinMembersSql,
  partitionQueueKey,
  tryLockPartitionSql,
  unlockAllSql,
  unlockPartitionSql,
} from "../sql/inbox/partitions.js";
import type { Consumer, ConsumerOptions, Delivery, DeliveryTag } from "../transport/transport.js";

export interface PartitionedConsumerOptions extends ConsumerOptions {
  partitions: number;
  /** Declares the partitions' topology and checks their count (transport/amqp/partitions.ts). */
  declare(): Promise<void>;
  /** The consumer of one partition queue (each on a channel of the process's one broker connection). */
  partitionConsumer(index: number, options: ConsumerOptions): Consumer;
  /** Where the lock connection comes from (held for the process's life, or until lost). */
  pool: pg.Pool;
  rebalanceMs: number;
  /** Longest wait for a released partition's deliveries to be stored and acked before closing it anyway. */
  drainTimeoutMs: number;
  logger: Logger;
  /** Closes the broker connection the partition consumers share, once they are all closed. */
  closeConnection(): Promise<void>;
}

interface Owned {
  index: number;
  consumer: Consumer;
  /** Delivery tags given and not acked or rejected yet (of the consumer's current channel). */
  unacked: Set<number>;
}

export class PartitionedConsumer implements Consumer {
  readonly #o: PartitionedConsumerOptions;
  readonly #key: number;
  readonly #owned = new Map<number, Owned>();
  /** What each delivery was before its tag was made unique among the partitions' channels. */
  readonly #origin = new WeakMap<object, { owner: Owned; tag: DeliveryTag }>();
  readonly #generations = new Map<string, number>();
  #client: pg.PoolClient | undefined;
  #members = 0;
  #timer: NodeJS.Timeout | undefined;
  #tick: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(options: PartitionedConsumerOptions) {
    this.#o = options;
    this.#key = partitionQueueKey(options.queue.name);
  }

  /** The partitions this process consumes now, ascending. */
  get owned(): number[] {
    return [...this.#owned.keys()].sort((a, b) => a - b);
  }

  /** Processes on the queue at the last tick. */
  get members(): number {
    return this.#members;
  }

  async start(): Promise<void> {
    await this.#o.declare();
    await this.#rebalance();
    this.#schedule();
  }

  async pause(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#tick;
    await Promise.all([...this.#owned.values()].map((p) => p.consumer.pause()));
  }

  ack(delivery: Delivery, multiple = false): boolean {
    const origin = this.#origin.get(delivery.tag.message);
    if (!origin) return false;
    const tag = origin.tag.deliveryTag;
    if (multiple) for (const t of origin.owner.unacked) if (t <= tag) origin.owner.unacked.delete(t);
    origin.owner.unacked.delete(tag);
    return origin.owner.consumer.ack({ ...delivery, tag: origin.tag }, multiple);
  }

  reject(delivery: Delivery): boolean {
    const origin = this.#origin.get(delivery.tag.message);
    if (!origin) return false;
    origin.owner.unacked.delete(origin.tag.deliveryTag);
    return origin.owner.consumer.reject({ ...delivery, tag: origin.tag });
  }

  async close(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#tick;
    // Consumers first (what is unacked goes back to the queue), then the locks: never a lock given up while consuming.
    await Promise.all([...this.#owned.values()].map((p) => p.consumer.close()));
    this.#owned.clear();
    await this.#o.closeConnection();
    const client = this.#client;
    this.#client = undefined;
    if (client) {
      await client.query(unlockAllSql).then(
        () => client.release(),
        (error) => client.release(coerceError(error)),
      );
    }
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#tick = this.#rebalance().finally(() => this.#schedule());
    }, this.#o.rebalanceMs);
  }

  async #rebalance(): Promise<void> {
    try {
      const client = this.#client ?? (await this.#connect());
      const { rows } = await client.query<{ members: number }>(countMembersSql, [this.#key]);
      this.#members = Math.max(1, rows[0]?.members ?? 1);
      const share = Math.ceil(this.#o.partitions / this.#members);
      while (this.#owned.size > share && !this.#stopped) await this.#release(Math.max(...this.#owned.keys()), client);
      if (this.#owned.size >= share || this.#stopped) return;
      const start = Math.floor(Math.random() * this.#o.partitions);
      for (let n = 0; n < this.#o.partitions && this.#owned.size < share && !this.#stopped; n++) {
        const index = (start + n) % this.#o.partitions;
        if (this.#owned.has(index)) continue;
        const taken = await client.query<{ taken: boolean }>(tryLockPartitionSql, [this.#key, index]);
        if (taken.rows[0]?.taken === true) await this.#take(index, client);
      }
    } catch (error) {
      await this.#lost(error);
    }
  }

  async #connect(): Promise<pg.PoolClient> {
    const client = await this.#o.pool.connect();
    try {
      await client.query(joinMembersSql, [this.#key]);
    } catch (error) {
      client.release(coerceError(error));
      throw error;
    }
    client.on("error", (error) => void this.#lost(error));
    this.#client = client;
    return client;
  }

  /** The locks are gone with the session: stop consuming everything now (see the top of the file). */
  async #lost(thrown: unknown): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    const owned = [...this.#owned.values()];
    this.#owned.clear();
    if (owned.length > 0 || client) {
      this.#o.logger.warn("partition locks lost: closing every partition consumer until they are taken again", {
        queue: this.#o.queue.name,
        partitions: owned.map((p) => p.index),
        error: coerceError(thrown).message,
      });
    }
    await Promise.all(owned.map((p) => p.consumer.close()));
    client?.release(coerceError(thrown));
  }

  async #take(index: number, client: pg.PoolClient): Promise<void> {
    const owned: Owned = { index, consumer: undefined as unknown as Consumer, unacked: new Set() };
    owned.consumer = this.#o.partitionConsumer(index, {
      ...this.#o,
      onDelivery: (d) => this.#onDelivery(owned, d),
      onEvent: (event) => {
        // The broker requeued what the lost channel had unacked.
        if (event.type === "disconnected") owned.unacked.clear();
        this.#o.onEvent(event);
      },
    });
    try {
      await owned.consumer.start();
    } catch (error) {
      await client.query(unlockPartitionSql, [this.#key, index]);
      this.#o.logger.warn("partition consumer did not start; released", {
        queue: this.#o.queue.name,
        partition: index,
        error: coerceError(error).message,
      });
      return;
    }
    if (this.#client !== client || this.#stopped) {
      // The lock went with its connection (or stop() came) while the consumer started: it must not consume.
      await owned.consumer.close();
      return;
    }
    this.#owned.set(index, owned);
    this.#o.logger.info("partition taken", { queue: this.#o.queue.name, partition: index, members: this.#members });
  }

  async #release(index: number, client: pg.PoolClient): Promise<void> {
    const owned = this.#owned.get(index)!;
    await owned.consumer.pause();
    const deadline = Date.now() + this.#o.drainTimeoutMs;
    while (owned.unacked.size > 0 && Date.now() < deadline && this.#client === client) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await owned.consumer.close();
    this.#owned.delete(index);
    await client.query(unlockPartitionSql, [this.#key, index]);
    this.#o.logger.info("partition released", { queue: this.#o.queue.name, partition: index, members: this.#members });
  }

  /** Gives the delivery a generation unique among the partitions' channels (the receiver acks per generation). */
  #onDelivery(owner: Owned, d: Delivery): void {
    const original = d.tag;
    const name = `${owner.index}:${original.generation}`;
    let generation = this.#generations.get(name);
    if (generation === undefined) {
      generation = this.#generations.size + 1;
      this.#generations.set(name, generation);
    }
    owner.unacked.add(original.deliveryTag);
    this.#origin.set(original.message, { owner, tag: original });
    (d as { tag: DeliveryTag }).tag = { generation, deliveryTag: original.deliveryTag, message: original.message };
    this.#o.onDelivery(d);
  }
}
