// The doctor's table checks (src/ops/doctor-checks.ts): autovacuum switched off or behind, and bloat estimates, for
// our tables in one schema. Both read catalogs and the statistics views only (pg_class, pg_index, pg_stats,
// pg_stat_all_tables, pg_relation_size: a file size, not a scan): safe every minute on a busy database.

/**
 * Per table ($1 schema, $2 table names): its storage parameters (autovacuum_enabled=false lives there), dead and live
 * tuples as the statistics collector counts them (no scan; they lag by up to a second or so), the last vacuums, and
 * the server's autovacuum and track_counts settings (off: nothing vacuums, or nothing counts what to vacuum).
 */
export const TABLE_VACUUM_SQL = `SELECT c.relname AS table_name, coalesce(c.reloptions, '{}') AS reloptions,
  coalesce(s.n_live_tup, 0)::int8 AS live, coalesce(s.n_dead_tup, 0)::int8 AS dead,
  s.last_autovacuum, s.last_vacuum, coalesce(s.autovacuum_count, 0)::int8 AS autovacuum_count,
  current_setting('autovacuum') AS autovacuum, current_setting('track_counts') AS track_counts
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
WHERE n.nspname = $1 AND c.relname = ANY($2::text[]) AND c.relkind IN ('r', 'p')
ORDER BY c.relname`;

export interface TableVacuumRow {
  table_name: string;
  reloptions: string[];
  live: string;
  dead: string;
  last_autovacuum: Date | null;
  last_vacuum: Date | null;
  autovacuum_count: string;
  autovacuum: string;
  track_counts: string;
}

/**
 * Size against a rough need, per table and per index ($1 schema, $2 table names). The need is the live rows (the
 * statistics' n_live_tup) times a row's width: the sum of pg_stats.avg_width of its columns (the table's, or the
 * index's columns) plus the per-row overhead (28 bytes for a heap tuple header and its line pointer, 16 for an index
 * tuple's), or a guess when the table was never analyzed (200 bytes a row, 16 bytes of key), with two pages of
 * slack. A rough estimate, documented as such: it cannot tell free space that new rows will reuse from space that
 * only a rewrite (VACUUM FULL, REINDEX) gives back, and pg_stats may be stale. It is meant to flag a 10x, not a 10%.
 */
export const BLOAT_SQL = `WITH t AS (
  SELECT c.oid, c.relname, coalesce(s.n_live_tup, 0)::float8 AS live,
    (SELECT sum(p.avg_width) FROM pg_stats p WHERE p.schemaname = n.nspname AND p.tablename = c.relname)::float8
      AS row_width
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
  WHERE n.nspname = $1 AND c.relname = ANY($2::text[]) AND c.relkind = 'r'
)
SELECT 'table' AS kind, t.relname AS name, t.relname AS table_name, pg_relation_size(t.oid)::float8 AS bytes,
  t.live, (t.live * (coalesce(t.row_width, 200) + 28) + 2 * 8192)::float8 AS needed_bytes
FROM t
UNION ALL
SELECT 'index', ic.relname, t.relname, pg_relation_size(ic.oid)::float8, t.live,
  (t.live * (coalesce((SELECT sum(p.avg_width) FROM pg_attribute a
                       JOIN pg_stats p ON p.schemaname = $1 AND p.tablename = t.relname AND p.attname = a.attname
                       WHERE a.attrelid = t.oid AND a.attnum = ANY(x.indkey::int2[])), 16) + 16) + 2 * 8192)::float8
FROM t JOIN pg_index x ON x.indrelid = t.oid JOIN pg_class ic ON ic.oid = x.indexrelid
ORDER BY 3, 1 DESC, 2`;

export interface BloatRow {
  kind: "table" | "index";
  name: string;
  table_name: string;
  bytes: number;
  live: number;
  needed_bytes: number;
}
