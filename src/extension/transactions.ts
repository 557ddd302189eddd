// The message ids each open interactive transaction wrote, until it commits.
//
// Prisma gives no public "after commit" hook, so the extension overrides `$transaction` (see outbox.ts) and keeps
// here, per open top-level transaction, the ids its writes returned. Which transaction a write belongs to comes from
// Prisma internals (prisma-internals.ts): nested transactions (savepoints) share their top-level transaction's id.

export class CommitTracker {
  readonly #open = new Map<string, string[]>();

  /** A top-level transaction started through the extension. */
  open(txId: string): void {
    this.#open.set(txId, []);
  }

  /** Whether the transaction was opened through the extension (its commit will be seen). */
  has(txId: string): boolean {
    return this.#open.has(txId);
  }

  /**
   * Remembers ids written in a transaction. Returns false when the transaction was not opened here (started on a
   * client without the extension's `$transaction`): its ids then reach relays by a NOTIFY inside it and the sweeper only.
   */
  record(txId: string, ids: readonly string[]): boolean {
    const list = this.#open.get(txId);
    if (!list) return false;
    for (const id of ids) list.push(id);
    return true;
  }

  /** Ends the transaction's bookkeeping and returns its ids, in the order they were written. */
  close(txId: string | undefined): string[] {
    if (txId === undefined) return [];
    const ids = this.#open.get(txId) ?? [];
    this.#open.delete(txId);
    return ids;
  }

  /** Open transactions, for tests: it must fall back to 0 after every transaction. */
  get size(): number {
    return this.#open.size;
  }
}
