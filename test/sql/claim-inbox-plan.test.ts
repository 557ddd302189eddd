// The inbox's due claim must walk the (status, available_at, id) index in claim order and stop after its limit, also
// when the statistics do not know the table's size yet (a backlog stored within seconds, before any ANALYZE): the O1
// chaos row (50,000 keyed messages) timed out because the planner then took a bitmap scan and a sort that read, and
// probed the key of, every due row (900 ms a claim). claimDueInbox forbids bitmap scans for its transaction. Each case
// runs the claim under EXPLAIN (ANALYZE, BUFFERS) in a transaction that rolls back and bounds the buffers it touched
// (the walk also passes the index entries that the processed rows left behind: about 1,200 buffers here, against
// 150,000 for the bitmap plan).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { claimDueInbox, claimDueInboxSql } from "../../src/sql/inbox/claim.js";
import { inboxNames } from "../../src/sql/names.js";
import { TestClock } from "../../src/testing/clock.js";
import { buffersOf as planBuffers } from "../support/plans.js";
import { newPool, useTestDatabase } from "../support/prisma.js";

const url = await useTestDatabase();
const pool = newPool(url, 2);
afterAll(() => pool.end());

const LIMIT = 16;
const BOUND = 2_500;
const ROWS = 45_000;

const buffersOf = (setup: string, sql: string) => planBuffers(pool, sql, setup);

/** The statements of claimDueInbox: [BEGIN, the SET LOCALs..., the claim, COMMIT]. */
function statementsOf(text: string): string[] {
  return text.split(";\n");
}

describe("the inbox's due claim", () => {
  beforeAll(async () => {
    // Never analyzed (autovacuum off for this table, whatever the server's setting): the statistics of a backlog that
    // arrived faster than autovacuum. Keyed rows over 1,000 keys.
    await pool.query("ALTER TABLE inbox_message SET (autovacuum_enabled = false)");
    await pool.query(
      `INSERT INTO inbox_message (message_id, handler, exchange, routing_key, payload, ordering_key, available_at)
       SELECT 'm' || g, 'effect', 'x', 'k', '{}'::json, 'key-' || (g * 7919 % 1000),
              now() - interval '1 minute' + g * interval '1 ms'
       FROM generate_series(1, ${ROWS}) g`,
    );
    // The oldest third handled already (processed, as the retention keeps them), then some keys' first rows leased.
    await pool.query(`UPDATE inbox_message SET status = 'processed' WHERE id <= ${ROWS / 3}`);
    await pool.query(
      `UPDATE inbox_message SET available_at = now() + interval '1 minute'
       WHERE id IN (SELECT id FROM inbox_message WHERE status = 'pending' ORDER BY id LIMIT 32)`,
    );
  }, 60_000);

  it("touches a bounded number of buffers with stale statistics, keyed rows and leased keys", async () => {
    const parts = statementsOf(claimDueInbox(inboxNames(), "stop", 30_000, LIMIT));
    expect(parts[0]).toBe("BEGIN");
    expect(parts.at(-1)).toBe("COMMIT");
    const setup = parts.slice(1, -2).join(";");
    const claim = await buffersOf(setup, parts.at(-2)!);
    expect(claim.rows).toBe(LIMIT);
    expect(claim.buffers).toBeLessThan(BOUND);
    expect(claim.plan).not.toContain("Bitmap");
  });

  it("on the test kit's clock (its function in place of now()) the claim keeps its bound", async () => {
    const clock = new TestClock();
    await clock.install(pool);
    const parts = statementsOf(claimDueInbox(inboxNames(undefined, clock), "stop", 30_000, LIMIT));
    const claim = await buffersOf(parts.slice(1, -2).join(";"), parts.at(-2)!);
    expect(claim.rows).toBe(LIMIT);
    expect(claim.buffers, claim.plan).toBeLessThan(BOUND);
    expect(claim.plan).not.toContain("Bitmap");
  });

  it("the bound catches the plan that reads every due row (bitmap scan and sort)", async () => {
    const sql = claimDueInboxSql(inboxNames(), "stop")
      .replace("$1::float8", "30000::float8")
      .replace("LIMIT $2", `LIMIT ${LIMIT}`);
    const walk = await buffersOf("SET LOCAL enable_indexscan = off", sql);
    expect(walk.rows).toBe(LIMIT);
    expect(walk.buffers).toBeGreaterThan(10 * BOUND);
  });
});
