// What the partitioned-queue tests share: the plugin check (a clear failure when RabbitMQ lacks it), deleting a
// partitioned queue's partitions and hash exchange after a test, and the handler whose Effect rows show each key's order.
import type { Channel, ChannelModel } from "amqplib";

/** Fails with the command to run when RabbitMQ lacks the consistent-hash exchange. */
export async function requireHashExchange(connection: ChannelModel, name: string): Promise<void> {
  const probe = await connection.createChannel();
  probe.on("error", () => {});
  try {
    await probe.assertExchange(name, "x-consistent-hash", { durable: false, autoDelete: true });
    await probe.deleteExchange(name);
    await probe.close();
  } catch (error) {
    throw new Error(
      "RabbitMQ lacks the consistent-hash exchange these tests need: run `rabbitmq-plugins enable " +
        `rabbitmq_consistent_hash_exchange\` on the broker (.ci/run and npm test's pretest do): ${(error as Error).message}`,
    );
  }
}

/** Deletes the partition queues and the hash exchange of `queue` (up to `partitions` + 1 queues). */
export async function deletePartitions(channel: Channel, queue: string, partitions: number): Promise<void> {
  for (let i = 0; i <= partitions; i++) await channel.deleteQueue(`${queue}.p${i}`).catch(() => {});
  await channel.deleteExchange(`${queue}.partitions`).catch(() => {});
}

/** What the partitions tests' handler needs of the transaction: one Effect row per message. */
interface EffectTx {
  effect: {
    create(args: { data: { messageId: string; handler: string; payload: { key: string } } }): Promise<unknown>;
  };
}

/**
 * The partitions tests' handler: one Effect row per "order.event" message, named `<queue>:<key>`, so that each key's
 * handling order is read from the rows' ids.
 */
export function keyedEffectHandler(queue: string) {
  return {
    on: "order.event" as const,
    handle: async (message: { messageId: string; payload: { key: string } }, tx: EffectTx) => {
      await tx.effect.create({
        data: { messageId: message.messageId, handler: `${queue}:${message.payload.key}`, payload: message.payload },
      });
    },
  };
}
