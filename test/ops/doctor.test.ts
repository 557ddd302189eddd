// doctor() against the real PostgreSQL, each check provoked for real and seen, then cleared: a transaction holding a
// snapshot on another connection, autovacuum disabled on the table, dead rows, bloat, a dropped index, a dropped
// column and table (a missing migration), backlogs, dead letters by age, and a schema without our tables.
// This server runs with autovacuum = off (its configuration file): the server-wide finding is always there, and the
// table-level one is checked in its details.
import pg from "pg";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { type DoctorOptions, type DoctorReport, doctor, type Finding } from "../../src/index.js";
import { newPool, useTestDatabase } from "../support/prisma.js";
import { sleep, untilValue } from "../support/wait.js";

const url = await useTestDatabase();
const pool = newPool(url);
const held: pg.Client[] = [];
afterEach(async () => {
  for (const c of held.splice(0)) await c.end().catch(() => {});
  await pool.query("DELETE FROM outbox_message; DELETE FROM outbox_dead_letter; DELETE FROM inbox_message");
});
afterAll(() => pool.end());

function finding(report: DoctorReport, check: string): Finding {
  const f = report.findings.find((x) => x.check === check);
  if (!f) throw new Error(`no ${check} finding in ${JSON.stringify(report.findings.map((x) => x.check))}`);
  return f;
}

/** The finding of `check` once `ok` holds for it (statistics reach the views within a second or so). */
async function seen(check: string, ok: (f: Finding) => boolean, options: DoctorOptions = {}): Promise<Finding> {
  const report = await untilValue(
    () => doctor(pool, options),
    (r) => ok(finding(r, check)),
    `doctor's ${check}`,
    15_000,
    200,
  );
  return finding(report, check);
}

async function holdSnapshot(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, application_name: "doctor test holder" });
  c.on("error", () => {});
  await c.connect();
  held.push(c);
  await c.query("BEGIN ISOLATION LEVEL REPEATABLE READ");
  await c.query("SELECT 1");
  return c;
}

