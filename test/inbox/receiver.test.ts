// The receiver's INSERT against the real PostgreSQL: every body stored as sent, and the lease hand-off (the rows the
// processor has room for are claimed by the INSERT itself and handed over whole: no claim statement between a
// delivery's COMMIT and its handler; the rest are handed over by id). Deliveries are built here (the broker plays no
// part in what is tested).
import { randomUUID } from "node:crypto";
import type { ConsumeMessage } from "amqplib";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { resolveHandlers } from "../../src/config/inbox-options.js";
import type { InboxEvent } from "../../src/inbox/events.js";
import { Receiver, type ReceiverDeps } from "../../src/inbox/receiver.js";
import { HandlerRegistry } from "../../src/inbox/registry.js";
import type { ClaimedInboxRow } from "../../src/sql/claim-inbox-messages.js";
import type { Delivery } from "../../src/transport/amqp-consumer.js";
import { newPool, useTestDatabase } from "../support/prisma.js";

const databaseUrl = await useTestDatabase();
const pool = newPool(databaseUrl);
afterAll(() => pool.end());
const LEASE_MS = 60_000;

let tag = 0;
function delivery(body: unknown, props: Partial<Delivery> = {}): Delivery {
  return {
    content: Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body)),
    messageId: randomUUID(),
    exchange: "x",
    routingKey: "order.created",
    headers: undefined,
    type: undefined,
    correlationId: undefined,
    redelivered: false,
    tag: { generation: 1, deliveryTag: ++tag, message: {} as ConsumeMessage },
    ...props,
  };
}

/** A receiver whose processor has `room` free places; records what it is given. */
function receiverWithRoom(
  room: number,
  handlers = { effect: { on: "order.created", handle: async () => {} } },
  deps: Partial<ReceiverDeps> = {},
) {
  const got = {
    adopted: [] as ClaimedInboxRow[],
    reservedBack: 0,
    handed: [] as string[],
    acked: 0,
    /** Delivery tags in the order they were acked (all `multiple`) and rejected. */
    ackedTags: [] as number[],
    rejectedTags: [] as number[],
    warnings: [] as string[],
    errors: [] as string[],
    events: [] as InboxEvent[],
  };
  let left = room;
  const receiver = new Receiver({
    pool,
    registry: new HandlerRegistry(resolveHandlers(handlers)),
    invalidMessages: "dead",
    batchSize: 1_000,
    batchMaxBytes: 4_194_304,
    maxPayloadBytes: 1_048_576,
    ack: (d) => {
      got.acked++;
      got.ackedTags.push(d.tag.deliveryTag);
      return true;
    },
    reject: (d) => {
      got.rejectedTags.push(d.tag.deliveryTag);
      return true;
    },
    handoff: (ids) => got.handed.push(...ids),
    leaseMs: LEASE_MS,
    reserve: (wanted) => {
      const granted = Math.min(wanted, left);
      left -= granted;
      return granted;
    },
    adopt: (rows, reserved) => {
      got.adopted.push(...rows);
      got.reservedBack += reserved;
    },
    logger: {
      info() {},
      warn: (message, fields) => got.warnings.push(`${message} ${JSON.stringify(fields ?? {})}`),
      error: (message, fields) => got.errors.push(`${message} ${JSON.stringify(fields ?? {})}`),
    },
    emit: (event) => got.events.push(event),
    ...deps,
  });
  return { receiver, got };
}

async function row(id: string) {
  const { rows } = await pool.query(
    `SELECT id::text, message_id, handler, attempts, status, received_at,
            extract(epoch FROM available_at - now()) * 1000 AS lease_left_ms
     FROM inbox_message WHERE id = $1`,
    [id],
  );
  return rows[0];
}

