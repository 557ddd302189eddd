// The in-memory broker routes as RabbitMQ does: the same exchanges (one of each type), queues and bindings declared
// in both, the same messages published (mandatory) to both, and the queues each message reached (copies counted) and
// whether it came back unroutable compared, message by message.
import amqp from "amqplib";
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { OutboxConfigError } from "../../src/errors.js";
import { MemoryBroker } from "../../src/transport/memory-broker.js";
import type { ExchangeType } from "../../src/transport/memory-routing.js";
import { uniqueName } from "../support/consumer.js";

const amqpUrl = inject("amqpUrl");
const prefix = uniqueName("memroute");
const exchange = (type: ExchangeType) => `${prefix}.${type}`;

type Bind = { type: ExchangeType; key?: string; args?: Record<string, unknown> };
/** queue suffix => its bindings. */
const queues: Record<string, Bind[]> = {};
const topicPatterns = [
  "a.b",
  "a.*",
  "*",
  "#",
  "a.#",
  "#.a",
  "a.#.b",
  "#.#",
  "#.*",
  "*.*.*",
  "",
  "a..b",
  "a.*.b",
  "#.b.#",
  "*.#.*",
];
topicPatterns.forEach((key, i) => {
  queues[`t${i}`] = [{ type: "topic", key }];
});
queues.tTwice = [
  { type: "topic", key: "a.*" },
  { type: "topic", key: "#" },
];
queues.d0 = [{ type: "direct", key: "a" }];
queues.d1 = [
  { type: "direct", key: "a" },
  { type: "direct", key: "b" },
];
queues.d2 = [{ type: "direct", key: "" }];
queues.f0 = [{ type: "fanout", key: "" }];
queues.f1 = [
  { type: "fanout", key: "x" },
  { type: "fanout", key: "y" },
];
const headerBindings: Array<Record<string, unknown>> = [
  { a: 1, b: "x" },
  { "x-match": "any", a: 1, b: "x" },
  { "x-match": "all" },
  { "x-match": "any" },
  { "x-match": "all", "x-k": 1, a: 1 },
  { "x-match": "all-with-x", "x-k": 1 },
  { "x-match": "any-with-x", "x-k": 1, a: 2 },
  { a: null },
  { s: "ab" },
  { n: { b: 1, c: "x" } },
  { t: true },
  { l: [1, "x"] },
];
headerBindings.forEach((args, i) => {
  queues[`h${i}`] = [{ type: "headers", args }];
});
const queueName = (suffix: string) => `${prefix}.q.${suffix}`;

type Message = { type: ExchangeType | "default"; key: string; headers?: Record<string, unknown> };
const messages: Message[] = [
  ...["a.b", "a.c", "a", "a.b.c", "a.", "", ".", "a..b", "x.y.a", "a.x.y.b", "b", "A", "a.b.b", "x.b"].map(
    (key): Message => ({ type: "topic", key }),
  ),
  ...["a", "b", "", "c"].map((key): Message => ({ type: "direct", key })),
  { type: "fanout", key: "whatever" },
  ...[
    { a: 1, b: "x" },
    { a: 1 },
    { b: "x" },
    {},
    undefined,
    { a: { "!": "long", value: 1 }, b: Buffer.from("x") },
    { "x-k": 1 },
    { "x-k": 1, a: 1 },
    { a: null },
    { a: 2 },
    { s: Buffer.from("ab") },
    { s: "ab" },
    { n: { b: 1, c: "x" } },
    { n: { c: "x", b: 1 } },
    { n: { b: { "!": "long", value: 1 }, c: "x" } },
    { t: 1 },
    { t: true },
    { l: [1, "x"] },
    { l: ["x", 1] },
  ].map((headers): Message => ({ type: "headers", key: "", ...(headers ? { headers } : {}) })),
  { type: "default", key: queueName("d0") },
  { type: "default", key: `${prefix}.q.none` },
];

let connection: amqp.ChannelModel;
let channel: amqp.ConfirmChannel;
const broker = new MemoryBroker();
const types: ExchangeType[] = ["direct", "topic", "fanout", "headers"];

beforeAll(async () => {
  connection = await amqp.connect(amqpUrl);
  channel = await connection.createConfirmChannel();
  for (const type of types) {
    await channel.assertExchange(exchange(type), type, { durable: false, autoDelete: false });
    broker.assertExchange(exchange(type), type, { durable: false });
  }
  for (const [suffix, bindings] of Object.entries(queues)) {
    const name = queueName(suffix);
    await channel.assertQueue(name, { durable: false });
    broker.assertQueue(name);
    for (const b of bindings) {
      await channel.bindQueue(name, exchange(b.type), b.key ?? "", b.args);
      broker.bindQueue(name, exchange(b.type), b.key ?? "", b.args);
    }
  }
});

