// The handlers module of the soak run's inbox workers (test/soak/soak.ts), loaded by the bundled CLI as a user's would
// be: `prisma-outbox inbox --handlers test/soak/handlers.ts`. Configured by environment:
//
//   DATABASE_URL                 the database; the handlers' Prisma client connects with application_name
//                                SOAK_APP_NAME (default 'soak-handlers'), so the run counts its connections apart
//   INBOX_QUEUE, INBOX_EXCHANGE  the queue, bound to the topic exchange with 'soak.#' and the request routing key
//   INBOX_RETRY_BASE_DELAY_MS, INBOX_RETRY_MAX_DELAY_MS, INBOX_SWEEP_INTERVAL_MS   inbox options of those names
//
// Two handlers, each writing one Effect row per handling in its transaction (the table has no unique constraint: an
// effect that happened twice is two rows), with `messageId` = the payload's `tag` (the app's own id for what it wrote,
// known also for declared events whose message id the app never sees):
//   effect   'soak.#': a payload with `failFirst: true` throws on its first attempt (a transient failure);
//   soak     the request-reply work of type 'soak': same, and returns { tag } as the request's result.
import { inbox, outbox, requests } from "../../src/index.js";
import { newPrismaClient } from "../support/prisma.js";

const env = process.env;
const databaseUrl = new URL(env.DATABASE_URL as string);
databaseUrl.searchParams.set("application_name", env.SOAK_APP_NAME ?? "soak-handlers");
const exchange = env.INBOX_EXCHANGE as string;
const prisma = newPrismaClient(databaseUrl.toString()).$extends(outbox({ queue: false }));
export const soakRequests = requests<typeof prisma>({ prisma, exchange, cancelCheckIntervalMs: 1_000 });

type Payload = { tag: string; failFirst?: boolean };
const number = (name: string, fallback: number) => (env[name] === undefined ? fallback : Number(env[name]));

export default inbox<Record<string, Payload>, typeof prisma>({
  prisma,
  queue: {
    name: env.INBOX_QUEUE as string,
    bindings: [
      { exchange, routingKey: "soak.#" },
      { exchange, routingKey: soakRequests.routingKey("soak") },
    ],
  },
  exchanges: [{ name: exchange, type: "topic" }],
  handlers: {
    effect: {
      pattern: "soak.#",
      handle: async (message, tx) => {
        const payload = message.payload as Payload;
        await tx.effect.create({
          data: { messageId: payload.tag, handler: "effect", payload: { pid: process.pid, attempt: message.attempt } },
        });
        if (payload.failFirst && message.attempt === 1) throw new Error(`transient failure of ${payload.tag}`);
      },
    },
    soak: soakRequests.handler("soak", async (input: Payload, { tx, attempt, progress }) => {
      await progress(50);
      await tx.effect.create({
        data: { messageId: input.tag, handler: "soak", payload: { pid: process.pid, attempt } },
      });
      if (input.failFirst && attempt === 1) throw new Error(`transient failure of request ${input.tag}`);
      return { tag: input.tag };
    }),
  },
  prefetch: 50,
  concurrency: 4,
  maxAttempts: 10,
  handlerTimeoutMs: 30_000,
  retryBaseDelayMs: number("INBOX_RETRY_BASE_DELAY_MS", 200),
  retryMaxDelayMs: number("INBOX_RETRY_MAX_DELAY_MS", 2_000),
  sweepIntervalMs: number("INBOX_SWEEP_INTERVAL_MS", 500),
});
