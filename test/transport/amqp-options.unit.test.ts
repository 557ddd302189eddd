// The socket options the AMQP transport hands amqplib: Nagle's algorithm is off unless the user turns it back on
// (a publish or an ack written behind an unacknowledged frame would wait for a delayed TCP ACK: docs/performance.md).
import { describe, expect, it } from "vitest";
import { resolveAmqpOptions } from "../../src/transport/amqp/options.js";

describe("AmqpTransport socket options", () => {
  it("turn Nagle's algorithm off by default", () => {
    const { socketOptions } = resolveAmqpOptions({ url: "amqp://h" });
    expect(socketOptions.noDelay).toBe(true);
    expect(socketOptions.clientProperties).toEqual({ connection_name: "prisma-outbox" });
  });

  it("keep what the user sets, noDelay included", () => {
    const { socketOptions } = resolveAmqpOptions({
      url: "amqp://h",
      connectTimeoutMs: 1_234,
      socketOptions: { noDelay: false, keepAlive: true },
    });
    expect(socketOptions).toMatchObject({ noDelay: false, keepAlive: true, timeout: 1_234 });
  });
});
