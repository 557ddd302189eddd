// Options of the operator commands, `prisma-outbox status` and `prisma-outbox dead-letters`: flags and environment,
// parsed and validated in one place. Every refusal is an OutboxConfigError of one line saying what to fix; a URL is
// only ever shown redacted.
import { type ParseArgsConfig, parseArgs } from "node:util";
import { expectUrl, schemaOption } from "../../config/validate.js";
import { OutboxConfigError } from "../../errors.js";
import type { DeadLetterFilter } from "../../sql/ops/dead-letter-filter.js";

export const STATUS_HELP = `Usage: prisma-outbox status [options]

Shows the outbox backlog (due now, deferred, age of the oldest due row), its dead letters by exchange and by error,
the relays and inbox workers connected to the database, and the inbox backlog and dead rows. Read-only.

Options (flag / environment):
  --database-url URL    PostgreSQL holding the outbox and inbox tables      / DATABASE_URL (required)
  --schema NAME         PostgreSQL schema of the tables (public)            / OUTBOX_SCHEMA
  --top N               exchanges, handlers and errors listed (5)
  --json                one JSON object (its shape: docs/operating.md#commands)
  -h, --help            this help
`;

export const DEAD_LETTERS_HELP = `Usage: prisma-outbox dead-letters list|retry|purge [filters] [options]

  list     the newest dead letters that match (--limit), and how many match
  retry    outbox: moves them back into the outbox in one transaction (same message id, attempts 0, due now) and
           wakes the relays; inbox (--inbox): sets the dead rows back to pending with attempts 0
  purge    deletes them for good
retry and purge need a filter, or --all to take every dead letter.

Filters (all given must match; a repeated or comma-separated list matches any of its values):
  --exchange NAME       exact exchange name; repeatable
  --routing-key KEY     exact routing key, or a pattern where * matches any characters (order.*, *.eu)
  --error TEXT          the last error contains TEXT (case-insensitive)
  --since TIME          failed (outbox) / received (inbox) at or after TIME
  --until TIME          failed (outbox) / received (inbox) before TIME
                        TIME is ISO 8601 (2026-11-24, 2026-11-24T03:00Z); without an offset, UTC
  --id ID               a row id (as list shows it) or a message id; repeatable or comma-separated
  --handler NAME        inbox handler name; repeatable or comma-separated (with --inbox only);
                        --handler '' selects invalid deliveries (no message id, not JSON, no handler)
  --all                 retry or purge every dead letter (required when no filter is given)

Options (flag / environment):
  --inbox               the inbox's dead rows instead of the outbox's dead letters
  --database-url URL    PostgreSQL holding the tables                       / DATABASE_URL (required)
  --schema NAME         PostgreSQL schema of the tables (public)            / OUTBOX_SCHEMA
  --limit N             list: rows shown, newest first (50)
  --dry-run             retry, purge: count and show what would change, change nothing
  --json                JSON output (its shape: docs/operating.md#commands)
  -h, --help            this help
`;

export interface StatusConfig {
  help: boolean;
  databaseUrl: string;
  schema: string;
  top: number;
  json: boolean;
}

export type DeadLetterAction = "list" | "retry" | "purge";

export interface DeadLettersConfig {
  help: boolean;
  action: DeadLetterAction;
  databaseUrl: string;
  source: "outbox" | "inbox";
  schema: string;
  filter: DeadLetterFilter;
  limit: number;
  dryRun: boolean;
  all: boolean;
  json: boolean;
}

type Values = Record<string, string | string[] | boolean | undefined>;

/** parseArgs, with its refusals cut to their first sentence and pointed at the command's help. */
function parse(command: string, argv: string[], options: ParseArgsConfig["options"], positionals = 0) {
  try {
    const parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: positionals > 0 });
    if (parsed.positionals.length > positionals) {
      throw new Error(`Unexpected argument "${parsed.positionals[positionals]}"`);
    }
    return { values: parsed.values as Values, positionals: parsed.positionals };
  } catch (error) {
    const first = (error as Error).message.split(/\.\s/)[0]!.replace(/\.$/, "");
    throw new OutboxConfigError(`${first}. See prisma-outbox ${command} --help.`);
  }
}

function databaseUrl(values: Values, env: NodeJS.ProcessEnv): string {
  const fromFlag = values["database-url"] as string | undefined;
  const url = fromFlag ?? env.DATABASE_URL;
  if (!url) throw new OutboxConfigError("Set DATABASE_URL or --database-url (the PostgreSQL holding the tables).");
  expectUrl(fromFlag !== undefined ? "--database-url" : "DATABASE_URL", url, ["postgres:", "postgresql:"]);
  return url;
}

function schema(values: Values, env: NodeJS.ProcessEnv): string {
  const fromFlag = values.schema as string | undefined;
  return schemaOption(
    fromFlag !== undefined ? "--schema" : "OUTBOX_SCHEMA",
    fromFlag ?? (env.OUTBOX_SCHEMA || undefined),
  );
}

