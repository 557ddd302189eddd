// The worker at start and at stop, run as a supervisor or a container runs it.
// - A database it cannot use is said at once, with PostgreSQL's code, and the worker exits (2: fix the configuration;
//   1: the database did not answer), instead of logging "relay started" and retrying in silence.
// - Signals reach the worker when it is the process that gets them: the bin itself, or `exec` in a shell (a
//   container's command). `npx prisma-outbox worker` does not pass SIGTERM on: npm exits and leaves the worker
//   running, orphaned (see README.md#3-run-the-relay).
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, describe, expect, inject, it } from "vitest";
import { useTestDatabase } from "../support/prisma.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const amqpUrl = inject("amqpUrl");
const url = await useTestDatabase();
const children: ChildProcess[] = [];

/** Runs `command` with `args`; `out` collects stdout and stderr. */
function run(command: string, args: string[], env: Record<string, string>) {
  const child = spawn(command, args, {
    cwd: root,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  const out = { text: "" };
  child.stdout!.on("data", (d) => {
    out.text += d;
  });
  child.stderr!.on("data", (d) => {
    out.text += d;
  });
  const exited = once(child, "exit").then(([code, signal]) => ({ code: code as number | null, signal }));
  return { child, out, exited };
}

const worker = (env: Record<string, string>) =>
  run(process.execPath, ["--import", "tsx", "src/cli/main.ts", "worker"], env);

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});
afterAll(() => {
  for (const c of children) c.kill("SIGKILL");
});

describe("a database the worker cannot use is said at once", () => {
  it("a database that does not exist: exits 2 with 3D000", async () => {
    const missing = new URL(url);
    missing.pathname = "/prisma_outbox_no_such_db";
    const started = Date.now();
    const w = worker({ DATABASE_URL: missing.toString(), AMQP_URL: amqpUrl });
    expect((await w.exited).code).toBe(2);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(w.out.text).toMatch(/relay could not start.*3D000/);
    expect(w.out.text).not.toMatch(/relay started/);
  });

  it("nothing listening on the database's port: exits 1 with ECONNREFUSED", async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as { port: number }).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const closed = new URL(url);
    closed.hostname = "127.0.0.1";
    closed.port = String(port);
    const w = worker({ DATABASE_URL: closed.toString(), AMQP_URL: amqpUrl });
    expect((await w.exited).code).toBe(1);
    expect(w.out.text).toMatch(/relay could not start.*ECONNREFUSED/);
    expect(w.out.text).not.toMatch(/relay started/);
  });
});

describe("signals reach the worker run as the process itself", () => {
  async function started(w: ReturnType<typeof worker>) {
    await expect.poll(() => w.out.text, { timeout: 30_000 }).toMatch(/relay started/);
  }

  it("`exec` in a shell (a container's command): SIGTERM to the shell's pid stops the worker gracefully, exit 0", async () => {
    const w = run("sh", ["-c", `exec "${process.execPath}" --import tsx src/cli/main.ts worker`], {
      DATABASE_URL: url,
      AMQP_URL: amqpUrl,
    });
    await started(w);
    w.child.kill("SIGTERM");
    expect(await w.exited).toEqual({ code: 0, signal: null });
    expect(w.out.text).toMatch(/stopping signal="SIGTERM"/);
    expect(w.out.text).toMatch(/relay stopped/);
  });

  it("Ctrl-C (SIGINT) stops it gracefully too, exit 0", async () => {
    const w = worker({ DATABASE_URL: url, AMQP_URL: amqpUrl });
    await started(w);
    w.child.kill("SIGINT");
    expect(await w.exited).toEqual({ code: 0, signal: null });
    expect(w.out.text).toMatch(/relay stopped/);
  });
});
