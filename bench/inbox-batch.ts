// bench:inbox (c) with batch handlers (docs/inbox.md#batch-handlers), called from bench/inbox.ts after (c) and (d)
// (CASES containing c): the same HANDLED prefilled rows, handled by a batch handler of BATCH (50) messages at
// CONCURRENCY, ROUNDS times; handled/s from start() to the last "handled" event, against (d)'s mean of the same run
// (one Prisma interactive transaction per message), and this process's (the inbox's) CPU time per message.
//   (c-batch)        handleBatch writes the batch's effects with one createMany: what a batch handler is for
//   (c-batch, each)  handleBatch writes one create per message: the same statements as (c), in fewer transactions
import { performance } from "node:perf_hooks";
import { inbox } from "../src/index.js";
import { uniqueName } from "../test/support/consumer.js";
import type { PrismaClient } from "../test/support/prisma.js";
import { printTable } from "./support.js";

const BATCH = Number(process.env.BATCH ?? 50);

interface Rate {
  perSecond: number;
  cpuMs: number;
}

export interface BatchBenchContext {
  base: PrismaClient;
  db: { url: string; amqpUrl: string };
  routingKey: string;
  handled: number;
  concurrency: number;
  rounds: number;
  queues: string[];
  prefillInbox(): Promise<void>;
  checkHandled(label: string): Promise<void>;
  quiet: { info(): void; warn(): void; error(m: string): void };
  log(s: string): void;
}

async function batchHandle(ctx: BatchBenchContext, oneInsert: boolean): Promise<Rate> {
  await ctx.prefillInbox();
  const queue = uniqueName("bench.inbox.batch");
  ctx.queues.push(queue);
  const box = inbox<Record<string, unknown>, PrismaClient>({
    prisma: ctx.base,
    queue: { name: queue },
    handlers: {
      effect: {
        on: ctx.routingKey,
        handleBatch: async (messages, tx) => {
          const data = messages.map((m) => ({
            messageId: m.messageId,
            handler: m.handler,
            payload: m.payload as object,
          }));
          if (oneInsert) await tx.effect.createMany({ data });
          else for (const row of data) await tx.effect.create({ data: row });
        },
        batch: { size: BATCH, waitMs: 20 },
      },
    },
    concurrency: ctx.concurrency,
    logger: ctx.quiet,
  });
  let handled = 0;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  box.onEvent((e) => {
    if (e.type === "handled" && ++handled === ctx.handled) finish();
  });
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  await box.start({ databaseUrl: ctx.db.url, amqpUrl: ctx.db.amqpUrl });
  await done;
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  await box.stop();
  await ctx.checkHandled("inbox batch handle");
  return { perSecond: ctx.handled / seconds, cpuMs: (cpu.user + cpu.system) / 1000 / ctx.handled };
}

/** Runs the batch cases; prints their table; returns the ratio line(s) against (d)'s mean `plainPerSecond`. */
export async function runBatchCases(ctx: BatchBenchContext, plainPerSecond: number): Promise<string[]> {
  const many: Rate[] = [];
  const each: Rate[] = [];
  for (let round = 0; round < ctx.rounds; round++) {
    ctx.log(`(c-batch) inbox handling, batches of ${BATCH}, round ${round + 1} ...`);
    many.push(await batchHandle(ctx, true));
    ctx.log(`(c-batch, each) inbox handling, batches of ${BATCH}, one insert per message, round ${round + 1} ...`);
    each.push(await batchHandle(ctx, false));
  }
  const mean = (xs: number[]) => xs.reduce((sum, x) => sum + x, 0) / xs.length;
  const m = mean(many.map((x) => x.perSecond));
  const e = mean(each.map((x) => x.perSecond));
  console.log(
    `\nBatch handlers: ${ctx.handled} rows x ${ctx.rounds} rounds, batches of ${BATCH}, concurrency ${ctx.concurrency}`,
  );
  printTable(
    [
      [`(c-batch) batches of ${BATCH}, one createMany`, many, m],
      [`(c-batch, each) batches of ${BATCH}, one create per message`, each, e],
    ].map(([name, rounds, perSecond]) => {
      const xs = rounds as Rate[];
      return {
        case: name as string,
        "per round /s": xs.map((x) => Math.round(x.perSecond)).join(" "),
        "mean /s": Math.round(perSecond as number),
        "ratio to (d)": (perSecond as number) / plainPerSecond,
        "CPU ms/msg (inbox process)": mean(xs.map((x) => x.cpuMs)),
      };
    }),
  );
  const verdict = (ok: boolean) => (ok ? "met" : "MISSED");
  return [
    `ratio (c-batch)/(d) handling, batches of ${BATCH}: ${(m / plainPerSecond).toFixed(3)} (goal >= 3: ${verdict(m / plainPerSecond >= 3)})`,
    `ratio (c-batch, each)/(d) handling, batches of ${BATCH}, one insert per message: ${(e / plainPerSecond).toFixed(3)}`,
  ];
}
