import type { OutboxNames } from "../names.js";

/**
 * Wakes the relays listening in other processes, sent on its own after the writes it announces have committed (see
 * src/extension/notifier.ts). A statement of its own, in its own implicit transaction: it takes PostgreSQL's
 * notification lock once per wake-up, not once per writing transaction. The payload is empty: a notification is only
 * a hint that rows may be due; the relay then claims whatever is due.
 */
export function notifySql(names: OutboxNames): string {
  return `SELECT pg_notify('${names.notifyChannel}', '')`;
}
