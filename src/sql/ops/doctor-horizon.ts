// The doctor's xmin-horizon check (src/ops/doctor-checks.ts): what keeps VACUUM from removing the rows our relays and
// inboxes delete. Three kinds of holder, one statement, the oldest of each kind:
// - a session of this database with a snapshot (backend_xmin): an open transaction, idle in transaction, or one long
//   query. Sessions of other databases do not hold back this database's tables, so they are left out (a cluster-wide
//   answer would blame a neighbour). Autovacuum workers are left out: VACUUM ignores other vacuums' snapshots. The
//   doctor's own session is left out (it holds a snapshot while it asks).
// - a prepared transaction (PREPARE TRANSACTION) of this database: it holds its snapshot until COMMIT/ROLLBACK
//   PREPARED, across restarts, and no session shows it.
// - a replication slot with an xmin (a physical slot of a standby with hot_standby_feedback): cluster-wide, it holds
//   every database. Its age is only known in transaction ids (a slot has no start time). A logical slot's
//   catalog_xmin holds back the system catalogs only, not our tables.
// Reads three in-memory views: no table is scanned, safe every minute. A role without pg_read_all_stats (pg_monitor)
// sees backend_xmin only for its own sessions: docs/operating.md#doctor says which grant to give.

/** kind, id, name, state, age_ms (null for slots), xid_age, query (cut), for the oldest holder of each kind. */
export const XMIN_HOLDERS_SQL = `SELECT DISTINCT ON (kind) kind, id, name, state, age_ms, xid_age, query FROM (
  SELECT 'transaction' AS kind, pid::text AS id, application_name AS name, state,
         (extract(epoch FROM now() - coalesce(xact_start, query_start, backend_start)) * 1000)::float8 AS age_ms,
         age(backend_xmin)::int8 AS xid_age, left(query, 200) AS query
  FROM pg_stat_activity
  WHERE datname = current_database() AND backend_xmin IS NOT NULL AND pid <> pg_backend_pid()
    AND backend_type IS DISTINCT FROM 'autovacuum worker'
  UNION ALL
  SELECT 'prepared', gid, owner::text, 'prepared', (extract(epoch FROM now() - prepared) * 1000)::float8,
         age(transaction)::int8, NULL
  FROM pg_prepared_xacts WHERE database = current_database()
  UNION ALL
  SELECT 'slot', slot_name::text, slot_type || CASE WHEN active THEN ' (active)' ELSE ' (inactive)' END,
         CASE WHEN active THEN 'active' ELSE 'inactive' END, NULL::float8, age(xmin)::int8, NULL
  FROM pg_replication_slots WHERE xmin IS NOT NULL
) holders ORDER BY kind, xid_age DESC NULLS LAST, age_ms DESC NULLS LAST`;

export interface XminHolderRow {
  kind: "transaction" | "prepared" | "slot";
  id: string;
  name: string | null;
  state: string | null;
  age_ms: number | null;
  xid_age: string | null;
  query: string | null;
}
