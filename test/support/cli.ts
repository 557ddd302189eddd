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
export async function runCli(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], {
    cwd: root,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => {
    stdout += d;
  });
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  const [code] = await once(child, "close");
  return { code: code as number, stdout, stderr };
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
   * Starts `prisma-outbox <args>` without waiting for it, with only PATH and HOME inherited; `imports` are preloaded
   * (`--import`) after tsx, e.g. a fixture that registers an OpenTelemetry SDK.
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
      const preload = imports.flatMap((m) => ["--import", m]);
      const child = spawn(process.execPath, ["--import", "tsx", ...preload, "src/cli/main.ts", ...args], {
        cwd: root,
        env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
        stdio: ["ignore", "pipe", "pipe"],
      });
      children.push(child);
      const out = { stdout: "", stderr: "" };
      child.stdout.on("data", (d) => {
        out.stdout += d;
      });
      child.stderr.on("data", (d) => {
        out.stderr += d;
      });
      const exited = once(child, "exit").then(([code]) => code as number);
      return { child, out, exited };
    },
    killAll() {
      for (const c of children.splice(0)) if (c.exitCode === null) c.kill("SIGKILL");
    },
  };
}
