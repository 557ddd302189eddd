// The dashboard's throughput: PostgreSQL's cumulative row counters of the outbox table (pg_stat_user_tables), read
// every few seconds and turned into rates by difference. The relay claims a row by deleting it, so deletes are rows
// claimed (published or dead-lettered); inserts are rows written. Why these counters and not a table of our own: they
// cost nothing on the write path, and every process sees the same figures (a dashboard beside the relays, not in
// them). What they cannot tell: a claim rolled back (a broker down) counts as a delete too, and the statistics
// reach the view up to a second late (PostgreSQL 15+ flushes them at most once a second per backend).

/**
 * A table's counters since the statistics were last reset; no row when the table does not exist. $1: the table's
 * qualified, quoted name (`outboxNames(schema).outboxTable`), resolved by `to_regclass`: a missing table is NULL, not
 * an error, so this never throws for a schema not migrated yet.
 */
export const TABLE_ACTIVITY_SQL = `SELECT n_tup_ins::float8 AS inserted, n_tup_del::float8 AS deleted
FROM pg_stat_user_tables WHERE relid = to_regclass($1)`;
