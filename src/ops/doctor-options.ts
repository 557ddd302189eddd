// Options of `doctor()`: the checks to run and the thresholds that make a finding a warning or an error, typed,
// documented, defaulted and validated in one place (src/config/validate.ts: the same words as every other option).
import { enumOption, expectNumber, integerOption, rejectUnknownKeys, schemaOption } from "../config/validate.js";
import { OutboxConfigError } from "../errors.js";
import { DEFAULT_SCHEMA } from "../sql/names.js";
import { CHECK_IDS, type CheckId } from "./doctor-finding.js";
import { DOCTOR_PARTS, type DoctorPart } from "./doctor-schema.js";

export interface DoctorOptions {
  /** The PostgreSQL schema of the tables. @defaultValue "public" */
  schema?: string;
  /**
   * `"cheap"`: only the checks that read catalogs, statistics views and bounded index ranges (safe every minute on a
   * busy database: what the relay and the inbox run periodically); `"all"` adds exact backlog counts and dead letters
   * by age, which scan tables. docs/operating.md#doctor lists which is which.
   * @defaultValue "all"
   */
  checks?: "all" | "cheap";
  /**
   * The parts whose tables are checked. Omitted: every part that has at least one of its tables in the schema (a
   * part with none is reported as not installed); given: a missing table of a named part is drift (an error).
   * @defaultValue the parts present
   */
  parts?: DoctorPart[];
  /** A transaction, prepared transaction or query holding the xmin horizon longer than this warns. @defaultValue 300_000 */
  xminHorizonWarnMs?: number;
  /** ...and longer than this is an error. @defaultValue 1_800_000 (30 minutes) */
  xminHorizonErrorMs?: number;
  /** A replication slot whose xmin is older than this many transactions warns (ten times: an error). @defaultValue 1_000_000 */
  xminHorizonWarnXids?: number;
  /** Dead rows in one of our tables from which autovacuum counts as behind (a warning). @defaultValue 100_000 */
  deadRowsWarn?: number;
  /** ...and from which it is an error (~220 ms per claim per million). @defaultValue 1_000_000 */
  deadRowsError?: number;
  /** Bloat: a table or index this many times larger than its estimated need... @defaultValue 4 */
  bloatRatio?: number;
  /** ...and at least this many bytes over it, warns. @defaultValue 67_108_864 (64 MiB) */
  bloatMinBytes?: number;
  /** A due row (outbox or inbox) waiting longer than this warns. @defaultValue 60_000 */
  backlogAgeWarnMs?: number;
  /** ...and longer than this is an error. @defaultValue 900_000 (15 minutes) */
  backlogAgeErrorMs?: number;
  /** Dead letters that failed within this window warn (older ones are reported, not warned about). @defaultValue 86_400_000 */
  deadLetterWindowMs?: number;
  /**
   * Checks left out of the report (e.g. `["autovacuum-disabled"]` where a cron job runs VACUUM on purpose): a known
   * and accepted condition that would otherwise keep the exit code, the log and the gauge at a warning.
   * @defaultValue []
   */
  skip?: CheckId[];
}

export interface ResolvedDoctorOptions {
  schema: string;
  checks: "all" | "cheap";
  parts: DoctorPart[] | undefined;
  xminHorizonWarnMs: number;
  xminHorizonErrorMs: number;
  xminHorizonWarnXids: number;
  deadRowsWarn: number;
  deadRowsError: number;
  bloatRatio: number;
  bloatMinBytes: number;
  backlogAgeWarnMs: number;
  backlogAgeErrorMs: number;
  deadLetterWindowMs: number;
  skip: CheckId[];
}

/** Every option of doctor(): any other key is refused (a misspelt threshold would be ignored). */
export const DOCTOR_OPTION_KEYS = {
  schema: true,
  checks: true,
  parts: true,
  xminHorizonWarnMs: true,
  xminHorizonErrorMs: true,
  xminHorizonWarnXids: true,
  deadRowsWarn: true,
  deadRowsError: true,
  bloatRatio: true,
  bloatMinBytes: true,
  backlogAgeWarnMs: true,
  backlogAgeErrorMs: true,
  deadLetterWindowMs: true,
  skip: true,
} satisfies Record<keyof DoctorOptions, true>;

