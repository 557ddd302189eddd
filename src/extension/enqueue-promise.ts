// The promise `$enqueue` returns: it starts the write on its own, and refuses to be part of a batch transaction.
//
// Prisma's batch `$transaction([a, b])` takes "PrismaPromises" and calls their `requestTransaction` instead of
// `then`, synchronously, before any of them has run. A plain promise there would have written its messages already,
// outside the batch, committed on their own. So `$enqueue` returns a promise-like tagged "PrismaPromise" whose write
// starts on the next microtask (or when awaited, whichever comes first): a batch that takes it calls
// `requestTransaction` first, which refuses with OutboxBatchTransactionError before anything is written, the same
// rule as declared events. Awaited as usual, it behaves like any promise, and an un-awaited call still writes, as
// `$enqueue` always did.
import { OutboxBatchTransactionError } from "../errors.js";

export function batchRefusal(what: string): OutboxBatchTransactionError {
  return new OutboxBatchTransactionError(
    `${what} cannot run in a batch $transaction([...]): the outbox cannot write in that batch. ` +
      "Use an interactive transaction, $transaction(async (tx) => ...).",
  );
}

export function enqueuePromise<T>(run: () => Promise<T>): Promise<T> {
  let started: Promise<T> | undefined;
  let refused = false;
  const start = (): Promise<T> => {
    started ??= refused ? Promise.reject(batchRefusal("$enqueue")) : run();
    return started;
  };
  queueMicrotask(() => {
    if (!refused && started === undefined) start();
  });
  const promise = {
    [Symbol.toStringTag]: "PrismaPromise",
    // biome-ignore lint/suspicious/noThenProperty: a promise-like, by design
    then: <A = T, B = never>(
      onFulfilled?: ((value: T) => A | PromiseLike<A>) | null,
      onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null,
    ) => start().then(onFulfilled, onRejected),
    catch: <B = never>(onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null) => start().catch(onRejected),
    finally: (onFinally?: (() => void) | null) => start().finally(onFinally),
    /** Called by a batch $transaction([...]) in place of `then`. */
    requestTransaction(): never {
      refused = true;
      throw batchRefusal("$enqueue");
    },
  };
  return promise as unknown as Promise<T>;
}
