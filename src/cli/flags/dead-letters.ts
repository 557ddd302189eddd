// Options of `prisma-outbox dead-letters`: flags and environment, parsed and validated in one place. Every refusal is
// an OutboxConfigError of one line saying what to fix; a URL is only ever shown redacted.
import { OutboxConfigError } from "../../errors.js";
import type { DeadLetterFilter } from "../../sql/ops/dead-letter-filter.js";
import { countFlag, databaseUrlSetting, type FlagValues, parseFlags, parseTime, schemaSetting } from "./common.js";

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

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Repeated flags and comma-separated values, as one list without blanks. */
function list(flag: string, value: FlagValues[string], allowEmpty = false): string[] | undefined {
  if (value === undefined) return undefined;
  const items = (value as string[]).flatMap((v) => v.split(",")).map((v) => v.trim());
  if (!allowEmpty && items.some((v) => v === "")) {
    throw new OutboxConfigError(`Expected ${flag} to be a non-empty value or list.`);
  }
  return items;
}

function text(flag: string, value: FlagValues[string]): string | undefined {
  if (value === undefined) return undefined;
  if (value === "") throw new OutboxConfigError(`Expected ${flag} to be non-empty.`);
  return value as string;
}

/**
 * The filter flags (--exchange, --routing-key, --error, --since, --until, --id, --handler) as a DeadLetterFilter
 * without the unset ones; the dashboard reads its query with this too, so that both filter alike.
 */
export function parseDeadLetterFilter(values: FlagValues, source: "outbox" | "inbox"): DeadLetterFilter {
  if (source === "outbox" && values.handler !== undefined) {
    throw new OutboxConfigError("--handler filters the inbox's dead rows: add --inbox.");
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
  return filter;
}

export function parseDeadLettersConfig(argv: string[], env: NodeJS.ProcessEnv): DeadLettersConfig {
  const { values, positionals } = parseFlags(
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
  if (action === "list" && (values["dry-run"] !== undefined || values.all !== undefined)) {
    throw new OutboxConfigError("--dry-run and --all apply to retry and purge, not list.");
  }
  if (action !== "list" && values.limit !== undefined) {
    throw new OutboxConfigError(`--limit applies to list; ${action} takes every dead letter that matches.`);
  }
  const filter = parseDeadLetterFilter(values, source);
  const all = values.all === true;
  if (action !== "list" && !all && Object.keys(filter).length === 0) {
    throw new OutboxConfigError(
      `${action} without a filter would take every dead letter: give a filter (--exchange, --error, --id...), or --all.`,
    );
  }
  return {
    help,
    action,
    databaseUrl: databaseUrlSetting(values, env),
    source,
    schema: schemaSetting(values, env),
    filter,
    limit: countFlag("--limit", values.limit as string | undefined, 50),
    dryRun: values["dry-run"] === true,
    all,
    json: values.json === true,
  };
}
