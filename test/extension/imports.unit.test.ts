// An app that only writes to the outbox must not load amqplib (nor the relay's pg pool code paths).
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";
import { probeImports } from "../support/module-probe.js";

const root = fileURLToPath(new URL("../../", import.meta.url));

function loadedAfter(code: string, module = "amqplib"): boolean {
  const script = `
    import { createRequire } from "node:module";
    ${code}
    const cache = Object.keys(createRequire(import.meta.url).cache);
    process.stdout.write(String(cache.some((k) => k.includes("/node_modules/${module}/"))));
  `;
  const out = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: root });
  return out.toString() === "true";
}

it("importing the package (the write side) does not load amqplib", () => {
  expect(loadedAfter('const { outbox } = await import("./src/index.ts"); outbox({ exchange: "x" });')).toBe(false);
  // The probe can see amqplib when it is loaded.
  expect(loadedAfter('await import("amqplib");')).toBe(true);
});

/** Whether running `code` imports an ES module of @opentelemetry/sdk-metrics (ESM: not in require.cache). */
const importsSdkMetrics = (code: string) => probeImports(code, "@opentelemetry/sdk-metrics").loaded;

it("the package loads no OpenTelemetry SDK, only the API (the CLI loads sdk-metrics for --metrics-port)", () => {
  const app =
    'const m = await import("./src/index.ts"); m.outbox({ exchange: "x" }); m.createRelay({ databaseUrl: "postgres://h/d", amqpUrl: "amqp://h" });';
  expect(importsSdkMetrics(app)).toBe(false);
  // The probe sees it when it is loaded.
  expect(importsSdkMetrics('await import("@opentelemetry/sdk-metrics");')).toBe(true);
});
