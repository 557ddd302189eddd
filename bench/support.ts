// Shared by the benchmarks: servers, a database of their own, percentiles and a table printer.

import pg from "pg";
import { createTemplateDatabase, createTestDatabase, dropDatabase } from "../test/support/database.js";
import { resolveServers } from "../test/support/servers.js";

export async function benchDatabase() {
  const servers = await resolveServers();
  const template = await createTemplateDatabase(servers.databaseUrl);
  const db = await createTestDatabase(servers.databaseUrl, template);
  // BENCH_SYNCHRONOUS_COMMIT=off: the bench's database commits without waiting for its WAL flush, to see what the
  // disk's fsync adds to a latency (a diagnosis only: a crash then loses the last commits, outbox rows included).
  const syncCommit = process.env.BENCH_SYNCHRONOUS_COMMIT;
  if (syncCommit !== undefined) {
    if (!/^(on|off|local|remote_write|remote_apply)$/.test(syncCommit)) {
      throw new Error(`BENCH_SYNCHRONOUS_COMMIT: on, off, local, remote_write or remote_apply, not ${syncCommit}`);
    }
    const client = new pg.Client({ connectionString: servers.databaseUrl });
    await client.connect();
    const name = decodeURIComponent(new URL(db.url).pathname.slice(1));
    await client.query(`ALTER DATABASE "${name.replaceAll('"', '""')}" SET synchronous_commit = ${syncCommit}`);
    await client.end();
    process.stderr.write(`synchronous_commit = ${syncCommit} for ${name}\n`);
  }
  return {
    url: db.url,
    amqpUrl: servers.amqpUrl,
    adminUrl: servers.databaseUrl,
    async cleanup() {
      await db.drop();
      await dropDatabase(servers.databaseUrl, template);
      await servers.stop();
    },
  };
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export function summarize(samples: number[]) {
  const s = [...samples].sort((a, b) => a - b);
  return { n: s.length, p50: percentile(s, 50), p95: percentile(s, 95), p99: percentile(s, 99), max: s.at(-1)! };
}

export function printTable(rows: Array<Record<string, string | number>>): void {
  const cols = Object.keys(rows[0] ?? {});
  const cell = (v: string | number) => (typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(3)) : v);
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]!).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i]!)).join("  ");
  console.log(line(cols));
  console.log(line(widths.map((w) => "-".repeat(w))));
  for (const r of rows) console.log(line(cols.map((c) => cell(r[c]!))));
}
