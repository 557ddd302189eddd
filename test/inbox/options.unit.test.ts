import { describe, expect, it } from "vitest";
import { resolveHandlers } from "../../src/inbox/handler-options.js";
import { resolveInboxOptions } from "../../src/inbox/options.js";
import { topicMatches } from "../../src/inbox/registry.js";
import { waitingHandler } from "../../src/inbox/unhandled.js";
import { inbox, OutboxConfigError } from "../../src/index.js";

const prisma = { $transaction: async () => {}, $executeRawUnsafe: async () => 0 };
const handle = async () => {};
const valid = { prisma, queue: { name: "q" }, handlers: { h: { on: "a.b", handle } } };

describe("inbox() options", () => {
  it.each([
    [{ ...valid, prisma: {} }, /`prisma` to be your Prisma client/],
    [{ ...valid, queue: undefined }, /`queue` to be \{ name, arguments\?, bindings\? \}/],
    [{ ...valid, queue: { name: "" } }, /`queue.name` to be a string of 1 to 255 bytes/],
    [{ ...valid, queue: { name: "q", bindings: [{ exchange: "x" }] } }, /`queue.bindings\[0\].routingKey`/],
    [{ ...valid, handlers: {} }, /at least one handler/],
    [{ ...valid, handlers: { h: { handle } } }, /`handlers.h` matches nothing: give `on`/],
    [{ ...valid, handlers: { h: { on: "a" } } }, /`handlers.h` to be \{ on \| pattern \| type, handle/],
    [{ ...valid, handlers: { h: { on: "a", handle, onDead: handle } } }, /Unknown `handlers.h` key `onDead`/],
    [
      { ...valid, queue: { name: "q", bindings: [{ exchange: "x", routingKey: "", arguments: [] }] } },
      /`queue.bindings\[0\].arguments` to be an object/,
    ],
    [{ ...valid, prefetch: 0 }, /`prefetch` to be an integer >= 1, got 0/],
    [{ ...valid, handlerTimeoutMs: 1.5 }, /`handlerTimeoutMs` to be an integer/],
    [{ ...valid, leaseMarginMs: 500 }, /`leaseMarginMs` to be an integer from 1000 .*, got 500/],
    [{ ...valid, leaseMarginMs: "15s" }, /`leaseMarginMs` to be an integer/],
    [{ ...valid, invalidMessages: "drop" }, /`invalidMessages` to be "dead" or "reject", got "drop"/],
    [{ ...valid, unhandledGraceMs: -1 }, /`unhandledGraceMs` to be an integer from 0 to 2147483647, got -1/],
    [{ ...valid, unhandledGraceMs: 1.5 }, /`unhandledGraceMs` to be an integer/],
    [{ ...valid, unhandledGraceMs: "10m" }, /`unhandledGraceMs` to be an integer .*, got "10m"/],
    [{ ...valid, unhandledGraceMs: 2 ** 31 }, /`unhandledGraceMs` to be an integer from 0 to 2147483647/],
    [
      { ...valid, handlers: { "(unhandled) q": { on: "a", handle } } },
      /handler name "\(unhandled\) q" not to start with "\(unhandled\) "/,
    ],
    [{ ...valid, exchanges: [{ name: "x", type: "fan" }] }, /each of `exchanges`/],
    [
      { ...valid, retryBaseDelayMs: 10, retryMaxDelayMs: 5 },
      /`retryMaxDelayMs` \(5\) to be >= `retryBaseDelayMs` \(10\)/,
    ],
  ])("%# refuses bad options with what to fix", (options, message) => {
    expect(() => inbox(options as never)).toThrow(OutboxConfigError);
    expect(() => inbox(options as never)).toThrow(message);
  });

  it("defaults", () => {
    const o = resolveInboxOptions(valid as never);
    expect(o).toMatchObject({
      prefetch: 1_000,
      concurrency: 4,
      maxAttempts: 10,
      handlerTimeoutMs: 30_000,
      leaseMarginMs: 15_000,
      retentionMs: 604_800_000,
      invalidMessages: "dead",
      unhandledGraceMs: 0,
    });
    expect(resolveInboxOptions({ ...valid, unhandledGraceMs: 600_000 } as never).unhandledGraceMs).toBe(600_000);
    expect(resolveHandlers(valid.handlers)).toEqual([{ name: "h", on: ["a.b"], patterns: [], types: [], handle }]);
  });

  it("start() refuses bad URLs before connecting", async () => {
    const box = inbox(valid as never);
    await expect(box.start({ databaseUrl: "mysql://x", amqpUrl: "amqp://h" })).rejects.toThrow(/`databaseUrl`/);
  });
});

describe("topic patterns", () => {
  it.each([
    ["order.*", "order.created", true],
    ["order.*", "order.created.eu", false],
    ["order.#", "order", true],
    ["order.#", "order.a.b", true],
    ["#.paid", "order.x.paid", true],
    ["#", "anything.at.all", true],
    ["*.created", "created", false],
    ["order.created", "order.created", true],
    ["a.*.c", "a.b.c", true],
  ])("%s ~ %s: %s", (pattern, key, expected) => {
    expect(topicMatches(pattern, key)).toBe(expected);
  });
});

describe("the placeholder of waiting deliveries", () => {
  it("names the queue, and fits the handler column (255 bytes) for any queue name", () => {
    expect(waitingHandler("orders")).toBe("(unhandled) orders");
    const long = waitingHandler("q".repeat(255));
    expect(long).toMatch(/^\(unhandled\) sha256:[0-9a-f]{64}$/);
    expect(long).not.toBe(waitingHandler(`${"q".repeat(254)}r`));
    expect(Buffer.byteLength(waitingHandler("é".repeat(127)))).toBeLessThanOrEqual(255);
  });
});
