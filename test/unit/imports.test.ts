// An app that only writes to the outbox must not load amqplib (nor the relay's pg pool code paths).
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

const root = fileURLToPath(new URL("../../", import.meta.url));

function loadedAfter(code: string): boolean {
  const script = `
    import { createRequire } from "node:module";
    ${code}
    const cache = Object.keys(createRequire(import.meta.url).cache);
    process.stdout.write(String(cache.some((k) => k.includes("/node_modules/amqplib/"))));
  `;
  const out = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: root });
  return out.toString() === "true";
}

it("importing the package (the write side) does not load amqplib", () => {
  expect(loadedAfter('const { outbox } = await import("./src/index.ts"); outbox({ exchange: "x" });')).toBe(false);
  // The probe can see amqplib when it is loaded.
  expect(loadedAfter('await import("amqplib");')).toBe(true);
});