function positiveInteger(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 1_000_000) {
    throw new OutboxConfigError(`Expected ${flag} to be an integer from 1 to 1000000, got "${value}".`);
  }
  return Number(value);
}

export function parseStatusConfig(argv: string[], env: NodeJS.ProcessEnv): StatusConfig {
  const { values } = parse("status", argv, {
    "database-url": { type: "string" },
    schema: { type: "string" },
    top: { type: "string" },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  const help = values.help === true;
  return {
    help,
    databaseUrl: help ? "" : databaseUrl(values, env),
    schema: schema(values, env),
    top: positiveInteger("--top", values.top as string | undefined, 5),
    json: values.json === true,
  };
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
    throw new OutboxConfigError(
      `Expected ${flag} to be an ISO 8601 time such as 2026-11-24 or 2026-11-24T03:00:00Z, got "${text}".`,
    );
  }
  return new Date(ms).toISOString();
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Repeated flags and comma-separated values, as one list without blanks. */
function list(flag: string, value: string | string[] | boolean | undefined, allowEmpty = false): string[] | undefined {
  if (value === undefined) return undefined;
  const items = (value as string[]).flatMap((v) => v.split(",")).map((v) => v.trim());
  if (!allowEmpty && items.some((v) => v === "")) {
    throw new OutboxConfigError(`Expected ${flag} to be a non-empty value or list.`);
  }
  return items;
}

function text(flag: string, value: string | string[] | boolean | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (value === "") throw new OutboxConfigError(`Expected ${flag} to be non-empty.`);
  return value as string;
}

export function parseDeadLettersConfig(argv: string[], env: NodeJS.ProcessEnv): DeadLettersConfig {
  const { values, positionals } = parse(
    "dead-letters",
    argv,
    {
      "database-url": { type: "string" },
      schema: { type: "string" },
      inbox: { type: "boolean" },
      exchange: { type: "string", multiple: true },
      "routing-key": { type: "string" },
      error: { type: "string" },
      since: { type: "string" },
      until: { type: "string" },
      id: { type: "string", multiple: true },
      handler: { type: "string", multiple: true },
      limit: { type: "string" },
      "dry-run": { type: "boolean" },
      all: { type: "boolean" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    1,
  );
  const help = values.help === true;
  const action = positionals[0];
  if (help) {
    return {
      help,
      action: "list",
      databaseUrl: "",
      source: "outbox",
      schema: "public",
      filter: {},
      limit: 50,
      dryRun: false,
      all: false,
      json: false,
    };
  }
  if (action !== "list" && action !== "retry" && action !== "purge") {
    throw new OutboxConfigError(
      action === undefined
        ? "Expected a subcommand: list, retry or purge. See prisma-outbox dead-letters --help."
        : `Unknown subcommand "${action}": expected list, retry or purge. See prisma-outbox dead-letters --help.`,
    );
  }
  const source = values.inbox === true ? "inbox" : "outbox";
  if (source === "outbox" && values.handler !== undefined) {
    throw new OutboxConfigError("--handler filters the inbox's dead rows: add --inbox.");
  }
  if (action === "list" && (values["dry-run"] !== undefined || values.all !== undefined)) {
    throw new OutboxConfigError("--dry-run and --all apply to retry and purge, not list.");
  }
  if (action !== "list" && values.limit !== undefined) {
    throw new OutboxConfigError(`--limit applies to list; ${action} takes every dead letter that matches.`);
  }
  const ids = list("--id", values.id)?.map((id) => (UUID.test(id) ? id.toLowerCase() : id));
  const filter: DeadLetterFilter = {
    exchanges: list("--exchange", values.exchange),
    routingKey: values["routing-key"] as string | undefined, // '' is a routing key (fanout exchanges use it)
    error: text("--error", values.error),
    since: values.since === undefined ? undefined : parseTime("--since", values.since as string),
    until: values.until === undefined ? undefined : parseTime("--until", values.until as string),
    ids,
    // --handler '' selects the invalid deliveries (stored dead with handler '').
    handlers: list("--handler", values.handler, true),
  };
  if (filter.since !== undefined && filter.until !== undefined && filter.since >= filter.until) {
    throw new OutboxConfigError(`Expected --since (${filter.since}) to be before --until (${filter.until}).`);
  }
  for (const key of Object.keys(filter) as Array<keyof DeadLetterFilter>) {
    if (filter[key] === undefined) delete filter[key];
  }
  const all = values.all === true;
  if (action !== "list" && !all && Object.keys(filter).length === 0) {
    throw new OutboxConfigError(
      `${action} without a filter would take every dead letter: give a filter (--exchange, --error, --id...), or --all.`,
    );
  }
  return {
    help,
    action,
    databaseUrl: databaseUrl(values, env),
    source,
    schema: schema(values, env),
    filter,
    limit: positiveInteger("--limit", values.limit as string | undefined, 50),
    dryRun: values["dry-run"] === true,
    all,
    json: values.json === true,
  };
}
