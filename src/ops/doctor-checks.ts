// The doctor's database checks: the xmin horizon, autovacuum (switched off, or behind), and bloat. Each returns one
// finding with what it costs and what to do; each reads only catalogs and statistics views (src/sql/ops/doctor-*.ts
// say why each statement is safe every minute), so all of them are in `checks: "cheap"`.
import { XMIN_HOLDERS_SQL, type XminHolderRow } from "../sql/ops/doctor-horizon.js";
import { BLOAT_SQL, type BloatRow, TABLE_VACUUM_SQL, type TableVacuumRow } from "../sql/ops/doctor-tables.js";
import { ageText, bytesText, type CheckContext, type Finding, levelOf, rowsOf, worst } from "./doctor-finding.js";
import type { ResolvedDoctorOptions } from "./doctor-options.js";

const DEAD_ROWS_COST =
  "every claim walks the dead rows and their index entries before it finds a live one: ~220 ms a claim per million dead rows (README), and the table and its indexes grow";

/** The oldest transaction, prepared transaction and replication slot holding back VACUUM in this database. */
export async function xminHorizon(ctx: CheckContext, o: ResolvedDoctorOptions): Promise<Finding> {
  const rows = await rowsOf<XminHolderRow>(ctx.db, XMIN_HOLDERS_SQL);
  const holders = rows.map((r) => {
    const xidAge = r.xid_age === null ? null : Number(r.xid_age);
    const ageMs = r.age_ms === null ? null : Math.max(0, Math.round(r.age_ms));
    const level =
      ageMs !== null
        ? levelOf(ageMs, o.xminHorizonWarnMs, o.xminHorizonErrorMs)
        : levelOf(xidAge ?? 0, o.xminHorizonWarnXids, o.xminHorizonWarnXids * 10);
    return { kind: r.kind, id: r.id, name: r.name, state: r.state, ageMs, xidAge, query: r.query, level };
  });
  const level = worst(holders.map((h) => h.level));
  const held = holders.filter((h) => h.level !== "ok");
  const describe = (h: (typeof holders)[number]) => {
    const what =
      h.kind === "transaction"
        ? `session ${h.id} (${h.name || "no application name"}, ${h.state ?? "?"})`
        : h.kind === "prepared"
          ? `prepared transaction "${h.id}"`
          : `replication slot "${h.id}" ${h.name}`;
    const age = h.ageMs !== null ? `for ${ageText(h.ageMs)}` : `${h.xidAge} transactions old`;
    return `${what} ${age}`;
  };
  const oldest = holders.reduce<(typeof holders)[number] | undefined>(
    (a, h) => (a === undefined || (h.ageMs ?? 0) > (a.ageMs ?? 0) ? h : a),
    undefined,
  );
  return {
    check: "xmin-horizon",
    level,
    summary:
      held.length > 0
        ? `the xmin horizon is held by ${held.map(describe).join("; ")}`
        : oldest
          ? `nothing holds the xmin horizon for long (oldest: ${describe(oldest)})`
          : "nothing holds the xmin horizon",
    cost:
      "VACUUM cannot remove any row deleted after the holder's snapshot was taken, in any table of the database: " +
      DEAD_ROWS_COST,
    action:
      "end the holder: COMMIT or ROLLBACK the session's transaction (or SELECT pg_terminate_backend(pid)); " +
      "COMMIT/ROLLBACK PREPARED 'gid'; drop an unused slot (SELECT pg_drop_replication_slot('name')) or fix its " +
      "standby. Prevent it: idle_in_transaction_session_timeout, and no long reports on the primary",
    details: { holders },
  };
}

