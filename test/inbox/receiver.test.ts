// The receiver's INSERT against the real PostgreSQL: every body stored as sent, and the lease hand-off (the rows the
// processor has room for are claimed by the INSERT itself and handed over whole: no claim statement between a
// delivery's COMMIT and its handler; the rest are handed over by id). Deliveries are built here (the broker plays no
// part in what is tested).
import { randomUUID } from "node:crypto";
import type { ConsumeMessage } from "amqplib";
import pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { InboxEvent } from "../../src/inbox/events.js";
import { resolveHandlers } from "../../src/inbox/handler-options.js";
import { Receiver, type ReceiverDeps } from "../../src/inbox/receiver.js";
import { HandlerRegistry } from "../../src/inbox/registry.js";
import type { ClaimedInboxRow } from "../../src/sql/inbox/claim.js";
import { inboxNames } from "../../src/sql/names.js";
import type { Delivery } from "../../src/transport/transport.js";
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
    names: inboxNames(),
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
    rows: {
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

/** Resolves with drain(), or rejects after `ms` (a receiver stuck retrying never drains). */
async function drained(receiver: Receiver, ms = 30_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      receiver.drain(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`not drained after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    receiver.abort();
  }
}

/** JSON text of `depth` nested arrays. */
const nested = (depth: number) => Buffer.from(`${"[".repeat(depth)}${"]".repeat(depth)}`);

async function inboxRows() {
  const { rows } = await pool.query(
    `SELECT message_id, handler, status, type, correlation_id, routing_key, headers, payload::text AS payload, body,
            last_error FROM inbox_message ORDER BY id`,
  );
  return rows;
}

describe("receiver: deliveries PostgreSQL cannot store", () => {
  beforeEach(async () => {
    await pool.query("TRUNCATE inbox_message");
  });

  it("finds each unstorable value before the INSERT: invalid, stored dead with its reason, the batch stored whole without a failed INSERT", async () => {
    const { receiver, got } = receiverWithRoom(0, undefined, { maxPayloadBytes: 100_000 });
    const good = () => delivery({ fine: true }, { headers: { "x-trace": "t" } });
    const culprits: Array<[string, Delivery, RegExp]> = [
      ["messageId", delivery({ n: 1 }, { messageId: "m\u0000x" }), /messageId "m\\u0000x" contains a NUL/],
      ["type", delivery({ n: 2 }, { type: "t\u0000" }), /type "t\\u0000" contains a NUL/],
      ["correlationId", delivery({ n: 3 }, { correlationId: "c\u0000" }), /correlationId "c\\u0000" contains a NUL/],
      [
        "x-ordering-key",
        delivery({ n: 4 }, { headers: { "x-ordering-key": "k\u0000" } }),
        /header "x-ordering-key" contains a NUL/,
      ],
      [
        "another header",
        delivery({ n: 5 }, { headers: { ok: "fine", deep: { list: ["a", "b\u0000"] } } }),
        /header "deep"\."list"\[1\] contains a NUL/,
      ],
      ["deep JSON", delivery(nested(30_000)), /nested deeper than 5000 levels/],
      ["oversized", delivery({ big: "x".repeat(200_000) }), /body is 200010 bytes, above the limit of maxPayloadBytes/],
    ];
    const deliveries = [good(), ...culprits.flatMap(([, d]) => [d, good()])];
    for (const d of deliveries) receiver.push(d);
    await drained(receiver);

    // Nothing was tried and refused: no failed INSERT, no split.
    expect(got.warnings.filter((w) => /storing|halves/.test(w))).toEqual([]);
    expect(got.errors).toEqual([]);
    const rows = await inboxRows();
    expect(rows).toHaveLength(deliveries.length);
    expect(got.ackedTags).toEqual([deliveries.at(-1)!.tag.deliveryTag]);
    expect(got.events.filter((e) => e.type === "invalid")).toHaveLength(culprits.length);
    for (const [name, d, reason] of culprits) {
      const i = deliveries.indexOf(d);
      const r = rows[i];
      expect(r.status, name).toBe("dead");
      expect(r.handler, name).toBe("");
      expect(r.last_error, name).toMatch(reason);
      expect(r.last_error, name).not.toContain("\u0000");
    }
    const [byId, byType, byCorrelation, byKey, byHeader, deep, oversized] = culprits.map(
      ([, d]) => rows[deliveries.indexOf(d)],
    );
    // What PostgreSQL can hold is kept: the body (as JSON, or as bytes when too deep), the other fields.
    expect(byId.message_id).toBeNull();
    expect(JSON.parse(byId.payload)).toEqual({ n: 1 });
    expect(byType.type).toBeNull();
    expect(byType.message_id).toBe(culprits[1]![1].messageId);
    expect(byCorrelation.correlation_id).toBeNull();
    expect(byKey.headers).toBeNull();
    expect(byHeader.headers).toBeNull();
    expect(deep.payload).toBeNull();
    expect(deep.body).toEqual(nested(30_000));
    // Over maxPayloadBytes: let go on arrival, never stored.
    expect(oversized.payload).toBeNull();
    expect(oversized.body).toBeNull();
    expect(culprits[6]![1].content).toHaveLength(0);
    for (const [i, r] of rows.entries()) {
      if (i % 2 === 0) expect(r).toMatchObject({ status: "pending", handler: "effect", headers: { "x-trace": "t" } });
    }
  });

  /** A pool whose sessions parse JSON less deep than MAX_JSON_DEPTH: 3,000 nested arrays fail with 54001. */
  const shallow = newPool(databaseUrl);
  afterAll(() => shallow.end());
  shallow.on("connect", (client) => void client.query("SET max_stack_depth = '100kB'"));

  for (const policy of ["dead", "reject"] as const) {
    it(`a batch PostgreSQL refuses (54001) is split until each culprit is alone: culprits ${policy}, the rest stored, acks in delivery order`, async () => {
      const { receiver, got } = receiverWithRoom(0, undefined, {
        pool: shallow,
        batchSize: 25,
        invalidMessages: policy,
      });
      const deliveries = Array.from({ length: 60 }, (_, n) =>
        n === 10 || n === 37 ? delivery(nested(3_000)) : delivery({ n }),
      );
      const culprits = [deliveries[10]!, deliveries[37]!];
      for (const d of deliveries) receiver.push(d);
      await drained(receiver);

      const rows = await inboxRows();
      const good = deliveries.filter((d) => !culprits.includes(d));
      // The second batch stored while the first was split: ids across batches need not follow delivery order.
      expect(
        rows
          .filter((r) => r.status === "pending")
          .map((r) => r.message_id)
          .sort(),
      ).toEqual(good.map((d) => d.messageId).sort());
      const invalid = got.events.filter((e) => e.type === "invalid");
      // The two batches in flight split at once: their culprits may be reported in either order.
      expect(invalid.map((e) => e.messageId).sort()).toEqual(culprits.map((d) => d.messageId).sort());
      for (const e of invalid) expect(e).toMatchObject({ outcome: policy === "dead" ? "dead" : "rejected" });
      if (policy === "dead") {
        const dead = rows.filter((r) => r.status === "dead");
        expect(dead.map((r) => r.message_id).sort()).toEqual(culprits.map((d) => d.messageId).sort());
        for (const r of dead) {
          expect(r.last_error).toMatch(/PostgreSQL refused to store the delivery: stack depth limit exceeded/);
          expect(r.body).toEqual(nested(3_000)); // its bytes, where PostgreSQL takes them
        }
        expect(got.rejectedTags).toEqual([]);
      } else {
        expect(rows.filter((r) => r.status === "dead")).toEqual([]);
        expect(got.rejectedTags).toEqual(culprits.map((d) => d.tag.deliveryTag));
      }
      // One multiple-ack per batch (25, 25, 10), in delivery order, each after its whole batch was stored.
      expect(got.ackedTags).toEqual([deliveries[24]!, deliveries[49]!, deliveries[59]!].map((d) => d.tag.deliveryTag));
      expect(receiver.unstored).toBe(0);
    });
  }

  it("a failure that comes back the same way splits too; a culprit whose dead row is refused as well is stored bare", async () => {
    // A constraint of the user's that refuses one delivery's type: 23514, neither transient nor data-class.
    await pool.query("ALTER TABLE inbox_message ADD CONSTRAINT no_poison CHECK (type IS DISTINCT FROM 'poison')");
    try {
      const { receiver, got } = receiverWithRoom(0);
      const deliveries = Array.from({ length: 9 }, (_, n) =>
        delivery({ n }, n === 4 ? { type: "poison", correlationId: "c-4" } : {}),
      );
      for (const d of deliveries) receiver.push(d);
      await drained(receiver);

      const rows = await inboxRows();
      expect(rows.map((r) => r.message_id)).toEqual(deliveries.map((d) => d.messageId));
      const culprit = rows[4];
      expect(culprit).toMatchObject({ status: "dead", type: null, correlation_id: null, payload: null, body: null });
      expect(culprit.last_error).toMatch(/violates check constraint "no_poison".*not kept/);
      expect(rows.filter((r) => r.status === "pending")).toHaveLength(8);
      // Tried SAME_FAILURES times as a whole before the split.
      expect(
        got.warnings.filter((w) => /^storing deliveries failed; retrying \(not acked\) \{"deliveries":9,/.test(w)),
      ).toHaveLength(2);
      expect(got.ackedTags).toEqual([deliveries[8]!.tag.deliveryTag]);
    } finally {
      await pool.query("ALTER TABLE inbox_message DROP CONSTRAINT no_poison");
    }
  });

  it("receiving batches hold at most batchMaxBytes of bodies (a larger delivery alone)", async () => {
    const { receiver, got } = receiverWithRoom(0, undefined, { batchMaxBytes: 2_500 });
    const deliveries = Array.from({ length: 10 }, (_, n) => delivery({ pad: "x".repeat(n === 5 ? 4_000 : 1_000) }));
    for (const d of deliveries) receiver.push(d);
    await drained(receiver);
    const batches = got.events.flatMap((e) => (e.type === "received" ? [e.deliveries] : []));
    expect(batches.reduce((a, b) => a + b, 0)).toBe(10);
    expect(batches).toEqual([2, 2, 1, 1, 2, 2]);
  });

  it("counts deliveries received and not stored, and says since when receiving is stalled", async () => {
    // Nothing listens there: every INSERT fails as a lost connection does, and is retried.
    const nowhere = new pg.Pool({ connectionString: "postgres://postgres@127.0.0.1:1/none", max: 1 });
    nowhere.on("error", () => {});
    try {
      const { receiver } = receiverWithRoom(0, undefined, { pool: nowhere });
      for (let n = 0; n < 5; n++) receiver.push(delivery({ n }));
      expect(receiver.unstored).toBe(5);
      const started = Date.now();
      expect(receiver.stalledSince(200)).toBeUndefined();
      await new Promise((r) => setTimeout(r, 400));
      const since = receiver.stalledSince(200);
      expect(since?.getTime()).toBeGreaterThanOrEqual(started - 50);
      expect(since?.getTime()).toBeLessThanOrEqual(started + 50);
      expect(receiver.unstored).toBe(5);
      receiver.abort();
      await receiver.drain();
      expect(receiver.unstored).toBe(0);
      expect(receiver.stalledSince(0)).toBeUndefined();
    } finally {
      await nowhere.end();
    }
  });
});

describe("receiver: two batches in flight with the same messages", () => {
  beforeEach(async () => {
    await pool.query("TRUNCATE inbox_message");
  });

  it("never deadlock (the INSERT takes keys in one order): duplicate publishes in opposite orders, stored once, no 40P01", async () => {
    const N = 2_000;
    const { receiver, got } = receiverWithRoom(0, undefined, { batchSize: N + 1 });
    // The lowest key, held by a transaction of another session: both batches start by waiting for it, then run
    // at once, one through the others' keys upwards and the other downwards.
    const first = "00000000-0000-0000-0000-000000000000";
    const ids = Array.from({ length: N }, () => randomUUID()).sort();
    const holder = await pool.connect();
    try {
      await holder.query("BEGIN");
      await holder.query(
        "INSERT INTO inbox_message (message_id, handler, exchange, routing_key, payload) VALUES ($1, 'effect', 'x', 'order.created', '{}')",
        [first],
      );
      for (const messageId of [first, ...ids]) receiver.push(delivery({ messageId }, { messageId }));
      for (const messageId of [first, ...[...ids].reverse()]) receiver.push(delivery({ messageId }, { messageId }));
      const waiting = async () =>
        Number(
          (
            await pool.query(
              "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
          ).rows[0].count,
        );
      for (let i = 0; (await waiting()) < 2; i++) {
        if (i > 500) throw new Error("the two batches never waited for the held key");
        await new Promise((r) => setTimeout(r, 10));
      }
      await holder.query("COMMIT");
    } finally {
      holder.release();
    }
    await drained(receiver);
    expect(got.warnings.filter((w) => w.includes("40P01"))).toEqual([]);
    expect(got.warnings).toEqual([]);
    const { rows } = await pool.query(
      "SELECT count(*)::int AS n, count(DISTINCT message_id)::int AS d FROM inbox_message",
    );
    expect(rows[0]).toEqual({ n: N + 1, d: N + 1 });
    const received = got.events.flatMap((e) => (e.type === "received" ? [e] : []));
    expect(received.reduce((n, e) => n + e.stored, 0)).toBe(N);
    expect(received.reduce((n, e) => n + e.duplicates, 0)).toBe(N + 2);
  });
});

describe("receiver: a role whose statement_timeout is shorter than storing one body", () => {
  const role = `recv_timeout_${randomUUID().slice(0, 8)}`;
  let slow: pg.Pool;
  beforeAll(async () => {
    await pool.query(`CREATE ROLE ${role} LOGIN`);
    await pool.query(`GRANT ALL ON inbox_message TO ${role}`);
    await pool.query(`GRANT ALL ON SEQUENCE inbox_message_id_seq TO ${role}`);
    // Storing 30 MB takes some 200 to 500 ms here; a batch of small deliveries about 1 ms.
    await pool.query(`ALTER ROLE ${role} SET statement_timeout = '100ms'`);
    const url = new URL(databaseUrl);
    url.username = role;
    url.password = "";
    slow = newPool(url.toString());
  });
  afterAll(async () => {
    await slow?.end();
    await pool.query(`DROP OWNED BY ${role}`);
    await pool.query(`DROP ROLE ${role}`);
  });
  beforeEach(async () => {
    await pool.query("TRUNCATE inbox_message");
  });

  it("the 30 MB delivery ends dead with the reason (57014 three times, then split), the others stored", async () => {
    const { receiver, got } = receiverWithRoom(0, undefined, { pool: slow, maxPayloadBytes: 64 * 1_048_576 });
    const big = delivery({ big: "x".repeat(30 * 1_048_576) });
    const deliveries = Array.from({ length: 10 }, (_, n) => (n === 3 ? big : delivery({ n })));
    for (const d of deliveries) receiver.push(d);
    await drained(receiver, 60_000);

    const { rows } = await pool.query(
      "SELECT message_id, status, last_error, payload IS NULL AS no_payload FROM inbox_message ORDER BY id",
    );
    // The 30 MB delivery is a batch of its own (batchMaxBytes): [0-2], [3], [4-9], the last stored while [3] failed.
    expect(rows.map((r) => r.message_id).sort()).toEqual(deliveries.map((d) => d.messageId).sort());
    expect(rows.filter((r) => r.status === "pending")).toHaveLength(9);
    const dead = rows.find((r) => r.message_id === big.messageId);
    expect(dead).toMatchObject({ status: "dead", no_payload: true });
    expect(dead.last_error).toMatch(
      /PostgreSQL refused to store the delivery: canceling statement due to statement timeout/,
    );
    expect(got.ackedTags).toEqual([2, 3, 9].map((i) => deliveries[i]!.tag.deliveryTag));
  });
});
