// The inbox's consumer: one queue (RabbitMQ's or the given transport's), or a partitioned queue's share of partitions
// (partitions.ts), each partition consumed as one queue is, on a channel of the process's one connection.
import type pg from "pg";
import { OutboxConfigError } from "../errors.js";
import type { Logger } from "../runtime/logger.js";
import { AmqpConsumer } from "../transport/amqp/consumer.js";
import { declarePartitions, partitionQueueSpec } from "../transport/amqp/partitions.js";
import { SharedAmqpConnection } from "../transport/amqp/shared-connection.js";
import type { Consumer, ConsumerOptions, InboxTransport } from "../transport/transport.js";
import type { ResolvedPartitions } from "./partition-options.js";
import { PartitionedConsumer } from "./partitions.js";

/** Longest wait for a released partition's deliveries to be stored and acked before it is closed anyway. */
const RELEASE_DRAIN_MS = 10_000;

export interface InboxConsumerDeps {
  broker: { amqpUrl: string } | { transport: InboxTransport };
  options: ConsumerOptions;
  partitions: ResolvedPartitions | undefined;
  guardHeaders: boolean;
  pool: pg.Pool;
  logger: Logger;
}

export function inboxConsumer({
  broker,
  options,
  partitions,
  guardHeaders,
  pool,
  logger,
}: InboxConsumerDeps): Consumer {
  if (partitions === undefined) {
    return "transport" in broker
      ? broker.transport.consumer(options)
      : new AmqpConsumer({ ...options, url: broker.amqpUrl, guardHeaders });
  }
  if ("transport" in broker) {
    // The in-memory broker has no consistent-hash exchange, and its processes share no database locks: a test of the
    // handlers runs them on one plain queue just as well.
    throw new OutboxConfigError(
      "`queue.partitions` needs RabbitMQ (`amqpUrl`): the consistent-hash exchange and the partition locks have no " +
        "in-memory counterpart; test your handlers on a plain queue (no `partitions`).",
    );
  }
  const url = broker.amqpUrl;
  // One connection for all the partitions this process consumes, a channel each (transport/amqp/shared-connection.ts).
  const connection = new SharedAmqpConnection(url, guardHeaders, options.onEvent);
  return new PartitionedConsumer({
    ...options,
    partitions: partitions.count,
    rebalanceMs: partitions.rebalanceMs,
    drainTimeoutMs: RELEASE_DRAIN_MS,
    pool,
    logger,
    closeConnection: () => connection.close(),
    declare: () =>
      declarePartitions(url, { queue: options.queue, exchanges: options.exchanges, partitions: partitions.count }),
    partitionConsumer: (index, partition) =>
      new AmqpConsumer({
        ...partition,
        queue: partitionQueueSpec(options.queue, index),
        exchanges: [],
        url,
        guardHeaders,
        connection,
      }),
  });
}