describe("doctor()", () => {
  it("finds nothing wrong with a freshly migrated database (but the server's autovacuum = off)", async () => {
    const report = await doctor(pool);
    expect(report.schema).toBe("public");
    const levels = Object.fromEntries(report.findings.map((f) => [f.check, f.level]));
    expect(levels).toEqual({
      "xmin-horizon": "ok",
      "autovacuum-disabled": "error",
      "autovacuum-behind": "ok",
      bloat: "ok",
      "schema-drift": "ok",
      "outbox-backlog": "ok",
      "inbox-backlog": "ok",
      "dead-letters": "ok",
      "workers-connected": "ok",
    });
    for (const f of report.findings) {
      expect(f.summary.length).toBeGreaterThan(0);
      expect(f.cost.length).toBeGreaterThan(0);
      expect(f.action.length).toBeGreaterThan(0);
    }
    // cheap: no dead-letters check (a scan); skip leaves a check out, and the level follows.
    const cheap = await doctor(pool, { checks: "cheap", skip: ["autovacuum-disabled"] });
    expect(cheap.findings.map((f) => f.check)).not.toContain("dead-letters");
    expect(cheap.level).toBe("ok");
  });

  it("xmin-horizon: a transaction holding a snapshot on another connection, with its age; cleared by COMMIT", async () => {
    const holder = await holdSnapshot();
    const pid = (await holder.query("SELECT pg_backend_pid() AS pid")).rows[0].pid as number;
    await sleep(1_200);
    const report = await doctor(pool, { xminHorizonWarnMs: 1_000, xminHorizonErrorMs: 600_000 });
    const f = finding(report, "xmin-horizon");
    expect(f.level).toBe("warning");
    expect(f.summary).toContain(`session ${pid} (doctor test holder, idle in transaction)`);
    const holders = f.details.holders as Array<{ kind: string; id: string; ageMs: number }>;
    expect(holders).toContainEqual(expect.objectContaining({ kind: "transaction", id: String(pid) }));
    expect(holders.find((h) => h.id === String(pid))!.ageMs).toBeGreaterThanOrEqual(1_000);
    expect(f.cost).toContain("220 ms");
    // Past the error threshold it is an error.
    expect(
      finding(await doctor(pool, { xminHorizonWarnMs: 100, xminHorizonErrorMs: 1_000 }), "xmin-horizon").level,
    ).toBe("error");
    await holder.query("COMMIT");
    expect(finding(await doctor(pool, { xminHorizonWarnMs: 1_000 }), "xmin-horizon").level).toBe("ok");
  });

  it("autovacuum-disabled: autovacuum_enabled = false on the outbox table; cleared by RESET", async () => {
    await pool.query("ALTER TABLE outbox_message SET (autovacuum_enabled = false)");
    try {
      const f = finding(await doctor(pool), "autovacuum-disabled");
      expect(f.level).toBe("error");
      expect(f.details.tables).toEqual(["outbox_message"]);
      expect(f.summary).toContain("autovacuum is disabled on outbox_message");
      expect(f.action).toContain('ALTER TABLE "public"."outbox_message" RESET (autovacuum_enabled)');
    } finally {
      await pool.query("ALTER TABLE outbox_message RESET (autovacuum_enabled)");
    }
    expect(finding(await doctor(pool), "autovacuum-disabled").details.tables).toEqual([]);
  });

  it("autovacuum-behind: dead rows left by deletes with autovacuum off; cleared by VACUUM", async () => {
    await pool.query("ALTER TABLE outbox_message SET (autovacuum_enabled = false)");
    try {
      await pool.query(
        `INSERT INTO outbox_message (message_id, exchange, routing_key, payload)
         SELECT gen_random_uuid(), 'x', 'k', '{}' FROM generate_series(1, 5000)`,
      );
      await pool.query("DELETE FROM outbox_message");
      const options = { deadRowsWarn: 1_000, deadRowsError: 1_000_000 };
      const f = await seen("autovacuum-behind", (x) => x.level === "warning", options);
      expect(f.summary).toMatch(/outbox_message: \d+ dead rows \(0 live\), never vacuumed/);
      const table = (f.details.tables as Array<{ table: string; deadRows: number }>).find(
        (t) => t.table === "outbox_message",
      );
      expect(table!.deadRows).toBeGreaterThanOrEqual(5_000);
      expect(finding(await doctor(pool, { deadRowsWarn: 100, deadRowsError: 1_000 }), "autovacuum-behind").level).toBe(
        "error",
      );
      await pool.query("VACUUM outbox_message");
      await seen("autovacuum-behind", (x) => x.level === "ok", options);
    } finally {
      await pool.query("ALTER TABLE outbox_message RESET (autovacuum_enabled)");
    }
  });

  it("bloat: the outbox's indexes after 20,000 rows came and went; the estimate says so, REINDEX clears it", async () => {
    await pool.query(
      `INSERT INTO outbox_message (message_id, exchange, routing_key, payload)
       SELECT gen_random_uuid(), 'x', 'k', '{}' FROM generate_series(1, 20000)`,
    );
    await pool.query("DELETE FROM outbox_message");
    await pool.query("VACUUM outbox_message");
    const options = { bloatMinBytes: 100_000 };
    const f = await seen("bloat", (x) => x.level === "warning", options);
    expect(f.summary).toContain("index outbox_message_available_at_id_idx");
    expect(f.action).toContain('REINDEX INDEX CONCURRENTLY "public"."outbox_message_available_at_id_idx"');
    // The default minimum (64 MiB) keeps a few hundred kB from warning.
    expect(finding(await doctor(pool), "bloat").level).toBe("ok");
    await pool.query("REINDEX TABLE outbox_message");
    expect(finding(await doctor(pool, options), "bloat").level).toBe("ok");
  });

  describe("schema-drift (each change made inside a transaction the doctor runs in, then rolled back)", () => {
    async function inTransaction(ddl: string, options: DoctorOptions = {}): Promise<Finding> {
      const client = await pool.connect();
      try {
        await client.query("BEGIN");
        await client.query(ddl);
        return finding(await doctor(client, options), "schema-drift");
      } finally {
        await client.query("ROLLBACK");
        client.release();
      }
    }

    it("a dropped index: a warning naming its columns", async () => {
      const f = await inTransaction("DROP INDEX outbox_message_available_at_id_idx");
      expect(f.level).toBe("warning");
      expect(f.details.drifts).toEqual([
        { level: "warning", table: "outbox_message", problem: "index (available_at, id) missing" },
      ]);
    });

    it("a dropped unique index the inbox's ON CONFLICT needs: an error", async () => {
      const f = await inTransaction("DROP INDEX inbox_message_message_id_handler_key");
      expect(f.level).toBe("error");
      expect(f.summary).toContain("inbox_message: unique index (message_id, handler) missing");
    });

    it("a missing migration: a column gone, a table gone, a storage setting gone", async () => {
      expect((await inTransaction("ALTER TABLE inbox_message DROP COLUMN ordering_key")).details.drifts).toEqual([
        { level: "error", table: "inbox_message", problem: "column ordering_key missing" },
        // The index on it went with it.
        {
          level: "warning",
          table: "inbox_message",
          problem: "index (ordering_key, handler, status, id) missing",
        },
      ]);
      const table = await inTransaction("DROP TABLE outbox_dead_letter");
      expect(table.level).toBe("error");
      expect(table.summary).toContain("outbox_dead_letter: table missing");
      // A part whose tables are all absent is not installed, unless it is asked for.
      const absent = await inTransaction("DROP TABLE outbox_request");
      expect(absent.level).toBe("ok");
      expect(absent.summary).toContain("not installed: requests");
      expect((await inTransaction("DROP TABLE outbox_request", { parts: ["requests"] })).level).toBe("error");
      const storage = await inTransaction("ALTER TABLE outbox_message RESET (autovacuum_vacuum_threshold)");
      expect(storage.details.drifts).toEqual([
        {
          level: "warning",
          table: "outbox_message",
          problem: "storage setting autovacuum_vacuum_threshold=1000 missing",
        },
      ]);
    });

    it("a column of another type", async () => {
      const f = await inTransaction("ALTER TABLE outbox_message ALTER COLUMN payload TYPE jsonb");
      expect(f.details.drifts).toEqual([
        { level: "error", table: "outbox_message", problem: "column payload is jsonb, expected json" },
      ]);
    });
  });

  it("outbox-backlog and inbox-backlog: the oldest due row's age against the thresholds, in both forms", async () => {
    await pool.query(
      `INSERT INTO outbox_message (message_id, exchange, routing_key, payload, available_at)
       SELECT gen_random_uuid(), 'x', 'k', '{}', now() - interval '2 min' FROM generate_series(1, 3)`,
    );
    await pool.query(
      `INSERT INTO inbox_message (message_id, handler, exchange, routing_key, payload, available_at)
       VALUES ('a', 'h', 'x', 'k', '{}', now() - interval '20 min'), ('b', 'h', 'x', 'k', '{}', now() + interval '1 h')`,
    );
    for (const checks of ["all", "cheap"] as const) {
      const report = await doctor(pool, { checks });
      const outbox = finding(report, "outbox-backlog");
      expect(outbox.level).toBe("warning");
      expect(outbox.details).toMatchObject({ due: 3, dueCapped: false });
      expect(outbox.details.oldestDueAgeMs).toBeGreaterThanOrEqual(120_000);
      expect(outbox.summary).toMatch(/^outbox: 3 rows due, the oldest for 2 min \d+ s$/);
      const inbox = finding(report, "inbox-backlog");
      expect(inbox.level).toBe("error");
      expect(inbox.details).toMatchObject({ due: 1 });
      // Rows due and nobody connected to take them.
      const workers = finding(report, "workers-connected");
      expect(workers.level).toBe("warning");
      expect(workers.summary).toContain("no relay is connected and outbox rows are due");
      expect(workers.summary).toContain("no inbox is connected and inbox rows are due");
    }
  });

  it("dead-letters: recent ones warn, old ones are reported; outbox and inbox", async () => {
    await pool.query(
      `INSERT INTO outbox_dead_letter (id, message_id, exchange, routing_key, payload, attempts, created_at, failed_at)
       VALUES (1, gen_random_uuid(), 'x', 'k', '{}', 10, now(), now() - interval '3 days')`,
    );
    let f = finding(await doctor(pool), "dead-letters");
    expect(f.level).toBe("ok");
    expect(f.details.outbox).toMatchObject({ total: 1, recent: 0 });
    expect(f.summary).toMatch(/^outbox: 1 dead \(0 within 1 d 0 h; newest 3 d 0 h ago/);
    await pool.query(
      `INSERT INTO inbox_message (message_id, handler, exchange, routing_key, payload, status, last_error)
       VALUES ('d', 'h', 'x', 'k', '{}', 'dead', 'Error: boom')`,
    );
    f = finding(await doctor(pool), "dead-letters");
    expect(f.level).toBe("warning");
    expect(f.details.inbox).toMatchObject({ total: 1, recent: 1 });
  });

  it("a schema without our tables: findings, not a throw; asked-for parts are drift", async () => {
    await pool.query('CREATE SCHEMA IF NOT EXISTS "empty"');
    const report = await doctor(pool, { schema: "empty" });
    expect(finding(report, "schema-drift")).toMatchObject({ level: "ok" });
    expect(finding(report, "schema-drift").summary).toContain("not installed: outbox, inbox, requests");
    const asked = await doctor(pool, { schema: "empty", parts: ["outbox"] });
    expect(finding(asked, "schema-drift").level).toBe("error");
    expect(asked.level).toBe("error");
  });
});
