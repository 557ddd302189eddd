// npm run bench:nodelay: what Nagle's algorithm costs the AMQP path at the rates of bench:inbox (e). One message at a
// time, at RATE/s for SECONDS, published with confirms by our AmqpTransport (one publish() per message, as the relay's
// queue path does at low rate) and consumed and acked one by one by raw amqplib: publish -> delivered and
// publish -> confirmed, in ms. (a) both sockets with Nagle on (amqplib's default, `socketOptions: { noDelay: false }`),
// (b) with it off (the transport's default since this bench). Alternated ROUNDS times, so both meet the same noise.
// Env: RATE (100, then 300), SECONDS (5), ROUNDS (3).
import { performance } from "node:perf_hooks";
import amqp from "amqplib";
import { AmqpTransport } from "../src/transport/amqp.js";
import { uniqueName } from "../test/support/consumer.js";
import { resolveServers } from "../test/support/servers.js";
import { printTable, summarize } from "./support.js";

const RATES = process.env.RATE === undefined ? [100, 300] : [Number(process.env.RATE)];
const SECONDS = Number(process.env.SECONDS ?? 5);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const servers = await resolveServers();

async function round(noDelay: boolean, rate: number): Promise<{ delivered: number[]; confirmed: number[] }> {
  const queue = uniqueName("bench.nodelay");
  const transport = new AmqpTransport({ url: servers.amqpUrl, socketOptions: { noDelay } });
  await transport.start();
  const consumer = await amqp.connect(servers.amqpUrl, { noDelay });
  const channel = await consumer.createChannel();
  await channel.assertQueue(queue, { durable: true });
  await channel.bindQueue(queue, "amq.direct", queue);
  await channel.prefetch(1000);
  const delivered: number[] = [];
  const confirmed: number[] = [];
  await channel.consume(queue, (m) => {
    if (!m) return;
    delivered.push(performance.now() - Number(m.content.toString()));
    channel.ack(m);
  });
  const n = rate * SECONDS;
  const sent: Promise<void>[] = [];
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const wait = t0 + (i * 1000) / rate - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const at = performance.now();
    const message = {
      messageId: `${i}`,
      exchange: "amq.direct",
      routingKey: queue,
      body: Buffer.from(String(at)),
      headers: undefined,
      type: undefined,
      correlationId: undefined,
      createdAt: Date.now(),
    };
    sent.push(
      transport.publish([message], { timeoutMs: 10_000 }).then(() => void confirmed.push(performance.now() - at)),
    );
  }
  await Promise.all(sent);
  while (delivered.length < n) await new Promise((r) => setTimeout(r, 10));
  await channel.deleteQueue(queue);
  await consumer.close();
  await transport.close();
  return { delivered, confirmed };
}

const rows: Array<Record<string, string | number>> = [];
const lines: string[] = [];
for (const rate of RATES) {
  const runs = {
    on: { delivered: [] as number[], confirmed: [] as number[] },
    off: { delivered: [] as number[], confirmed: [] as number[] },
  };
  for (let r = 0; r < ROUNDS; r++) {
    for (const noDelay of [false, true]) {
      process.stderr.write(`${rate}/s, round ${r + 1}, Nagle ${noDelay ? "off" : "on"} ...\n`);
      const x = await round(noDelay, rate);
      const into = noDelay ? runs.off : runs.on;
      into.delivered.push(...x.delivered);
      into.confirmed.push(...x.confirmed);
    }
  }
  for (const [what, key] of [
    ["publish -> delivered", "delivered"],
    ["publish -> confirmed", "confirmed"],
  ] as const) {
    const on = summarize(runs.on[key]);
    const off = summarize(runs.off[key]);
    for (const [name, x] of [
      ["(a) Nagle on", on],
      ["(b) Nagle off (noDelay)", off],
    ] as const) {
      rows.push({ case: `${rate}/s ${what}, ${name}`, n: x.n, p50: x.p50, p95: x.p95, p99: x.p99, max: x.max });
    }
    lines.push(
      `${rate}/s ${what}: ratio (b)/(a) p50 ${(off.p50 / on.p50).toFixed(2)}, p99 ${(off.p99 / on.p99).toFixed(2)}`,
    );
  }
}
console.log(`\nbench:nodelay: one message at a time for ${SECONDS} s x ${ROUNDS} rounds each, ms`);
printTable(rows);
console.log(`\n${lines.join("\n")}`);
