// `prisma-outbox/testing` is a subpath of the package (exports, types) and runs both harnesses without loading amqplib:
// a user's test suite needs no RabbitMQ client, and the kit cannot reach a real broker by accident.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";
import { probeImports } from "../support/module-probe.js";
import { useTestDatabase } from "../support/prisma.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const databaseUrl = await useTestDatabase();

/** Runs `code` in a fresh Node.js on this file's database; says whether it loaded amqplib. */
function run(code: string): { amqplib: boolean; status: number | null; output: string } {
  const { loaded, status, output } = probeImports(code, "amqplib", { ...process.env, DATABASE_URL: databaseUrl });
  return { amqplib: loaded, status, output };
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
