// The example's page in a real browser: headless Chromium (Debian's `chromium` package, found with
// `command -v chromium`; npm test installs it) driven by playwright-core. It clicks the button, sees the progress and
// the report succeed, and saves a screenshot of the finished page in the test's temporary directory.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { afterAll, expect, inject, it } from "vitest";
import { newPool, useTestDatabase } from "../support/prisma.js";
import { useProcessCleanup } from "../support/process-harness.js";
import { exampleApp } from "./example-app.js";

const amqpUrl = inject("amqpUrl");
const databaseUrl = await useTestDatabase();
const pool = newPool(databaseUrl);
const cleanup = useProcessCleanup();
afterAll(() => pool.end());

function chromiumPath(): string {
  try {
    return execFileSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).trim();
  } catch {
    throw new Error("chromium is not installed: apt-get install -y chromium (npm test does it when run as root)");
  }
}

it("clicks the button, sees progress, then the report succeed; saves a screenshot", async () => {
  const a = exampleApp(databaseUrl, amqpUrl, { REPORT_STEP_MS: "300" });
  await a.startWorker();
  const { url } = await a.startServer();
  const dir = mkdtempSync(join(tmpdir(), "prisma-outbox-browser-"));
  const context = await chromium.launchPersistentContext(join(dir, "profile"), {
    executablePath: chromiumPath(),
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
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
