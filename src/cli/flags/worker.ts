// The bundled worker's configuration: flags first, then OUTBOX_* environment variables, then the relay's defaults.
import { isIP } from "node:net";
import { parseArgs } from "node:util";
import { EXCHANGE_TYPES, expectExchangeName } from "../../config/validate.js";
import { OutboxConfigError } from "../../errors.js";
import type { RelayOptions } from "../../relay/options.js";
import { escapeControl } from "../../runtime/escape.js";
import type { ExchangeSpec } from "../../transport/transport.js";

export interface WorkerConfig {
  relay: Omit<RelayOptions, "logger">;
  logFormat: "text" | "json";
  /** Port of /metrics, /healthz and /readyz; undefined: none. */
  metricsPort: number | undefined;
  /** Address the metrics port listens on; undefined: every interface. */
  metricsHost: string | undefined;
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
  --no-listen                 do not LISTEN for NOTIFY; poll only           OUTBOX_LISTEN=false
  --listen-check-interval-ms N  LISTEN proves it hears itself this often (5000)  OUTBOX_LISTEN_CHECK_INTERVAL_MS
  --key-after-dead-letter stop|continue                                     OUTBOX_KEY_AFTER_DEAD_LETTER
                              a dead letter of an ordering key holds back its
                              later messages (stop) or not (continue) (stop)
  --log-format text|json      one line per start, stop, reconnect, dead letter (text)  OUTBOX_LOG_FORMAT
  --metrics-port N            serve /metrics (Prometheus), /healthz and     OUTBOX_METRICS_PORT
                              /readyz on this port (none by default)
  --metrics-host ADDRESS      the address it listens on, e.g. 127.0.0.1     OUTBOX_METRICS_HOST
                              (every interface by default)
  -h, --help                  show this help
  -v, --version               show the version
`;

const EXCHANGE_FORMS = `NAME:TYPE or NAME:TYPE:durable or NAME:TYPE:transient, with TYPE one of ${EXCHANGE_TYPES.join(", ")}`;

/**
 * `NAME:TYPE[:durable|transient]`, comma-separated. Read from the right, so that a name may itself contain `:`.
 * The type is required: an exchange declared with a guessed type fails later, at every start of every other
 * publisher or consumer that declares it as it really is.
 */
export function parseExchanges(value: string, source: string): ExchangeSpec[] {
  return value
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map((spec) => {
      const parts = spec.split(":");
      let durable: boolean | undefined;
      if (parts.length > 2 && (parts.at(-1) === "durable" || parts.at(-1) === "transient")) {
        durable = parts.pop() === "durable";
      }
      const type = parts.length > 1 ? parts.pop()! : undefined;
      const name = parts.join(":");
      if (type === undefined || name === "") {
        throw new OutboxConfigError(
          `Expected ${source} to be ${EXCHANGE_FORMS}; got "${spec}" (the type is required).`,
        );
      }
      if (!(EXCHANGE_TYPES as readonly string[]).includes(type)) {
        throw new OutboxConfigError(
          `Expected ${source} to be ${EXCHANGE_FORMS}; got "${spec}" (unknown type "${type}").`,
        );
      }
      const exchange: ExchangeSpec = { name: expectExchangeName(source, name), type: type as ExchangeSpec["type"] };
      if (durable !== undefined) exchange.durable = durable;
      return exchange;
    });
}

/**
 * The port of the metrics and health endpoints, from `--metrics-port` or OUTBOX_METRICS_PORT; undefined when neither is
 * set. 0 lets the system choose (the port is logged).
 */
export function parseMetricsPort(flag: string | undefined, env: NodeJS.ProcessEnv): number | undefined {
  const source = flag !== undefined ? "--metrics-port" : "OUTBOX_METRICS_PORT";
  const value = flag ?? (env.OUTBOX_METRICS_PORT || undefined);
  if (value === undefined) return undefined;
  const port = /^\d{1,5}$/.test(value.trim()) ? Number(value) : Number.NaN;
  if (!(port >= 0 && port <= 65_535)) {
    throw new OutboxConfigError(`Expected ${source} to be a port number from 0 to 65535, got "${value}".`);
  }
  return port;
}

/**
 * The address of the metrics and health endpoints, from `--metrics-host` or OUTBOX_METRICS_HOST: an IP address or a
 * host name; undefined when neither is set (every interface, as a Kubernetes probe or a Prometheus scrape of the pod
 * address needs).
 */
export function parseMetricsHost(flag: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  const source = flag !== undefined ? "--metrics-host" : "OUTBOX_METRICS_HOST";
  const value = flag ?? (env.OUTBOX_METRICS_HOST || undefined);
  if (value === undefined) return undefined;
  const host = value.trim();
  if (isIP(host.replace(/^\[(.*)\]$/, "$1")) === 0 && !/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(host)) {
    throw new OutboxConfigError(
      `Expected ${source} to be an IP address or a host name (127.0.0.1, ::1, 0.0.0.0, localhost), got ${JSON.stringify(escapeControl(value))}.`,
    );
  }
  return host.replace(/^\[(.*)\]$/, "$1");
}

function parseInteger(value: string, source: string): number {
  if (!/^\d+$/.test(value.trim())) throw new OutboxConfigError(`Expected ${source} to be an integer, got "${value}".`);
  return Number(value);
}

export function parseWorkerConfig(argv: string[], env: NodeJS.ProcessEnv): WorkerConfig {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: false,
      strict: true,
      options: {
        "database-url": { type: "string" },
        "amqp-url": { type: "string" },
        schema: { type: "string" },
        "listen-url": { type: "string" },
        exchange: { type: "string", multiple: true },
        "no-listen": { type: "boolean" },
        "log-format": { type: "string" },
        "key-after-dead-letter": { type: "string" },
        "metrics-port": { type: "string" },
        "metrics-host": { type: "string" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "v" },
        ...Object.fromEntries(Object.keys(INTEGER_SETTINGS).map((k) => [k, { type: "string" as const }])),
      },
    });
  } catch (error) {
    throw new OutboxConfigError(`${(error as Error).message}. See prisma-outbox worker --help.`);
  }
  const v = parsed.values as Record<string, string | string[] | boolean | undefined>;
  const relay: Record<string, unknown> = {
    databaseUrl: (v["database-url"] as string | undefined) ?? env.DATABASE_URL,
    amqpUrl: (v["amqp-url"] as string | undefined) ?? env.AMQP_URL,
    listenUrl: (v["listen-url"] as string | undefined) ?? (env.OUTBOX_LISTEN_URL || undefined),
    queue: false,
  };
  const schema = (v.schema as string | undefined) ?? (env.OUTBOX_SCHEMA || undefined);
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
    const fromFlag = v[flag] as string | undefined;
    if (fromFlag !== undefined) relay[option] = parseInteger(fromFlag, `--${flag}`);
    else if (env[envName] !== undefined && env[envName] !== "") relay[option] = parseInteger(env[envName]!, envName);
  }
  const listenEnv = env.OUTBOX_LISTEN?.toLowerCase();
  if (listenEnv !== undefined && !["true", "false", "1", "0", ""].includes(listenEnv)) {
    throw new OutboxConfigError(`Expected OUTBOX_LISTEN to be true or false, got "${env.OUTBOX_LISTEN}".`);
  }
  relay.listen = !(v["no-listen"] || listenEnv === "false" || listenEnv === "0");
  const keyAfterDeadLetter = (
    (v["key-after-dead-letter"] as string | undefined) ??
    (env.OUTBOX_KEY_AFTER_DEAD_LETTER || undefined)
  )?.toLowerCase();
  if (keyAfterDeadLetter !== undefined) {
    if (keyAfterDeadLetter !== "stop" && keyAfterDeadLetter !== "continue") {
      throw new OutboxConfigError(
        `Expected --key-after-dead-letter / OUTBOX_KEY_AFTER_DEAD_LETTER to be stop or continue, got "${keyAfterDeadLetter}".`,
      );
    }
    relay.keyAfterDeadLetter = keyAfterDeadLetter;
  }
  const logFormat = ((v["log-format"] as string | undefined) ?? env.OUTBOX_LOG_FORMAT ?? "text").toLowerCase();
  if (logFormat !== "text" && logFormat !== "json") {
    throw new OutboxConfigError(`Expected --log-format / OUTBOX_LOG_FORMAT to be text or json, got "${logFormat}".`);
  }
  const metricsPort = parseMetricsPort(v["metrics-port"] as string | undefined, env);
  const metricsHost = parseMetricsHost(v["metrics-host"] as string | undefined, env);
  return { relay: relay as unknown as WorkerConfig["relay"], logFormat, metricsPort, metricsHost, help, version };
}
