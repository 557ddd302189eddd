// The dashboard's JSON API without a browser, against this file's database: what each endpoint answers, the CLI's
// filters and their refusals, read-only mode, the CSRF and DNS-rebinding guards, the token, and what an action logs.
// Then the two ways the CLI serves it: `prisma-outbox dashboard` and the worker's --metrics-port with --dashboard.
import { afterAll, afterEach, describe, expect, inject, it } from "vitest";
import { cliProcesses, runCli } from "../support/cli.js";
import { newPool, useTestDatabase } from "../support/prisma.js";
import { call, OUTBOX_DEAD, PAGE, recordingLogger, type Served, seed, serve, XSS_ERROR } from "./dashboard-fixture.js";

const amqpUrl = inject("amqpUrl");
const url = await useTestDatabase();
const pool = newPool(url);
const processes = cliProcesses();
const served: Served[] = [];
afterEach(async () => {
  processes.killAll();
  for (const s of served.splice(0)) await s.close();
});
afterAll(() => pool.end());

const TOKEN = "t0ken-for-the-dashboard-tests-0123456789";

async function start(options: { allowActions?: boolean; token?: string } = {}) {
  const log = recordingLogger();
  const s = await serve({ pool, logger: log.logger, sampleIntervalMs: 200, ...options });
  served.push(s);
  return { ...s, log };
}

const deadIds = async () =>
  (await pool.query("SELECT id::int FROM outbox_dead_letter ORDER BY id")).rows.map((r) => r.id as number);

