// The bundled worker's configuration: flags first, then OUTBOX_* environment variables, then the relay's defaults.
import { OutboxConfigError } from "../../errors.js";
import type { RelayOptions } from "../../relay/options.js";
import {
  booleanText,
  choiceText,
  integerText,
  parseExchanges,
  parseFlags,
  parseLogFormat,
  parseMetricsHost,
  parseMetricsPort,
  setting,
} from "./common.js";
import { PORT_DASHBOARD_FLAGS, type PortDashboardConfig, parsePortDashboard, portDashboardHelp } from "./dashboard.js";

export interface WorkerConfig {
  relay: Omit<RelayOptions, "logger">;
  logFormat: "text" | "json";
  /** Port of /metrics, /healthz and /readyz; undefined: none. */
  metricsPort: number | undefined;
  /** Address the metrics port listens on; undefined: every interface. */
  metricsHost: string | undefined;
  /** The dashboard at /ui of the metrics port; undefined: none. */
  dashboard: PortDashboardConfig | undefined;
  help: boolean;
  version: boolean;
}

/** flag name -> [environment variable, relay option] for the integer settings. */
const INTEGER_SETTINGS = {
  "batch-size": ["OUTBOX_BATCH_SIZE", "batchSize"],
  "batch-max-bytes": ["OUTBOX_BATCH_MAX_BYTES", "batchMaxBytes"],
  "listen-check-interval-ms": ["OUTBOX_LISTEN_CHECK_INTERVAL_MS", "listenCheckIntervalMs"],
  concurrency: ["OUTBOX_CONCURRENCY", "concurrency"],
  "publish-timeout-ms": ["OUTBOX_PUBLISH_TIMEOUT_MS", "publishTimeoutMs"],
  "sweep-interval-ms": ["OUTBOX_SWEEP_INTERVAL_MS", "sweepIntervalMs"],
  "sweep-min-age-ms": ["OUTBOX_SWEEP_MIN_AGE_MS", "sweepMinAgeMs"],
  "max-attempts": ["OUTBOX_MAX_ATTEMPTS", "maxAttempts"],
  "retry-base-delay-ms": ["OUTBOX_RETRY_BASE_DELAY_MS", "retryBaseDelayMs"],
  "retry-max-delay-ms": ["OUTBOX_RETRY_MAX_DELAY_MS", "retryMaxDelayMs"],
  "stop-timeout-ms": ["OUTBOX_STOP_TIMEOUT_MS", "stopTimeoutMs"],
  "doctor-interval-ms": ["OUTBOX_DOCTOR_INTERVAL_MS", "doctorIntervalMs"],
} as const;

export const WORKER_HELP = `Usage: prisma-outbox worker [options]

Runs the outbox relay as its own process: publishes the rows of the outbox table to RabbitMQ with publisher
confirms, and deletes each row in the transaction that publishes it. Several workers may run at once.
Stops gracefully on SIGTERM or SIGINT (a second signal exits at once).

Options (each also read from the environment variable named after it):
  --database-url URL          PostgreSQL holding the outbox table           DATABASE_URL (required)
  --amqp-url URL              RabbitMQ                                      AMQP_URL (required)
  --schema NAME               PostgreSQL schema of the outbox tables        OUTBOX_SCHEMA (public)
  --exchange NAME:TYPE[:durable|transient]                                  OUTBOX_EXCHANGES (comma-separated)
                              exchange to assert at start-up; repeatable. TYPE: direct, topic, fanout
                              or headers (required). durable (the default) survives a broker restart
  --listen-url URL            direct PostgreSQL connection for LISTEN when  OUTBOX_LISTEN_URL
                              --database-url is a transaction-mode pooler (PgBouncer)
  --batch-size N              messages per transaction (500)                OUTBOX_BATCH_SIZE
  --batch-max-bytes N         bytes published at once, in parts (4194304)   OUTBOX_BATCH_MAX_BYTES
  --concurrency N             batches in flight at once (2)                 OUTBOX_CONCURRENCY
  --publish-timeout-ms N      longest wait for a batch's confirms (10000)   OUTBOX_PUBLISH_TIMEOUT_MS
  --sweep-interval-ms N       how often the sweeper polls (1000)            OUTBOX_SWEEP_INTERVAL_MS
  --sweep-min-age-ms N        the sweeper leaves younger rows (5000)        OUTBOX_SWEEP_MIN_AGE_MS
  --max-attempts N            refused publishes before dead-lettering (10)  OUTBOX_MAX_ATTEMPTS
  --retry-base-delay-ms N     first retry delay, doubling (1000)            OUTBOX_RETRY_BASE_DELAY_MS
  --retry-max-delay-ms N      longest retry delay (300000)                  OUTBOX_RETRY_MAX_DELAY_MS
  --stop-timeout-ms N         batches in flight get this long to finish on  OUTBOX_STOP_TIMEOUT_MS
                              stop, then roll back; exit within 5 s more (10000)
  --doctor-interval-ms N      run the doctor's cheap checks this often; a   OUTBOX_DOCTOR_INTERVAL_MS
                              warning log per change, /readyz, a gauge; 0: off (60000)
  --no-listen                 do not LISTEN for NOTIFY; poll only           OUTBOX_LISTEN=false
  --listen-check-interval-ms N  LISTEN proves it hears itself this often (5000)  OUTBOX_LISTEN_CHECK_INTERVAL_MS
  --key-after-dead-letter stop|continue                                     OUTBOX_KEY_AFTER_DEAD_LETTER
                              a dead letter of an ordering key holds back its
                              later messages (stop) or not (continue) (stop)
  --cloud-events-source URI   publish as CloudEvents (AMQP binding, binary  OUTBOX_CLOUD_EVENTS_SOURCE
                              mode) with this source (off by default)
  --log-format text|json      one line per start, stop, reconnect, dead letter (text)  OUTBOX_LOG_FORMAT
  --metrics-port N            serve /metrics (Prometheus), /healthz and     OUTBOX_METRICS_PORT
                              /readyz on this port (none by default)
  --metrics-host ADDRESS      the address it listens on, e.g. 127.0.0.1     OUTBOX_METRICS_HOST
                              (every interface by default)
${portDashboardHelp(30)}  -h, --help                  show this help
  -v, --version               show the version
`;

