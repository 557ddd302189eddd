// `outbox()`: the Prisma client extension of the write side.
//
// - `$enqueue(messages)` writes messages with the client it is called on: inside an interactive transaction it
//   joins that transaction, outside one it commits on its own.
// - Declared events: a query hook on the declared model operations writes the messages built from the result, in
//   the write's own transaction; a write outside any transaction is re-run inside a new one so that both commit or
//   neither does. Inside a batch `$transaction([...])` the outbox cannot join, so such a write is refused before
//   anything is sent.
// - After COMMIT, never before, the written ids go to the in-process queue (see transactions.ts for how commit is
//   observed).
// Prisma-specific glue stays in this folder, so that another Prisma major version means a new module, not a rewrite.
import { Prisma } from "@prisma/client/extension";
import {
  delegateName,
  type EventContext,
  type EventOperation,
  type OutboxOptions,
  resolveOutboxOptions,
} from "../config/outbox-options.js";
import { OutboxBatchTransactionError } from "../message/errors.js";
import { type NormalizedMessage, normalizeMessage, type OutboxMessageInput } from "../message/message.js";
import { INSERT_MESSAGES_SQL, insertMessagesParams } from "../sql/insert-messages.js";
import { CommitTracker, transactionIdOf } from "./transactions.js";

type RawClient = { $queryRawUnsafe<T = unknown>(sql: string, ...values: unknown[]): Promise<T> };
type InternalTransaction = { kind: "itx" | "batch"; id: string | number };

export function outbox<TClient = unknown>(options: OutboxOptions<TClient> = {}) {
  const config = resolveOutboxOptions(options);
  const tracker = new CommitTracker();
  const handoff = (ids: string[]) => {
    if (ids.length > 0) config.queue?.push(ids);
  };
  const normalize = (messages: readonly OutboxMessageInput[]): NormalizedMessage[] =>
    messages.map((m) => normalizeMessage(m, config, config));

  /** One INSERT of all the messages, with the given client (which decides the transaction). */
  async function insert(client: RawClient, messages: NormalizedMessage[]): Promise<string[]> {
    if (messages.length === 0) return [];
    const rows = await client.$queryRawUnsafe<Array<{ id: string }>>(
      INSERT_MESSAGES_SQL,
      ...insertMessagesParams(messages),
    );
    return rows.map((r) => r.id);
  }

  /** After the write: inside a transaction the ids wait for its commit; outside, the write has committed. */
  function afterWrite(txId: string | undefined, ids: string[]) {
    if (txId === undefined) handoff(ids);
    else tracker.record(txId, ids);
  }

  return Prisma.defineExtension((client) => {
    const base = client as unknown as {
      $transaction: (...args: unknown[]) => Promise<unknown>;
      _createItxClient: (transaction: unknown) => RawClient;
    };
    // The extended client, for re-running a write inside a transaction of its own (set right below).
    const self: { client?: any } = {};

    const clientMethods = {
      /**
       * Writes one or many messages to the outbox, in one statement, with the client it is called on (a
       * transaction's client joins that transaction). Resolves with their message ids.
       */
      async $enqueue(messages: OutboxMessageInput | readonly OutboxMessageInput[]): Promise<string[]> {
        const list = normalize(Array.isArray(messages) ? messages : [messages as OutboxMessageInput]);
        const ctx = Prisma.getExtensionContext(this) as unknown as RawClient;
        afterWrite(transactionIdOf(ctx), await insert(ctx, list));
        return list.map((m) => m.messageId);
      },
      // Interactive transactions go through here so that their ids are handed over once COMMIT has returned.
      $transaction(this: unknown, input: unknown, txOptions?: unknown) {
        if (typeof input !== "function" || transactionIdOf(this) !== undefined) {
          return base.$transaction.call(this, input, txOptions); // batch, or nested in an open transaction
        }
        let txId: string | undefined;
        const run = async () => {
          try {
            const result = await base.$transaction.call(
              this,
              (tx: unknown) => {
                txId = transactionIdOf(tx);
                if (txId !== undefined) tracker.open(txId);
                return (input as (tx: unknown) => unknown)(tx);
              },
              txOptions,
            );
            handoff(tracker.close(txId));
            return result;
          } catch (error) {
            tracker.close(txId);
            throw error;
          }
        };
        return run();
      },
    };

    const extended = client.$extends({
      name: "prisma-outbox",
      // Typed as $enqueue alone: the $transaction override must leave Prisma's own typing of $transaction intact.
      client: clientMethods as Pick<typeof clientMethods, "$enqueue">,
      query: {
        $allModels: {
          async $allOperations(params) {
            const { model, operation, args, query } = params;
            const build = config.events.get(model)?.get(operation);
            if (!build) return query(args);
            const transaction = (params as { __internalParams?: { transaction?: InternalTransaction } })
              .__internalParams?.transaction;
            if (transaction?.kind === "batch") {
              throw new OutboxBatchTransactionError(
                `${model}.${operation} has declared outbox events and cannot run in a batch $transaction([...]): ` +
                  "the outbox cannot write in that batch. Use an interactive transaction, $transaction(async (tx) => ...).",
              );
            }
            if (transaction === undefined) {
              // Re-run inside a transaction: the hook runs again there and takes the branch below.
              return self.client.$transaction((tx: any) => tx[delegateName(model)][operation](args));
            }
            const result = await query(args);
            const context: EventContext = { model, operation: operation as EventOperation, args };
            const records = Array.isArray(result) ? result : [result];
            const messages = normalize(records.flatMap((record) => build(record, context)));
            const txId = String(transaction.id);
            afterWrite(txId, await insert(base._createItxClient(transaction), messages));
            return result;
          },
        },
      },
    });
    self.client = extended;
    return extended;
  });
}