/** A warn/error pair: the error threshold must not be below the warning's. */
function pair(warnName: string, warn: number, errorName: string, error: number): void {
  if (error < warn) {
    throw new OutboxConfigError(`Expected \`${errorName}\` (${error}) to be >= \`${warnName}\` (${warn}).`);
  }
}

function partsOption(value: unknown): DoctorPart[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.length === 0) {
    throw new OutboxConfigError(
      `Expected \`parts\` to be a non-empty array of ${DOCTOR_PARTS.map((p) => `"${p}"`).join(", ")}, got ${JSON.stringify(value)}.`,
    );
  }
  return value.map((p, i) => enumOption(`parts[${i}]`, p, DOCTOR_PARTS, "outbox"));
}

function skipOption(value: unknown): CheckId[] {
  if (value === undefined) return [];
  if (!Array.isArray(value))
    throw new OutboxConfigError(`Expected \`skip\` to be an array of check ids, got ${JSON.stringify(value)}.`);
  return value.map((c, i) => enumOption(`skip[${i}]`, c, CHECK_IDS, "xmin-horizon"));
}

export function resolveDoctorOptions(options: DoctorOptions = {}): ResolvedDoctorOptions {
  if (typeof options !== "object" || options === null) {
    throw new OutboxConfigError("Expected doctor() options to be an object.");
  }
  rejectUnknownKeys("doctor()", options, Object.keys(DOCTOR_OPTION_KEYS));
  const ms = (name: keyof DoctorOptions, fallback: number) =>
    integerOption(name, options[name], fallback, 0, Number.MAX_SAFE_INTEGER);
  const resolved: ResolvedDoctorOptions = {
    schema: schemaOption("schema", options.schema, DEFAULT_SCHEMA),
    checks: enumOption("checks", options.checks, ["all", "cheap"] as const, "all"),
    parts: partsOption(options.parts),
    xminHorizonWarnMs: ms("xminHorizonWarnMs", 300_000),
    xminHorizonErrorMs: ms("xminHorizonErrorMs", 1_800_000),
    xminHorizonWarnXids: integerOption("xminHorizonWarnXids", options.xminHorizonWarnXids, 1_000_000, 1),
    deadRowsWarn: integerOption("deadRowsWarn", options.deadRowsWarn, 100_000, 1),
    deadRowsError: integerOption("deadRowsError", options.deadRowsError, 1_000_000, 1),
    bloatRatio:
      options.bloatRatio === undefined ? 4 : expectNumber("bloatRatio", options.bloatRatio, { min: 1, max: 1_000 }),
    bloatMinBytes: integerOption("bloatMinBytes", options.bloatMinBytes, 64 * 1024 * 1024, 0),
    backlogAgeWarnMs: ms("backlogAgeWarnMs", 60_000),
    backlogAgeErrorMs: ms("backlogAgeErrorMs", 900_000),
    deadLetterWindowMs: ms("deadLetterWindowMs", 86_400_000),
    skip: skipOption(options.skip),
  };
  pair("xminHorizonWarnMs", resolved.xminHorizonWarnMs, "xminHorizonErrorMs", resolved.xminHorizonErrorMs);
  pair("deadRowsWarn", resolved.deadRowsWarn, "deadRowsError", resolved.deadRowsError);
  pair("backlogAgeWarnMs", resolved.backlogAgeWarnMs, "backlogAgeErrorMs", resolved.backlogAgeErrorMs);
  return resolved;
}

/** The thresholds alone: what a relay's or an inbox's `doctorThresholds` option takes for its periodic checks. */
export type DoctorThresholds = Omit<DoctorOptions, "schema" | "checks" | "parts">;

const THRESHOLD_KEYS = Object.keys(DOCTOR_OPTION_KEYS).filter((k) => !["schema", "checks", "parts"].includes(k));

/** Validates `doctorThresholds` (an object of thresholds, each checked as doctor() checks it); returns a copy. */
export function doctorThresholdsOption(name: string, value: unknown): DoctorThresholds {
  if (value === undefined) return {};
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new OutboxConfigError(`Expected \`${name}\` to be an object of thresholds, got ${JSON.stringify(value)}.`);
  }
  rejectUnknownKeys(name, value, THRESHOLD_KEYS);
  resolveDoctorOptions(value as DoctorThresholds);
  return { ...(value as DoctorThresholds) };
}
