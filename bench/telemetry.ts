// npm run bench:telemetry — what the telemetry hooks cost per call, without an SDK (the package's default) and with
// one registered (BENCH_OTEL=1 in the same process is not possible: the API's globals are set once, so this script
// runs the no-SDK half, then registers the SDK and runs the other half). Each hook's cost is set against a plain
// Prisma write measured in the same run, as a ratio:
//   write      traceHeaders() once per $enqueue / declared write
//   publish    startPublishSpan + endSpan once per published part (500 messages, each with a stored traceparent)
//   metrics    RelayMetrics.committed for a batch of 500 (with a MeterProvider only: without one it is skipped)
//   consume    withConsumerSpan around an empty handler, once per inbox handling
// ITERATIONS (default 200000) calls per hook.
import { performance } from "node:perf_hooks";
import { trace } from "@opentelemetry/api";
import { RelayMetrics } from "../src/telemetry/metrics.js";
import { endSpan, startPublishSpan, traceHeaders, withConsumerSpan } from "../src/telemetry/tracing.js";
import { registerMetrics, registerTracing } from "../test/support/otel.js";
import { newPrismaClient } from "../test/support/prisma.js";
import { type CpuRow, databaseOf, printCpuTable, startCpu } from "./cpu.js";
import { benchDatabase, printTable, summarize } from "./support.js";

const ITERATIONS = Number(process.env.ITERATIONS ?? 200_000);
const db = await benchDatabase();
const prisma = newPrismaClient(db.url);

// The baseline: a plain create in an interactive transaction, p50.
let n = 0;
const write = () => prisma.$transaction((tx) => tx.order.create({ data: { number: `t${n++}`, amount: 1 } }));
for (let i = 0; i < 100; i++) await write();
const samples: number[] = [];
// CPU time per call (bench/cpu.ts): the plain write's, and the hooks' (all in this process, no I/O).
const cpuRows: CpuRow[] = [];
const meter = () => startCpu({ "bench (app)": process.pid }, [databaseOf(db.url)]);
const writeCpu = meter();
for (let i = 0; i < 1_000; i++) {
  const t = performance.now();
  await write();
  samples.push(performance.now() - t);
}
cpuRows.push({ case: "plain write (the baseline)", cpu: writeCpu.stop(), messages: 1_000 });
const writeNs = summarize(samples).p50 * 1e6;

const part = Array.from({ length: 500 }, (_, i) => ({
  messageId: `00000000-0000-7000-8000-${String(i).padStart(12, "0")}`,
  exchange: "orders",
  routingKey: "order.created",
  headers: { traceparent: `00-${"ab".repeat(16)}-${"cd".repeat(8)}-01` },
}));
const committed = part.map((m) => ({ exchange: m.exchange, createdAt: Date.now() - 5, outcome: "published" as const }));
const consumed = { ...part[0]!, handler: "h", attempt: 1 };

/** ns per call of `fn`, over ITERATIONS calls (after a warm-up). */
async function perCall(fn: () => unknown, iterations = ITERATIONS): Promise<number> {
  for (let i = 0; i < Math.min(10_000, iterations); i++) await fn();
  const t = performance.now();
  for (let i = 0; i < iterations; i++) await fn();
  return ((performance.now() - t) * 1e6) / iterations;
}

/** Every hook's cost, measured inside one active span (the app's request; with no SDK there is none). */
function measure() {
  return trace.getTracer("bench").startActiveSpan("request", async (span) => {
    const metrics = new RelayMetrics(async () => undefined);
    const result = {
      write: await perCall(() => traceHeaders()),
      publish: await perCall(() => endSpan(startPublishSpan(part)), ITERATIONS / 100),
      metrics: metrics.enabled ? await perCall(() => metrics.committed("listen", committed, 1), ITERATIONS / 100) : 0,
      consume: await perCall(() => withConsumerSpan(consumed, async () => {})),
    };
    metrics.close();
    span.end();
    return result;
  });
}

// Per ITERATIONS: one write hook and one consume hook a message, and a publish span and a metrics record per 100.
const offCpu = meter();
const off = await measure();
cpuRows.push({ case: "hooks without an SDK (a write + a consume each)", cpu: offCpu.stop(), messages: ITERATIONS });
registerTracing({ discard: true });
registerMetrics();
const onCpu = meter();
const on = await measure();
cpuRows.push({ case: "hooks with an SDK (a write + a consume each)", cpu: onCpu.stop(), messages: ITERATIONS });

const rows = (["write", "publish", "metrics", "consume"] as const).map((hook) => ({
  hook,
  "off ns/call": off[hook],
  "on ns/call": on[hook],
  "off ratio to a plain write": off[hook] / writeNs,
  "on ratio to a plain write": on[hook] / writeNs,
}));
console.log(
  `plain write p50: ${(writeNs / 1e6).toFixed(3)} ms; ${ITERATIONS} calls per hook (publish, metrics: / 100)`,
);
printTable(rows);
for (const r of rows) {
  console.log(
    `ratio of ${r.hook} hook to a plain write: off ${r["off ratio to a plain write"].toExponential(2)}, on ${r["on ratio to a plain write"].toExponential(2)}`,
  );
}
printCpuTable("bench:telemetry", cpuRows);
await prisma.$disconnect();
await db.cleanup();
