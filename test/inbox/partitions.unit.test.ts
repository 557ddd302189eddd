// The partitioned queue's option and its refusals, database-free: `queue.partitions` validated, `rebalanceMs` only
// with it, the in-memory broker refused with a clear error, the advisory-lock key stable.
import { describe, expect, it } from "vitest";
import { inboxConsumer } from "../../src/inbox/inbox-consumer.js";
import { resolveInboxOptions } from "../../src/inbox/options.js";
import { OutboxConfigError } from "../../src/index.js";
import { partitionQueueKey } from "../../src/sql/inbox/partitions.js";
import { MemoryBroker } from "../../src/testing/index.js";
import { partitionQueueSpec } from "../../src/transport/amqp/partitions.js";
import { quiet } from "../support/logger.js";

const prisma = { $transaction: async () => {}, $executeRawUnsafe: async () => 0 };
const valid = { prisma, queue: { name: "q" }, handlers: { h: { on: "a.b", handle: async () => {} } } };

describe("queue.partitions", () => {
  it.each([
    [{ name: "q", partitions: 0 }, /`queue.partitions` to be an integer from 1 to 1024, got 0/],
    [{ name: "q", partitions: 2.5 }, /`queue.partitions` to be an integer/],
    [{ name: "q", partitions: 2000 }, /`queue.partitions` to be an integer from 1 to 1024/],
    [{ name: "q", rebalanceMs: 500 }, /`queue.rebalanceMs` only with `queue.partitions`/],
    [{ name: "q", partitions: 4, rebalanceMs: 10 }, /`queue.rebalanceMs` to be an integer from 50/],
    [{ name: "q", partition: 4 }, /Unknown `queue` key `partition`; did you mean `partitions`\?/],
  ])("refuses %j", (queue, message) => {
    expect(() => resolveInboxOptions({ ...valid, queue } as never)).toThrow(message);
  });

  it("defaults rebalanceMs to 1 s, and leaves a plain queue plain", () => {
    expect(resolveInboxOptions({ ...valid, queue: { name: "q", partitions: 16 } } as never).partitions).toEqual({
      count: 16,
      rebalanceMs: 1_000,
    });
    expect(resolveInboxOptions(valid as never).partitions).toBeUndefined();
  });

  it("refuses the in-memory broker, saying why", () => {
    const make = () =>
      inboxConsumer({
        broker: { transport: new MemoryBroker() },
        options: { queue: { name: "q" }, exchanges: [], prefetch: 10, onDelivery: () => {}, onEvent: () => {} },
        partitions: { count: 4, rebalanceMs: 1_000 },
        guardHeaders: true,
        pool: undefined as never,
        logger: quiet,
      });
    expect(make).toThrow(OutboxConfigError);
    expect(make).toThrow(/`queue.partitions` needs RabbitMQ/);
  });

  it("declares each partition with a single active consumer over the queue's own arguments", () => {
    expect(partitionQueueSpec({ name: "orders", arguments: { "x-queue-type": "quorum" } }, 3)).toEqual({
      name: "orders.p3",
      arguments: { "x-queue-type": "quorum", "x-single-active-consumer": true },
      bindings: [{ exchange: "orders.partitions", routingKey: "1" }],
    });
  });

  it("keys the advisory locks by the queue's name: stable, non-negative int4", () => {
    const key = partitionQueueKey("orders");
    expect(key).toBe(partitionQueueKey("orders"));
    expect(key).not.toBe(partitionQueueKey("orders2"));
    expect(key >= 0 && key <= 0x7fffffff).toBe(true);
  });
});
