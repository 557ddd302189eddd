// Scenario 7: bad input at the write side. Every kind of invalid message is refused with its named error class
// (OutboxPayloadError for the payload, OutboxMessageError for the rest) by each way of writing: $enqueue inside the
// user's interactive transaction next to an Order, a batch that mixes it with valid messages, and a declared event.
// The user's transaction rolls back: no outbox row and no Order row is left behind, and nothing reaches the broker.
// Valid writes afterwards flow as usual (through a relay in this process).
import { expect, it } from "vitest";
import {
  createRelay,
  OutboxMessageError,
  type OutboxMessageInput,
  OutboxPayloadError,
  OutboxQueue,
  outbox,
} from "../../src/index.js";
import { startCountingConsumer, uniqueName } from "../support/consumer.js";
import * as h from "./harness.js";

const { amqpUrl, url, pool, base, defer } = await h.useScenario();

const MAX_PAYLOAD_BYTES = 4_096;
const GOOD = h.size(500, 5_000);

const circular: Record<string, unknown> = { a: 1 };
circular.self = { back: circular };

type ErrorClass = typeof OutboxMessageError | typeof OutboxPayloadError;
type Case = [name: string, message: unknown, error: ErrorClass];
const ok = { routingKey: "bad.input", payload: { fine: true } };
const CASES: Case[] = [
  ["payload with a BigInt", { ...ok, payload: { amount: 10n } }, OutboxPayloadError],
  ["circular payload", { ...ok, payload: circular }, OutboxPayloadError],
  ["function in the payload", { ...ok, payload: { f: () => 1 } }, OutboxPayloadError],
  ["symbol in the payload", { ...ok, payload: { s: Symbol("s") } }, OutboxPayloadError],
  ["undefined payload (top level)", { ...ok, payload: undefined }, OutboxPayloadError],
  ["undefined in an array", { ...ok, payload: [1, undefined] }, OutboxPayloadError],
  ["NaN in the payload", { ...ok, payload: { x: Number.NaN } }, OutboxPayloadError],
  ["Infinity in the payload", { ...ok, payload: [Number.POSITIVE_INFINITY] }, OutboxPayloadError],
  ["Map in the payload", { ...ok, payload: { m: new Map([[1, 2]]) } }, OutboxPayloadError],
  ["typed array in the payload", { ...ok, payload: new Uint8Array(3) }, OutboxPayloadError],
  ["payload over maxPayloadBytes", { ...ok, payload: "x".repeat(MAX_PAYLOAD_BYTES) }, OutboxPayloadError],
  ["empty exchange", { ...ok, exchange: "" }, OutboxMessageError],
  ["exchange of 256 bytes", { ...ok, exchange: "e".repeat(256) }, OutboxMessageError],
  ["exchange of 128 two-byte characters", { ...ok, exchange: "é".repeat(128) }, OutboxMessageError],
  ["exchange not a string", { ...ok, exchange: 42 }, OutboxMessageError],
  ["empty routing key", { ...ok, routingKey: "" }, OutboxMessageError],
  ["routing key of 256 bytes", { ...ok, routingKey: "r".repeat(256) }, OutboxMessageError],
  ["no routing key", { payload: 1 }, OutboxMessageError],
  ["no payload", { routingKey: "bad.input" }, OutboxMessageError],
  ["messageId not a UUID", { ...ok, messageId: "order-1" }, OutboxMessageError],
  ["messageId not a string", { ...ok, messageId: 12 }, OutboxMessageError],
  ["header value an object", { ...ok, headers: { h: { nested: 1 } } }, OutboxMessageError],
  ["header value NaN", { ...ok, headers: { h: Number.NaN } }, OutboxMessageError],
  ["header value undefined", { ...ok, headers: { h: undefined } }, OutboxMessageError],
  ["header key of 256 bytes", { ...ok, headers: { ["k".repeat(256)]: 1 } }, OutboxMessageError],
  ["headers an array", { ...ok, headers: ["a"] }, OutboxMessageError],
  ["empty type", { ...ok, type: "" }, OutboxMessageError],
  ["correlationId of 256 bytes", { ...ok, correlationId: "c".repeat(256) }, OutboxMessageError],
  ["availableAt an invalid Date", { ...ok, availableAt: new Date(Number.NaN) }, OutboxMessageError],
  ["message null", null, OutboxMessageError],
  ["message a string", "order.created", OutboxMessageError],
];

/** Payloads whose toJSON() returns what JSON cannot represent: what JSON would store is checked, not the object. */
const TO_JSON_CASES: Array<[name: string, payload: unknown]> = [
  ["toJSON() returning a BigInt", { id: { toJSON: () => 10n } }],
  ["toJSON() returning an object with a BigInt", { toJSON: () => ({ id: 10n }) }],
  ["toJSON() returning a cycle", { a: { toJSON: () => circular } }],
  ["toJSON() returning undefined (top level)", { toJSON: () => undefined }],
];

