// `prisma-outbox/testing` is a subpath of the package (exports, types) and runs both harnesses without loading amqplib:
// a user's test suite needs no RabbitMQ client, and the kit cannot reach a real broker by accident.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";
import { useTestDatabase } from "../support/prisma.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const databaseUrl = await useTestDatabase();

/** Runs `code` in a fresh Node.js; says whether it resolved amqplib (an ESM resolve hook sees every import). */
function run(code: string): { amqplib: boolean; status: number | null; output: string } {
  const hook = `export async function resolve(s, c, next) { const r = await next(s, c);
    if (r.url.includes("/node_modules/amqplib/")) process.stderr.write("AMQPLIB-LOADED\\n");
    return r; }`;
  const register = `import { register } from "node:module"; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hook)}`)});`;
  const args = ["--import", "tsx", "--import", `data:text/javascript,${encodeURIComponent(register)}`];
  const out = spawnSync(process.execPath, [...args, "--input-type=module", "-e", code], {
    cwd: root,
    encoding: "utf8",
    env: { ...process.env, DATABASE_URL: databaseUrl },
    timeout: 60_000,
  });
  return { amqplib: out.stderr.includes("AMQPLIB-LOADED"), status: out.status, output: out.stdout + out.stderr };
}

it("is exported with its types", () => {
  const pkg = JSON.parse(readFileSync(`${root}package.json`, "utf8"));
  expect(pkg.exports["./testing"]).toEqual({
    types: "./dist/testing/index.d.ts",
    default: "./dist/testing/index.js",
  });
});

it("starts a relay and an inbox on the in-memory broker, end to end, without loading amqplib", () => {
  const code = `
    import { PrismaPg } from "@prisma/adapter-pg";
    import { inbox, outbox } from "./src/index.ts";
    import { MemoryBroker, startInboxHarness, startOutboxHarness, TestClock } from "./src/testing/index.ts";
    import { PrismaClient } from "./test/generated/prisma/client.ts";
    const databaseUrl = process.env.DATABASE_URL;
    const base = new PrismaClient({ adapter: new PrismaPg({ connectionString: databaseUrl }) });
    const prisma = base.$extends(outbox({ exchange: "shop", events: { Order: { create: true } } }));
    const silent = { debug() {}, info() {}, warn() {}, error() {} };
    const box = inbox({ prisma, logger: silent, exchanges: [{ name: "shop", type: "topic" }],
      queue: { name: "q", bindings: [{ exchange: "shop", routingKey: "#" }] },
      handlers: { h: { on: "order.created", handle: async () => {} } } });
    const broker = new MemoryBroker(); const clock = new TestClock();
    const receiving = await startInboxHarness(box, { databaseUrl, broker, clock });
    const sending = await startOutboxHarness({ databaseUrl, broker, clock, exchanges: [{ name: "shop", type: "topic" }], relay: { logger: silent } });
    await prisma.order.create({ data: { number: "subpath-1", amount: 1 } });
    await sending.expectPublished({ routingKey: "order.created" });
    const [outcome] = await receiving.settled();
    process.stdout.write("HANDLED " + outcome.handlers[0].status + "\\n");
    await sending.stop(); await receiving.stop(); await base.$disconnect();
  `;
  const result = run(code);
  expect(result.output).toContain("HANDLED processed");
  expect(result.status).toBe(0);
  expect(result.amqplib).toBe(false);
  // The probe sees amqplib when it is loaded.
  expect(run('await import("amqplib");').amqplib).toBe(true);
});
