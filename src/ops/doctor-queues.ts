// The doctor's queue checks: the outbox backlog, the inbox's waiting rows, dead letters by age, and the relays and
// inbox workers connected. Cheap form: bounded reads through the claims' indexes (sql/ops/doctor-queues.ts); "all":
// the status command's exact counts (sql/ops/status.ts), and the dead letters by age (a scan).
import { inboxNames, outboxNames } from "../sql/names.js";
import {
  type BacklogCappedRow,
  type DeadAgesRow,
  inboxBacklogCappedSql,
  inboxDeadAgesSql,
  outboxBacklogCappedSql,
  outboxDeadLetterAgesSql,
} from "../sql/ops/doctor-queues.js";
import { CONNECTED_SQL, inboxStatusCountsSql, outboxStatusCountsSql } from "../sql/ops/status.js";
import { ageText, type CheckContext, type Finding, levelOf, rowsOf } from "./doctor-finding.js";
import type { ResolvedDoctorOptions } from "./doctor-options.js";
import { APPLICATION_NAMES } from "./status.js";

/** Due rows counted up to this many in the cheap form ("10000+"). */
export const BACKLOG_COUNT_CAP = 10_000;

interface Backlog {
  due: number;
  /** True when `due` is a lower bound (the cheap form stopped counting). */
  capped: boolean;
  oldestDueAgeMs: number | null;
}

async function backlogOf(ctx: CheckContext, part: "outbox" | "inbox"): Promise<Backlog> {
  const s = ctx.schema;
  if (ctx.cheap) {
    const sql = part === "outbox" ? outboxBacklogCappedSql(outboxNames(s)) : inboxBacklogCappedSql(inboxNames(s));
    const [r] = await rowsOf<BacklogCappedRow>(ctx.db, sql, [BACKLOG_COUNT_CAP]);
    const age = r!.oldest_due_ms === null ? null : Math.max(0, Math.round(r!.oldest_due_ms));
    return { due: r!.due, capped: r!.due >= BACKLOG_COUNT_CAP, oldestDueAgeMs: age };
  }
  const sql = part === "outbox" ? outboxStatusCountsSql(outboxNames(s)) : inboxStatusCountsSql(inboxNames(s));
  const [r] = await rowsOf<{ due: number; oldest_due_age_ms: number | null }>(ctx.db, sql);
  const age = r!.oldest_due_age_ms === null ? null : Math.max(0, Math.round(r!.oldest_due_age_ms));
  return { due: r!.due, capped: false, oldestDueAgeMs: age };
}

/** The outbox's (or the inbox's) due rows and how long the oldest has waited. */
export async function backlogCheck(
  ctx: CheckContext,
  o: ResolvedDoctorOptions,
  part: "outbox" | "inbox",
): Promise<Finding> {
  const b = await backlogOf(ctx, part);
  const count = `${b.due}${b.capped ? "+" : ""}`;
  const who = part === "outbox" ? "relay" : "inbox";
  return {
    check: `${part}-backlog`,
    level: b.oldestDueAgeMs === null ? "ok" : levelOf(b.oldestDueAgeMs, o.backlogAgeWarnMs, o.backlogAgeErrorMs),
    summary:
      b.oldestDueAgeMs === null
        ? `${part}: nothing due`
        : `${part}: ${count} rows due, the oldest for ${ageText(b.oldestDueAgeMs)}`,
    cost:
      part === "outbox"
        ? "messages reach consumers late: the lag is the oldest due row's age"
        : "handlers run late; the broker side is acked already, so only the table shows it",
    action:
      `check that a ${who} runs and is healthy (workers-connected, its /readyz and log); a backlog that grows while ` +
      `one runs: raise its concurrency, or look for a slow ${part === "outbox" ? "broker (publish confirms)" : "handler"}`,
    details: { due: b.due, dueCapped: b.capped, oldestDueAgeMs: b.oldestDueAgeMs },
  };
}