afterAll(async () => {
  for (const suffix of Object.keys(queues)) await channel.deleteQueue(queueName(suffix)).catch(() => {});
  for (const type of types) await channel.deleteExchange(exchange(type)).catch(() => {});
  await connection.close();
});

/** Message index => the queues (suffixes, one per copy, sorted) it reached, or "returned". */
type Outcome = Record<number, string[] | "returned">;

function reached(outcome: Outcome, i: number, queue: string): void {
  const queues = outcome[i];
  if (Array.isArray(queues)) queues.push(queue);
  else outcome[i] = [queue];
}

it("routes every message to the queues RabbitMQ routes it to, one copy each, and returns the same ones", async () => {
  const returned = new Set<number>();
  channel.on("return", (m) => returned.add(Number(m.properties.messageId)));
  messages.forEach((m, i) => {
    const x = m.type === "default" ? "" : exchange(m.type);
    channel.publish(x, m.key, Buffer.from(String(i)), {
      messageId: String(i),
      mandatory: true,
      ...(m.headers ? { headers: m.headers } : {}),
    });
  });
  await channel.waitForConfirms();
  const real: Outcome = {};
  for (const suffix of Object.keys(queues)) {
    for (;;) {
      const got = await channel.get(queueName(suffix), { noAck: true });
      if (got === false) break;
      const i = Number(got.properties.messageId);
      reached(real, i, suffix);
    }
  }
  for (const i of returned) real[i] = "returned";

  const memory: Outcome = {};
  messages.forEach((m, i) => {
    const x = m.type === "default" ? "" : exchange(m.type);
    const queuesReached = broker.publish(x, m.key, {
      content: Buffer.from(String(i)),
      messageId: String(i),
      headers: m.headers,
      type: undefined,
      correlationId: undefined,
      timestamp: undefined,
    });
    if (queuesReached.length === 0) memory[i] = "returned";
  });
  for (const suffix of Object.keys(queues)) {
    for (const message of broker.messages(queueName(suffix))) reached(memory, Number(message.messageId), suffix);
  }

  // Every message reached somewhere or came back: the comparison covers them all.
  expect(Object.keys(real)).toHaveLength(messages.length);
  const sorted = (o: Outcome) =>
    Object.fromEntries(
      Object.entries(o).map(([i, v]) => [
        `${i} ${JSON.stringify(messages[Number(i)])}`,
        v === "returned" ? v : v.sort(),
      ]),
    );
  expect(sorted(memory)).toEqual(sorted(real));
  // The table is worth something: both kinds of outcome occur, and one message reaches many queues.
  expect(Object.values(real).filter((v) => v === "returned").length).toBeGreaterThanOrEqual(2);
  expect(Math.max(...Object.values(real).map((v) => (v === "returned" ? 0 : v.length)))).toBeGreaterThan(5);
});

it("refuses what RabbitMQ refuses: an invalid x-match, a binding to a missing exchange, a type change", async () => {
  const name = queueName("h0");
  const refused = async (bind: (ch: amqp.Channel) => Promise<unknown>) => {
    const ch = await connection.createChannel();
    ch.on("error", () => {});
    const error = await bind(ch).then(
      () => undefined,
      (e: { code?: number }) => e,
    );
    await ch.close().catch(() => {});
    return (error as { code?: number } | undefined)?.code;
  };
  expect(await refused((ch) => ch.bindQueue(name, exchange("headers"), "", { "x-match": "some" }))).toBe(406);
  expect(() => broker.bindQueue(name, exchange("headers"), "", { "x-match": "some" })).toThrow(OutboxConfigError);
  expect(await refused((ch) => ch.bindQueue(name, `${prefix}.missing`, "k"))).toBe(404);
  expect(() => broker.bindQueue(name, `${prefix}.missing`, "k")).toThrow(/NOT_FOUND 404/);
  expect(await refused((ch) => ch.assertExchange(exchange("topic"), "direct", { durable: false }))).toBe(406);
  expect(() => broker.assertExchange(exchange("topic"), "direct", { durable: false })).toThrow(
    /PRECONDITION_FAILED 406/,
  );
});
