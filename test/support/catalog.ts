// PostgreSQL's own catalog as comparable text: how the schema tests check that shipped migrations and Prisma models
// describe the same tables (migration.test.ts says why the catalog and not the schema engine's introspection).
import pg from "pg";

/** An SQL predicate on a column holding a table name, e.g. (name) => `${name} LIKE 'inbox%'`. */
export type TableFilter = (name: string) => string;

export async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/**
 * Columns (type, nullability, default), indexes and constraints of the tables of the public schema that `tables`
 * picks, with `storage` their relations' storage parameters too, as sorted text.
 */
export function catalog(url: string, tables: TableFilter, { storage = false } = {}): Promise<string[]> {
  return withClient(url, async (c) => {
    const columns = await c.query(`
      SELECT table_name || '.' || column_name || ' ' || data_type || coalesce('(' || character_maximum_length || ')', '')
             || coalesce(' p' || datetime_precision, '') || ' ' || is_nullable || ' ' || coalesce(column_default, '-') AS d
      FROM information_schema.columns WHERE table_schema = 'public' AND ${tables("table_name")}`);
    const indexes = await c.query(
      `SELECT indexdef AS d FROM pg_indexes WHERE schemaname = 'public' AND ${tables("tablename")}`,
    );
    const constraints = await c.query(`
      SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) AS d
      FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND ${tables("conrelid::regclass::text")}`);
    const parameters = storage
      ? await c.query(`
      SELECT relname || ' reloptions ' || coalesce(array_to_string(reloptions, ','), '-') AS d
      FROM pg_class WHERE relnamespace = 'public'::regnamespace AND ${tables("relname")}`)
      : { rows: [] };
    return [...columns.rows, ...indexes.rows, ...constraints.rows, ...parameters.rows].map((r) => r.d as string).sort();
  });
}

/** Drops everything in the public schema. */
export const resetPublicSchema = (url: string) =>
  withClient(url, (c) => c.query("DROP SCHEMA public CASCADE; CREATE SCHEMA public"));
