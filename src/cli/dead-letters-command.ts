// `prisma-outbox dead-letters list | retry | purge [--inbox]`: the outbox's dead letters or the inbox's dead rows,
// selected by filters (src/cli/flags/ops.ts), shown as a table or JSON, retried or purged with a count of what
// was done. retry and purge without a filter need --all; --dry-run changes nothing.

import { OutboxConfigError } from "../errors.js";
import {
  type DeadLetterTarget,
  type ListedDeadLetter,
  listDeadLetters,
  purgeDeadLetters,
  retryDeadLetters,
} from "../ops/dead-letters.js";
import { escapeJsonControl } from "../runtime/escape.js";
import { DEAD_LETTERS_HELP, type DeadLettersConfig, parseDeadLettersConfig } from "./flags/dead-letters.js";
import { describeFailure, openOpsPool } from "./ops-database.js";
import { table } from "./table.js";

function rowsTable(source: "outbox" | "inbox", rows: ListedDeadLetter[]): string {
  if (source === "inbox") {
    return table(
      ["id", "message id", "handler", "exchange", "routing key", "attempts", "received at", "last error"],
      rows.map((r) => [r.id, r.messageId, r.handler, r.exchange, r.routingKey, r.attempts, r.receivedAt, r.lastError]),
    );
  }
  return table(
    ["id", "message id", "exchange", "routing key", "attempts", "failed at", "last error"],
    rows.map((r) => [r.id, r.messageId, r.exchange, r.routingKey, r.attempts, r.failedAt, r.lastError]),
  );
}

const noun = (source: "outbox" | "inbox", n: number) =>
  source === "inbox" ? `dead inbox row${n === 1 ? "" : "s"}` : `dead letter${n === 1 ? "" : "s"}`;

async function run(config: DeadLettersConfig, write: (text: string) => void): Promise<void> {
  const pool = openOpsPool(config.databaseUrl);
  const target: DeadLetterTarget = { source: config.source, schema: config.schema };
  try {
    if (config.action === "list") {
      const { total, rows } = await listDeadLetters(pool, target, config.filter, config.limit);
      if (config.json)
        return write(`${escapeJsonControl(JSON.stringify({ source: config.source, total, rows }, null, 2))}\n`);
      if (rows.length > 0) write(`${rowsTable(config.source, rows)}\n`);
      write(
        `${total} ${noun(config.source, total)} match${rows.length < total ? ` (newest ${rows.length} shown)` : ""}\n`,
      );
      return;
    }
    const change = config.action === "retry" ? retryDeadLetters : purgeDeadLetters;
    const result = await change(pool, target, config.filter, { dryRun: config.dryRun, all: config.all });
    if (config.json) {
      return write(
        `${escapeJsonControl(JSON.stringify({ action: config.action, source: config.source, ...result }, null, 2))}\n`,
      );
    }
    const what = noun(config.source, result.count);
    if (result.dryRun) {
      if (result.rows?.length) write(`${rowsTable(config.source, result.rows)}\n`);
      const more = result.rows && result.rows.length < result.count ? ` (newest ${result.rows.length} shown)` : "";
      write(`dry run: would ${config.action} ${result.count} ${what}${more}; nothing changed\n`);
      return;
    }
    const done = config.action === "retry" ? "retried" : "purged";
    const where =
      config.action === "retry"
        ? config.source === "inbox"
          ? " (back to pending)"
          : ` (moved back into the outbox of schema ${config.schema})`
        : "";
    write(`${done} ${result.count} ${what}${where}\n`);
  } finally {
    await pool.end().catch(() => {});
  }
}

export async function runDeadLetters(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let config: DeadLettersConfig;
  try {
    config = parseDeadLettersConfig(argv, env);
  } catch (error) {
    if (!(error instanceof OutboxConfigError)) throw error;
    process.stderr.write(`prisma-outbox dead-letters: ${error.message}\n`);
    return 2;
  }
  if (config.help) {
    process.stdout.write(DEAD_LETTERS_HELP);
    return 0;
  }
  try {
    await run(config, (text) => process.stdout.write(text));
    return 0;
  } catch (error) {
    const { message, exitCode } = describeFailure(error, config.databaseUrl);
    process.stderr.write(`prisma-outbox dead-letters: ${message}\n`);
    return exitCode;
  }
}