/** Autovacuum switched off (server-wide or per table), and dead rows piling up in our tables. */
export async function vacuumChecks(ctx: CheckContext, o: ResolvedDoctorOptions): Promise<Finding[]> {
  const rows = await rowsOf<TableVacuumRow>(ctx.db, TABLE_VACUUM_SQL, [ctx.schema, [...ctx.present]]);
  const serverOff = rows[0]?.autovacuum === "off";
  const countsOff = rows[0]?.track_counts === "off";
  const disabledTables = rows
    .filter((r) => r.reloptions.some((opt) => /^autovacuum_enabled=(false|off|no|0)$/i.test(opt)))
    .map((r) => r.table_name);
  const disabledLevel = serverOff || countsOff || disabledTables.length > 0 ? "error" : "ok";
  const disabled: Finding = {
    check: "autovacuum-disabled",
    level: disabledLevel,
    summary:
      [
        serverOff ? "autovacuum is off for the whole server (autovacuum = off)" : "",
        countsOff ? "track_counts is off: autovacuum cannot tell which tables need it" : "",
        disabledTables.length > 0
          ? `autovacuum is disabled on ${disabledTables.join(", ")} (autovacuum_enabled = false)`
          : "",
      ]
        .filter(Boolean)
        .join("; ") || "autovacuum is on for our tables",
    cost: `nothing removes the dead rows every delivered message leaves: ${DEAD_ROWS_COST}`,
    action:
      [
        disabledTables.length > 0
          ? `ALTER TABLE ${disabledTables.map((t) => `"${ctx.schema}"."${t}"`).join(", ")} RESET (autovacuum_enabled); then VACUUM the table once`
          : "",
        serverOff || countsOff
          ? "set autovacuum = on and track_counts = on in postgresql.conf (reload); until then run VACUUM on our tables from a cron job (and skip this check)"
          : "",
      ]
        .filter(Boolean)
        .join("; ") || "nothing",
    details: { serverAutovacuum: rows[0]?.autovacuum, trackCounts: rows[0]?.track_counts, tables: disabledTables },
  };
  const tables = rows.map((r) => ({
    table: r.table_name,
    deadRows: Number(r.dead),
    liveRows: Number(r.live),
    lastAutovacuum: r.last_autovacuum?.toISOString() ?? null,
    lastVacuum: r.last_vacuum?.toISOString() ?? null,
    autovacuumCount: Number(r.autovacuum_count),
    level: levelOf(Number(r.dead), o.deadRowsWarn, o.deadRowsError),
  }));
  const behind = tables.filter((t) => t.level !== "ok");
  const lastVacuum = (t: (typeof tables)[number]) => {
    const at = [t.lastAutovacuum, t.lastVacuum]
      .filter((v): v is string => v !== null)
      .sort()
      .at(-1);
    return at === undefined ? "never vacuumed" : `last vacuumed ${at}`;
  };
  return [
    disabled,
    {
      check: "autovacuum-behind",
      level: worst(tables.map((t) => t.level)),
      summary:
        behind.length > 0
          ? behind.map((t) => `${t.table}: ${t.deadRows} dead rows (${t.liveRows} live), ${lastVacuum(t)}`).join("; ")
          : `dead rows below ${o.deadRowsWarn} in our tables`,
      cost: DEAD_ROWS_COST,
      action:
        "VACUUM (VERBOSE) the table now; if it removes nothing, the xmin horizon is held (see xmin-horizon). If " +
        "autovacuum keeps falling behind: check the migration's per-table settings (schema-drift), raise " +
        "autovacuum_max_workers or lower autovacuum_naptime",
      details: { tables },
    },
  ];
}

/** Tables and indexes much larger than their live rows need (a rough estimate: sql/ops/doctor-tables.ts). */
export async function bloat(ctx: CheckContext, o: ResolvedDoctorOptions): Promise<Finding> {
  const rows = await rowsOf<BloatRow>(ctx.db, BLOAT_SQL, [ctx.schema, [...ctx.present]]);
  const relations = rows.map((r) => {
    const wasted = Math.max(0, r.bytes - r.needed_bytes);
    const bloated = r.bytes >= o.bloatRatio * r.needed_bytes && wasted >= o.bloatMinBytes;
    return {
      kind: r.kind,
      name: r.name,
      table: r.table_name,
      bytes: r.bytes,
      estimatedNeedBytes: Math.round(r.needed_bytes),
      liveRows: r.live,
      bloated,
    };
  });
  const bloated = relations.filter((r) => r.bloated);
  const indexes = bloated.filter((r) => r.kind === "index").map((r) => `"${ctx.schema}"."${r.name}"`);
  const tables = bloated.filter((r) => r.kind === "table").map((r) => `"${ctx.schema}"."${r.name}"`);
  const actions: string[] = [];
  if (indexes.length > 0)
    actions.push(`REINDEX INDEX CONCURRENTLY ${indexes.join(", ")} (one at a time; no lock that stops the relay)`);
  if (tables.length > 0) {
    actions.push(
      `when the queue is drained: VACUUM FULL ${tables.join(", ")} (an exclusive lock: the relay and writers wait while it runs; pg_repack avoids it)`,
    );
  }
  return {
    check: "bloat",
    level: bloated.length > 0 ? "warning" : "ok",
    summary:
      bloated.length > 0
        ? bloated
            .map(
              (r) => `${r.kind} ${r.name}: ${bytesText(r.bytes)} for ~${bytesText(r.estimatedNeedBytes)} of live rows`,
            )
            .join("; ")
        : "no table or index of ours is much larger than its live rows need",
    cost: "claims and scans read the empty pages too: slower claims and status counts, more cache and disk used",
    action: actions.length > 0 ? actions.join("; ") : "nothing",
    details: { relations, estimate: "live rows x pg_stats widths + overhead; a 10x flag, not a 10% one" },
  };
}
