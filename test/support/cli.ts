// Runs `prisma-outbox <args>` as users run it, in its own process (from the sources, through tsx), to completion.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Only PATH and HOME are inherited: what the command reads comes from `env` and `args`. */
function spawnCli(args: string[], env: Record<string, string | undefined>, imports: string[] = []) {
  const preload = imports.flatMap((m) => ["--import", m]);
  const child = spawn(process.execPath, ["--import", "tsx", ...preload, "src/cli/main.ts", ...args], {
    cwd: root,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const out = { stdout: "", stderr: "" };
  child.stdout.on("data", (d) => {
    out.stdout += d;
  });
  child.stderr.on("data", (d) => {
    out.stderr += d;
  });
  return { child, out };
}

/** Runs the command to its end: resolves once it exited and its output closed. */
export async function runCli(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  const { child, out } = spawnCli(args, env);
  const [code] = await once(child, "close");
  return { code: code as number, ...out };
}

export interface RunningCli {
  child: ChildProcess;
  /** Everything it printed so far. */
  out: { stdout: string; stderr: string };
  /** Its exit code, once it exited. */
  exited: Promise<number>;
}

export interface CliProcesses {
  /**
   * Starts `prisma-outbox <args>` without waiting for it, as runCli does; `imports` are preloaded (`--import`) after
   * tsx, e.g. a fixture that registers an OpenTelemetry SDK.
   */
  start(args: string[], env?: Record<string, string | undefined>, options?: { imports?: string[] }): RunningCli;
  /** SIGKILLs every process it started that still runs (a test's afterEach). */
  killAll(): void;
}

/** The CLI processes of one test file. */
export function cliProcesses(): CliProcesses {
  const children: ChildProcess[] = [];
  return {
    start(args, env = {}, { imports = [] } = {}) {
      const { child, out } = spawnCli(args, env, imports);
      children.push(child);
      const exited = once(child, "exit").then(([code]) => code as number);
      return { child, out, exited };
    },
    killAll() {
      for (const c of children.splice(0)) if (c.exitCode === null) c.kill("SIGKILL");
    },
  };
}
