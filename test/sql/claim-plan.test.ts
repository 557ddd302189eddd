// The claims' cost must not grow with what is not due. Each case runs a claim under EXPLAIN (ANALYZE, BUFFERS) in a
// transaction that rolls back, and bounds the buffers it touched: a claim of LIMIT rows touches a few buffers per row
// (the index entry, the heap row, the primary key lookup of the DELETE), so the bound is per row, and a plan that
// walks the rows it does not take (a million of them here) is far above it.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { outboxNames } from "../../src/sql/names.js";
import { claimByIds, claimNext, claimSweep } from "../../src/sql/outbox/claim.js";
import { TestClock } from "../../src/testing/clock.js";
import { buffersOf as planBuffers } from "../support/plans.js";
import { newPool, useTestDatabase } from "../support/prisma.js";

const url = await useTestDatabase();
const pool = newPool(url, 3);
afterAll(() => pool.end());

const names = outboxNames();
const LIMIT = 100;
const BOUND = 12 * LIMIT + 200;

const buffersOf = (sql: string, setup = "") => planBuffers(pool, sql, setup);

/** Inserts `n` rows in one statement (sequential message ids keep the unique index cheap to fill). */
async function insertRows(n: number, availableAt: string, offset: number): Promise<void> {
  await pool.query(
    `INSERT INTO outbox_message (message_id, exchange, routing_key, payload, available_at, created_at)
     SELECT lpad(to_hex(i), 32, '0')::uuid, 'x', 'k', '{}'::json, ${availableAt}, now() - interval '1 hour'
     FROM generate_series(${offset + 1}, ${offset + n}) i`,
  );
}

describe("claim plans", () => {
  beforeAll(async () => {
    // A million retries backing off, ahead of the due rows in id order, and statistics taken before any row was due.
    await insertRows(1_000_000, "now() + interval '1 hour'", 0);
    await pool.query("ANALYZE outbox_message");
    await insertRows(2_000, "clock_timestamp() - interval '1 minute'", 1_000_000);
  }, 120_000);

  it("drain and sweep claims touch a bounded number of buffers with 1M deferred rows, with stale and fresh statistics", async () => {
    for (const analyze of [false, true]) {
      if (analyze) await pool.query("ANALYZE outbox_message");
      const next = await buffersOf(claimNext(names, LIMIT));
      expect(next.rows).toBe(LIMIT);
      expect(next.buffers).toBeLessThan(BOUND);
      const sweep = await buffersOf(claimSweep(names, LIMIT, 5_000));
      expect(sweep.rows).toBe(LIMIT);
      expect(sweep.buffers).toBeLessThan(BOUND);
    }
  });

  it("a claim by ids touches a bounded number of buffers", async () => {
    const ids = (
      await pool.query("SELECT id::text AS id FROM outbox_message WHERE available_at <= now() LIMIT $1", [LIMIT])
    ).rows;
    const byIds = await buffersOf(
      claimByIds(
        names,
        ids.map((r) => r.id),
      ),
    );
    expect(byIds.rows).toBe(LIMIT);
    expect(byIds.buffers).toBeLessThan(BOUND);
  });

  it("on the test kit's clock (its function in place of now()) the claims keep their bounds", async () => {
    const clock = new TestClock();
    await clock.install(pool);
    const onClock = outboxNames(undefined, clock);
    const next = await buffersOf(claimNext(onClock, LIMIT));
    const sweep = await buffersOf(claimSweep(onClock, LIMIT, 5_000));
    const ids = (await pool.query("SELECT id::text AS id FROM outbox_message WHERE available_at <= now() LIMIT 100"))
      .rows;
    const byIds = await buffersOf(
      claimByIds(
        onClock,
        ids.map((r) => r.id),
      ),
    );
    for (const claim of [next, sweep, byIds]) {
      expect(claim.rows).toBe(LIMIT);
      expect(claim.buffers, claim.plan).toBeLessThan(BOUND);
    }
    expect(next.plan).toContain("Index");
  });

  it("the bound catches a plan that walks the deferred rows (the first version's ORDER BY id on the primary key)", async () => {
    const first = `DELETE FROM outbox_message WHERE id IN (SELECT id FROM outbox_message WHERE available_at <= now()
      ORDER BY id LIMIT ${LIMIT} FOR UPDATE SKIP LOCKED) RETURNING id`;
    const walk = await buffersOf(first, "SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off");
    expect(walk.rows).toBe(LIMIT);
    expect(walk.buffers).toBeGreaterThan(10 * BOUND);
  });

  it("with 300k deleted rows ahead that an open snapshot keeps from vacuum, the keyset claim stays bounded", async () => {
    await pool.query("TRUNCATE outbox_message RESTART IDENTITY");
    await insertRows(300_000, "clock_timestamp() - interval '2 minutes'", 0);
    await insertRows(2_000, "clock_timestamp() - interval '1 minute'", 300_000);
    await pool.query("VACUUM ANALYZE outbox_message");
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    try {
      await holder.query("BEGIN ISOLATION LEVEL REPEATABLE READ");
      await holder.query("SELECT count(*) FROM outbox_message WHERE id = 1");
      // What a relay just drained: deleted, committed, and still visible to the open snapshot.
      const last = (
        await pool.query(
          `DELETE FROM outbox_message WHERE id <= 300000
           RETURNING id::text, (extract(epoch FROM available_at) * 1000)::float8 AS at`,
        )
      ).rows.reduce((a, b) => (b.at > a.at || (b.at === a.at && Number(b.id) > Number(a.id)) ? b : a));
      const after = await buffersOf(claimNext(names, LIMIT, { availableAt: last.at, id: last.id }));
      expect(after.rows).toBe(LIMIT);
      expect(after.buffers).toBeLessThan(BOUND);
      // The same claim from the start visits every dead row: the reason the relay keeps its place while draining.
      const fromStart = await buffersOf(claimNext(names, LIMIT));
      expect(fromStart.rows).toBe(LIMIT);
      expect(fromStart.buffers).toBeGreaterThan(3 * BOUND);
    } finally {
      await holder.query("ROLLBACK");
      await holder.end();
    }
  });
});
