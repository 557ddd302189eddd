// Options of `prisma-outbox status`: flags and environment, parsed and validated in one place. Every refusal is an
// OutboxConfigError of one line saying what to fix; a URL is only ever shown redacted.
import { countFlag, databaseUrlSetting, parseFlags, schemaSetting } from "./common.js";

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

export interface StatusConfig {
  help: boolean;
  databaseUrl: string;
  schema: string;
  top: number;
  json: boolean;
}

export function parseStatusConfig(argv: string[], env: NodeJS.ProcessEnv): StatusConfig {
  const { values } = parseFlags("status", argv, {
    "database-url": { type: "string" },
    schema: { type: "string" },
    top: { type: "string" },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  const help = values.help === true;
  return {
    help,
    databaseUrl: help ? "" : databaseUrlSetting(values, env),
    schema: schemaSetting(values, env),
    top: countFlag("--top", values.top as string | undefined, 5),
    json: values.json === true,
  };
}
