// The shipped models as they were before later migrations changed them: a migration is the SQL Prisma generates for
// the model of its time.

/**
 * A model (prisma/outbox.prisma or prisma/inbox.prisma) without what the ordering migration (20261124150000) added:
 * the `key` fields (column ordering_key) and their indexes.
 */
export function withoutOrdering(model: string): string {
  return model.replace(/^.*(@map\("ordering_key"\)|@@index\(\[key\b).*\n/gm, "");
}
