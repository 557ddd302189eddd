// CPU time per message, per process, for every benchmark: read from /proc/<pid>/stat (utime + stime) before and
// after a case, so that the cost of a message can be compared across machines (rates cannot: they move with the
// machine and its other load; CPU time per message moves much less).
//
// The processes of a case: the bench's own (named by the bench: "app", "relay", ...), any child it spawned (a worker,
// an inbox process, the consumer), PostgreSQL and RabbitMQ.
// - PostgreSQL: the backends connected to the bench's databases (their process title names the database, see
//   cluster_name / update_process_title), plus the server's own processes that serve every database (postmaster,
//   walwriter, checkpointer, background writer, autovacuum launcher: WAL and checkpoints are part of a write's cost).
//   Backends of other databases (other work on a shared server) are left out. A backend that exits during the case
//   takes its CPU time with it: cases are measured before their clients close.
// - RabbitMQ: every beam.smp process (the whole broker, which may serve other work too).
// Without /proc (not Linux) every figure is NaN and the line says so.
import { readdirSync, readFileSync } from "node:fs";
import { printTable } from "./support.js";

/**
 * The kernel's counters of this process (Linux): read and write system calls, and context switches (voluntary: it
 * waited; involuntary: the scheduler took the core away, which a machine with more runnable processes than cores
 * does). Zero without /proc.
 */
export function kernelCounts(): Record<string, number> {
  const counts: Record<string, number> = {};
  try {
    const text = readFileSync("/proc/self/io", "utf8") + readFileSync("/proc/self/status", "utf8");
    for (const [, k, v] of text.matchAll(
      /^(syscr|syscw|voluntary_ctxt_switches|nonvoluntary_ctxt_switches):\s+(\d+)/gm,
    )) {
      counts[k!] = Number(v);
    }
  } catch {}
  return counts;
}

const TICK_MS = 10; // USER_HZ is 100 on every Linux ABI Node runs on: /proc's times are in 1/100 s

/** utime + stime of a process in ms, or undefined when it is gone (or there is no /proc). */
function processMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name is in parentheses and may hold spaces: the fields after it are split from its last ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
  } catch {
    return undefined;
  }
}

function commandOf(pid: number): { comm: string; cmdline: string } | undefined {
  try {
    const comm = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
    return { comm, cmdline };
  } catch {
    return undefined;
  }
}

/** Whether a postgres process counts for the bench: a backend of one of `databases`, or a server process. */
function ourPostgres(cmdline: string, databases: readonly string[]): boolean {
  if (!cmdline.startsWith("postgres:")) return true; // the postmaster (its title is its command line)
  if (databases.some((d) => cmdline.includes(` ${d} `))) return true;
  // A client backend's title is "postgres: [cluster: ]user database host(port) state"; the server's own processes
  // name themselves.
  return /(checkpointer|background writer|walwriter|autovacuum launcher|logical replication launcher|stats collector|archiver)/.test(
    cmdline,
  );
}

/** The pids of the PostgreSQL and RabbitMQ processes the bench counts, by name. */
function serverPids(databases: readonly string[]): { postgres: number[]; rabbitmq: number[] } {
  const postgres: number[] = [];
  const rabbitmq: number[] = [];
  let entries: string[] = [];
  try {
    entries = readdirSync("/proc");
  } catch {
    return { postgres, rabbitmq };
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    const command = commandOf(pid);
    if (!command) continue;
    if (command.comm === "postgres" && ourPostgres(command.cmdline, databases)) postgres.push(pid);
    else if (command.comm === "beam.smp") rabbitmq.push(pid);
  }
  return { postgres, rabbitmq };
}

/** CPU ms per process group over a case. */
export type CpuUsage = Record<string, number>;

/** The database name of a connection string. */
export function databaseOf(url: string): string {
  return decodeURIComponent(new URL(url).pathname.slice(1));
}

