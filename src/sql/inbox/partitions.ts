// Who consumes which partition of a partitioned inbox queue (inbox/partitions.ts): PostgreSQL session advisory locks,
// held on one connection per inbox process. Why locks and not a table of owners: a lock lives exactly as long as the
// session that holds it, so a process that dies (SIGKILL, a lost host: once PostgreSQL sees its socket close) gives
// its partitions back at once, with no lease to wait out and no row to clean up; and pg_try_advisory_lock never waits.
// Keys: (queue key, partition index) for a partition, taken exclusive; (queue key, MEMBER_KEY) for membership, taken
// shared by every process on the queue, so the number of sessions holding it is the number of processes (K), read from
// pg_locks (the lock table of the whole server: the database is part of the filter, advisory keys are per database).

/** The second key of the membership lock: above any partition index (at most MAX_PARTITIONS). */
export const MEMBER_KEY = 1_000_000;

/** Takes partition $2 of queue key $1 if free; never waits. One row: taken (boolean). */
export const tryLockPartitionSql = "SELECT pg_try_advisory_lock($1::int4, $2::int4) AS taken";

/** Gives partition $2 of queue key $1 back (after its consumer is closed). */
export const unlockPartitionSql = "SELECT pg_advisory_unlock($1::int4, $2::int4) AS released";

/** Joins the queue's members (shared: every process holds it at once). Held for the session. */
export const joinMembersSql = `SELECT pg_advisory_lock_shared($1::int4, ${MEMBER_KEY})`;

/**
 * The number of processes on the queue: sessions holding its membership lock. An advisory lock with two int4 keys
 * shows in pg_locks as classid = key 1, objid = key 2, objsubid = 2 (both keys are non-negative here, so the oid casts
 * are exact).
 */
export const countMembersSql = `
SELECT count(DISTINCT pid)::int AS members FROM pg_locks
WHERE locktype = 'advisory' AND granted AND objsubid = 2
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND classid = $1::int4::oid AND objid = ${MEMBER_KEY}::oid`;

/** Every advisory lock of this session (before a borrowed pool's connection goes back to its pool). */
export const unlockAllSql = "SELECT pg_advisory_unlock_all()";

/**
 * The queue key: FNV-1a of the queue's name, as a non-negative int4 (stable across processes and versions, unlike
 * hashtext()). Two queues colliding would only share membership counts and partition locks: slower spreading, never
 * two consumers on one partition queue (single active consumer still holds).
 */
export function partitionQueueKey(queue: string): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(`prisma-outbox partitions ${queue}`, "utf8")) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h & 0x7fffffff;
}
