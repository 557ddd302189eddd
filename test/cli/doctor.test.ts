// `prisma-outbox doctor`, run as its own process against this file's database: exit 0 when every check is ok, 1 for
// a warning (a backlog), 2 for an error (a held snapshot past the error threshold, a dropped table asked for), --json
// with the report's shape, the text report with cost and action, bad input (2) and an unreachable database (1).
// This server runs with autovacuum = off (on purpose): --skip autovacuum-disabled leaves that known error out.
import pg from "pg";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { runCli } from "../support/cli.js";
import { newPool, useTestDatabase } from "../support/prisma.js";
import { sleep } from "../support/wait.js";

const url = await useTestDatabase();
const pool = newPool(url);
afterEach(() => pool.query("DELETE FROM outbox_message"));
afterAll(() => pool.end());

const doctor = (...args: string[]) => runCli(["doctor", ...args], { DATABASE_URL: url });
const SKIP = ["--skip", "autovacuum-disabled"];

describe("prisma-outbox doctor", () => {
  it("--help prints the options and the exit codes, exit 0", async () => {
    const r = await runCli(["doctor", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Usage: prisma-outbox doctor");
    expect(r.stdout).toContain("0 every check ok, 1 a warning, 2 an error");
  });

  it("exit 0 when every check is ok; --json is the report", async () => {
    const r = await doctor("--json", ...SKIP);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({ level: "ok", schema: "public" });
    expect(report.findings.map((f: { check: string }) => f.check)).toEqual([
      "xmin-horizon",
      "autovacuum-behind",
      "bloat",
      "schema-drift",
      "outbox-backlog",
      "inbox-backlog",
      "dead-letters",
      "workers-connected",
    ]);
    expect(Object.keys(report.findings[0]).sort()).toEqual(["action", "check", "cost", "details", "level", "summary"]);
  });

  it("exit 1 for a warning (a backlog two minutes old), with its cost and what to do in the text", async () => {
    await pool.query(
      `INSERT INTO outbox_message (message_id, exchange, routing_key, payload, available_at)
       VALUES (gen_random_uuid(), 'x', 'k', '{}', now() - interval '2 min')`,
    );
    const r = await doctor(...SKIP, "--checks", "cheap");
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^doctor \(schema public\): WARNING\n/);
    expect(r.stdout).toMatch(/WARNING outbox-backlog: outbox: 1 rows due, the oldest for 2 min/);
    expect(r.stdout).toContain("  cost: messages reach consumers late");
    expect(r.stdout).toContain("  do:   check that a relay runs");
  });

  it("exit 2 for an error: a snapshot held past --threshold xminHorizonErrorMs; the server's autovacuum = off", async () => {
    const holder = new pg.Client({ connectionString: url, application_name: "cli doctor holder" });
    await holder.connect();
    try {
      await holder.query("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1");
      await sleep(1_100);
      const r = await doctor(
        "--json",
        ...SKIP,
        "--threshold",
        "xminHorizonWarnMs=100",
        "--threshold",
        "xminHorizonErrorMs=1000",
      );
      expect(r.code).toBe(2);
      const report = JSON.parse(r.stdout);
      expect(report.level).toBe("error");
      expect(report.findings[0]).toMatchObject({ check: "xmin-horizon", level: "error" });
      expect(report.findings[0].summary).toContain("cli doctor holder");
    } finally {
      await holder.end();
    }
    // Without --skip, this server's autovacuum = off is an error of its own.
    const r = await doctor("--checks", "cheap");
    expect(r.code).toBe(2);
    expect(r.stdout).toContain("ERROR autovacuum-disabled: autovacuum is off for the whole server");
  });

  it("exit 2 for a schema without the tables asked for; its name shown escaped", async () => {
    const r = await doctor("--schema", "no\u001b[31mwhere", "--parts", "outbox,inbox", ...SKIP);
    expect(r.code).toBe(2);
    expect(r.stdout).toContain("outbox_message: table missing");
    expect(r.stdout).toMatch(/^doctor \(schema no\\u001b\[31mwhere\): ERROR/);
    expect(r.stdout).not.toContain("\u001b");
  });

  it.each([
    [["--checks", "some"], 'Expected --checks to be all or cheap, got "some".'],
    [["--threshold", "nothing=1"], "Expected --threshold to be NAME=VALUE"],
    [["--threshold", "deadRowsWarn=x"], 'Expected --threshold deadRowsWarn to be an integer, got "x".'],
    [["--threshold", "backlogAgeWarnMs=10", "--threshold", "backlogAgeErrorMs=5"], "to be >= `backlogAgeWarnMs`"],
    [["--skip", "everything"], "Expected --skip to be one of"],
    [["--frobnicate"], "See prisma-outbox doctor --help."],
  ])("bad input %j: one line, exit 2", async (args, message) => {
    const r = await doctor(...args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain(message);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  });

  it("an unreachable database: exit 1, no password shown", async () => {
    const r = await runCli(["doctor"], { DATABASE_URL: "postgres://me:s3cret@127.0.0.1:1/db" });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      "prisma-outbox doctor: could not query the database at postgres://me:***@127.0.0.1:1/db",
    );
    expect(r.stderr).not.toContain("s3cret");
  });
});
