// Options of `prisma-outbox doctor`: flags and environment, parsed and validated in one place. Thresholds are given
// as `--threshold name=value` (the names of doctor()'s options), checked by the same validation as the library's.
import { OutboxConfigError } from "../../errors.js";
import { CHECK_IDS } from "../../ops/doctor-finding.js";
import { type DoctorOptions, type DoctorThresholds, resolveDoctorOptions } from "../../ops/doctor-options.js";
import { DOCTOR_PARTS, type DoctorPart } from "../../ops/doctor-schema.js";
import { choiceText, databaseUrlSetting, integerText, parseFlags, schemaSetting } from "./common.js";

export const DOCTOR_HELP = `Usage: prisma-outbox doctor [options]

Checks the database under the outbox and the inbox, and says for each finding what it costs and what to do: the
oldest transaction, prepared transaction and replication slot holding the xmin horizon; autovacuum off or behind on
our tables; table and index bloat; schema drift against the shipped migrations; the outbox backlog and the inbox's
waiting rows; dead letters by age; the relays and inbox workers connected (docs/operating.md#doctor). Read-only.

Exit code: 0 every check ok, 1 a warning, 2 an error (or bad input); 1 also when the database cannot be reached.

Options (flag / environment):
  --database-url URL        PostgreSQL holding the outbox and inbox tables        / DATABASE_URL (required)
  --schema NAME             PostgreSQL schema of the tables (public)              / OUTBOX_SCHEMA
  --checks all|cheap        cheap: only what is safe every minute on a busy database (all)
  --parts LIST              outbox,inbox,requests: check these (missing tables are drift) (the parts present)
  --threshold NAME=VALUE    a threshold of doctor(), e.g. xminHorizonWarnMs=60000; repeatable
  --skip LIST               checks left out, e.g. autovacuum-disabled (a condition accepted on purpose)
  --json                    one JSON object: { level, findings: [{ check, level, summary, cost, action, details }] }
  -h, --help                this help
`;

export interface DoctorConfig {
  help: boolean;
  databaseUrl: string;
  json: boolean;
  options: DoctorOptions;
}

const THRESHOLDS: ReadonlyArray<keyof DoctorThresholds> = [
  "xminHorizonWarnMs",
  "xminHorizonErrorMs",
  "xminHorizonWarnXids",
  "deadRowsWarn",
  "deadRowsError",
  "bloatRatio",
  "bloatMinBytes",
  "backlogAgeWarnMs",
  "backlogAgeErrorMs",
  "deadLetterWindowMs",
];

function thresholds(values: string[]): DoctorThresholds {
  const out: Record<string, number> = {};
  for (const text of values) {
    const at = text.indexOf("=");
    const name = text.slice(0, at) as keyof DoctorThresholds;
    if (at < 1 || !THRESHOLDS.includes(name)) {
      throw new OutboxConfigError(
        `Expected --threshold to be NAME=VALUE with NAME one of ${THRESHOLDS.join(", ")}, got ${JSON.stringify(text)}.`,
      );
    }
    const value = text.slice(at + 1);
    out[name] = name === "bloatRatio" ? Number(value) : integerText(`--threshold ${name}`, value);
    if (Number.isNaN(out[name]))
      throw new OutboxConfigError(`Expected --threshold ${name} to be a number, got ${JSON.stringify(value)}.`);
  }
  return out;
}

export function parseDoctorConfig(argv: string[], env: NodeJS.ProcessEnv): DoctorConfig {
  const { values } = parseFlags("doctor", argv, {
    "database-url": { type: "string" },
    schema: { type: "string" },
    checks: { type: "string" },
    parts: { type: "string" },
    skip: { type: "string" },
    threshold: { type: "string", multiple: true },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  const help = values.help === true;
  const options: DoctorOptions = {
    schema: schemaSetting(values, env),
    ...thresholds((values.threshold as string[] | undefined) ?? []),
  };
  if (values.checks !== undefined) options.checks = choiceText("--checks", values.checks as string, ["all", "cheap"]);
  if (values.parts !== undefined) {
    options.parts = (values.parts as string)
      .split(",")
      .map((p) => choiceText("--parts", p.trim(), DOCTOR_PARTS) as DoctorPart);
  }
  if (values.skip !== undefined) {
    options.skip = (values.skip as string).split(",").map((c) => choiceText("--skip", c.trim(), CHECK_IDS));
  }
  resolveDoctorOptions(options); // the library's checks (pairs of thresholds), before any connection
  return { help, databaseUrl: help ? "" : databaseUrlSetting(values, env), json: values.json === true, options };
}
