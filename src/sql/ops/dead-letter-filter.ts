// The WHERE clause shared by `dead-letters list | retry | purge`, for the outbox's dead letters and the inbox's dead
// rows. Every value is a bind parameter ($n, numbered from `firstParam`); only fixed column names are written into
// the text, so no filter can change the statement's shape. The dead-letter tables are small (a row per message that
// failed for good), so the filters need no index of their own: a scan of the table is the plan either way.

/** What selects dead letters; every given filter must match (AND). Lists match any of their values (OR). */
export interface DeadLetterFilter {
  /** Exact exchange names. */
  exchanges?: string[] | undefined;
  /** A routing key, exact, or a pattern where `*` matches any run of characters (dots included). */
  routingKey?: string | undefined;
  /** A substring of the last error, compared case-insensitively. */
  error?: string | undefined;
  /** Failed (outbox) or received (inbox) at or after this time (ISO 8601). */
  since?: string | undefined;
  /** Failed (outbox) or received (inbox) before this time (ISO 8601). */
  until?: string | undefined;
  /** Row ids or message ids. */
  ids?: string[] | undefined;
  /** Inbox handler names. */
  handlers?: string[] | undefined;
}

/** Whether any filter is set: retry and purge without one need `--all`. */
export function hasFilter(filter: DeadLetterFilter): boolean {
  return Object.values(filter).some((v) => v !== undefined && (!Array.isArray(v) || v.length > 0));
}

/** A routing-key pattern as a LIKE pattern: `%`, `_` and `\` taken literally, `*` as any run of characters. */
export function routingKeyLike(pattern: string): string {
  return pattern.replace(/[\\%_]/g, (c) => `\\${c}`).replaceAll("*", "%");
}

export interface FilterSql {
  /** Conditions joined by AND, or `TRUE` when there is none. */
  where: string;
  params: unknown[];
}

/**
 * `timeColumn`: failed_at for outbox dead letters; received_at for inbox rows, which keep no time of death (a dead
 * row's available_at is its last backoff, not when it died).
 */
export function deadLetterFilterSql(
  filter: DeadLetterFilter,
  timeColumn: "failed_at" | "received_at",
  firstParam = 1,
): FilterSql {
  const conditions: string[] = [];
  const params: unknown[] = [];
  const param = (value: unknown) => {
    params.push(value);
    return `$${firstParam + params.length - 1}`;
  };
  if (filter.exchanges?.length) conditions.push(`exchange = ANY(${param(filter.exchanges)}::text[])`);
  if (filter.routingKey !== undefined) {
    conditions.push(`routing_key LIKE ${param(routingKeyLike(filter.routingKey))} ESCAPE '\\'`);
  }
  // strpos instead of ILIKE: the text is matched as it is, with no wildcard to escape.
  if (filter.error !== undefined) {
    conditions.push(`strpos(lower(coalesce(last_error, '')), lower(${param(filter.error)}::text)) > 0`);
  }
  if (filter.since !== undefined) conditions.push(`${timeColumn} >= ${param(filter.since)}::timestamptz`);
  if (filter.until !== undefined) conditions.push(`${timeColumn} < ${param(filter.until)}::timestamptz`);
  if (filter.ids?.length) {
    // One list for both: a value is a row id (as `list` shows it) or a message id. Compared as text, so that a
    // message id that is not a number (or not a UUID, in the inbox) is simply no match for the id column.
    const ids = param(filter.ids);
    conditions.push(`(id::text = ANY(${ids}::text[]) OR message_id::text = ANY(${ids}::text[]))`);
  }
  if (filter.handlers?.length) conditions.push(`handler = ANY(${param(filter.handlers)}::text[])`);
  return { where: conditions.length ? conditions.join(" AND ") : "TRUE", params };
}
