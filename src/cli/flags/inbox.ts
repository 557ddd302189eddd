// Options of `prisma-outbox inbox`: flags and environment, parsed and validated in one place.
import { OutboxConfigError } from "../../errors.js";
import { integerText, parseFlags, parseLogFormat, parseMetricsHost, parseMetricsPort, setting } from "./common.js";
import { PORT_DASHBOARD_FLAGS, type PortDashboardConfig, parsePortDashboard, portDashboardHelp } from "./dashboard.js";

export interface InboxWorkerConfig {
  help: boolean;
  /** The module (path or package specifier) that exports the inbox definition. */
  handlers: string;
  /** Which export holds it: `default`, else `inbox`, else the only Inbox export. */
  exportName: string | undefined;
  databaseUrl: string;
  amqpUrl: string;
  logFormat: "text" | "json";
  /** Port of /metrics, /healthz and /readyz; undefined: none. */
  metricsPort: number | undefined;
  /** Address the metrics port listens on; undefined: every interface. */
  metricsHost: string | undefined;
  /** The dashboard at /ui of the metrics port; undefined: none. */
  dashboard: PortDashboardConfig | undefined;
  /** The schema the dashboard shows (the inbox's own schema is its definition's). */
  dashboardSchema: string | undefined;
  /** Replaces the definition's doctorIntervalMs for this run; undefined: the definition's. */
  doctorIntervalMs: number | undefined;
}

export const INBOX_WORKER_HELP = `Usage: prisma-outbox inbox --handlers <module> [options]

Runs an inbox defined with inbox() in your module: consumes its queue, stores deliveries in the inbox table before
acking them, and runs its handlers in your Prisma client's transactions. Stops gracefully on SIGTERM or SIGINT.

Options (flag / environment):
  --handlers <module>        the module exporting the inbox (default export, or --export NAME)  / OUTBOX_INBOX_HANDLERS
  --export <name>            the export that holds the inbox                                     / OUTBOX_INBOX_EXPORT
  --database-url <url>       PostgreSQL URL of the database with the inbox table                 / DATABASE_URL
  --amqp-url <url>           RabbitMQ URL                                                        / AMQP_URL
  --log-format text|json     log lines for people or for log shippers (default text)             / OUTBOX_LOG_FORMAT
  --metrics-port <n>         serve /metrics (Prometheus), /healthz and /readyz on this port      / OUTBOX_METRICS_PORT
  --metrics-host <address>   the address it listens on, e.g. 127.0.0.1 (every interface)         / OUTBOX_METRICS_HOST
  --doctor-interval-ms <n>   run the doctor's cheap checks this often; 0: off (the definition's  / OUTBOX_DOCTOR_INTERVAL_MS
                             doctorIntervalMs, else 60000)
${portDashboardHelp(29)}                             the dashboard shows the tables of schema OUTBOX_SCHEMA (public)
  -h, --help                 this help

Run it as the process itself (node_modules/.bin/prisma-outbox inbox ..., or exec in a container's command) so that
signals reach it: npx and npm run do not pass SIGTERM on.
`;

export function parseInboxWorkerConfig(argv: string[], env: NodeJS.ProcessEnv): InboxWorkerConfig {
  const { values } = parseFlags("inbox", argv, {
    handlers: { type: "string" },
    export: { type: "string" },
    "database-url": { type: "string" },
    "amqp-url": { type: "string" },
    "log-format": { type: "string" },
    "metrics-port": { type: "string" },
    "metrics-host": { type: "string" },
    "doctor-interval-ms": { type: "string" },
    ...PORT_DASHBOARD_FLAGS,
    help: { type: "boolean", short: "h" },
  });
  const help = values.help === true;
  const pick = (flag: string, variable: string) => (values[flag] as string | undefined) ?? env[variable];
  const handlers = pick("handlers", "OUTBOX_INBOX_HANDLERS");
  const databaseUrl = pick("database-url", "DATABASE_URL");
  const amqpUrl = pick("amqp-url", "AMQP_URL");
  if (!help) {
    if (!handlers) throw new OutboxConfigError("Expected --handlers <module> (or OUTBOX_INBOX_HANDLERS).");
    if (!databaseUrl) throw new OutboxConfigError("Expected --database-url or DATABASE_URL.");
    if (!amqpUrl) throw new OutboxConfigError("Expected --amqp-url or AMQP_URL.");
  }
  const metricsPort = parseMetricsPort(values["metrics-port"] as string | undefined, env);
  const doctorInterval = setting(values, "doctor-interval-ms", env, "OUTBOX_DOCTOR_INTERVAL_MS");
  return {
    help,
    handlers: handlers ?? "",
    exportName: pick("export", "OUTBOX_INBOX_EXPORT"),
    databaseUrl: databaseUrl ?? "",
    amqpUrl: amqpUrl ?? "",
    logFormat: parseLogFormat(values, env),
    metricsPort,
    metricsHost: parseMetricsHost(values["metrics-host"] as string | undefined, env),
    dashboard: help ? undefined : parsePortDashboard(values, env, metricsPort),
    dashboardSchema: setting(values, "schema", env, "OUTBOX_SCHEMA").value,
    doctorIntervalMs:
      doctorInterval.value === undefined ? undefined : integerText(doctorInterval.source, doctorInterval.value),
  };
}
