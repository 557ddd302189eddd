// The dashboard in a real browser: headless Chromium (Debian's `chromium`, found with `command -v chromium`)
// driven by playwright-core, against this file's database. The page loads with the backlog and the dead letters
// made here, a filter narrows the list, a retry confirmed in the page moves the rows back and a relay (on the
// in-memory broker) publishes each of them once; read-only mode has no button and its API answers 403; a token
// is asked for and then used; markup in a routing key and an error is shown as text. Screenshots are saved in the
// test's temporary directory (the path is printed).
import { existsSync, mkdtempSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { createRelay, MemoryTransport } from "../../src/index.js";
import { launchChromium } from "../support/chromium.js";
import { quiet } from "../support/logger.js";
import { newPool, useTestDatabase } from "../support/prisma.js";
import { until } from "../support/wait.js";
import { call, recordingLogger, type Served, seed, serve, XSS_ERROR, XSS_KEY } from "./dashboard-fixture.js";

const url = await useTestDatabase();
const pool = newPool(url);
const dir = mkdtempSync(join(tmpdir(), "prisma-outbox-dashboard-"));
console.log(`dashboard screenshots: ${dir}`);
const cleanups: Array<() => Promise<unknown>> = [];
let context: BrowserContext;

beforeAll(async () => {
  context = await launchChromium(join(dir, "profile"), { viewport: { width: 1300, height: 1000 } });
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(async () => {
  await context?.close();
  await pool.end();
});

async function open(
  options: { allowActions?: boolean; token?: string } = {},
  expectedErrors?: RegExp,
): Promise<{ page: Page; d: Served }> {
  const d = await serve({ pool, logger: recordingLogger().logger, sampleIntervalMs: 300, ...options });
  cleanups.push(() => d.close());
  const page = await context.newPage();
  cleanups.push(() => page.close());
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => {
    // A CSP refusal would show here: the page must need nothing its policy forbids.
    if (m.type() === "error" && !expectedErrors?.test(m.text())) errors.push(m.text());
  });
  cleanups.push(async () => expect(errors).toEqual([]));
  await page.goto(`${d.url}/ui`);
  return { page, d };
}

async function shot(page: Page, name: string): Promise<void> {
  const path = join(dir, name);
  await page.screenshot({ path, fullPage: true });
  expect(existsSync(path) && statSync(path).size > 1_000).toBe(true);
}

/** The ids of the dead letters listed, in the page's order (newest first). */
const rowIds = (page: Page) => () =>
  page.locator("#dl-rows tr").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-id")));

it("shows the backlog and dead letters; a filter narrows; a confirmed retry moves them back; a relay publishes each once", async () => {
  const messageIds = await seed(pool, 25);
  const { page, d } = await open({ allowActions: true });
  await page.waitForSelector("#cards .card");
  expect(await page.textContent("#mode")).toBe("actions enabled");
  await expect.poll(() => page.textContent("#cards"), { timeout: 10_000 }).toContain("25outbox due");
  expect(await page.textContent("#cards")).toContain("4outbox dead letters");
  // The charts are drawn from the samples: a backlog line with points.
  // (Polled from here: the page's CSP forbids the eval that waitForFunction would need.)
  const points = page.locator("#chart-backlog polyline.s1");
  await expect
    .poll(async () => ((await points.getAttribute("points")) ?? "").split(" ").length, { timeout: 10_000 })
    .toBeGreaterThanOrEqual(2);
  await page.waitForSelector("#doctor li");
  await expect.poll(rowIds(page), { timeout: 10_000 }).toEqual(["4", "3", "2", "1"]);
  await shot(page, "1-loaded.png");

  // Markup from the database is text: no <img> made, nothing run, the text shown as it is.
  expect(await page.locator("#dl-rows img, #doctor img").count()).toBe(0);
  expect(await page.evaluate("window.__xss")).toBeUndefined();
  expect(await page.textContent("#dl-rows tr[data-id='4'] td.err")).toBe(XSS_ERROR);
  expect(await page.textContent("#dl-rows tr[data-id='4'] td.rk")).toBe(XSS_KEY);

  await page.fill("#f-exchange", "shop");
  await page.click("#dl-apply");
  await expect.poll(rowIds(page), { timeout: 10_000 }).toEqual(["2", "1"]);
  expect(await page.textContent("#dl-total")).toBe("2 match");

  await page.click("#dl-retry");
  await page.waitForSelector("#confirm:not([hidden])");
  expect(await page.textContent("#confirm-text")).toBe(
    "Retry 2 outbox dead letters: moved back to be delivered again.",
  );
  expect(await page.textContent("#confirm-filter")).toBe("filter: exchange=shop");
  expect(await page.locator("#confirm-rows tr").count()).toBe(2);
  expect(await pool.query("SELECT count(*)::int AS n FROM outbox_dead_letter")).toMatchObject({ rows: [{ n: 4 }] });
  await shot(page, "2-confirm-retry.png");
  await page.click("#confirm-yes");
  await expect.poll(() => page.textContent("#action-result"), { timeout: 10_000 }).toBe("retried 2");
  await expect.poll(rowIds(page), { timeout: 10_000 }).toEqual([]);
  await shot(page, "3-retried.png");

  const retried = [messageIds.get(1)!, messageIds.get(2)!];
  const { rows } = await pool.query("SELECT message_id::text FROM outbox_message WHERE message_id = ANY($1::uuid[])", [
    retried,
  ]);
  expect(rows).toHaveLength(2);
  const transport = new MemoryTransport();
  const relay = createRelay({ databaseUrl: url, transport, queue: false, logger: quiet, sweepIntervalMs: 100 });
  cleanups.push(() => relay.stop());
  await relay.start();
  await until(() => transport.published.length >= 27, 20_000);
  await relay.stop();
  const published = transport.published.map((m) => m.messageId);
  for (const id of retried) expect(published.filter((p) => p === id)).toHaveLength(1);
  expect(published).toHaveLength(27);
  expect((await pool.query("SELECT count(*)::int AS n FROM outbox_message")).rows[0].n).toBe(0);

  // The charts follow: the backlog falls to 0 and the throughput shows the rows the relay claimed (PostgreSQL's
  // counters, which reach the statistics view up to a second late).
  await expect.poll(() => page.textContent("#cards"), { timeout: 10_000 }).toContain("0outbox due");
  const claimed = async () => {
    const { samples } = (await call(d.port, "GET", "/ui/api/overview")).json();
    return samples.reduce((sum: number, s: { claimedPerSec: number | null }) => sum + (s.claimedPerSec ?? 0), 0);
  };
  await expect.poll(claimed, { timeout: 10_000 }).toBeGreaterThan(0);
  await expect.poll(() => page.textContent("#chart-throughput text"), { timeout: 5_000 }).not.toMatch(/^max 0 /);
  await shot(page, "6-after-relay.png");
});

it("read-only: no retry or purge button, and the API answers 403", async () => {
  await seed(pool, 0);
  const { page, d } = await open({}, /status of 403/);
  await expect.poll(() => page.textContent("#mode"), { timeout: 10_000 }).toBe("read-only");
  await expect.poll(rowIds(page), { timeout: 10_000 }).toHaveLength(4);
  expect(await page.locator("#dl-retry, #dl-purge").count()).toBe(0);
  // What the page would send, sent from the page itself: refused.
  const status = await page.evaluate(`fetch("/ui/api/dead-letters/retry", { method: "POST",
    headers: { "content-type": "application/json", "x-prisma-outbox-dashboard": "1" },
    body: JSON.stringify({ all: true }) }).then((r) => r.status)`);
  expect(status).toBe(403);
  expect((await call(d.port, "GET", "/ui/api/dead-letters")).json().total).toBe(4);
  await shot(page, "4-read-only.png");
});

it("with a token: the page asks for it, then shows the data; a wrong one is refused", async () => {
  await seed(pool, 3);
  const token = "browser-test-token-0123456789abcdef";
  const { page } = await open({ token }, /status of 401/);
  await page.waitForSelector("#login:not([hidden])");
  expect(await page.locator("#cards .card").count()).toBe(0);
  await shot(page, "5-token-asked.png");
  await page.fill("#token", "wrong-token-0123456789abcdef");
  await page.click("#token-save");
  await expect.poll(() => page.locator("#login").isHidden(), { timeout: 10_000 }).toBe(false);
  await page.fill("#token", token);
  await page.click("#token-save");
  await page.waitForSelector("#login[hidden]", { state: "attached" });
  await expect.poll(() => page.textContent("#cards"), { timeout: 10_000 }).toContain("3outbox due");
});
