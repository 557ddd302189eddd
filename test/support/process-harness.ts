// One process harness for the reliability suite and any test that runs the package's processes: TypeScript files under
// tsx in processes of their own, their output captured line by line, killed after each test (and with the test
// process, however that ends).
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, afterEach, beforeEach } from "vitest";

const root = fileURLToPath(new URL("../../", import.meta.url));

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Date.now() when it exited. */
  at: number;
}

export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Lines written to stdout and stderr, in arrival order. */
  readonly lines: string[];
  readonly stdout: string[];
  /** The whole captured output, one line each. */
  log(): string;
  /** True until the process exited and its output was read to the end. */
  readonly running: boolean;
  /** How it exited, once `running` is false. */
  readonly exit: Exit | undefined;
  /**
   * Resolves once the process exited and its stdout and stderr closed: every line it wrote is in `lines` by then.
   * `at` is when it exited.
   */
  readonly exited: Promise<Exit>;
  /**
   * Resolves with the `occurrence`-th line (past or future; 1 by default) matching `pattern`; rejects when the process
   * exits first, or after `timeoutMs`.
   */
  waitForLine(pattern: RegExp, timeoutMs?: number, occurrence?: number): Promise<string>;
  /** How many lines so far match `pattern`. */
  countLines(pattern: RegExp): number;
  /** Writes `line` and a newline to its stdin (spawned with `{ stdin: true }`). */
  writeLine(line: string): void;
  kill(signal: NodeJS.Signals): void;
}

const live = new Set<Proc>();
/** Every process started by the current test, for its logs when it fails. */
let startedInTest: Proc[] = [];
/**
 * False from the moment a test's cleanup starts until the next test starts (and for good after the file's last
 * test): a test body that timed out and still runs must not start processes nobody will kill.
 */
let spawning = true;

/** Preloaded into every child: it dies with this process (see the fixture). */
const dieWithParent = pathToFileURL(join(root, "test/reliability/fixtures/die-with-parent.ts")).href;

export interface SpawnOptions {
  /** A pipe to its stdin, for `writeLine` (else stdin is /dev/null). */
  stdin?: boolean;
  /** Node options before the script, after the harness's preloads (e.g. the soak run's `--expose-gc`, its probe). */
  execArgv?: string[];
}

/**
 * Runs a TypeScript file under tsx in a process of its own, capturing its output. The process dies with the test
 * process (fixtures/die-with-parent.ts), however that ends.
 */
