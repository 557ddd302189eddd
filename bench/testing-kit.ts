// npm run bench:testing-kit: how long a user's typical test takes with the test kit (prisma-outbox/testing): the app
// writes an order (a declared event), the test awaits the message published, then awaits the inbox's handler having
// processed it. RUNS (100) such tests one after the other, on the real PostgreSQL:
//   (a) the kit: a relay publishing into the in-memory broker and the inbox consuming from it, awaited with
//       expectPublished and settled (no sleeps);
//   (b) the baseline, in the same run: the same relay and inbox on the real RabbitMQ, awaited on the inbox's
//       `handled` event (what a test without the kit could do at best).
// Prints p50/p95 of each, the ratio (a)/(b), and the kit's CPU time per test in this process. Goal: (a) p50 < 20 ms.
import { PrismaPg } from "@prisma/adapter-pg";
import { createRelay, inbox, outbox } from "../src/index.js";
import { MemoryBroker, startInboxHarness, startOutboxHarness, TestClock } from "../src/testing/index.js";
import { PrismaClient } from "../test/generated/prisma/client.js";
import { uniqueName } from "../test/support/consumer.js";
import { CpuTally, databaseOf, printCpuTable, startCpu } from "./cpu.js";
import { benchDatabase, printTable, summarize } from "./support.js";

const RUNS = Number(process.env.RUNS ?? 100);
const WARMUP = 10;
const silent = { debug() {}, info() {}, warn() {}, error() {} };

const db = await benchDatabase();
/** CPU time per test (one message written, published, handled) of each case, per process (bench/cpu.ts). */
const cpuTally = new CpuTally();
const meter = () => startCpu({ "bench (app, relay, inbox)": process.pid }, [databaseOf(db.url)]);
const base = new PrismaClient({ adapter: new PrismaPg({ connectionString: db.url }) });
const prisma = base.$extends(outbox<typeof base>({ exchange: "shop", events: { Order: { create: true } } }));
let n = 0;
const placeOrder = () => prisma.order.create({ data: { number: `bench-${++n}`, amount: n } });

function billing(queue: string, exchange: string) {
  return inbox<{ "order.created": { id: number } }, typeof prisma>({
    prisma,
    logger: silent,
    exchanges: [{ name: exchange, type: "topic", durable: false }],
    queue: { name: queue, bindings: [{ exchange, routingKey: "order.created" }] },
    handlers: {
      invoice: {
        on: "order.created",
        handle: async (message, tx) => {
          await tx.effect.create({ data: { messageId: message.messageId, handler: "invoice", payload: {} } });
        },
      },
    },
  });
}

async function kit(): Promise<{ times: number[]; cpuMs: number }> {
  const broker = new MemoryBroker();
  const clock = new TestClock();
  const receiving = await startInboxHarness(billing("billing", "shop"), { databaseUrl: db.url, broker, clock });
  const sending = await startOutboxHarness({
    databaseUrl: db.url,
    broker,
    clock,
    exchanges: [{ name: "shop", type: "topic", durable: false }],
    relay: { logger: silent },
  });
  const times: number[] = [];
  let cpu = 0;
  for (let i = 0; i < WARMUP + RUNS; i++) {
    const started = performance.now();
    const cpuStart = process.cpuUsage();
    const all = meter();
    const mark = sending.mark();
    const order = await placeOrder();
    const [message] = await sending.expectPublished(
      { routingKey: "order.created", payload: { id: order.id } },
      { since: mark, exactly: true },
    );
    const [outcome] = await receiving.settled(message!.messageId!);
    if (outcome?.handlers[0]?.status !== "processed") throw new Error(`not processed: ${JSON.stringify(outcome)}`);
    if (i >= WARMUP) {
      times.push(performance.now() - started);
      const used = process.cpuUsage(cpuStart);
      cpu += (used.user + used.system) / 1000;
      cpuTally.add("(a) test kit", all.stop(), 1);
    }
  }
  await sending.stop();
  await receiving.stop();
  return { times, cpuMs: cpu / RUNS };
}

async function rabbitmq(): Promise<number[]> {
  const exchange = uniqueName("bench.kit.x");
  const box = billing(uniqueName("bench.kit.q"), exchange);
  // One message in flight at a time: the next `handled` event is its.
  let handled: (() => void) | undefined;
  box.onEvent((e) => {
    if (e.type === "handled") handled?.();
  });
  await box.start({ databaseUrl: db.url, amqpUrl: db.amqpUrl });
  const relay = createRelay({
    databaseUrl: db.url,
    amqpUrl: db.amqpUrl,
    exchanges: [{ name: exchange, type: "topic", durable: false }],
    logger: silent,
  });
  await relay.start();
  const exchanged = base.$extends(outbox<typeof base>({ exchange, events: { Order: { create: true } } }));
  const times: number[] = [];
  for (let i = 0; i < WARMUP + RUNS; i++) {
    const started = performance.now();
    const all = meter();
    const done = new Promise<void>((resolve) => {
      handled = resolve;
    });
    await exchanged.order.create({ data: { number: `bench-${++n}`, amount: n } });
    await done;
    if (i >= WARMUP) {
      times.push(performance.now() - started);
      cpuTally.add("(b) real RabbitMQ", all.stop(), 1);
    }
  }
  await relay.stop();
  await box.stop();
  return times;
}

try {
  const a = await kit();
  const b = await rabbitmq();
  const sa = summarize(a.times);
  const sb = summarize(b);
  printTable([
    {
      case: "(a) test kit: write, expectPublished, settled",
      runs: sa.n,
      "p50 ms": sa.p50,
      "p95 ms": sa.p95,
      "max ms": sa.max,
    },
    {
      case: "(b) baseline: real RabbitMQ, handled event",
      runs: sb.n,
      "p50 ms": sb.p50,
      "p95 ms": sb.p95,
      "max ms": sb.max,
    },
  ]);
  console.log(`(a) CPU time per test in this process: ${a.cpuMs.toFixed(2)} ms`);
  printCpuTable("bench:testing-kit (per test)", cpuTally.rows);
  console.log(`ratio (a)/(b) p50: ${(sa.p50 / sb.p50).toFixed(2)}`);
  console.log(`goal: (a) p50 < 20 ms: ${sa.p50 < 20 ? "met" : "missed"} (${sa.p50.toFixed(2)} ms)`);
} finally {
  await base.$disconnect();
  await db.cleanup();
}
