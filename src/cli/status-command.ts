// `prisma-outbox status`: the backlog, the dead letters and who is connected, as a compact text report or one JSON
// object (--json, the shape of OutboxStatus in src/ops/status.ts, documented in docs/operating.md#commands).

import { OutboxConfigError } from "../errors.js";
import { type OutboxStatus, outboxStatus } from "../ops/status.js";
import { escapeJsonControl } from "../runtime/escape.js";
import { parseStatusConfig, STATUS_HELP } from "./flags/status.js";
import { describeFailure, openOpsPool } from "./ops-database.js";
import { table } from "./table.js";

/** 350 ms, 4.2 s, 3 min 20 s, 2 h 5 min. */
export function formatAge(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.floor(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

const oldest = (ms: number | null) => (ms === null ? "nothing due" : `oldest due for ${formatAge(ms)}`);

function indent(text: string, by = "    "): string {
  return text
    .split("\n")
    .map((l) => by + l)
    .join("\n");
}

export function formatStatus(status: OutboxStatus): string {
  const out: string[] = [];
  const { outbox, inbox, connected } = status;
  if (!outbox.present) {
    out.push(`outbox (schema ${status.schema}): no outbox tables in this schema (migrate, or pass --schema)`);
  } else {
    out.push(`outbox (schema ${status.schema})`);
    out.push(`  backlog: ${outbox.due} due, ${outbox.deferred} deferred; ${oldest(outbox.oldestDueAgeMs)}`);
    out.push(`  dead letters: ${outbox.deadLetters.total}`);
    if (outbox.deadLetters.total > 0) {
      const byExchange = outbox.deadLetters.byExchange.map((r) => [r.exchange, r.count, r.lastFailedAt]);
      out.push(indent(table(["exchange", "count", "last failed"], byExchange)));
      out.push(
        indent(
          table(
            ["error", "count"],
            outbox.deadLetters.byError.map((r) => [r.error, r.count]),
          ),
        ),
      );
    }
  }
  out.push(
    `connected: ${connected.listenerSessions} listening relay(s), ${connected.relaySessions} relay session(s), ` +
      `${connected.inboxSessions} inbox session(s)`,
  );
  if (!inbox.present) {
    out.push("inbox: no inbox table (inbox_message) in this database");
  } else {
    out.push("inbox");
    out.push(
      `  backlog: ${inbox.due} due, ${inbox.deferred} leased or backing off (${inbox.retrying} retrying); ` +
        `${oldest(inbox.oldestDueAgeMs)}; ${inbox.processed} processed (kept for dedupe)`,
    );
    if (inbox.waiting > 0) out.push(`  waiting for a handler (rolling deploy): ${inbox.waiting}`);
    out.push(`  dead: ${inbox.dead.total}`);
    if (inbox.dead.total > 0) {
      const byHandler = inbox.dead.byHandler.map((r) => [r.handler === "" ? "(invalid delivery)" : r.handler, r.count]);
      out.push(indent(table(["handler", "count"], byHandler)));
      out.push(
        indent(
          table(
            ["error", "count"],
            inbox.dead.byError.map((r) => [r.error, r.count]),
          ),
        ),
      );
    }
  }
  return `${out.join("\n")}\n`;
}

export async function runStatus(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let config: ReturnType<typeof parseStatusConfig>;
  try {
    config = parseStatusConfig(argv, env);
  } catch (error) {
    if (!(error instanceof OutboxConfigError)) throw error;
    process.stderr.write(`prisma-outbox status: ${error.message}\n`);
    return 2;
  }
  if (config.help) {
    process.stdout.write(STATUS_HELP);
    return 0;
  }
  const pool = openOpsPool(config.databaseUrl);
  try {
    const status = await outboxStatus(pool, { schema: config.schema, top: config.top });
    process.stdout.write(
      config.json ? `${escapeJsonControl(JSON.stringify(status, null, 2))}\n` : formatStatus(status),
    );
    return 0;
  } catch (error) {
    const { message, exitCode } = describeFailure(error, config.databaseUrl);
    process.stderr.write(`prisma-outbox status: ${message}\n`);
    return exitCode;
  } finally {
    await pool.end().catch(() => {});
  }
}
