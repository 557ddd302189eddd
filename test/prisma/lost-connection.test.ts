// A backend terminated just as its new connection is handed to a starting Prisma transaction (the FATAL read in the
// same chunk as the connection's ReadyForQuery): the app's Prisma client built as docs/operating.md recommends
// survives it; the adapter's own pool dies of it. See fixtures/lost-connection.ts for how the moment is made.
import { expect, it } from "vitest";
import { useTestDatabase } from "../support/prisma.js";
import { spawnTsx, useProcessCleanup } from "../support/process-harness.js";

const url = await useTestDatabase();
useProcessCleanup();
const FIXTURE = "test/prisma/fixtures/lost-connection.ts";

it("the recommended pool: the transaction fails with the reason, the next one runs, the process lives", async () => {
  const proc = spawnTsx("lost-connection-pool", FIXTURE, [url, "pool"]);
  const exit = await proc.exited;
  expect(exit.code, proc.log()).toBe(0);
  expect(proc.lines).toContain("transaction: failed (Client has encountered a connection error and is not queryable)");
  expect(proc.lines).toContain("next transaction: ok");
});

it("control: with `new PrismaPg({ connectionString })` the same moment ends the process (why the docs say so)", async () => {
  const proc = spawnTsx("lost-connection-plain", FIXTURE, [url, "plain"]);
  const exit = await proc.exited;
  expect(exit.code, proc.log()).toBe(1);
  expect(proc.log()).toMatch(/Unhandled 'error' event[\s\S]*terminating connection due to administrator command/);
});