export function spawnTsx(
  name: string,
  script: string,
  args: string[],
  env: Record<string, string> = {},
  options: SpawnOptions = {},
): Proc {
  if (!spawning) {
    throw new Error(`not starting ${name}: the test's cleanup has started (did the test time out?)`);
  }
  const childEnv: NodeJS.ProcessEnv = { ...process.env };
  // The suite decides every setting of the processes it starts.
  for (const key of Object.keys(childEnv)) if (key.startsWith("OUTBOX_")) delete childEnv[key];
  Object.assign(childEnv, env);
  const child = spawn(
    process.execPath,
    ["--import", "tsx", "--import", dieWithParent, ...(options.execArgv ?? []), script, ...args],
    {
      cwd: root,
      env: childEnv,
      // The IPC channel's end is how the child learns that this process is gone (and the soak probe's way up).
      stdio: [options.stdin ? "pipe" : "ignore", "pipe", "pipe", "ipc"],
    },
  );
  const lines: string[] = [];
  const stdout: string[] = [];
  const lineWaiters = new Set<() => void>();
  let exitedAt: number | undefined;
  let exit: Exit | undefined;
  child.once("exit", () => {
    exitedAt = Date.now();
  });
  // A spawn that fails (it should not: the executable is this Node) is reported in the log, then as its close.
  child.on("error", (error) => lines.push(`[harness] ${name}: ${error.message}`));
  child.stdin?.on("error", () => {}); // writing to a child that just died
  // 'close', not 'exit': the output may still hold lines (the last "relay stopped") when the process has exited.
  const exited = new Promise<Exit>((resolve) => {
    child.once("close", (code, signal) => {
      exit = { code, signal, at: exitedAt ?? Date.now() };
      live.delete(proc);
      for (const w of lineWaiters) w();
      resolve(exit);
    });
  });
  const capture = (stream: NodeJS.ReadableStream, into: string[] | undefined) => {
    let partial = "";
    const push = (line: string) => {
      lines.push(line);
      into?.push(line);
    };
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => {
      const parts = (partial + chunk).split("\n");
      partial = parts.pop() ?? "";
      for (const line of parts) push(line);
      for (const w of lineWaiters) w();
    });
    stream.on("end", () => {
      if (partial !== "") push(partial);
      partial = "";
    });
  };
  capture(child.stdout!, stdout);
  capture(child.stderr!, undefined);
  const proc: Proc = {
    name,
    child,
    pid: child.pid ?? -1,
    lines,
    stdout,
    log: () => lines.map((l) => `[${name} ${child.pid}] ${l}`).join("\n"),
    get running() {
      return exit === undefined;
    },
    get exit() {
      return exit;
    },
    exited,
    countLines: (pattern) => lines.filter((l) => pattern.test(l)).length,
    waitForLine(pattern, timeoutMs = 30_000, occurrence = 1) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const line = lines.filter((l) => pattern.test(l))[occurrence - 1];
          if (line !== undefined) done(() => resolve(line));
          else if (exit) {
            done(() =>
              reject(
                new Error(`${name} exited (${exit?.code ?? exit?.signal}) before printing ${pattern}:\n${proc.log()}`),
              ),
            );
          }
        };
        const timer = setTimeout(
          () =>
            done(() => reject(new Error(`${name} did not print ${pattern} within ${timeoutMs} ms:\n${proc.log()}`))),
          timeoutMs,
        );
        const done = (settle: () => void) => {
          clearTimeout(timer);
          lineWaiters.delete(check);
          settle();
        };
        lineWaiters.add(check);
        check();
      });
    },
    writeLine(line) {
      if (!child.stdin) throw new Error(`${name} was not spawned with { stdin: true }`);
      child.stdin.write(`${line}\n`);
    },
    kill(signal) {
      if (exitedAt === undefined) child.kill(signal);
    },
  };
  live.add(proc);
  startedInTest.push(proc);
  return proc;
}

/**
 * The processes of the current test that have exited, as "inbox-1 (pid 123) exited with 1": for the message of a wait
 * that timed out, since a worker that died says more than the count it did not reach.
 */
export function exitedInTest(): string[] {
  return startedInTest
    .filter((p) => p.exit !== undefined)
    .map((p) => `${p.name} (pid ${p.pid}) exited with ${p.exit?.code ?? p.exit?.signal}`);
}

/** Sends `signal` and waits for the exit. */
export async function killProc(proc: Proc, signal: NodeJS.Signals = "SIGKILL"): Promise<Exit> {
  proc.kill(signal);
  return proc.exited;
}

/** SIGKILLs every process the suite started that still runs, and waits for them. */
export async function killAll(): Promise<void> {
  await Promise.all([...live].map((p) => killProc(p, "SIGKILL")));
}

// Last resort when this process exits normally with children still running (a crash or a signal does not run this:
// there, each child's die-with-parent preload ends it).
process.once("exit", () => {
  for (const p of live) p.kill("SIGKILL");
});

/**
 * Registers the per-file hooks: after each test, every process still running is killed (and, when the test failed,
 * the tail of each one's output printed); `cleanups` run after each test too. From the start of that cleanup until the
 * next test starts, spawnTsx refuses to start anything.
 */
export function useProcessCleanup(): { defer(cleanup: () => Promise<unknown> | unknown): void } {
  const cleanups: Array<() => Promise<unknown> | unknown> = [];
  beforeEach(() => {
    spawning = true;
  });
  afterEach(async (context) => {
    spawning = false;
    await killAll();
    if (context.task.result?.state === "fail") {
      for (const p of startedInTest) {
        const tail = p.lines.slice(-40).map((l) => `[${p.name} ${p.pid}] ${l}`);
        if (tail.length > 0) console.error(`--- last lines of ${p.name} (pid ${p.pid})\n${tail.join("\n")}`);
      }
    }
    startedInTest = [];
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  afterAll(async () => {
    spawning = false;
    await killAll();
  });
  return { defer: (cleanup) => cleanups.push(cleanup) };
}