/**
 * Starts measuring. `processes`: the bench's own processes by the name they get in the table (the bench's process is
 * `process.pid`); `databases`: the databases whose backends count. The servers' processes are looked up now and
 * again at the end (a backend that connected during the case counts from its start).
 */
export function startCpu(processes: Record<string, number | undefined>, databases: readonly string[]) {
  const before = new Map<number, number>();
  const own = Object.entries(processes).filter((e): e is [string, number] => e[1] !== undefined);
  for (const [, pid] of own) before.set(pid, processMs(pid) ?? 0);
  const first = serverPids(databases);
  for (const pid of [...first.postgres, ...first.rabbitmq]) before.set(pid, processMs(pid) ?? 0);
  const since = (pids: number[]) =>
    pids.reduce((sum, pid) => {
      const now = processMs(pid);
      return now === undefined ? sum : sum + Math.max(0, now - (before.get(pid) ?? 0));
    }, 0);
  return {
    /** CPU ms since the start, per process group. */
    stop(): CpuUsage {
      const usage: CpuUsage = {};
      for (const [name, pid] of own) usage[name] = (usage[name] ?? 0) + since([pid]);
      const last = serverPids(databases);
      usage.postgres = since(last.postgres);
      usage.rabbitmq = since(last.rabbitmq);
      // BENCH_CPU_DETAIL=1: which PostgreSQL processes took the time (a diagnosis).
      if (process.env.BENCH_CPU_DETAIL) {
        const detail = last.postgres
          .map((pid) => ({ ms: since([pid]), title: commandOf(pid)?.cmdline.trim() ?? String(pid) }))
          .filter((p) => p.ms > 0)
          .sort((a, b) => b.ms - a.ms);
        for (const p of detail) process.stderr.write(`  postgres ${p.ms} ms: ${p.title}\n`);
      }
      return usage;
    },
  };
}

/** Runs `work` measured: its result and the CPU ms per process group it took. */
export async function measureCpu<T>(
  processes: Record<string, number | undefined>,
  databases: readonly string[],
  work: () => Promise<T>,
): Promise<{ result: T; cpu: CpuUsage }> {
  const meter = startCpu(processes, databases);
  const result = await work();
  return { result, cpu: meter.stop() };
}

/** One row of the CPU table: a case, its CPU per process group, and how many messages it moved. */
export interface CpuRow {
  case: string;
  cpu: CpuUsage;
  messages: number;
}

/**
 * Prints CPU time per message in µs, one row a case, one column a process group (in the order first seen), and the
 * total. A process group a case did not run reads "-".
 */
export function printCpuTable(title: string, rows: readonly CpuRow[]): void {
  if (rows.length === 0) return;
  const groups: string[] = [];
  for (const row of rows) for (const name of Object.keys(row.cpu)) if (!groups.includes(name)) groups.push(name);
  const table = rows.map((row) => {
    const line: Record<string, string> = { case: row.case, messages: String(row.messages) };
    let total = 0;
    for (const name of groups) {
      const ms = row.cpu[name];
      if (ms === undefined) line[name] = "-";
      else {
        total += ms;
        line[name] = ((ms * 1000) / row.messages).toFixed(1);
      }
    }
    line.total = ((total * 1000) / row.messages).toFixed(1);
    return line;
  });
  console.log(`\n${title}: CPU time per message, µs (utime + stime from /proc, 10 ms resolution per process)`);
  printTable(table);
}

/** Sums the CPU and the messages of several windows of the same case (rounds, interleaved halves). */
export class CpuTally {
  readonly rows: CpuRow[] = [];

  add(label: string, cpu: CpuUsage, messages: number): void {
    let row = this.rows.find((r) => r.case === label);
    if (!row) {
      row = { case: label, cpu: {}, messages: 0 };
      this.rows.push(row);
    }
    for (const [name, ms] of Object.entries(cpu)) row.cpu[name] = (row.cpu[name] ?? 0) + ms;
    row.messages += messages;
  }
}