describe("the dashboard's API", () => {
  it("serves the page with a strict CSP, the overview with samples, and doctor's report", async () => {
    await seed(pool, 7);
    const d = await start();
    const page = await call(d.port, "GET", "/ui");
    expect(page.status).toBe(200);
    expect(page.headers["content-security-policy"]).toMatch(/default-src 'none'; script-src 'sha256-[^']+'/);
    expect(page.headers["x-frame-options"]).toBe("DENY");
    expect(page.text).toContain('id="chart-backlog"');
    await expect
      .poll(async () => (await call(d.port, "GET", "/ui/api/overview")).json().samples.length, { timeout: 10_000 })
      .toBeGreaterThanOrEqual(2);
    const o = (await call(d.port, "GET", "/ui/api/overview")).json();
    expect(o.config).toEqual({ schema: "public", allowActions: false, tokenRequired: false, sampleIntervalMs: 200 });
    expect(o.status.outbox).toMatchObject({ present: true, due: 7, deadLetters: { total: 4 } });
    expect(o.status.inbox).toMatchObject({ present: true, dead: { total: 2 } });
    expect(o.samples.at(-1)).toMatchObject({ outboxDue: 7, outboxDead: 4, inboxDead: 2 });
    expect(o.samples.at(-1).outboxLagMs).toBeGreaterThan(2_000);
    const doctor = await call(d.port, "GET", "/ui/api/doctor");
    expect(doctor.status).toBe(200);
    expect(doctor.json()).toMatchObject({ schema: "public", level: expect.stringMatching(/^(ok|warning|error)$/) });
    expect(Array.isArray(doctor.json().findings)).toBe(true);
    expect((await call(d.port, "GET", "/ui/api/nothing")).status).toBe(404);
  });

  it("lists dead letters with the CLI's filters, and refuses a filter the CLI refuses, in its words", async () => {
    await seed(pool, 0);
    const d = await start();
    const ids = async (query: string) =>
      (await call(d.port, "GET", `/ui/api/dead-letters?${query}`)).json().rows.map((r: { id: string }) => r.id);
    expect((await ids("source=outbox")).sort()).toEqual(["1", "2", "3", "4"]);
    expect((await ids("exchange=shop")).sort()).toEqual(["1", "2"]);
    expect(await ids("exchange=billing&routing-key=invoice.*")).toEqual(["3"]);
    expect(await ids("error=PRECONDITION")).toEqual(["3"]);
    expect((await ids("id=1,3")).sort()).toEqual(["1", "3"]);
    const xss = (await call(d.port, "GET", "/ui/api/dead-letters?id=4")).json().rows[0];
    expect(xss.lastError).toBe(XSS_ERROR); // JSON carries the text as it is: the page shows it as text
    const inbox = (await call(d.port, "GET", "/ui/api/dead-letters?source=inbox&handler=ship")).json();
    expect(inbox).toMatchObject({ source: "inbox", total: 1, rows: [{ handler: "ship", lastError: "carrier down" }] });
    const badTime = await call(d.port, "GET", "/ui/api/dead-letters?since=yesterday");
    expect(badTime.status).toBe(400);
    expect(badTime.json().error).toMatch(/Expected --since to be an ISO 8601 time/);
    expect((await call(d.port, "GET", "/ui/api/dead-letters?handler=ship")).json().error).toMatch(/--inbox/);
    expect((await call(d.port, "GET", "/ui/api/dead-letters?source=both")).status).toBe(400);
    expect((await call(d.port, "GET", "/ui/api/dead-letters?error=a&error=b")).status).toBe(400);
  });

  it("read-only: refuses retry and purge with 403, changes nothing, and logs the refusal", async () => {
    await seed(pool, 0);
    const d = await start();
    for (const action of ["retry", "purge"]) {
      const r = await call(d.port, "POST", `/ui/api/dead-letters/${action}`, {
        headers: PAGE,
        body: { source: "outbox", all: true },
      });
      expect(r.status).toBe(403);
      expect(r.json().error).toMatch(/read-only/);
    }
    expect(await deadIds()).toEqual([1, 2, 3, 4]);
    expect(d.log.lines.filter((l) => l.message === "dashboard action refused")).toHaveLength(2);
  });

  it("retry: a dry run counts and shows what it would take, then the action moves exactly those, logged", async () => {
    const messageIds = await seed(pool, 0);
    const d = await start({ allowActions: true });
    const body = { source: "outbox", filter: { exchange: "shop" } };
    const preview = await call(d.port, "POST", "/ui/api/dead-letters/retry", {
      headers: PAGE,
      body: { ...body, dryRun: true },
    });
    expect(preview.status).toBe(200);
    expect(preview.json()).toMatchObject({ action: "retry", count: 2, dryRun: true });
    expect(
      preview
        .json()
        .rows.map((r: { id: string }) => r.id)
        .sort(),
    ).toEqual(["1", "2"]);
    expect(await deadIds()).toEqual([1, 2, 3, 4]);
    const done = await call(d.port, "POST", "/ui/api/dead-letters/retry", { headers: PAGE, body });
    expect(done.json()).toMatchObject({ action: "retry", count: 2, dryRun: false });
    const back = await pool.query("SELECT message_id::text FROM outbox_message ORDER BY message_id");
    expect(back.rows.map((r) => r.message_id)).toEqual([messageIds.get(1), messageIds.get(2)].sort());
    const logged = d.log.lines.find((l) => l.message === "dashboard action done");
    expect(logged?.fields).toMatchObject({
      action: "retry",
      source: "outbox",
      filter: { exchanges: ["shop"] },
      count: 2,
      peer: "127.0.0.1",
      authenticated: false,
    });
    // Without a filter, an action takes every row only when asked to, as with the CLI's --all.
    const unfiltered = await call(d.port, "POST", "/ui/api/dead-letters/purge", { headers: PAGE, body: {} });
    expect(unfiltered.status).toBe(400);
    const purged = await call(d.port, "POST", "/ui/api/dead-letters/purge", { headers: PAGE, body: { all: true } });
    expect(purged.json()).toMatchObject({ count: 2 });
    expect(await deadIds()).toEqual([]);
    const inbox = await call(d.port, "POST", "/ui/api/dead-letters/retry", {
      headers: PAGE,
      body: { source: "inbox", filter: { handler: ["ship"] } },
    });
    expect(inbox.json()).toMatchObject({ count: 1 });
    const { rows } = await pool.query("SELECT status FROM inbox_message WHERE handler = 'ship'");
    expect(rows).toEqual([{ status: "pending" }]);
  });

  it("refuses what another site could send: no page header, a foreign Origin, a GET, a form body", async () => {
    await seed(pool, 0);
    const d = await start({ allowActions: true });
    const path = "/ui/api/dead-letters/purge";
    const body = { all: true };
    expect((await call(d.port, "POST", path, { body })).status).toBe(403);
    const foreign = await call(d.port, "POST", path, { headers: { ...PAGE, origin: "https://evil.example" }, body });
    expect(foreign.status).toBe(403);
    expect((await call(d.port, "GET", `${path}?all=true`)).status).toBe(405);
    const form = await call(d.port, "POST", path, {
      headers: { ...PAGE, "content-type": "application/x-www-form-urlencoded" },
      body: "all=true",
    });
    expect(form.status).toBe(400);
    // DNS rebinding: a page of evil.example resolved to 127.0.0.1 asks with its own host name.
    const rebound = await call(d.port, "GET", "/ui/api/dead-letters", { headers: { host: "evil.example" } });
    expect(rebound.status).toBe(403);
    expect(await deadIds()).toEqual([1, 2, 3, 4]);
    const same = await call(d.port, "POST", path, {
      headers: { ...PAGE, origin: `http://127.0.0.1:${d.port}` },
      body: { filter: { id: "1" } },
    });
    expect(same.json()).toMatchObject({ count: 1 });
  });

  it("with a token: the page is served, the API needs the token, any host name may ask; the token is never logged", async () => {
    await seed(pool, 0);
    const d = await start({ allowActions: true, token: TOKEN });
    expect((await call(d.port, "GET", "/ui")).status).toBe(200);
    expect((await call(d.port, "GET", "/ui/api/overview")).status).toBe(401);
    const wrong = { authorization: `Bearer ${TOKEN.slice(0, -1)}x` };
    expect((await call(d.port, "GET", "/ui/api/overview", { headers: wrong })).status).toBe(401);
    const right = { authorization: `Bearer ${TOKEN}`, host: "dashboard.example" };
    const overview = await call(d.port, "GET", "/ui/api/overview", { headers: right });
    expect(overview.status).toBe(200);
    expect(overview.json().config.tokenRequired).toBe(true);
    // The token stands for the page header: a script with the token is no cross-site form.
    const purge = await call(d.port, "POST", "/ui/api/dead-letters/purge", {
      headers: right,
      body: { filter: { id: "2" } },
    });
    expect(purge.json()).toMatchObject({ count: 1 });
    expect(
      (await call(d.port, "POST", "/ui/api/dead-letters/purge", { headers: PAGE, body: { all: true } })).status,
    ).toBe(401);
    expect(d.log.lines.find((l) => l.message === "dashboard action done")?.fields).toMatchObject({
      authenticated: true,
    });
    expect(d.log.text()).not.toContain(TOKEN);
  });

  it("refuses a token too short to be safe, without showing it", async () => {
    const { createDashboard } = await import("../../src/cli/dashboard/dashboard.js");
    const log = recordingLogger();
    expect(() => createDashboard({ pool, logger: log.logger, token: "short-secret" })).toThrow(/16 to 1024 characters/);
    expect(() => createDashboard({ pool, logger: log.logger, token: "short-secret" })).not.toThrow(/short-secret/);
  });
});

