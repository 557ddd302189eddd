// claimKeyed, the claim of a relay that has seen keyed rows, against PostgreSQL: the same rule as claimNext (a keyed
// row only when it is the first of its key, a key whose first row is in flight or backing off waits, a dead letter
// stops its key), and a cost bounded by the batch and the number of keys, not by the backlog: with the first rows of
// 1,000 keys in flight, claimNext reads all 100,000 rows behind them, claimKeyed does not.
import pg from "pg";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { outboxNames } from "../../src/sql/names.js";
import { claimKeyed, claimKeyHeads, claimNext } from "../../src/sql/outbox/claim.js";
import { buffersOf as planBuffers } from "../support/plans.js";
import { newPool, useTestDatabase } from "../support/prisma.js";

const url = await useTestDatabase();
const pool = newPool(url, 4);
afterAll(() => pool.end());

const names = outboxNames();

/** Inserts rows with these keys (null: no key), in this order (ids ascending), due a minute ago. */
async function insert(keys: Array<string | null>, availableAt = "now() - interval '1 minute'"): Promise<string[]> {
  const { rows } = await pool.query(
    `INSERT INTO outbox_message (message_id, exchange, routing_key, payload, available_at, created_at, ordering_key)
     SELECT gen_random_uuid(), 'x', 'k', '{}'::json, ${availableAt}, now() - interval '1 hour', k
     FROM unnest($1::text[]) WITH ORDINALITY AS u(k, i) ORDER BY i RETURNING id::text AS id`,
    [keys],
  );
  return rows.map((r: { id: string }) => r.id);
}

/** Runs a claim in a transaction that rolls back; returns the rows it would have taken (id, key). */
async function claim(sql: string): Promise<Array<{ id: string; key: string | null }>> {
  const c = await pool.connect();
  try {
    await c.query("BEGIN");
    const { rows } = await c.query(sql);
    return rows
      .map((r: { id: string; ordering_key: string | null }) => ({ id: r.id, key: r.ordering_key }))
      .sort((a, b) => Number(a.id) - Number(b.id));
  } finally {
    await c.query("ROLLBACK");
    c.release();
  }
}

/** Holds these rows deleted and locked in an open transaction, as a relay's batch in flight does. */
async function inFlight(ids: string[]): Promise<pg.Client> {
  const holder = new pg.Client({ connectionString: url });
  await holder.connect();
  await holder.query("BEGIN");
  await holder.query("DELETE FROM outbox_message WHERE id = ANY($1::bigint[])", [ids]);
  return holder;
}

async function release(holder: pg.Client, commit = false): Promise<void> {
  await holder.query(commit ? "COMMIT" : "ROLLBACK");
  await holder.end();
}

