// A user's jest suite (native ESM: node --experimental-vm-modules) for the fresh app, with `prisma-outbox/testing`.
// The app's code and its generated Prisma client are TypeScript: jest.config.mjs strips their types with Node's own
// module.stripTypeScriptTypes (strip-types.cjs), no Babel or ts-jest. No RabbitMQ runs (AMQP_URL is closed).
import { MemoryBroker, startInboxHarness, startOutboxHarness, TestClock } from "prisma-outbox/testing";
import { billingInbox, connect, EXCHANGE, placeOrder } from "../src/shop.js";

const databaseUrl = process.env.DATABASE_URL;
const { base, prisma } = connect(databaseUrl);
const failures = new Map();
const silent = { debug() {}, info() {}, warn() {}, error() {} };
const broker = new MemoryBroker();
const clock = new TestClock();
let sending;
let receiving;
beforeAll(async () => {
  sending = await startOutboxHarness({
    databaseUrl,
    broker,
    clock,
    exchanges: [{ name: EXCHANGE, type: "topic" }],
    relay: { logger: silent },
  });
  receiving = await startInboxHarness(billingInbox(prisma, failures), { databaseUrl, broker, clock });
});
afterAll(async () => {
  await sending?.stop();
  await receiving?.stop();
  await base.$disconnect();
});

test("an order publishes order.created; billing makes one invoice; a duplicate delivery is dropped", async () => {
  const mark = sending.mark();
  const order = await placeOrder(prisma, "jest-1", 100);
  const [message] = await sending.expectPublished(
    { routingKey: "order.created", payload: { id: order.id, number: "jest-1" } },
    { since: mark, exactly: true },
  );
  const outcome = (await receiving.settled()).find((o) => o.messageId === message.messageId);
  expect(outcome?.handlers).toMatchObject([{ handler: "invoice", status: "processed", attempts: 1 }]);
  const again = await receiving.deliver(message);
  expect(again.duplicate).toBe(true);
  expect(await base.invoice.count({ where: { orderId: order.id } })).toBe(1);
});

test("a rolled-back order publishes nothing", async () => {
  const mark = sending.mark();
  await expect(
    prisma.$transaction(async (tx) => {
      await tx.order.create({ data: { number: "jest-rolled-back", amount: 1 } });
      throw new Error("payment refused");
    }),
  ).rejects.toThrow("payment refused");
  await sending.expectNone({ since: mark });
});

test("billing fails twice, then succeeds on the third attempt as the test clock moves: no waiting", async () => {
  failures.set(9002, 2);
  const outcome = await receiving.deliver({
    routingKey: "order.created",
    payload: { id: 9002, number: "jest-9002", amount: 5 },
  });
  expect(outcome.handlers).toMatchObject([{ status: "retrying", attempts: 1 }]);
  await clock.advance(60_000);
  await receiving.settled();
  await clock.advance(60_000);
  const settled = (await receiving.settled()).find((o) => o.messageId === outcome.messageId);
  expect(settled?.handlers).toMatchObject([{ handler: "invoice", status: "processed", attempts: 3 }]);
  expect(await base.invoice.count({ where: { orderId: 9002 } })).toBe(1);
});