/** Dead letters of the outbox and dead rows of the inbox, by age ("all" only: a scan). */
export async function deadLetters(ctx: CheckContext, o: ResolvedDoctorOptions): Promise<Finding> {
  const parts: Record<string, DeadAgesRow & { oldestMs: number | null; newestMs: number | null }> = {};
  if (ctx.present.has("outbox_dead_letter")) {
    const [r] = await rowsOf<DeadAgesRow>(ctx.db, outboxDeadLetterAgesSql(outboxNames(ctx.schema)), [
      o.deadLetterWindowMs,
    ]);
    parts.outbox = { ...r!, oldestMs: r!.oldest_ms, newestMs: r!.newest_ms };
  }
  if (ctx.present.has("inbox_message")) {
    const [r] = await rowsOf<DeadAgesRow>(ctx.db, inboxDeadAgesSql(inboxNames(ctx.schema)), [o.deadLetterWindowMs]);
    parts.inbox = { ...r!, oldestMs: r!.oldest_ms, newestMs: r!.newest_ms };
  }
  const recent = Object.values(parts).reduce((n, p) => n + p.recent, 0);
  const text = Object.entries(parts)
    .filter(([, p]) => p.total > 0)
    .map(
      ([part, p]) =>
        `${part}: ${p.total} dead (${p.recent} within ${ageText(o.deadLetterWindowMs)}; newest ${ageText(p.newestMs ?? 0)} ago, oldest ${ageText(p.oldestMs ?? 0)} ago)`,
    );
  const details = Object.fromEntries(
    Object.entries(parts).map(([part, p]) => [
      part,
      { total: p.total, recent: p.recent, oldestAgeMs: p.oldestMs, newestAgeMs: p.newestMs },
    ]),
  );
  return {
    check: "dead-letters",
    level: recent > 0 ? "warning" : "ok",
    summary: text.length > 0 ? text.join("; ") : "no dead letters",
    cost: 'each is a message that was not delivered (outbox) or not handled (inbox): its effect is missing until someone acts; with ordering keys and keyAfterDeadLetter "stop", the key\'s later messages wait',
    action:
      "look at them (prisma-outbox dead-letters list [--inbox]), fix the cause (the error says it), then " +
      "dead-letters retry (or purge what is not wanted)",
    details: { windowMs: o.deadLetterWindowMs, ...details },
  };
}

/** Sessions under the relay's and the inbox's application names; a warning when a part has due rows and no one. */
export async function workersConnected(
  ctx: CheckContext,
  backlogs: { outbox?: Finding; inbox?: Finding },
): Promise<Finding> {
  const rows = await rowsOf<{ application_name: string; sessions: number }>(ctx.db, CONNECTED_SQL, [
    Object.values(APPLICATION_NAMES),
  ]);
  const sessions = new Map(rows.map((r) => [r.application_name, r.sessions]));
  const relay = sessions.get(APPLICATION_NAMES.relay) ?? 0;
  const listener = sessions.get(APPLICATION_NAMES.listener) ?? 0;
  const inbox = sessions.get(APPLICATION_NAMES.inbox) ?? 0;
  const due = (f: Finding | undefined) => ((f?.details.due as number | undefined) ?? 0) > 0;
  const missing: string[] = [];
  if (backlogs.outbox && relay === 0 && due(backlogs.outbox))
    missing.push("no relay is connected and outbox rows are due");
  if (backlogs.inbox && inbox === 0 && due(backlogs.inbox))
    missing.push("no inbox is connected and inbox rows are due");
  return {
    check: "workers-connected",
    level: missing.length > 0 ? "warning" : "ok",
    summary: `${listener} listening relay(s), ${relay} relay session(s), ${inbox} inbox session(s)${missing.length > 0 ? `: ${missing.join("; ")}` : ""}`,
    cost: "nothing publishes (or handles) the rows due: they wait",
    action:
      "start the worker (prisma-outbox worker) or the inbox (prisma-outbox inbox); a relay or inbox running on the " +
      "app's pg.Pool carries the app's application name and is not counted here",
    details: { relaySessions: relay, listenerSessions: listener, inboxSessions: inbox },
  };
}