describe("claimKeyed", () => {
  beforeEach(async () => {
    await pool.query("TRUNCATE outbox_message, outbox_dead_letter RESTART IDENTITY");
  });

  it("takes the first row of each key only, at most keyLimit keyed rows, and rows without a key up to the limit", async () => {
    const ids = await insert(["a", "b", "a", null, "c", "b", null, "d", null]);
    const all = await claim(claimKeyed(names, 10, 10));
    expect(all.map((r) => r.id)).toEqual([ids[0], ids[1], ids[3], ids[4], ids[6], ids[7], ids[8]]);
    const shared = await claim(claimKeyed(names, 10, 2));
    expect(shared.filter((r) => r.key !== null).map((r) => r.id)).toEqual([ids[0], ids[1]]); // the oldest first rows
    expect(shared.filter((r) => r.key === null)).toHaveLength(3);
    const small = await claim(claimKeyed(names, 3, 3));
    expect(small).toHaveLength(3);
  });

  it("skips a key whose first row is in flight in another transaction, and takes the other keys' first rows", async () => {
    const ids = await insert(["a", "b", "a", "b", "c"]);
    const holder = await inFlight([ids[0]!]);
    try {
      const rows = await claim(claimKeyed(names, 10, 10));
      expect(rows.map((r) => r.id)).toEqual([ids[1], ids[4]]);
    } finally {
      await release(holder, true);
    }
    // Committed: the key's next row is its first now.
    expect((await claim(claimKeyed(names, 10, 10))).map((r) => r.id)).toEqual([ids[1], ids[2], ids[4]]);
  });

  it("a key whose first row backs off waits; a key behind a dead letter waits unless keyAfterDeadLetter is continue", async () => {
    const [retry] = await insert(["a"], "now() + interval '1 hour'");
    const [later] = await insert(["a"]);
    const [b1, b2] = await insert(["b", "b"]);
    await pool.query(
      `INSERT INTO outbox_dead_letter (id, message_id, exchange, routing_key, payload, attempts, created_at, ordering_key)
       VALUES ($1, gen_random_uuid(), 'x', 'k', '{}', 5, now(), 'b')`,
      ["0"],
    );
    expect(retry).toBeDefined();
    expect(later).toBeDefined();
    expect(await claim(claimKeyed(names, 10, 10, "stop"))).toEqual([]);
    expect((await claim(claimKeyed(names, 10, 10, "continue"))).map((r) => r.id)).toEqual([b1]);
    expect(b2).toBeDefined();
  });

  it("finds the first rows of keys far behind a deep key (the key scan), oldest first", async () => {
    const hot = await insert(Array.from({ length: 3_000 }, () => "hot"));
    const cold = await insert(["x", "y", "x", "z"]);
    const rows = await claim(claimKeyed(names, 100, 100));
    expect(rows.map((r) => r.id)).toEqual([hot[0], cold[0], cold[1], cold[3]]);
    // With the deep key in flight, the others still come.
    const holder = await inFlight([hot[0]!]);
    try {
      expect((await claim(claimKeyed(names, 100, 100))).map((r) => r.id)).toEqual([cold[0], cold[1], cold[3]]);
    } finally {
      await release(holder);
    }
  });

  it("claimKeyHeads (a drain loop's next rows of its keys): the first row of each given key, if due and free", async () => {
    const odd = "o'r\\der\"-ü-$1";
    const ids = await insert(["a", odd, "a", odd, "c", "d", "d"]);
    await insert(["e", "e"], "now() + interval '1 hour'");
    expect((await claim(claimKeyHeads(names, ["a", odd, "d", "e", "missing"]))).map((r) => r.id)).toEqual([
      ids[0],
      ids[1],
      ids[5],
    ]);
    const holder = await inFlight([ids[0]!]);
    try {
      expect((await claim(claimKeyHeads(names, ["a", odd]))).map((r) => r.key)).toEqual([odd]);
    } finally {
      await release(holder, true);
    }
    expect((await claim(claimKeyHeads(names, ["a"]))).map((r) => r.id)).toEqual([ids[2]]);
  });

  it("the sweep form takes only rows written at least minAgeMs ago", async () => {
    const [old] = await insert(["a", null]);
    await pool.query(
      `INSERT INTO outbox_message (message_id, exchange, routing_key, payload, ordering_key)
       VALUES (gen_random_uuid(), 'x', 'k', '{}', 'b'), (gen_random_uuid(), 'x', 'k', '{}', NULL)`,
    );
    const rows = await claim(claimKeyed(names, 10, 10, "stop", 5_000));
    expect(rows).toHaveLength(2);
    expect(rows[0]!.id).toBe(old);
    expect(rows.every((r) => r.key !== "b")).toBe(true);
  });

  it("100,000 rows over 1,000 keys with every key's first row in flight: bounded, where claimNext reads the backlog", async () => {
    await pool.query(
      `INSERT INTO outbox_message (message_id, exchange, routing_key, payload, available_at, ordering_key)
       SELECT gen_random_uuid(), 'x', 'k', '{}'::json, now() - interval '1 minute', 'key-' || (g % 1000)
       FROM generate_series(1, 100000) g`,
    );
    await pool.query("VACUUM ANALYZE outbox_message");
    const heads = (await pool.query("SELECT id::text AS id FROM outbox_message ORDER BY outbox_message.id LIMIT 1000"))
      .rows;
    const holder = await inFlight(heads.map((r: { id: string }) => r.id));
    try {
      const keyed = await buffersOf(claimKeyed(names, 1_000, 500));
      const next = await buffersOf(claimNext(names, 1_000));
      expect(keyed.rows).toBe(0);
      expect(next.rows).toBe(0);
      // claimKeyed: the window (2,000 rows) and one probe per key; claimNext: every one of the 99,000 rows behind.
      expect(keyed.buffers).toBeLessThan(40_000);
      expect(next.buffers).toBeGreaterThan(5 * keyed.buffers);
    } finally {
      await release(holder, true);
    }
    // The keys' next rows, a share of them.
    expect(await claim(claimKeyed(names, 1_000, 500))).toHaveLength(500);
  }, 60_000);
});

const buffersOf = (sql: string) => planBuffers(pool, sql);
