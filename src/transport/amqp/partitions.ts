// The broker side of a partitioned inbox queue (`queue.partitions` = N), declared once at the inbox's start:
//
//   user's exchanges --(the queue's bindings, exchange-to-exchange)--> <queue>.partitions (x-consistent-hash,
//   hash-header x-ordering-key) --(routing key "1": equal weight)--> <queue>.p0 ... <queue>.p<N-1>
//
// Each partition queue has x-single-active-consumer, on top of the queue's own arguments (classic or quorum, dead
// letters, delivery limit): two consumers never receive one partition at once, whatever the coordination above does.
// Messages without an ordering key hash as the missing header does: all to one partition (measured on 3.10: the
// plugin hashes an absent header as one value). They need no order, so that only concentrates their receiving (their
// handling is spread anyway: every process claims due rows from the shared table). RabbitMQ has no routing on a
// header's absence that would send them elsewhere (a headers-exchange binding on the header matched them too).
//
// The partition count is checked against the broker before anything is declared: <queue>.p0 existing without
// <queue>.p<N-1> means fewer partitions there, <queue>.p<N> existing means more. Either refuses to start
// (InboxPartitionsError): a key's messages would land in another partition while older ones wait in the old one, and
// per-key order would break (docs/scaling.md#changing-the-partition-count).
import type { Channel, ChannelModel } from "amqplib";
import { InboxPartitionsError, OutboxConfigError, OutboxStartError } from "../../errors.js";
import { ORDERING_KEY_HEADER } from "../../message/message.js";
import type { ExchangeSpec, QueueSpec } from "../transport.js";
import { CONNECT_OPTIONS, codeOf, loadAmqplib, quietly } from "./helpers.js";
import { Scrubber } from "./options.js";

/** The consistent-hash exchange in front of the partitions. */
export function partitionExchangeName(queue: string): string {
  return `${queue}.partitions`;
}

/** The queue of partition `index`. */
export function partitionQueueName(queue: string, index: number): string {
  return `${queue}.p${index}`;
}

/** What one partition's consumer asserts on every (re)connection: its queue, bound to the hash exchange. */
export function partitionQueueSpec(queue: QueueSpec, index: number): Required<QueueSpec> {
  return {
    name: partitionQueueName(queue.name, index),
    arguments: { ...(queue.arguments ?? {}), "x-single-active-consumer": true },
    bindings: [{ exchange: partitionExchangeName(queue.name), routingKey: "1" }],
  };
}

export const PLUGIN_HINT =
  "enable RabbitMQ's bundled plugin: `rabbitmq-plugins enable rabbitmq_consistent_hash_exchange` (on every node)";

/** Declares the partitions' topology after checking their count. Rejects as the consumer's start() does. */
export async function declarePartitions(
  url: string,
  spec: { queue: QueueSpec; exchanges: readonly ExchangeSpec[]; partitions: number },
): Promise<void> {
  const scrubber = new Scrubber(url, url);
  const amqp = await loadAmqplib();
  let connection: ChannelModel;
  try {
    connection = await amqp.connect(url, CONNECT_OPTIONS);
  } catch (error) {
    throw new OutboxStartError(`cannot connect to RabbitMQ at ${scrubber.safeUrl}: ${scrubber.scrub(error).message}`, {
      cause: error,
    });
  }
  connection.on("error", () => {});
  try {
    await declare(connection, spec);
  } catch (error) {
    if (error instanceof OutboxConfigError) throw error;
    const code = codeOf(error);
    const message = scrubber.scrub(error).message;
    if (code === 403 || code === 404 || code === 406) {
      throw new OutboxConfigError(`RabbitMQ refused the partitions of inbox queue "${spec.queue.name}": ${message}`);
    }
    throw new OutboxStartError(`declaring the partitions of "${spec.queue.name}" failed: ${message}`, { cause: error });
  } finally {
    await quietly(() => connection.close());
  }
}

async function declare(
  connection: ChannelModel,
  { queue, exchanges, partitions }: { queue: QueueSpec; exchanges: readonly ExchangeSpec[]; partitions: number },
): Promise<void> {
  const channel = await open(connection);
  for (const e of exchanges) await channel.assertExchange(e.name, e.type, { durable: e.durable ?? true });
  const hash = partitionExchangeName(queue.name);
  try {
    const probe = await open(connection);
    await probe.assertExchange(hash, "x-consistent-hash", {
      durable: true,
      arguments: { "hash-header": ORDERING_KEY_HEADER },
    });
    await quietly(() => probe.close());
  } catch (error) {
    // 503 COMMAND_INVALID "unknown exchange type": the plugin is not enabled.
    if (/unknown exchange type|invalid exchange type/i.test(String((error as Error)?.message))) {
      throw new InboxPartitionsError(
        `Partitioned inbox queue "${queue.name}" needs the consistent-hash exchange: ${PLUGIN_HINT}.`,
      );
    }
    throw error;
  }
  const first = await exists(connection, partitionQueueName(queue.name, 0));
  const last = await exists(connection, partitionQueueName(queue.name, partitions - 1));
  const beyond = await exists(connection, partitionQueueName(queue.name, partitions));
  if (beyond || (first && !last)) {
    throw new InboxPartitionsError(
      `Inbox queue "${queue.name}" is declared with ${partitions} partitions, but RabbitMQ has ${beyond ? "more" : "fewer"} ` +
        `(${partitionQueueName(queue.name, beyond ? partitions : partitions - 1)} ${beyond ? "exists" : "is missing"}). ` +
        "Changing the count moves keys between partitions and breaks their order while older messages wait: stop the " +
        "producers, drain the partitions, delete them, then start with the new count (docs/scaling.md#changing-the-partition-count).",
    );
  }
  for (let i = 0; i < partitions; i++) {
    const spec = partitionQueueSpec(queue, i);
    await channel.assertQueue(spec.name, { durable: true, arguments: spec.arguments });
    await channel.bindQueue(spec.name, hash, "1");
  }
  for (const b of queue.bindings ?? []) await channel.bindExchange(hash, b.exchange, b.routingKey, b.arguments);
  await quietly(() => channel.close());
}

async function open(connection: ChannelModel): Promise<Channel> {
  const channel = await connection.createChannel();
  channel.on("error", () => {});
  return channel;
}

/** Whether the queue exists, on a throwaway channel (a passive declare of a missing queue closes its channel). */
async function exists(connection: ChannelModel, name: string): Promise<boolean> {
  const channel = await open(connection);
  try {
    await channel.checkQueue(name);
    return true;
  } catch (error) {
    if (codeOf(error) === 404) return false;
    throw error;
  } finally {
    await quietly(() => channel.close());
  }
}
