// The doctor's schema-drift check (src/ops/doctor-drift.ts) reads what the database has, from pg_catalog (not
// information_schema: its views filter by privilege and are slow to join), for our tables in one schema. Catalogs
// only: safe every minute. The expectation it is compared with: src/ops/doctor-schema.ts.

/** Columns ($1 schema, $2 table names): name, format_type() and NOT NULL. Dropped columns are left out. */
export const SCHEMA_COLUMNS_SQL = `SELECT c.relname AS table_name, a.attname AS column_name,
  format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = ANY($2::text[]) AND c.relkind IN ('r', 'p') AND a.attnum > 0
  AND NOT a.attisdropped
ORDER BY c.relname, a.attnum`;

/**
 * Indexes ($1 schema, $2 table names): their columns in order (an expression has no column and is left out),
 * unique, primary, partial, and valid (a CREATE INDEX CONCURRENTLY that failed leaves an invalid index that no query
 * uses). Indexes are matched on their columns, not their names: a renamed index still serves.
 */
export const SCHEMA_INDEXES_SQL = `SELECT c.relname AS table_name, ic.relname AS index_name, x.indisunique AS is_unique,
  x.indisprimary AS is_primary, x.indisvalid AS is_valid, x.indpred IS NOT NULL AS is_partial,
  array(SELECT a.attname::text FROM unnest(x.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum ORDER BY k.ord) AS columns
FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid JOIN pg_class ic ON ic.oid = x.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = ANY($2::text[])
ORDER BY c.relname, ic.relname`;

/** Tables ($1 schema, $2 table names) with their storage parameters (pg_class.reloptions, "name=value" items). */
export const SCHEMA_TABLES_SQL = `SELECT c.relname AS table_name, coalesce(c.reloptions, '{}') AS reloptions
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = ANY($2::text[]) AND c.relkind IN ('r', 'p')`;

export interface SchemaColumnRow {
  table_name: string;
  column_name: string;
  type: string;
  not_null: boolean;
}

export interface SchemaIndexRow {
  table_name: string;
  index_name: string;
  is_unique: boolean;
  is_primary: boolean;
  is_valid: boolean;
  is_partial: boolean;
  columns: string[];
}
