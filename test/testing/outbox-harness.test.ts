// The test kit's sending side against the real PostgreSQL: the app's own writes, a real relay, the in-memory broker.
// What a user's test asserts, and how each assertion fails when it should.
import { afterAll, describe, expect, it } from "vitest";
import { outbox } from "../../src/index.js";
import { OutboxExpectationError, startOutboxHarness, TestClock } from "../../src/testing/index.js";
import { quiet } from "../support/logger.js";
import { newPrismaClient, useTestDatabase } from "../support/prisma.js";

const databaseUrl = await useTestDatabase();
const base = newPrismaClient(databaseUrl);
const prisma = base.$extends(
  outbox<typeof base>({
    exchange: "shop",
    events: { Order: { create: { routingKey: "order.created", key: (order) => `order-${order.number}` } } },
  }),
);
const clock = new TestClock();
const sending = await startOutboxHarness({
  databaseUrl,
  exchanges: [{ name: "shop", type: "topic" }],
  clock,
  relay: { logger: quiet },
});
afterAll(async () => {
  await sending.stop();
  await base.$disconnect();
});

let n = 0;
const placeOrder = () => prisma.order.create({ data: { number: `o-${++n}`, amount: 100 * n } });

describe("expectPublished", () => {
  it("sees what the app's write committed, with its routing key, ordering key and payload", async () => {
    const mark = sending.mark();
    const order = await placeOrder();
    const [message] = await sending.expectPublished(
      { routingKey: "order.created", key: `order-${order.number}`, payload: { number: order.number } },
      { since: mark, exactly: true },
    );
    expect(message?.exchange).toBe("shop");
    expect(message?.payload).toMatchObject({ id: order.id, amount: order.amount });
  });

  it("sees an explicit $enqueue in the app's $transaction", async () => {
    const mark = sending.mark();
    await prisma.$transaction(async (tx) => {
      await tx.order.create({ data: { number: `o-${++n}`, amount: 1 } });
      await tx.$enqueue({ routingKey: "order.invoice.requested", payload: { n } });
    });
    const published = await sending.published({ since: mark });
    expect(published.map((m) => m.routingKey).sort()).toEqual(["order.created", "order.invoice.requested"]);
  });

  it("fails, naming the missing message and listing what was published", async () => {
    const mark = sending.mark();
    await placeOrder();
    const failure = sending.expectPublished({ routingKey: "order.paid", payload: { number: "nope" } }, { since: mark });
    await expect(failure).rejects.toBeInstanceOf(OutboxExpectationError);
    await expect(failure).rejects.toThrow(
      /did not match any:\n {2}missing: \{ routingKey: "order.paid", payload: \{"number":"nope"\} \}\nPublished since the mark:\n {2}1\. shop order.created key "order-o-\d+" \{/,
    );
  });

  it("needs one message per expectation, and with `exactly` fails on a message it did not expect", async () => {
    const mark = sending.mark();
    await placeOrder();
    await placeOrder();
    await expect(
      sending.expectPublished([{ routingKey: "order.created" }, { routingKey: "order.created" }, {}], { since: mark }),
    ).rejects.toThrow(/3 messages published since the mark; 1 did not match any:\n {2}missing: any message/);
    await expect(
      sending.expectPublished({ routingKey: "order.created" }, { since: mark, exactly: true }),
    ).rejects.toThrow(
      /Expected exactly 1 message published since the mark; 1 more arrived:\n {2}extra: shop order.created/,
    );
    await sending.expectPublished([{ routingKey: "order.created" }, { routingKey: "order.created" }], {
      since: mark,
      exactly: true,
    });
  });
});

describe("expectNone", () => {
  it("passes when the app's transaction rolled back: nothing is published, as in production", async () => {
    const mark = sending.mark();
    await expect(
      prisma.$transaction(async (tx) => {
        await tx.order.create({ data: { number: `o-${++n}`, amount: 1 } });
        throw new Error("the use case fails after the write");
      }),
    ).rejects.toThrow("the use case fails");
    await sending.expectNone({ since: mark });
  });

  it("fails with the messages that were published", async () => {
    const mark = sending.mark();
    const order = await placeOrder();
    await expect(sending.expectNone({ since: mark, routingKey: /^order\./ })).rejects.toThrow(
      new RegExp(
        `Expected no message matching \\{ routingKey: /\\^order\\\\\\./ \\} published since the mark; 1 arrived:\\n {2}1\\. shop order.created key "order-${order.number}"`,
      ),
    );
  });
});

describe("retries on the test clock", () => {
  it("a message the broker refuses waits for its retry; advancing the clock publishes it, without waiting", async () => {
    const mark = sending.mark();
    // Unroutable on a direct exchange no queue is bound to: RabbitMQ returns it, the relay schedules a retry.
    sending.broker.assertExchange("billing-direct", "direct");
    await prisma.$enqueue({ exchange: "billing-direct", routingKey: "invoice", payload: { n: 1 } });
    const failure = sending.expectPublished({ routingKey: "invoice" }, { since: mark });
    await expect(failure).rejects.toThrow(
      /1 message\(s\) wait in the outbox for a retry \(the next at .*\); the last error: .*NO_ROUTE/,
    );
    sending.broker.assertQueue("invoices");
    sending.broker.bindQueue("invoices", "billing-direct", "invoice");
    const started = Date.now();
    await clock.advance(60_000);
    const [message] = await sending.expectPublished({ routingKey: "invoice" }, { since: mark });
    expect(message?.queues).toEqual(["invoices"]);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
