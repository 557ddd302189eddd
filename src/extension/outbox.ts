// `outbox()`: the Prisma client extension of the write side.
//
// - `$enqueue(messages)` writes messages with the client it is called on: inside an interactive transaction it
//   joins that transaction, outside one it commits on its own; in a batch `$transaction([...])` it is refused.
// - Declared events: a query hook on the declared model operations writes the messages built from the written
//   records, in the write's own transaction. A write outside any transaction is continued inside a new one (the rest
//   of the extension chain runs in it, once), so that both commit or neither does. Inside a batch
//   `$transaction([...])` the outbox cannot join, so such a write is refused before anything is sent.
// - The record of an event is the model's fields whatever the call site selected (record-payload.ts).
// - After COMMIT, never before, the written ids go to the in-process queue, and relays in other processes are woken
//   by a NOTIFY (notifier.ts; or, with notify: "in-transaction", by one inside every writing transaction).
// Prisma-specific glue stays in this folder, and every Prisma internal it touches in prisma-internals.ts, so that
// another Prisma major version means a new module, not a rewrite.
import { Prisma } from "@prisma/client/extension";
import {
  type ContractMessageOptions,
  contractMessage,
  type Enqueue,
  isMessageContract,
  type MessageContract,
} from "../message/contract.js";
import { type NormalizedMessage, normalizeMessage, type OutboxMessageInput } from "../message/message.js";
import { outboxNames } from "../sql/names.js";
import {
  insertKeyedMessagesParams,
  insertMessagesParams,
  insertMessagesSql,
  insertSingleMessageParams,
  insertSingleMessageSql,
  type KeyShape,
  keyShape,
} from "../sql/outbox/insert.js";
import { notifySql } from "../sql/outbox/notify.js";
import { traceHeaders } from "../telemetry/tracing.js";
import { batchRefusal, enqueuePromise } from "./enqueue-promise.js";
import { checkEventModels, type ModelShape, modelShapes } from "./model-shapes.js";
import { Notifier } from "./notifier.js";
import {
  type EventBuilder,
  type EventContext,
  type EventOperation,
  type OutboxOptions,
  resolveOutboxOptions,
} from "./options.js";
import {
  clientInternals,
  type InternalTransaction,
  internalParamsOf,
  requireTransactionId,
  transactionIdOf,
  transactionOfClient,
  transactionOfQuery,
} from "./prisma-internals.js";
import { eventRecord, jsonSafeRecord, widenQuery } from "./record-payload.js";
import { CommitTracker } from "./transactions.js";

type RawClient = { $queryRawUnsafe<T = unknown>(sql: string, ...values: unknown[]): Promise<T> };
type QueryHookParams = {
  model: string;
  operation: string;
  args: unknown;
  query: (args: unknown, internalParams?: unknown) => Promise<unknown>;
};

/** The message with the trace headers added; anything malformed is left as is, for normalizeMessage to refuse. */
function withTrace(message: OutboxMessageInput, trace: Record<string, string>): OutboxMessageInput {
  if (typeof message !== "object" || message === null) return message;
  const headers: unknown = message.headers;
  if (headers === undefined || headers === null) return { ...message, headers: trace };
  if (typeof headers !== "object" || Array.isArray(headers)) return message;
  return { ...message, headers: { ...trace, ...message.headers } };
}

