// The database session of the operator commands (status, dead-letters): a small pool of their own, named so that
// they are not counted among the relays and inboxes, and one place that turns a failure into a one-line message,
// never with a password in it, and an exit code.
import pg from "pg";
import { redactUrl, scrubSecrets } from "../config/redact.js";
import { coerceError, OutboxConfigError } from "../errors.js";
import { describePgError } from "../runtime/pg.js";

export const CLI_APPLICATION_NAME = "prisma-outbox cli";

export function openOpsPool(databaseUrl: string): pg.Pool {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: 2,
    application_name: CLI_APPLICATION_NAME,
    connectionTimeoutMillis: 10_000,
    // Client-side, so that it also works through a pooler that refuses statement_timeout at start-up: a command
    // stuck behind a lock fails and says so instead of hanging. A session timed out is closed, and with it the
    // transaction it had open rolls back.
    query_timeout: 120_000,
  });
  pool.on("error", () => {}); // an idle session lost: the next query fails, and says why
  return pool;
}

/** One line, no stack trace, and the exit code: 2 for what the user must fix, 1 for the server's failure. */
export function describeFailure(error: unknown, databaseUrl: string): { message: string; exitCode: number } {
  const e = coerceError(error);
  const code = (error as { code?: string }).code;
  // A refused connection to a name with several addresses is an AggregateError with an empty message.
  const inner = (error as { errors?: unknown[] }).errors?.[0];
  // The driver's text is scrubbed on its own, before the redacted URL is added: a short password must not match
  // inside the URL we show. pg may echo the URL, its password, or a piece of a misread password as a host name.
  let message = scrubSecrets(
    e.message.split("\n")[0] || (inner instanceof Error ? inner.message : "") || e.name,
    databaseUrl,
  );
  if (!(error instanceof OutboxConfigError)) {
    message = `could not query the database at ${redactUrl(databaseUrl)}: ${message}${code ? ` (${code})` : ""}`;
  }
  // The rule of every start(): 2 when a person must change something (runtime/pg.ts says which errors), 1 when
  // waiting may fix it.
  const exitCode = error instanceof OutboxConfigError || describePgError(error).permanent ? 2 : 1;
  return { message, exitCode };
}
