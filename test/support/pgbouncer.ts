// A PgBouncer of its own for a test: Debian's package, started on a free port in transaction mode with an otherwise
// default configuration (no ignore_startup_parameters), in front of the test's PostgreSQL. `npm test` installs the
// package first where it can (scripts/test-prerequisites.mjs); where pgbouncer is missing anyway the tests that need
// it fail with the command to run, never skip: a guarantee nobody runs is no guarantee.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const CANDIDATES = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer", "/usr/local/bin/pgbouncer"];

/** The pgbouncer executable, or undefined. */
export function findPgbouncer(): string | undefined {
  for (const path of CANDIDATES) if (existsSync(path)) return path;
  try {
    return execFileSync("sh", ["-c", "command -v pgbouncer"], { encoding: "utf8" }).trim() || undefined;
  } catch {
    return undefined;
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no free port");
  return address.port;
}

export interface Pgbouncer {
  readonly port: number;
  /** `url` (a PostgreSQL URL of the test's server) with host and port replaced by PgBouncer's. */
  url(url: string): string;
  /** What PgBouncer logged so far. */
  log(): string;
  stop(): Promise<void>;
}

/**
 * Starts PgBouncer in transaction mode in front of the server of `databaseUrl`; resolves once it accepts connections.
 * With `password`, clients must give it (auth_type md5); else PgBouncer trusts them, like the test server.
 */
export async function startPgbouncer(databaseUrl: string, options: { password?: string } = {}): Promise<Pgbouncer> {
  const binary = findPgbouncer();
  if (!binary)
    throw new Error("pgbouncer is not installed: apt-get install -y pgbouncer (npm test does it when run as root)");
  const target = new URL(databaseUrl);
  const user = decodeURIComponent(target.username || "postgres");
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "prisma-outbox-pgbouncer-"));
  const ini = join(dir, "pgbouncer.ini");
  const logfile = join(dir, "pgbouncer.log");
  // auth_type trust: the test server trusts local connections; PgBouncer still wants the user in auth_file.
  writeFileSync(join(dir, "userlist.txt"), `"${user}" "${options.password ?? decodeURIComponent(target.password)}"\n`);
  writeFileSync(
    ini,
    `[databases]
* = host=${target.hostname} port=${target.port || 5432}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir =
auth_type = ${options.password === undefined ? "trust" : "md5"}
auth_file = ${join(dir, "userlist.txt")}
pool_mode = transaction
logfile = ${logfile}
pidfile = ${join(dir, "pgbouncer.pid")}
max_client_conn = 500
default_pool_size = 20
`,
  );
  // PgBouncer refuses to run as root: it switches to the given user (-u), who must be able to read the files.
  const args = [ini];
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
    for (const file of [dir, ini, join(dir, "userlist.txt")]) chownSync(file, uid, gid);
    args.unshift("-u", "postgres");
  }
  const child: ChildProcess = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout?.on("data", (d) => (output += d));
  child.stderr?.on("data", (d) => (output += d));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const log = () => {
    try {
      return output + readFileSync(logfile, "utf8");
    } catch {
      return output;
    }
  };
  const deadline = performance.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`pgbouncer exited at start:\n${log()}`);
    if (await answers(port)) break;
    if (performance.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`pgbouncer did not listen on ${port} within 10 s:\n${log()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    url(url) {
      const u = new URL(url);
      u.hostname = "127.0.0.1";
      u.port = String(port);
      return u.toString();
    },
    log,
    async stop() {
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
        if (child.exitCode === null) child.kill("SIGKILL");
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}
