// PLACEHOLDER until branch h-doctor is merged (the contract of /tmp/p/ops-api.md): the dashboard codes against this
// shape; the doctor helper's module replaces this file whole.
import type pg from "pg";

export type FindingLevel = "ok" | "warning" | "error";
export interface Finding {
  check: string;
  level: FindingLevel;
  summary: string;
  cost: string;
  action: string;
  details: Record<string, unknown>;
}
export interface DoctorReport {
  level: FindingLevel;
  findings: Finding[];
  checkedAt: Date;
  schema: string;
}
export interface DoctorOptions {
  schema?: string;
  checks?: "all" | "cheap";
}

export async function doctor(_pool: pg.Pool, options: DoctorOptions = {}): Promise<DoctorReport> {
  return { level: "ok", findings: [], checkedAt: new Date(), schema: options.schema ?? "public" };
}
