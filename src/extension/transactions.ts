// Which interactive transaction a write belongs to, and the message ids each one wrote until it commits.
//
// Prisma gives no public "after commit" hook, so the extension overrides `$transaction` (see outbox.ts) and keeps
// here, per open top-level transaction, the ids its writes returned. Two of Prisma's internals tie a write to its
// transaction (proven on @prisma/client 7.9-7.10, pinned in peerDependencies, covered by test/extension):
//   - a query hook's `__internalParams.transaction` is `{ kind: "itx", id }` inside an interactive transaction;
//   - an interactive transaction's client carries the same id under Symbol.for("prisma.client.transaction.scope_context")
//     (`{ kind: "nested", txId }`); nested transactions (savepoints) share their top-level transaction's id.

const SCOPE_CONTEXT = Symbol.for("prisma.client.transaction.scope_context");

/** The id of the interactive transaction `client` is bound to, or undefined for a client outside any. */
export function transactionIdOf(client: unknown): string | undefined {
  const context = (client as Record<symbol, { kind?: string; txId?: string } | undefined> | null)?.[SCOPE_CONTEXT];
  return context?.kind === "nested" ? context.txId : undefined;
}

export class CommitTracker {
  readonly #open = new Map<string, string[]>();

  /** A top-level transaction started through the extension. */
  open(txId: string): void {
    this.#open.set(txId, []);
  }

  /**
   * Remembers ids written in a transaction. Returns false when the transaction was not opened here (started on a
   * client without the extension's `$transaction`): its ids then reach relays by NOTIFY and the sweeper only.
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
