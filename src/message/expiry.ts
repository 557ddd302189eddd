// A message's expiry on the wire: the header `x-expires-at`, the instant after which the message must not be
// published (the relay) or handled (the inbox), as an ISO 8601 UTC timestamp with milliseconds
// ("2026-12-03T15:00:00.000Z"): readable in the management UI and parsed by every language's standard library. The
// inbox also takes an integer of epoch milliseconds, what a producer in another language may find simpler to set.
//
// One header, not the AMQP `expiration` property alone: `expiration` is a time to live counted from when the message
// enters each queue (so it restarts at every hop and says nothing once delivered), and RabbitMQ drops an expired
// message without telling anyone. The relay sets both: `expiration` (the time left at publish) lets the broker free
// a queue of messages no one will handle; the header is what the inbox decides on.
//
// The header travels inside the outbox row's `headers` (written by normalizeMessage from `expiresAt` / `ttlMs`), so
// every path a row takes keeps it with no column of its own: a retry's put-back, the dead letters, and
// `dead-letters retry` moving a row back.

/** The AMQP header that carries a message's expiry (see above). Set from `expiresAt` / `ttlMs` only. */
export const EXPIRES_AT_HEADER = "x-expires-at";

/** 0001-01-01 and 9999-12-31, what a timestamptz and an ISO string of four-digit years hold. */
const MIN_MS = Date.parse("0001-01-01T00:00:00.000Z");
const MAX_MS = Date.parse("9999-12-31T23:59:59.999Z");

/** A full ISO 8601 timestamp with a zone: a date alone or a local time would be read in the reader's time zone. */
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

/** The header's value for an expiry (ms since the epoch). */
export function expiresAtHeaderValue(expiresAt: number): string {
  return new Date(expiresAt).toISOString();
}

/**
 * The expiry a header value carries: ms since the epoch; undefined when there is no header; or `{ problem }` when it
 * is there but malformed (broker input is untrusted: the caller turns that into an invalid delivery, never a throw).
 */
export function parseExpiresAt(value: unknown): number | undefined | { problem: string } {
  if (value === undefined || value === null) return undefined;
  let ms: number;
  if (typeof value === "number" || typeof value === "bigint") {
    ms = Number(value);
    if (!Number.isSafeInteger(ms)) return malformed(value);
  } else if (typeof value === "string") {
    ms = ISO_INSTANT.test(value) ? Date.parse(value) : Number.NaN;
    if (Number.isNaN(ms)) return malformed(value);
  } else {
    return malformed(value);
  }
  if (ms < MIN_MS || ms > MAX_MS) return malformed(value);
  return ms;
}

function malformed(value: unknown): { problem: string } {
  const text = typeof value === "string" ? JSON.stringify(value.slice(0, 60)) : typeof value;
  return {
    problem: `the header ${EXPIRES_AT_HEADER} is malformed (${text}): expected an ISO 8601 timestamp with a zone or integer epoch milliseconds`,
  };
}

/** The expiry in a headers object (a row's or a delivery's), found case-insensitively as AMQP header names are read. */
export function expiresAtOf(headers: unknown): number | undefined | { problem: string } {
  if (typeof headers !== "object" || headers === null) return undefined;
  for (const [name, value] of Object.entries(headers)) {
    if (name.toLowerCase() === EXPIRES_AT_HEADER) return parseExpiresAt(value);
  }
  return undefined;
}
