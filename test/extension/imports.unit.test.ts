// An app that only writes to the outbox must not load amqplib (nor the relay's pg pool code paths).
import { execFileSync, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

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
function importsSdkMetrics(code: string): boolean {
  const hook = `export async function resolve(s, c, next) { const r = await next(s, c);
    if (r.url.includes("/node_modules/@opentelemetry/sdk-metrics/")) process.stderr.write("SDK-METRICS-LOADED\\n");
    return r; }`;
  const register = `import { register } from "node:module"; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hook)}`)});`;
  const args = ["--import", "tsx", "--import", `data:text/javascript,${encodeURIComponent(register)}`];
  const out = spawnSync(process.execPath, [...args, "--input-type=module", "-e", code], {
    cwd: root,
    encoding: "utf8",
  });
  return out.stderr.includes("SDK-METRICS-LOADED");
}

it("the package loads no OpenTelemetry SDK, only the API (the CLI loads sdk-metrics for --metrics-port)", () => {
  const app =
    'const m = await import("./src/index.ts"); m.outbox({ exchange: "x" }); m.createRelay({ databaseUrl: "postgres://h/d", amqpUrl: "amqp://h" });';
  expect(importsSdkMetrics(app)).toBe(false);
  // The probe sees it when it is loaded.
  expect(importsSdkMetrics('await import("@opentelemetry/sdk-metrics");')).toBe(true);
});
