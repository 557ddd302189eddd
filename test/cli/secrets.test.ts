// What `worker`, `status` and `dead-letters` print, run as users run them: no form of a password (userinfo,
// ?password=, sslpassword=, an unencoded @ followed by #, / or ?), no control character from the rows they show, and
// the metrics port on the address asked for.
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { afterAll, afterEach, describe, expect, inject, it } from "vitest";
import { cliProcesses, runCli } from "../support/cli.js";
import { newPool, useTestDatabase } from "../support/prisma.js";

const amqpUrl = inject("amqpUrl");
const url = await useTestDatabase();
const pool = newPool(url);
const processes = cliProcesses();
afterEach(() => {
  processes.killAll();
});
afterAll(() => pool.end());

const spawnWorker = (args: string[], env: Record<string, string>) => processes.start(["worker", ...args], env);

// biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is the point
const CONTROLS = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/; // every control but the line feed that ends a line
const EVIL = "order.x\n2026-01-01T00:00:00.000Z ERROR forged\r\u001b[2J\u009b31m\u007f";

/** The test server, reached with a database that does not exist: every command fails and shows where it went. */
const server = new URL(url);
const host = server.host;
const user = decodeURIComponent(server.username) || "postgres";
const missingDb = `no_such_db_${randomUUID().slice(0, 8)}`;

/** [form, DATABASE_URL, secret texts that must never be printed]. */
const forms: Array<[string, string, string[]]> = [
  ["a userinfo password", `postgresql://${user}:pw-user-SECRET@${host}/${missingDb}`, ["pw-user-SECRET"]],
  ["?password=", `postgresql://${user}@${host}/${missingDb}?password=pw-query-SECRET`, ["pw-query-SECRET"]],
  [
    "sslpassword=",
    `postgresql://${user}@${host}/${missingDb}?sslmode=disable&sslpassword=pw-ssl-SECRET`,
    ["pw-ssl-SECRET"],
  ],
  [
    "an unencoded @ then #",
    `postgresql://${user}:pw@hashpart#tail-SECRET@${host}/${missingDb}`,
    ["tail-SECRET", "hashpart"],
  ],
  [
    "an unencoded @ then /",
    `postgresql://${user}:pw@slashpart/tail-SECRET@${host}/${missingDb}`,
    ["tail-SECRET", "slashpart"],
  ],
  [
    "an unencoded @ then ?",
    `postgresql://${user}:pw@quespart?tail-SECRET@${host}/${missingDb}`,
    ["tail-SECRET", "quespart"],
  ],
];

function leaks(output: string, secrets: string[]): string[] {
  return secrets.filter((s) => output.includes(s));
}

describe("no form of a password is printed", () => {
  it.each(forms)("status, dead-letters and worker given %s", async (_, databaseUrl, secrets) => {
    const status = await runCli(["status"], { DATABASE_URL: databaseUrl });
    const list = await runCli(["dead-letters", "list"], { DATABASE_URL: databaseUrl });
    const worker = await runCli(["worker"], { DATABASE_URL: databaseUrl, AMQP_URL: amqpUrl });
    for (const run of [status, list, worker]) {
      expect(run.code).not.toBe(0);
      const output = run.stdout + run.stderr;
      expect(output).not.toBe("");
      expect(leaks(output, secrets)).toEqual([]);
      expect(output).not.toContain("***ostgres"); // a short password scrubbed inside words
    }
    // The operator commands say where they went, redacted.
    expect(status.stderr).toContain("could not query the database at postgresql://");
    expect(list.stderr).toContain("could not query the database at postgresql://");
  });

  it("worker given an AMQP URL with an unencoded @ then #: its reconnect warnings show none of it", async () => {
    const broker = new URL(amqpUrl);
    const amqp = `amqp://guest:pw@brokerpart#tail-SECRET@${broker.host}/`;
    const w = spawnWorker([], { DATABASE_URL: url, AMQP_URL: amqp });
    // amqplib connects to the host "brokerpart" and retries: wait for a few of its failures.
    await expect.poll(() => (w.out.stdout + w.out.stderr).split("\n").length, { timeout: 30_000 }).toBeGreaterThan(3);
    w.child.kill("SIGKILL");
    expect(leaks(w.out.stdout + w.out.stderr, ["tail-SECRET", "brokerpart"])).toEqual([]);
  });
});

describe("rows from outside reach the terminal escaped", () => {
  it("dead-letters list, status: one line per row, no control character; --json escapes DEL and C1 too", async () => {
    await pool.query("DELETE FROM outbox_dead_letter");
    await pool.query(
      `INSERT INTO outbox_dead_letter (id, message_id, exchange, routing_key, payload, attempts, last_error, created_at)
       VALUES (1, $1, $2::text, $2::text, '1', 10, $2::text, now())`,
      [randomUUID(), EVIL],
    );
    const env = { DATABASE_URL: url };
    const list = await runCli(["dead-letters", "list"], env);
    expect(list.code).toBe(0);
    expect(list.stdout).not.toMatch(CONTROLS);
    expect(list.stdout).toContain("order.x\\n2026-01-01");
    // Header, the row, the count: nothing forged in between.
    expect(list.stdout.trimEnd().split("\n")).toHaveLength(3);
    const status = await runCli(["status"], env);
    expect(status.code).toBe(0);
    expect(status.stdout).not.toMatch(CONTROLS);
    expect(status.stdout).not.toMatch(/^2026-01-01T00:00:00.000Z ERROR forged/m);
    for (const args of [
      ["dead-letters", "list", "--json"],
      ["status", "--json"],
    ]) {
      const json = await runCli(args, env);
      expect(json.code).toBe(0);
      expect(json.stdout).not.toMatch(CONTROLS);
      expect(json.stdout).toContain(JSON.stringify(EVIL).slice(1, 10)); // the value itself, JSON-escaped
    }
    const parsed = JSON.parse((await runCli(["dead-letters", "list", "--json"], env)).stdout);
    expect(parsed.rows[0].routingKey).toBe(EVIL);
    await pool.query("DELETE FROM outbox_dead_letter");
  });
});

describe("--metrics-host", () => {
  it("the worker's endpoints listen on the address given, and only there", async () => {
    const w = spawnWorker(["--metrics-port", "0", "--metrics-host", "127.0.0.2"], {
      OUTBOX_LOG_FORMAT: "json",
      DATABASE_URL: url,
      AMQP_URL: amqpUrl,
    });
    const child = w.child;
    const stdout = () => w.out.stdout;
    await expect.poll(stdout, { timeout: 30_000 }).toContain("metrics and health endpoints listening");
    const line = JSON.parse(
      stdout()
        .split("\n")
        .find((l) => l.includes("metrics and health endpoints listening"))!,
    );
    expect(line).toMatchObject({ host: "127.0.0.2" });
    const healthz = await fetch(`http://127.0.0.2:${line.port}/healthz`);
    expect(healthz.status).toBe(200);
    await expect(fetch(`http://127.0.0.1:${line.port}/healthz`)).rejects.toThrow();
    child.kill("SIGTERM");
    expect((await once(child, "exit"))[0]).toBe(0);
  });
});