describe("as the CLI serves it", () => {
  it("prisma-outbox dashboard: 127.0.0.1, the port logged, read-only by default; another host needs a token", async () => {
    await seed(pool, 3);
    const refused = await runCli(["dashboard", "--host", "0.0.0.0"], { DATABASE_URL: url });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/--host 0\.0\.0\.0 would let other machines in without a token/);
    const p = processes.start(["dashboard", "--port", "0", "--log-format", "json"], {
      DATABASE_URL: url,
      PRISMA_OUTBOX_DASHBOARD_TOKEN: TOKEN,
    });
    await expect.poll(() => p.out.stdout, { timeout: 30_000 }).toContain("dashboard listening");
    const line = JSON.parse(p.out.stdout.split("\n").find((l) => l.includes("dashboard listening"))!);
    expect(line).toMatchObject({ host: "127.0.0.1", actions: "read-only", token: "required" });
    expect(p.out.stdout + p.out.stderr).not.toContain(TOKEN);
    const overview = await call(line.port, "GET", "/ui/api/overview", {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(overview.json().config).toMatchObject({ allowActions: false, tokenRequired: true });
    const retry = await call(line.port, "POST", "/ui/api/dead-letters/retry", {
      headers: { authorization: `Bearer ${TOKEN}` },
      body: { all: true },
    });
    expect(retry.status).toBe(403);
    expect(await deadIds()).toEqual([1, 2, 3, 4]);
    p.child.kill("SIGTERM");
    expect(await p.exited).toBe(0);
  });

  it("prisma-outbox worker --metrics-port --dashboard: /ui beside /metrics; without --dashboard, no /ui", async () => {
    await seed(pool, 0);
    const start = (extra: string[]) => {
      const w = processes.start(["worker", "--metrics-port", "0", ...extra], {
        DATABASE_URL: url,
        AMQP_URL: amqpUrl,
        OUTBOX_LOG_FORMAT: "json",
      });
      return async () => {
        await expect.poll(() => w.out.stdout, { timeout: 30_000 }).toContain("metrics and health endpoints listening");
        const line = w.out.stdout.split("\n").find((l) => l.includes("metrics and health endpoints listening"))!;
        return JSON.parse(line).port as number;
      };
    };
    const withUi = await start(["--dashboard", "--dashboard-allow-actions"])();
    const overview = await call(withUi, "GET", "/ui/api/overview");
    expect(overview.json().config).toMatchObject({ allowActions: true, tokenRequired: false });
    const retried = await call(withUi, "POST", "/ui/api/dead-letters/retry", {
      headers: PAGE,
      body: { filter: { exchange: OUTBOX_DEAD[2]!.exchange, "routing-key": "invoice.eu" } },
    });
    expect(retried.json()).toMatchObject({ count: 1 });
    expect((await call(withUi, "GET", "/healthz")).status).toBe(200);
    const without = await start([])();
    expect((await call(without, "GET", "/ui")).status).toBe(404);
    const flags = await runCli(["worker", "--dashboard"], { DATABASE_URL: url, AMQP_URL: amqpUrl });
    expect(flags.code).toBe(2);
    expect(flags.stderr).toMatch(/--dashboard is served on the metrics port/);
  });
});
