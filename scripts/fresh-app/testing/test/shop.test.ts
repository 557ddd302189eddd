// A user's vitest suite for the fresh app, with `prisma-outbox/testing`: the real outbox and inbox rows, relay, inbox
// and transactions on PostgreSQL; the broker is the kit's in-memory one, so no RabbitMQ runs (AMQP_URL is closed).
import { MemoryBroker, startInboxHarness, startOutboxHarness, TestClock } from "prisma-outbox/testing";
import { afterAll, expect, it } from "vitest";
import { billingInbox, connect, EXCHANGE, placeOrder } from "../src/shop.js";

const databaseUrl = process.env.DATABASE_URL as string;
const { base, prisma } = connect(databaseUrl);
const failures = new Map<number, number>();
const silent = { debug() {}, info() {}, warn() {}, error() {} };
const broker = new MemoryBroker();
const clock = new TestClock();
// One broker for both: the relay's publishes reach the billing queue as RabbitMQ would route them.
const sending = await startOutboxHarness({
  databaseUrl,
  broker,
  clock,
  exchanges: [{ name: EXCHANGE, type: "topic" }],
  relay: { logger: silent },
});
const receiving = await startInboxHarness(billingInbox(prisma, failures), { databaseUrl, broker, clock });
afterAll(async () => {
  await sending.stop();
  await receiving.stop();
  await base.$disconnect();
});

it("an order publishes order.created; billing makes one invoice; a duplicate delivery is dropped", async () => {
  const mark = sending.mark();
  const order = await placeOrder(prisma, "vitest-1", 100);
  const [message] = await sending.expectPublished(
    { routingKey: "order.created", payload: { id: order.id, number: "vitest-1" } },
    { since: mark, exactly: true },
  );
  const outcome = (await receiving.settled()).find((o) => o.messageId === message?.messageId);
  expect(outcome?.handlers).toMatchObject([{ handler: "invoice", status: "processed", attempts: 1 }]);
  const again = await receiving.deliver(message!);
  expect(again.duplicate).toBe(true);
  expect(await base.invoice.count({ where: { orderId: order.id } })).toBe(1);
});

it("a rolled-back order publishes nothing", async () => {
  const mark = sending.mark();
  await expect(
    prisma.$transaction(async (tx) => {
      await tx.order.create({ data: { number: "vitest-rolled-back", amount: 1 } });
      throw new Error("payment refused");
    }),
  ).rejects.toThrow("payment refused");
  await sending.expectNone({ since: mark });
});

it("billing fails twice, then succeeds on the third attempt as the test clock moves: no waiting", async () => {
  failures.set(9001, 2);
  const outcome = await receiving.deliver({
    routingKey: "order.created",
    payload: { id: 9001, number: "vitest-9001", amount: 5 },
  });
  expect(outcome.handlers).toMatchObject([{ status: "retrying", attempts: 1 }]);
  await clock.advance(60_000);
  await receiving.settled();
  await clock.advance(60_000);
  const settled = (await receiving.settled()).find((o) => o.messageId === outcome.messageId);
  expect(settled?.handlers).toMatchObject([{ handler: "invoice", status: "processed", attempts: 3 }]);
  expect(await base.invoice.count({ where: { orderId: 9001 } })).toBe(1);
});
