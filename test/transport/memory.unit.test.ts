import { setTimeout as delay } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { OutboxPublishError } from "../../src/errors.js";
import { MemoryTransport } from "../../src/transport/memory.js";
import type { OutboundMessage, TransportEvent } from "../../src/transport/transport.js";

let sequence = 0;
function message(exchange = "shop", routingKey = "order.created"): OutboundMessage {
  sequence++;
  return {
    messageId: `m-${sequence}`,
    exchange,
    routingKey,
    body: Buffer.from("{}"),
    headers: undefined,
    type: undefined,
    correlationId: undefined,
    createdAt: Date.now(),
  };
}

describe("MemoryTransport", () => {
  it("records what it published, everything routable until a route is declared", async () => {
    const transport = new MemoryTransport();
    await transport.start();
    const batch = [message(), message("other", "x")];
    expect(await transport.publish(batch, { timeoutMs: 1_000 })).toEqual([{ ok: true }, { ok: true }]);
    expect(transport.published).toEqual(batch);
    expect(await transport.publish([], { timeoutMs: 1_000 })).toEqual([]);
  });

  it("returns messages without a declared route as unroutable", async () => {
    const transport = new MemoryTransport().route("shop", "order.created").route("audit");
    const batch = [message("shop", "order.created"), message("shop", "order.deleted"), message("audit", "any.key")];
    const outcomes = await transport.publish(batch, { timeoutMs: 1_000 });
    expect(outcomes[0]).toEqual({ ok: true });
    expect(outcomes[1]).toEqual({
      ok: false,
      error: new OutboxPublishError("unroutable: exchange shop routing key order.deleted returned NO_ROUTE (312)"),
    });
    expect(outcomes[2]).toEqual({ ok: true });
    expect(transport.published.map((m) => m.messageId)).toEqual([batch[0]?.messageId, batch[2]?.messageId]);
  });

  it("fails the next N messages, across batches", async () => {
    const transport = new MemoryTransport();
    const refused = new OutboxPublishError("broker nacked");
    transport.failNext(3, refused);
    const first = await transport.publish([message(), message()], { timeoutMs: 1_000 });
    const second = await transport.publish([message(), message()], { timeoutMs: 1_000 });
    expect([...first, ...second]).toEqual([
      { ok: false, error: refused },
      { ok: false, error: refused },
      { ok: false, error: refused },
      { ok: true },
    ]);
    expect(transport.published).toHaveLength(1);
  });

  it("rejects in-flight and new batches while disconnected, and emits events", async () => {
    const transport = new MemoryTransport({ confirmLatencyMs: 50 });
    const events: TransportEvent[] = [];
    transport.onEvent((event) => events.push(event));
    const unsubscribe = transport.onEvent(() => {
      throw new Error("a listener's bug");
    });
    await transport.start();
    const inFlight = transport.publish([message()], { timeoutMs: 1_000 });
    transport.disconnect();
    await expect(inFlight).rejects.toThrow(/^connection lost before every confirm arrived/);
    await expect(transport.publish([message()], { timeoutMs: 1_000 })).rejects.toThrow(OutboxPublishError);
    transport.reconnect();
    expect(await transport.publish([message()], { timeoutMs: 1_000 })).toEqual([{ ok: true }]);
    unsubscribe();
    expect(events.map((event) => event.type)).toEqual(["connected", "disconnected", "connected"]);
  });

  it("times out, aborts and closes like the real transport", async () => {
    const transport = new MemoryTransport({ confirmLatencyMs: 200 });
    await expect(transport.publish([message()], { timeoutMs: 20 })).rejects.toThrow(/timed out after 20 ms/);

    const controller = new AbortController();
    const aborted = transport.publish([message()], { timeoutMs: 1_000, signal: controller.signal });
    controller.abort();
    await expect(aborted).rejects.toThrow("publish aborted");

    const pending = transport.publish([message()], { timeoutMs: 1_000 });
    await delay(10);
    await transport.close();
    await transport.close();
    await expect(pending).rejects.toThrow("transport closed");
    await expect(transport.publish([message()], { timeoutMs: 1_000 })).rejects.toThrow("transport closed");
    expect(transport.published).toEqual([]);
  });
});
