// The words of the doctor's report: a finding per check, its level, and the helpers the checks share to write one.
import type pg from "pg";

export type FindingLevel = "ok" | "warning" | "error";

export interface Finding {
  /**
   * Stable id: "xmin-horizon", "autovacuum-disabled", "autovacuum-behind", "bloat", "schema-drift", "outbox-backlog",
   * "inbox-backlog", "receiver-stalled", "dead-letters", "workers-connected".
   */
  check: string;
  level: FindingLevel;
  /** One line: what was found (figures included). */
  summary: string;
  /** What it costs if left. */
  cost: string;
  /** What to do. */
  action: string;
  /** Figures for --json and the dashboard. */
  details: Record<string, unknown>;
}

/** What `doctor()` and the CLI's `--json` return. */
export interface DoctorReport {
  /** The worst level of the findings. */
  level: FindingLevel;
  findings: Finding[];
  checkedAt: Date;
  schema: string;
}

/** The check ids, as the metric's `check` attribute and the CLI show them. */
export const CHECK_IDS = [
  "xmin-horizon",
  "autovacuum-disabled",
  "autovacuum-behind",
  "bloat",
  "schema-drift",
  "outbox-backlog",
  "inbox-backlog",
  "receiver-stalled",
  "dead-letters",
  "workers-connected",
] as const;
export type CheckId = (typeof CHECK_IDS)[number];

const RANK: Record<FindingLevel, number> = { ok: 0, warning: 1, error: 2 };

/** 0 ok, 1 warning, 2 error: the exit code of `prisma-outbox doctor` and the value of the warnings gauge. */
export function levelRank(level: FindingLevel): number {
  return RANK[level];
}

export function worst(levels: Iterable<FindingLevel>): FindingLevel {
  let w: FindingLevel = "ok";
  for (const l of levels) if (RANK[l] > RANK[w]) w = l;
  return w;
}

/** The level of a figure against a warning and an error threshold (reached = that level). */
export function levelOf(value: number, warnAt: number, errorAt: number): FindingLevel {
  if (value >= errorAt) return "error";
  if (value >= warnAt) return "warning";
  return "ok";
}

/** 350 ms, 4.2 s, 3 min 20 s, 2 h 5 min, 3 d 4 h. */
export function ageText(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.floor(s % 60)} s`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3600)} h`;
}

/** 512 B, 3.4 MiB, 1.2 GiB. */
export function bytesText(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${Math.round(v)} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** What a database answers to: a pg.Pool, or a pg.Client of the app's. */
export type Queryable = pg.Pool | pg.ClientBase;

/** The rows of one statement (one place that narrows the union: both have the same query()). */
export async function rowsOf<T>(db: Queryable, sql: string, params: unknown[] = []): Promise<T[]> {
  return (await (db as pg.ClientBase).query(sql, params)).rows as T[];
}

/** What every check is given: the database, the resolved options, and which of our tables exist. */
export interface CheckContext {
  db: Queryable;
  schema: string;
  cheap: boolean;
  /** Our tables that exist in the schema. */
  present: Set<string>;
}
