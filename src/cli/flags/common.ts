// What the commands' flag parsers share: reading argv, a setting from its flag or its environment variable, and the
// text forms of integers, choices, exchanges, the metrics address, times, the database URL and the schema. Flags
// and environment variables are text: the refusals name them bare (--batch-size, OUTBOX_BATCH_SIZE) and show the
// text given, in the words of config/validate.ts.
import { isIP } from "node:net";
import { type ParseArgsConfig, parseArgs } from "node:util";
import {
  describeChoices,
  EXCHANGE_TYPES,
  type ExchangeShape,
  type ExchangeType,
  expectExchangeName,
  expected,
  expectUrl,
  schemaOption,
} from "../../config/validate.js";
import { OutboxConfigError } from "../../errors.js";
import { escapeControl } from "../../runtime/escape.js";

export type FlagValues = Record<string, string | string[] | boolean | undefined>;

/** parseArgs, with its refusals cut to their first sentence and pointed at the command's help. */
export function parseFlags(command: string, argv: string[], options: ParseArgsConfig["options"], positionals = 0) {
  try {
    const parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: positionals > 0 });
    if (parsed.positionals.length > positionals) {
      throw new Error(`Unexpected argument "${parsed.positionals[positionals]}"`);
    }
    return { values: parsed.values as FlagValues, positionals: parsed.positionals };
  } catch (error) {
    const first = (error as Error).message.split(/\.\s/)[0]!.replace(/\.$/, "");
    throw new OutboxConfigError(`${first}. See prisma-outbox ${command} --help.`);
  }
}

export interface Setting {
  /** The text given; undefined when neither the flag nor the variable is set (an empty variable counts as unset). */
  value: string | undefined;
  /** Where it came from, as a refusal names it: `--flag` or `VARIABLE`. */
  source: string;
}

/** The flag `--name`, else the environment variable. */
export function setting(values: FlagValues, name: string, env: NodeJS.ProcessEnv, variable: string): Setting {
  const fromFlag = values[name] as string | undefined;
  if (fromFlag !== undefined) return { value: fromFlag, source: `--${name}` };
  return { value: env[variable] || undefined, source: variable };
}

/** A non-negative integer written in decimal digits; within `range` when given. */
export function integerText(source: string, text: string, range?: { min: number; max: number }): number {
  const n = /^\d+$/.test(text.trim()) ? Number(text) : Number.NaN;
  if (Number.isNaN(n) || (range !== undefined && (n < range.min || n > range.max))) {
    throw expected(source, range === undefined ? "an integer" : `an integer from ${range.min} to ${range.max}`, text);
  }
  return n;
}

/** A count of rows to show (`--top`, `--limit`): 1 to 1,000,000; `fallback` when not given. */
export function countFlag(flag: string, text: string | undefined, fallback: number): number {
  return text === undefined ? fallback : integerText(flag, text, { min: 1, max: 1_000_000 });
}

/** One of `allowed`, any case. */
export function choiceText<const T extends string>(source: string, text: string, allowed: readonly T[]): T {
  const value = text.toLowerCase();
  if (!(allowed as readonly string[]).includes(value)) throw expected(source, describeChoices(allowed, true), value);
  return value as T;
}

/** true, false, 1, 0 (any case); undefined when empty. */
export function booleanText(source: string, text: string | undefined): boolean | undefined {
  const value = text?.toLowerCase();
  if (value === undefined || value === "") return undefined;
  if (!["true", "false", "1", "0"].includes(value)) throw expected(source, "true or false", text);
  return value === "true" || value === "1";
}

/** `--log-format`, else OUTBOX_LOG_FORMAT: text (the default) or json. */
export function parseLogFormat(values: FlagValues, env: NodeJS.ProcessEnv): "text" | "json" {
  const { value, source } = setting(values, "log-format", env, "OUTBOX_LOG_FORMAT");
  return value === undefined ? "text" : choiceText(source, value, ["text", "json"]);
}

const EXCHANGE_FORMS = `NAME:TYPE or NAME:TYPE:durable or NAME:TYPE:transient, with TYPE one of ${EXCHANGE_TYPES.join(", ")}`;

/**
 * `NAME:TYPE[:durable|transient]`, comma-separated. Read from the right, so that a name may itself contain `:`.
 * The type is required: an exchange declared with a guessed type fails later, at every start of every other
 * publisher or consumer that declares it as it really is.
 */
export function parseExchanges(value: string, source: string): ExchangeShape[] {
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
      const exchange: ExchangeShape = { name: expectExchangeName(source, name), type: type as ExchangeType };
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
  if (!(port >= 0 && port <= 65_535)) throw expected(source, "a port number from 0 to 65535", value);
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
    throw expected(source, "an IP address or a host name (127.0.0.1, ::1, 0.0.0.0, localhost)", escapeControl(value));
  }
  return host.replace(/^\[(.*)\]$/, "$1");
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?$/i;

/** An ISO 8601 date or date-time, as a UTC ISO string; one without an offset is taken as UTC. */
export function parseTime(flag: string, text: string): string {
  const match = ISO_TIME.exec(text.trim());
  const hasTime = match !== null && /[T ]/i.test(text.trim());
  const normalised = match && hasTime && match[1] === undefined ? `${text.trim().replace(" ", "T")}Z` : text.trim();
  const ms = match ? Date.parse(normalised.replace(" ", "T")) : Number.NaN;
  // Date.parse rolls 2026-02-30 over to March 2: the day must exist in its month.
  const [year, month, day] = text.trim().slice(0, 10).split("-").map(Number) as [number, number, number];
  if (Number.isNaN(ms) || new Date(Date.UTC(year, month - 1, day)).getUTCDate() !== day) {
    throw expected(flag, "an ISO 8601 time such as 2026-11-24 or 2026-11-24T03:00:00Z", text);
  }
  return new Date(ms).toISOString();
}

/** `--database-url`, else DATABASE_URL: required, a postgres:// URL (shown redacted when refused). */
export function databaseUrlSetting(values: FlagValues, env: NodeJS.ProcessEnv): string {
  const fromFlag = values["database-url"] as string | undefined;
  const url = fromFlag ?? env.DATABASE_URL;
  if (!url) throw new OutboxConfigError("Set DATABASE_URL or --database-url (the PostgreSQL holding the tables).");
  expectUrl(fromFlag !== undefined ? "--database-url" : "DATABASE_URL", url, ["postgres:", "postgresql:"]);
  return url;
}

/** `--schema`, else OUTBOX_SCHEMA, else public. */
export function schemaSetting(values: FlagValues, env: NodeJS.ProcessEnv): string {
  const { value, source } = setting(values, "schema", env, "OUTBOX_SCHEMA");
  return schemaOption(source, value);
}
