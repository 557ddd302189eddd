// Options of `prisma-outbox dashboard`, and the dashboard flags the worker and the inbox commands share (/ui on
// their --metrics-port). The token comes from --token or PRISMA_OUTBOX_DASHBOARD_TOKEN (the variable is the safer:
// a flag shows in `ps`); a refusal never shows it.
import { isIP } from "node:net";
import type { ParseArgsConfig } from "node:util";
import { expected } from "../../config/validate.js";
import { OutboxConfigError } from "../../errors.js";
import { escapeControl } from "../../runtime/escape.js";
import {
  databaseUrlSetting,
  type FlagValues,
  integerText,
  parseFlags,
  parseLogFormat,
  schemaSetting,
} from "./common.js";

export const TOKEN_VARIABLE = "PRISMA_OUTBOX_DASHBOARD_TOKEN";
export const DEFAULT_DASHBOARD_PORT = 8089;

export const DASHBOARD_HELP = `Usage: prisma-outbox dashboard [options]

Serves one page at http://HOST:PORT/ui: the outbox's and the inbox's backlog, throughput and lag over the last
minutes, doctor's findings, and the dead letters with the filters of prisma-outbox dead-letters (and, with
--allow-actions, retry and purge after a confirmation that shows what they take). JSON under /ui/api/.
How to expose it safely: docs/operating.md#dashboard

Options (flag / environment):
  --database-url URL      PostgreSQL holding the tables                      / DATABASE_URL (required)
  --schema NAME           PostgreSQL schema of the tables (public)           / OUTBOX_SCHEMA
  --host ADDRESS          the address to listen on (127.0.0.1); another than
                          a loopback address needs a token
  --port N                the port (${DEFAULT_DASHBOARD_PORT}; 0: the system chooses, the port is logged)
  --allow-actions         offer retry and purge (read-only without it)
  --token TOKEN           every API request needs it (the page asks for it)  / ${TOKEN_VARIABLE}
                          16 characters at least, e.g. openssl rand -hex 32
  --sample-interval-ms N  how often the charts are sampled (5000)
  --log-format text|json  (text)                                             / OUTBOX_LOG_FORMAT
  -h, --help              this help
`;

/** The dashboard on the worker's or the inbox's metrics port. */
export const PORT_DASHBOARD_FLAGS = {
  dashboard: { type: "boolean" },
  "dashboard-allow-actions": { type: "boolean" },
  "dashboard-token": { type: "string" },
} as const satisfies ParseArgsConfig["options"];

/** The help lines of the metrics port's dashboard flags, descriptions from `column` on (the command's own layout). */
export function portDashboardHelp(column: number): string {
  const lines: Array<[string, string]> = [
    ["--dashboard", "serve the dashboard at /ui on --metrics-port (docs/operating.md#dashboard);"],
    ["", "without a token it answers loopback peers only"],
    ["--dashboard-allow-actions", "offer retry and purge of dead letters on it (read-only without it)"],
    ["--dashboard-token TOKEN", `require this token for its API (also ${TOKEN_VARIABLE})`],
  ];
  return lines.map(([flag, text]) => `${`  ${flag}`.padEnd(column)}${text}\n`).join("");
}

export interface PortDashboardConfig {
  allowActions: boolean;
  token: string | undefined;
}

/** The token: from the flag, else the environment variable; undefined when neither is set. */
function tokenSetting(flag: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  return flag ?? (env[TOKEN_VARIABLE] || undefined);
}

/** The metrics port's dashboard settings; undefined without --dashboard. */
export function parsePortDashboard(
  values: FlagValues,
  env: NodeJS.ProcessEnv,
  metricsPort: number | undefined,
): PortDashboardConfig | undefined {
  if (values.dashboard !== true) {
    if (values["dashboard-allow-actions"] !== undefined || values["dashboard-token"] !== undefined) {
      throw new OutboxConfigError("--dashboard-allow-actions and --dashboard-token need --dashboard.");
    }
    return undefined;
  }
  if (metricsPort === undefined) {
    throw new OutboxConfigError(
      "--dashboard is served on the metrics port: give --metrics-port (or OUTBOX_METRICS_PORT).",
    );
  }
  return {
    allowActions: values["dashboard-allow-actions"] === true,
    token: tokenSetting(values["dashboard-token"] as string | undefined, env),
  };
}

export interface DashboardConfig {
  help: boolean;
  databaseUrl: string;
  schema: string;
  host: string;
  port: number;
  allowActions: boolean;
  token: string | undefined;
  sampleIntervalMs: number;
  logFormat: "text" | "json";
}

const isLoopbackHost = (host: string) =>
  host === "localhost" || host === "::1" || (isIP(host) === 4 && host.startsWith("127."));

/** --host: an IP address or a host name; 127.0.0.1 when not given. */
function hostSetting(text: string | undefined): string {
  if (text === undefined) return "127.0.0.1";
  const host = text.trim().replace(/^\[(.*)\]$/, "$1");
  if (isIP(host) === 0 && !/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(host)) {
    throw expected("--host", "an IP address or a host name (127.0.0.1, ::1, 0.0.0.0, localhost)", escapeControl(text));
  }
  return host;
}

export function parseDashboardConfig(argv: string[], env: NodeJS.ProcessEnv): DashboardConfig {
  const { values } = parseFlags("dashboard", argv, {
    "database-url": { type: "string" },
    schema: { type: "string" },
    host: { type: "string" },
    port: { type: "string" },
    "allow-actions": { type: "boolean" },
    token: { type: "string" },
    "sample-interval-ms": { type: "string" },
    "log-format": { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  const help = values.help === true;
  const host = hostSetting(values.host as string | undefined);
  const token = tokenSetting(values.token as string | undefined, env);
  if (!help && token === undefined && !isLoopbackHost(host)) {
    throw new OutboxConfigError(
      `--host ${host} would let other machines in without a token: set ${TOKEN_VARIABLE} (or --token), or listen on 127.0.0.1.`,
    );
  }
  const port = values.port as string | undefined;
  const interval = values["sample-interval-ms"] as string | undefined;
  return {
    help,
    databaseUrl: help ? "" : databaseUrlSetting(values, env),
    schema: schemaSetting(values, env),
    host,
    port: port === undefined ? DEFAULT_DASHBOARD_PORT : integerText("--port", port, { min: 0, max: 65_535 }),
    allowActions: values["allow-actions"] === true,
    token,
    sampleIntervalMs:
      interval === undefined ? 5_000 : integerText("--sample-interval-ms", interval, { min: 100, max: 3_600_000 }),
    logFormat: parseLogFormat(values, env),
  };
}
