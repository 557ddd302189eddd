// The worker: runs the report jobs as an inbox handler (each message stored before it is acked; each job's result
// written in the transaction that marks its message processed).
//   DATABASE_URL=... AMQP_URL=... node --import tsx examples/request-reply/worker.ts
// Settings besides app.ts's: INBOX_MAX_ATTEMPTS (default 3), INBOX_HANDLER_TIMEOUT_MS (default 30000).
import { createPrisma, createRequests, createWorker, settings } from "./app.ts";

const prisma = createPrisma(false); // the worker writes no outbox message of its own
const reports = createRequests(prisma);
const worker = createWorker(prisma, reports);
worker.onEvent((event) => {
  if (event.type === "handled") console.log(`handled request ${event.messageId} (attempt ${event.attempt})`);
});

await worker.start({ databaseUrl: settings.databaseUrl, amqpUrl: settings.amqpUrl });
reports.startRetention(); // finished requests are deleted 24 h after they finished, in batches
console.log("worker ready");

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, async () => {
    await worker.stop();
    await reports.stopRetention();
    await prisma.$disconnect();
    console.log(`worker stopped (${signal})`);
    process.exit(0);
  });
}
