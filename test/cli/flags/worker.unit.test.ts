import { describe, expect, it } from "vitest";
import { parseInboxWorkerConfig } from "../../../src/cli/flags/inbox.js";
import { parseWorkerConfig } from "../../../src/cli/flags/worker.js";
import { OutboxConfigError } from "../../../src/index.js";

const env = { DATABASE_URL: "postgresql://db/x", AMQP_URL: "amqp://mq" };

describe("worker configuration", () => {
  it("reads the environment, then lets flags win", () => {
    const c = parseWorkerConfig(["--batch-size", "50", "--exchange", "shop:topic", "--exchange", "audit:fanout"], {
      ...env,
      OUTBOX_BATCH_SIZE: "10",
      OUTBOX_CONCURRENCY: "3",
      OUTBOX_EXCHANGES: "ignored:direct",
      OUTBOX_LOG_FORMAT: "json",
    });
    expect(c.relay).toMatchObject({
      databaseUrl: env.DATABASE_URL,
      amqpUrl: env.AMQP_URL,
      batchSize: 50,
      concurrency: 3,
      queue: false,
      listen: true,
      exchanges: [
        { name: "shop", type: "topic" },
        { name: "audit", type: "fanout" },
      ],
    });
    expect(c.logFormat).toBe("json");
  });

  it("turns LISTEN off with --no-listen or OUTBOX_LISTEN=false", () => {
    expect(parseWorkerConfig(["--no-listen"], env).relay.listen).toBe(false);
    expect(parseWorkerConfig([], { ...env, OUTBOX_LISTEN: "false" }).relay.listen).toBe(false);
  });

  it("publishes as CloudEvents with --cloud-events-source or OUTBOX_CLOUD_EVENTS_SOURCE", () => {
    expect(parseWorkerConfig([], env).relay.cloudEvents).toBeUndefined();
    expect(parseWorkerConfig(["--cloud-events-source", "/shop"], env).relay.cloudEvents).toEqual({ source: "/shop" });
    expect(parseWorkerConfig([], { ...env, OUTBOX_CLOUD_EVENTS_SOURCE: "urn:shop" }).relay.cloudEvents).toEqual({
      source: "urn:shop",
    });
  });

  it("sets what a dead letter does to its ordering key with --key-after-dead-letter or OUTBOX_KEY_AFTER_DEAD_LETTER", () => {
    expect(parseWorkerConfig([], env).relay.keyAfterDeadLetter).toBeUndefined();
    expect(parseWorkerConfig(["--key-after-dead-letter", "continue"], env).relay.keyAfterDeadLetter).toBe("continue");
    expect(parseWorkerConfig([], { ...env, OUTBOX_KEY_AFTER_DEAD_LETTER: "stop" }).relay.keyAfterDeadLetter).toBe(
      "stop",
    );
  });

  it.each([
    [[], {}, /Set DATABASE_URL or --database-url/],
    [[], { DATABASE_URL: "postgresql://x" }, /Set AMQP_URL or --amqp-url/],
    [["--batch-size", "ten"], env, /--batch-size to be an integer, got "ten"/],
    [[], { ...env, OUTBOX_MAX_ATTEMPTS: "-1" }, /OUTBOX_MAX_ATTEMPTS to be an integer/],
    [["--exchange", "shop:queue"], env, /NAME:TYPE/],
    [["--log-format", "xml"], env, /text or json, got "xml"/],
    [["--frobnicate"], env, /Unknown option '--frobnicate'.*--help/],
    [[], { ...env, OUTBOX_LISTEN: "maybe" }, /OUTBOX_LISTEN to be true or false/],
    [["--key-after-dead-letter", "skip"], env, /stop or continue, got "skip"/],
  ])("%j with %j is an OutboxConfigError that says what to fix", (argv, e, message) => {
    const parse = () => parseWorkerConfig(argv as string[], e as NodeJS.ProcessEnv);
    expect(parse).toThrow(OutboxConfigError);
    expect(parse).toThrow(message);
  });

  it("--exchange needs its type, and may say durable or transient; names may contain colons", () => {
    const parse = (flag: string) => parseWorkerConfig(["--exchange", flag], env).relay.exchanges;
    expect(parse("shop:topic")).toEqual([{ name: "shop", type: "topic" }]);
    expect(parse("shop:fanout:transient")).toEqual([{ name: "shop", type: "fanout", durable: false }]);
    expect(parse("shop:direct:durable")).toEqual([{ name: "shop", type: "direct", durable: true }]);
    expect(parse("app:orders:headers")).toEqual([{ name: "app:orders", type: "headers" }]);
    expect(parseWorkerConfig([], { ...env, OUTBOX_EXCHANGES: "a:topic, b:fanout:transient" }).relay.exchanges).toEqual([
      { name: "a", type: "topic" },
      { name: "b", type: "fanout", durable: false },
    ]);
  });

  it.each([
    ["shop", /the type is required/],
    [":topic", /the type is required/],
    ["shop:durable", /unknown type "durable"/],
    ["shop:queue:transient", /unknown type "queue"/],
    ["shop:topic:forever", /unknown type "forever"/],
  ])("--exchange %s is refused, naming the accepted forms", (flag, reason) => {
    const parse = () => parseWorkerConfig(["--exchange", flag], env);
    expect(parse).toThrow(OutboxConfigError);
    expect(parse).toThrow(/NAME:TYPE or NAME:TYPE:durable or NAME:TYPE:transient, with TYPE one of direct, topic/);
    expect(parse).toThrow(reason);
  });

  it("--schema, else OUTBOX_SCHEMA, else the relay's default", () => {
    expect(parseWorkerConfig(["--schema", "outbox_x"], { ...env, OUTBOX_SCHEMA: "other" }).relay.schema).toBe(
      "outbox_x",
    );
    expect(parseWorkerConfig([], { ...env, OUTBOX_SCHEMA: "other" }).relay.schema).toBe("other");
    expect(parseWorkerConfig([], env).relay.schema).toBeUndefined();
  });

  it("--help needs no URLs", () => {
    expect(parseWorkerConfig(["--help"], {}).help).toBe(true);
  });

  it("--metrics-port, else OUTBOX_METRICS_PORT, else none; for the worker and the inbox", () => {
    expect(parseWorkerConfig([], env).metricsPort).toBeUndefined();
    expect(parseWorkerConfig([], { ...env, OUTBOX_METRICS_PORT: "" }).metricsPort).toBeUndefined();
    expect(parseWorkerConfig([], { ...env, OUTBOX_METRICS_PORT: "9464" }).metricsPort).toBe(9464);
    expect(parseWorkerConfig(["--metrics-port", "0"], { ...env, OUTBOX_METRICS_PORT: "9464" }).metricsPort).toBe(0);
    const inboxEnv = { ...env, OUTBOX_INBOX_HANDLERS: "./h.js", OUTBOX_METRICS_PORT: "9100" };
    expect(parseInboxWorkerConfig([], inboxEnv).metricsPort).toBe(9100);
    expect(parseInboxWorkerConfig(["--metrics-port", "9200"], inboxEnv).metricsPort).toBe(9200);
    for (const bad of ["-1", "65536", "http", "80.5"]) {
      expect(() => parseWorkerConfig([`--metrics-port=${bad}`], env)).toThrow(
        `Expected --metrics-port to be a port number from 0 to 65535, got "${bad}".`,
      );
    }
    expect(() => parseInboxWorkerConfig([], { ...inboxEnv, OUTBOX_METRICS_PORT: "x" })).toThrow(
      'Expected OUTBOX_METRICS_PORT to be a port number from 0 to 65535, got "x".',
    );
  });

  it("--doctor-interval-ms, else OUTBOX_DOCTOR_INTERVAL_MS, else the relay's or the definition's; for the worker and the inbox", () => {
    expect(parseWorkerConfig([], env).relay.doctorIntervalMs).toBeUndefined();
    expect(parseWorkerConfig([], { ...env, OUTBOX_DOCTOR_INTERVAL_MS: "0" }).relay.doctorIntervalMs).toBe(0);
    expect(
      parseWorkerConfig(["--doctor-interval-ms", "5000"], { ...env, OUTBOX_DOCTOR_INTERVAL_MS: "0" }).relay
        .doctorIntervalMs,
    ).toBe(5000);
    const inboxEnv = { ...env, OUTBOX_INBOX_HANDLERS: "./h.js" };
    expect(parseInboxWorkerConfig([], inboxEnv).doctorIntervalMs).toBeUndefined();
    expect(parseInboxWorkerConfig([], { ...inboxEnv, OUTBOX_DOCTOR_INTERVAL_MS: "0" }).doctorIntervalMs).toBe(0);
    expect(
      parseInboxWorkerConfig(["--doctor-interval-ms=30000"], { ...inboxEnv, OUTBOX_DOCTOR_INTERVAL_MS: "0" })
        .doctorIntervalMs,
    ).toBe(30000);
    expect(() => parseWorkerConfig(["--doctor-interval-ms", "soon"], env)).toThrow(OutboxConfigError);
    expect(() => parseInboxWorkerConfig([], { ...inboxEnv, OUTBOX_DOCTOR_INTERVAL_MS: "-5" })).toThrow(
      'Expected OUTBOX_DOCTOR_INTERVAL_MS to be an integer, got "-5".',
    );
  });

  it("the help of both commands names the flag and its variable", async () => {
    const { WORKER_HELP } = await import("../../../src/cli/flags/worker.js");
    const { INBOX_WORKER_HELP } = await import("../../../src/cli/flags/inbox.js");
    for (const help of [WORKER_HELP, INBOX_WORKER_HELP]) {
      expect(help).toMatch(/--doctor-interval-ms .*OUTBOX_DOCTOR_INTERVAL_MS/);
    }
  });
});