export function parseWorkerConfig(argv: string[], env: NodeJS.ProcessEnv): WorkerConfig {
  const { values: v } = parseFlags("worker", argv, {
    "database-url": { type: "string" },
    "amqp-url": { type: "string" },
    schema: { type: "string" },
    "listen-url": { type: "string" },
    exchange: { type: "string", multiple: true },
    "no-listen": { type: "boolean" },
    "log-format": { type: "string" },
    "key-after-dead-letter": { type: "string" },
    "cloud-events-source": { type: "string" },
    "metrics-port": { type: "string" },
    "metrics-host": { type: "string" },
    ...PORT_DASHBOARD_FLAGS,
    help: { type: "boolean", short: "h" },
    version: { type: "boolean", short: "v" },
    ...Object.fromEntries(Object.keys(INTEGER_SETTINGS).map((k) => [k, { type: "string" as const }])),
  });
  const relay: Record<string, unknown> = {
    databaseUrl: (v["database-url"] as string | undefined) ?? env.DATABASE_URL,
    amqpUrl: (v["amqp-url"] as string | undefined) ?? env.AMQP_URL,
    listenUrl: setting(v, "listen-url", env, "OUTBOX_LISTEN_URL").value,
    queue: false,
  };
  const schema = setting(v, "schema", env, "OUTBOX_SCHEMA").value;
  if (schema !== undefined) relay.schema = schema;
  const help = Boolean(v.help);
  const version = Boolean(v.version);
  if (!help && !version) {
    if (!relay.databaseUrl)
      throw new OutboxConfigError("Set DATABASE_URL or --database-url (the PostgreSQL holding the outbox table).");
    if (!relay.amqpUrl) throw new OutboxConfigError("Set AMQP_URL or --amqp-url (the RabbitMQ to publish to).");
  }
  const exchangeFlags = v.exchange as string[] | undefined;
  if (exchangeFlags?.length) relay.exchanges = exchangeFlags.flatMap((e) => parseExchanges(e, "--exchange"));
  else if (env.OUTBOX_EXCHANGES) relay.exchanges = parseExchanges(env.OUTBOX_EXCHANGES, "OUTBOX_EXCHANGES");
  for (const [flag, [envName, option]] of Object.entries(INTEGER_SETTINGS)) {
    const { value, source } = setting(v, flag, env, envName);
    if (value !== undefined) relay[option] = integerText(source, value);
  }
  relay.listen = !v["no-listen"] && booleanText("OUTBOX_LISTEN", env.OUTBOX_LISTEN) !== false;
  const keyAfterDeadLetter = setting(v, "key-after-dead-letter", env, "OUTBOX_KEY_AFTER_DEAD_LETTER");
  if (keyAfterDeadLetter.value !== undefined) {
    relay.keyAfterDeadLetter = choiceText(keyAfterDeadLetter.source, keyAfterDeadLetter.value, ["stop", "continue"]);
  }
  const cloudEventsSource = setting(v, "cloud-events-source", env, "OUTBOX_CLOUD_EVENTS_SOURCE").value;
  if (cloudEventsSource !== undefined) relay.cloudEvents = { source: cloudEventsSource };
  const logFormat = parseLogFormat(v, env);
  const metricsPort = parseMetricsPort(v["metrics-port"] as string | undefined, env);
  const metricsHost = parseMetricsHost(v["metrics-host"] as string | undefined, env);
  const dashboard = help || version ? undefined : parsePortDashboard(v, env, metricsPort);
  return {
    relay: relay as unknown as WorkerConfig["relay"],
    logFormat,
    metricsPort,
    metricsHost,
    dashboard,
    help,
    version,
  };
}
