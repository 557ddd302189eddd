// The inbox's `queue` option with its partitions (docs/scaling.md#partitioned-inbox-queues), validated apart from the
// other options so that the partition settings stay in one place.
import { durationOption, integerOption, rejectUnknownKeys } from "../config/validate.js";
import { OutboxConfigError } from "../errors.js";
import type { QueueSpec } from "../transport/transport.js";

/** Most partitions of one queue: each is a queue, a consumer and an advisory lock; beyond this, use more queues. */
export const MAX_PARTITIONS = 1_024;

/** The inbox's queue: one durable queue, or N partition queues behind a consistent-hash exchange. */
export interface InboxQueueSpec extends QueueSpec {
  /**
   * Splits the queue into this many partition queues `<name>.p0` ... `<name>.p<N-1>`, each with a single active
   * consumer, behind a consistent-hash exchange `<name>.partitions` (RabbitMQ's bundled plugin
   * `rabbitmq_consistent_hash_exchange` must be enabled) that hashes the `x-ordering-key` header: a key's messages
   * always go to one partition; messages without a key all go to one partition (they need no order). `bindings` bind
   * that exchange to your exchanges; `arguments` apply to every partition queue (quorum: `{ "x-queue-type": "quorum",
   * "x-delivery-limit": 20, "x-dead-letter-exchange": "dlx" }`). Every inbox process on the queue (same name, same
   * database) consumes about N/K of the partitions, coordinated by PostgreSQL advisory locks; `prefetch` applies per
   * partition consumed. Start every process with the same count: another count than the broker's is refused
   * (InboxPartitionsError; changing it: docs/scaling.md#changing-the-partition-count). Not with the test kit's
   * in-memory broker. docs/scaling.md#partitioned-inbox-queues
   * @defaultValue undefined (one queue, `name`)
   */
  partitions?: number;
  /**
   * How often a process of a partitioned queue counts the processes and takes or gives back partitions: a dead
   * process's partitions are taken within about this plus a consumer's start.
   * @defaultValue 1_000
   */
  rebalanceMs?: number;
}

export interface ResolvedPartitions {
  count: number;
  rebalanceMs: number;
}

/** The partitions of `queue`, or undefined for a plain queue. */
export function resolvePartitions(queue: InboxQueueSpec): ResolvedPartitions | undefined {
  rejectUnknownKeys("queue", queue, ["name", "arguments", "bindings", "partitions", "rebalanceMs"]);
  if (queue.partitions === undefined) {
    if (queue.rebalanceMs !== undefined) {
      throw new OutboxConfigError("Expected `queue.rebalanceMs` only with `queue.partitions` (a partitioned queue).");
    }
    return undefined;
  }
  return {
    count: integerOption("queue.partitions", queue.partitions, 1, 1, MAX_PARTITIONS),
    rebalanceMs: durationOption("queue.rebalanceMs", queue.rebalanceMs, 1_000, 50),
  };
}
