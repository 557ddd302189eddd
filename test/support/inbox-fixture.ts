// What an inbox handlers module under test (a fixture the CLI loads in a child process) reads from the environment
// its test sets: the database its Prisma client connects to, and the queue INBOX_QUEUE bound to the topic exchange
// INBOX_EXCHANGE (declared not durable: the test deletes it). No vitest here: the module runs outside the runner.
import { newPrismaClient } from "./prisma.js";

/** The fixture's Prisma client, on DATABASE_URL. */
export function fixturePrisma() {
  return newPrismaClient(process.env.DATABASE_URL as string);
}

/** The inbox's `queue` and `exchanges` options: INBOX_QUEUE bound to INBOX_EXCHANGE with `routingKey`. */
export function fixtureQueue(routingKey: string) {
  const exchange = process.env.INBOX_EXCHANGE as string;
  return {
    queue: { name: process.env.INBOX_QUEUE as string, bindings: [{ exchange, routingKey }] },
    exchanges: [{ name: exchange, type: "topic" as const, durable: false }],
  };
}