/** Runs `write`; returns what it threw (undefined when it did not throw). */
async function thrown(write: () => Promise<unknown>): Promise<unknown> {
  try {
    await write();
    return undefined;
  } catch (error) {
    return error;
  }
}

function expectNamedError(error: unknown, expected: ErrorClass, what: string): void {
  expect(error, what).toBeInstanceOf(expected);
  // Exactly that class: a message error is not reported as a payload error, nor the reverse.
  expect((error as Error).constructor, what).toBe(expected);
  expect((error as Error).name, what).toBe(expected.name);
}

it(
  `${CASES.length} kinds of invalid message, each refused with its named error by 3 ways of writing; nothing left behind`,
  async () => {
    const consumer = await startCountingConsumer(amqpUrl, uniqueName("rel.badinput"));
    defer(() => consumer.close());
    const queue = new OutboxQueue();
    const relay = createRelay({ databaseUrl: url, amqpUrl, queue, listen: false, sweepIntervalMs: 200 });
    await relay.start();
    defer(() => relay.stop());
    const prisma = base.$extends(outbox({ exchange: consumer.exchange, queue, maxPayloadBytes: MAX_PAYLOAD_BYTES }));
    let eventMessage: unknown;
    const withEvent = base.$extends(
      outbox({
        exchange: consumer.exchange,
        queue,
        maxPayloadBytes: MAX_PAYLOAD_BYTES,
        events: { Order: { create: () => [eventMessage as OutboxMessageInput] } },
      }),
    );

    let n = 0;
    for (const [name, message, expected] of CASES) {
      const bad = message as OutboxMessageInput;
      // 1. In the user's transaction, after a model write.
      const inTransaction = await thrown(() =>
        prisma.$transaction(async (tx) => {
          await tx.order.create({ data: { number: `bad-${n++}`, amount: 1 } });
          await tx.$enqueue({ ...ok, payload: { before: true } });
          await tx.$enqueue(bad);
        }),
      );
      expectNamedError(inTransaction, expected, `${name}, in a transaction`);
      // 2. In one batch with valid messages: the whole batch is refused.
      const inBatch = await thrown(() => prisma.$enqueue([ok, bad, ok] as OutboxMessageInput[]));
      expectNamedError(inBatch, expected, `${name}, in a batch`);
      // 3. Built by a declared event of Order.create (outside any transaction: the extension opens one).
      eventMessage = bad;
      const fromEvent = await thrown(() => withEvent.order.create({ data: { number: `bad-${n++}`, amount: 1 } }));
      expectNamedError(fromEvent, expected, `${name}, from a declared event`);
    }
    for (const [name, payload] of TO_JSON_CASES) {
      const error = await thrown(() =>
        prisma.$transaction(async (tx) => {
          await tx.order.create({ data: { number: `bad-${n++}`, amount: 1 } });
          await tx.$enqueue({ ...ok, payload });
        }),
      );
      expect(error, `${name}, in a transaction`).toBeInstanceOf(Error);
    }
    const left = await pool.query(
      `SELECT (SELECT count(*) FROM outbox_message)::int AS outbox, (SELECT count(*) FROM "Order")::int AS orders,
              (SELECT count(*) FROM outbox_dead_letter)::int AS dead`,
    );
    expect(left.rows[0]).toEqual({ outbox: 0, orders: 0, dead: 0 });

    // Valid writes still go through, one transaction each with its Order.
    const ids: string[] = [];
    for (let i = 0; i < GOOD; i += 50) {
      const writtenAt = Date.now();
      await prisma.$transaction(async (tx) => {
        await tx.order.create({ data: { number: `good-${i}`, amount: 2 } });
        ids.push(
          ...(await tx.$enqueue(
            Array.from({ length: 50 }, (_, j) => ({ routingKey: "good", payload: { i: i + j, writtenAt } })),
          )),
        );
      });
    }
    await h.waitForDelivery(pool, consumer, ids, 60_000, 200);
    expect(Number((await pool.query('SELECT count(*) FROM "Order"')).rows[0].count)).toBe(GOOD / 50);

    const result = h.computeRow(
      "7. invalid messages refused at write",
      ids,
      consumer,
      `${CASES.length} invalid kinds x 3 write paths + ${TO_JSON_CASES.length} toJSON kinds refused, 0 rows left; then ${GOOD} valid`,
    );
    h.recordRow(result);
    // Only the valid messages ever reached the broker.
    h.expectNoLoss(result);
    expect(result.duplicates).toBe(0);
  },
  h.TEST_TIMEOUT,
);

it("a payload whose toJSON() returns a BigInt, a cycle or undefined is refused with OutboxPayloadError", async () => {
  const prisma = base.$extends(outbox({ exchange: "rel.tojson", queue: false }));
  for (const [name, payload] of TO_JSON_CASES) {
    expectNamedError(await thrown(() => prisma.$enqueue({ ...ok, payload })), OutboxPayloadError, name);
  }
});
