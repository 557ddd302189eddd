// The example's page in a real browser: headless Chromium (Debian's `chromium` package, found with
// `command -v chromium`; npm test installs it) driven by playwright-core. It clicks the button, sees the progress and
// the report succeed, and saves a screenshot of the finished page in the test's temporary directory.
import { existsSync, mkdtempSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, inject, it } from "vitest";
import { launchChromium } from "../support/chromium.js";
import { newPool, useTestDatabase } from "../support/prisma.js";
import { useProcessCleanup } from "../support/process-harness.js";
import { exampleApp } from "./example-app.js";

const amqpUrl = inject("amqpUrl");
const databaseUrl = await useTestDatabase();
const pool = newPool(databaseUrl);
const cleanup = useProcessCleanup();
afterAll(() => pool.end());

it("clicks the button, sees progress, then the report succeed; saves a screenshot", async () => {
  const a = exampleApp(databaseUrl, amqpUrl, { REPORT_STEP_MS: "300" });
  await a.startWorker();
  const { url } = await a.startServer();
  const dir = mkdtempSync(join(tmpdir(), "prisma-outbox-browser-"));
  const context = await launchChromium(join(dir, "profile"));
  cleanup.defer(() => context.close());
  const page = context.pages()[0] ?? (await context.newPage());
  await page.goto(`${url}/`);
  await page.click("#start");
  await page.waitForSelector("#state.running", { timeout: 30_000 });
  // A string, evaluated in the page (this project's TypeScript has no DOM types).
  await page.waitForFunction("Number(document.getElementById('bar').value) > 0", null, { timeout: 30_000 });
  await page.waitForSelector("#state.succeeded", { timeout: 30_000 });
  expect(await page.textContent("#message")).toMatch(/^Report of .*: total 55$/);
  expect(await page.locator("#report tr").count()).toBe(11);
  const screenshot = join(dir, "finished.png");
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`screenshot: ${screenshot}`);
  expect(existsSync(screenshot) && statSync(screenshot).size > 1_000).toBe(true);
  const { rows } = await pool.query("SELECT status, attempts FROM outbox_request");
  expect(rows).toEqual([{ status: "succeeded", attempts: 1 }]);
});
