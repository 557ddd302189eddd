import type { RequestNames } from "../names.js";

// Submitting a request: the status row, written in the caller's transaction next to the outbox message that starts the
// work. Run through Prisma's raw queries (the caller's transaction is a Prisma one): casts type the parameters.

/**
 * Inserts a pending request. ON CONFLICT (type, idempotency_key) DO NOTHING is the idempotency: a second submit with
 * the same key inserts nothing and returns no row. When another transaction holds an uncommitted row with the same
 * key, the INSERT waits for it to end (the unique index's rule), so of two concurrent submits exactly one inserts and
 * the other then finds its row with requestByKeySql. A NULL key never conflicts (NULLs are distinct).
 * $1: id, $2: type, $3: input as JSON text, $4: idempotency key or null.
 */
export function insertRequestSql(names: RequestNames): string {
  return `
INSERT INTO ${names.requestTable} (id, type, input, idempotency_key)
VALUES ($1::uuid, $2::text, $3::jsonb, $4::text)
ON CONFLICT (type, idempotency_key) DO NOTHING
RETURNING id::text AS id`;
}

/**
 * The request that holds an idempotency key, and whether it was submitted with the same input. A statement of its own,
 * after the INSERT, so that in READ COMMITTED it sees the row a concurrent submit committed while the INSERT waited
 * (one statement with the INSERT as a CTE would read the snapshot taken before that commit). jsonb equality ignores
 * key order and whitespace, so the same input written differently is the same input.
 * $1: type, $2: idempotency key, $3: input as JSON text.
 */
export function requestByKeySql(names: RequestNames): string {
  return `
SELECT id::text AS id, input = $3::jsonb AS same_input FROM ${names.requestTable}
WHERE type = $1::text AND idempotency_key = $2::text`;
}