describe("receiver: rows leased in the INSERT", () => {
  beforeEach(async () => {
    await pool.query("TRUNCATE inbox_message");
  });

  it("leases as many rows as the processor has room for, and hands the others over by id", async () => {
    const { receiver, got } = receiverWithRoom(3);
    const deliveries = Array.from({ length: 5 }, (_, n) =>
      delivery({ n }, { headers: { "x-trace": "t" }, correlationId: `c${n}`, type: "created" }),
    );
    for (const d of deliveries) receiver.push(d);
    await receiver.drain();

    expect(got.adopted).toHaveLength(3);
    expect(got.reservedBack).toBe(3);
    expect(got.handed).toHaveLength(2);
    expect(got.acked).toBeGreaterThan(0);
    for (const leased of got.adopted) {
      const stored = await row(leased.id);
      // Claimed by the INSERT exactly as a claim would: attempt 1 started, due again only after the lease.
      expect(stored.attempts).toBe(1);
      expect(stored.status).toBe("pending");
      expect(Number(stored.lease_left_ms)).toBeGreaterThan(LEASE_MS - 10_000);
      const d = deliveries.find((x) => x.messageId === leased.message_id)!;
      expect(leased).toEqual({
        id: stored.id,
        message_id: d.messageId,
        handler: "effect",
        exchange: "x",
        routing_key: "order.created",
        payload: JSON.parse(d.content.toString()),
        headers: { "x-trace": "t" },
        type: "created",
        correlation_id: d.correlationId,
        attempts: 1,
        received_at: stored.received_at,
        ordering_key: null,
      });
    }
    for (const id of got.handed) {
      const stored = await row(id);
      expect(stored.attempts).toBe(0);
      expect(Number(stored.lease_left_ms)).toBeLessThanOrEqual(0);
    }
  });

  it("never leases a duplicate, a keyed row or an invalid delivery; the reservation comes back whole", async () => {
    const { receiver, got } = receiverWithRoom(10);
    const first = delivery({ n: 1 });
    receiver.push(first);
    await receiver.drain();
    expect(got.adopted.map((r) => r.message_id)).toEqual([first.messageId]);

    got.adopted.length = 0;
    got.reservedBack = 0;
    receiver.push({ ...first, tag: { ...first.tag, deliveryTag: ++tag } }); // redelivered: stored already
    receiver.push(delivery({ n: 2 }, { headers: { "x-ordering-key": "order-7" } }));
    receiver.push(delivery({ n: 3 }, { routingKey: "nobody.listens" }));
    await receiver.drain();

    expect(got.adopted).toEqual([]);
    expect(got.reservedBack).toBe(1); // the duplicate's place: reserved, not used, given back
    expect(got.handed).toHaveLength(1); // the keyed row, claimed behind its key by the processor
    const { rows } = await pool.query("SELECT status, attempts, ordering_key FROM inbox_message ORDER BY id");
    expect(rows).toEqual([
      { status: "pending", attempts: 1, ordering_key: null },
      { status: "pending", attempts: 0, ordering_key: "order-7" },
      { status: "dead", attempts: 0, ordering_key: null },
    ]);
  });

  it("a delivery for two handlers is leased once per handler", async () => {
    const { receiver, got } = receiverWithRoom(10, {
      effect: { on: "order.created", handle: async () => {} },
      audit: { on: "order.created", handle: async () => {} },
    } as never);
    const d = delivery({ n: 1 });
    receiver.push(d);
    await receiver.drain();
    expect(got.adopted.map((r) => r.handler).sort()).toEqual(["audit", "effect"]);
    expect(new Set(got.adopted.map((r) => r.id)).size).toBe(2);
  });

  it("stores every body as sent, in one batch: JSON of every shape, JSON null, and bodies that are not JSON", async () => {
    const { receiver, got } = receiverWithRoom(0);
    const bodies: Buffer[] = [
      Buffer.from('{"a":[1,2,{"b":"x,y]}"}],"c":"\\u00e9 \\"q\\" \\\\ é 😀"}'),
      Buffer.from("null"),
      Buffer.from("not json, [1,2]"),
      Buffer.from(" [ ] "),
      Buffer.from('"just a string, with a comma"'),
      Buffer.from("42"),
      Buffer.from([0xff, 0xfe, 0x00, 0x01]),
      Buffer.from("{}"),
    ];
    const deliveries = bodies.map((body) => delivery(body));
    for (const d of deliveries) receiver.push(d);
    await receiver.drain();
    const { rows } = await pool.query(
      "SELECT message_id, status, payload::text AS payload, body FROM inbox_message ORDER BY id",
    );
    // One batch, stored whole and in order (bodies that are not JSON are stored dead, not left out).
    expect(rows.map((r) => r.message_id)).toEqual(deliveries.map((d) => d.messageId));
    expect(got.handed).toHaveLength(rows.filter((r) => r.status === "pending").length);
    rows.forEach((r, i) => {
      const text = bodies[i]!.toString("utf8");
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        // Not JSON: kept as bytes, no payload, and dead with the reason (invalidMessages "dead").
        expect(r.payload).toBeNull();
        expect(r.body).toEqual(bodies[i]);
        expect(r.status).toBe("dead");
        return;
      }
      expect(r.status).toBe("pending");
      expect(r.body).toBeNull();
      expect(r.payload).not.toBeNull(); // JSON null is a payload (json 'null'), not a missing one
      expect(JSON.parse(r.payload)).toEqual(parsed);
    });
  });
});