export function outbox<TClient = unknown>(options: OutboxOptions<TClient> = {}) {
  const config = resolveOutboxOptions(options);
  const tracker = new CommitTracker();
  const names = outboxNames(config.schema);
  const statements: Record<KeyShape, { plain: string; notifying: string }> = {
    none: { plain: insertMessagesSql(names, false, "none"), notifying: insertMessagesSql(names, true, "none") },
    one: { plain: insertMessagesSql(names, false, "one"), notifying: insertMessagesSql(names, true, "one") },
    many: { plain: insertMessagesSql(names, false, "many"), notifying: insertMessagesSql(names, true, "many") },
  };
  const single = { plain: insertSingleMessageSql(names, false), notifying: insertSingleMessageSql(names, true) };
  /**
   * The insert for a write whose commit the extension will see (`observed`: outside any transaction, in a
   * transaction opened through its $transaction, or in one it opened itself) or not. The NOTIFY rides in the
   * transaction with notify: "in-transaction", and also with notify: true when the commit cannot be observed: only a
   * notification inside the transaction can announce it then.
   */
  const insertSql = (observed: boolean, shape: { plain: string; notifying: string }) =>
    config.notify === "in-transaction" || (config.notify === true && !observed) ? shape.notifying : shape.plain;
  const observed = (txId: string | undefined) => txId === undefined || tracker.has(txId);
  /**
   * Validates the messages. `trace`: the headers of the writer's trace context (telemetry/tracing.ts), stored with
   * each message unless it sets them itself; undefined (no SDK, no active span) leaves the messages as given.
   */
  const normalize = (
    messages: readonly OutboxMessageInput[],
    trace: Record<string, string> | undefined,
  ): NormalizedMessage[] =>
    messages.map((m) => normalizeMessage(trace === undefined ? m : withTrace(m, trace), config, config));

  /** One INSERT of all the messages, with the given client (which decides the transaction). */
  async function insert(client: RawClient, commitObserved: boolean, messages: NormalizedMessage[]): Promise<string[]> {
    if (messages.length === 0) return [];
    // Messages without a key keep the plain statement (one of them, its VALUES form); keys take a keyed one (its
    // locks: sql/outbox/insert.ts), the cheaper one when there is one distinct key.
    const keys = keyShape(messages);
    const [sql, params] =
      keys !== "none"
        ? [insertSql(commitObserved, statements[keys]), insertKeyedMessagesParams(messages)]
        : messages.length === 1
          ? [insertSql(commitObserved, single), insertSingleMessageParams(messages[0]!)]
          : [insertSql(commitObserved, statements.none), insertMessagesParams(messages)];
    const rows = await client.$queryRawUnsafe<Array<{ id: string }>>(sql, ...params);
    return rows.map((r) => r.id);
  }

  return Prisma.defineExtension((client) => {
    // Checked once per $extends: a Prisma whose internals moved fails here, before any write.
    const internals = clientInternals(client);
    const shapes = modelShapes(internals);
    checkEventModels(config.events.keys(), shapes);
    const base = client as unknown as RawClient & {
      $transaction: (...args: unknown[]) => Promise<unknown>;
      $executeRawUnsafe: (sql: string) => Promise<number>;
    };
    // The NOTIFY goes through the base client: outside any transaction, after the commits it announces.
    const notifier =
      config.notify === true
        ? new Notifier(() => base.$executeRawUnsafe(notifySql(names)), config.notifyIntervalMs)
        : undefined;
    /** After COMMIT: the ids to the in-process queue, and a wake-up for relays in other processes. */
    const handoff = (ids: string[]) => {
      if (ids.length === 0) return;
      config.queue?.push(ids);
      notifier?.committed();
    };
    /** After the write: inside a transaction the ids wait for its commit; outside, the write has committed. */
    const afterWrite = (txId: string | undefined, ids: string[]) => {
      if (txId === undefined) handoff(ids);
      else tracker.record(txId, ids);
    };

    /**
     * Runs a declared write in `transaction` (the rest of the extension chain included) and writes its messages
     * there. Resolves with what the caller asked for and the ids of the messages. `ownTransaction`: the hook opened
     * `transaction` itself, and hands the ids over after its commit.
     */
    async function declaredWrite(
      params: QueryHookParams,
      builder: EventBuilder,
      shape: ModelShape,
      transaction: InternalTransaction,
      internalParams: unknown,
      ownTransaction: boolean,
    ): Promise<{ result: unknown; ids: string[] }> {
      const { model, operation, args, query } = params;
      const widened = widenQuery(args, shape);
      const written = await query(widened.args, internalParams);
      const records = (Array.isArray(written) ? written : [written]).map((r) => eventRecord(r, shape));
      const context: EventContext = { model, operation: operation as EventOperation, args };
      const messages = normalize(
        records.flatMap((record) =>
          builder.build(builder.defaultPayload ? jsonSafeRecord(record, shape) : record, context, record),
        ),
        traceHeaders(),
      );
      const ids = await insert(
        internals.itxClient(transaction),
        ownTransaction || observed(String(transaction.id)),
        messages,
      );
      const result = Array.isArray(written) ? written.map(widened.narrow) : widened.narrow(written);
      return { result, ids };
    }

    const clientMethods = {
      /**
       * Writes one or many messages to the outbox, in one statement, with the client it is called on (a
       * transaction's client joins that transaction). Resolves with their message ids. Refused, before anything is
       * written, inside a batch `$transaction([...])`.
       */
      $enqueue: function (
        this: unknown,
        messages: OutboxMessageInput | readonly OutboxMessageInput[] | MessageContract,
        payload?: unknown,
        options?: ContractMessageOptions,
      ): Promise<string[]> {
        const ctx = Prisma.getExtensionContext(this) as unknown as RawClient;
        const trace = traceHeaders(); // the caller's context, taken before the write starts on a later microtask
        return enqueuePromise(async () => {
          // A contract's payload is validated (the schema may be async) before anything is written.
          const input = isMessageContract(messages) ? await contractMessage(messages, payload, options) : messages;
          const list = normalize(Array.isArray(input) ? input : [input as OutboxMessageInput], trace);
          const txId = transactionIdOf(ctx);
          afterWrite(txId, await insert(ctx, observed(txId), list));
          return list.map((m) => m.messageId);
        });
      } as Enqueue,
      // Interactive transactions go through here so that their ids are handed over once COMMIT has returned.
      $transaction(this: unknown, input: unknown, txOptions?: unknown) {
        if (typeof input !== "function" || transactionIdOf(this) !== undefined) {
          // A batch, or nested in an open transaction. A batch refusing `$enqueue` throws while Prisma collects its
          // queries, before any runs: reject the returned promise rather than throw at the caller's call.
          try {
            return base.$transaction.call(this, input, txOptions);
          } catch (error) {
            return Promise.reject(error);
          }
        }
        let txId: string | undefined;
        const run = async () => {
          try {
            const result = await base.$transaction.call(
              this,
              (tx: unknown) => {
                txId = requireTransactionId(tx);
                tracker.open(txId);
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

    return client.$extends({
      name: "prisma-outbox",
      // Typed as $enqueue alone: the $transaction override must leave Prisma's own typing of $transaction intact.
      client: clientMethods as Pick<typeof clientMethods, "$enqueue">,
      query: {
        $allModels: {
          async $allOperations(params) {
            const { model, operation, args, query } = params;
            const builder = config.events.get(model)?.get(operation);
            if (!builder) return query(args);
            const shape = shapes.get(model) as ModelShape; // every declared model was checked at $extends
            const hook = params as unknown as QueryHookParams;
            const transaction = transactionOfQuery(params);
            if (transaction?.kind === "batch") {
              throw batchRefusal(`${model}.${operation} has declared outbox events and`);
            }
            const internalParams = internalParamsOf(params);
            if (transaction !== undefined) {
              const { result, ids } = await declaredWrite(hook, builder, shape, transaction, internalParams, false);
              afterWrite(String(transaction.id), ids);
              return result;
            }
            // Outside any transaction: open one and continue the chain (the hooks after this one and the write)
            // inside it, then write the messages there. Extensions before this one have run already, once.
            let ids: string[] = [];
            const result = await base.$transaction(async (tx: unknown) => {
              const opened = await transactionOfClient(tx);
              const written = await declaredWrite(
                hook,
                builder,
                shape,
                opened,
                { ...internalParams, transaction: opened },
                true,
              );
              ids = written.ids;
              return written.result;
            }, config.transactionOptions);
            handoff(ids);
            return result;
          },
        },
      },
    });
  });
}
