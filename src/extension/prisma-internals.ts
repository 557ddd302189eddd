// Every Prisma internal the write side relies on, in one place, with what it is for.
//
// Prisma gives extensions no public way to learn which transaction a write runs in, to continue a query inside a
// transaction, or to know when a transaction committed. The extension needs all three to write its messages in the
// same transaction as the model write and to hand ids over only after COMMIT. What it uses, proven on
// @prisma/client PROVEN_RANGE (CI runs the tests on the lowest supported and the newest 7.x release):
//
// | internal                                              | what for                                               |
// | ----------------------------------------------------- | ------------------------------------------------------ |
// | client._runtimeDataModel.models                       | model names (validating `events`), scalar fields       |
// | client._globalOmit                                    | fields the client omits everywhere: left out of events |
// | client._createItxClient(transaction)                  | a client bound to the write's transaction (the INSERT) |
// | query hook `__internalParams.transaction`             | which transaction a write runs in (itx, batch, none)   |
// | query hook `query(args, internalParams)`              | continue the write inside a transaction we opened      |
// | itx client [Symbol.for("prisma.client.transaction.scope_context")] | the transaction id of a client (`$enqueue`) |
// | itx client `_createPrismaPromise`                     | the transaction object of a transaction we opened      |
// | batch `$transaction([...])` calls `requestTransaction` | refusing `$enqueue` inside a batch                     |
//
// Each is checked when the extension is first applied to a client (or, for what only exists inside a query or a
// transaction, the first time it is met), and a missing or changed one is an OutboxConfigError naming the Prisma
// version found and the versions proven, before anything is written: never a TypeError in the middle of a write.
import { Prisma } from "@prisma/client/extension";
import { OutboxConfigError } from "../errors.js";

/** The @prisma/client versions the internals above are proven on (keep in step with peerDependencies and CI). */
export const PROVEN_RANGE = "7.9.0 - 7.10.x";

const SCOPE_CONTEXT = Symbol.for("prisma.client.transaction.scope_context");

/** A field of a model, as Prisma's runtime data model describes it. */
export interface RuntimeField {
  name: string;
  kind: "scalar" | "enum" | "object" | "unsupported";
  /** The scalar type (`BigInt`, `Decimal`, `Bytes`, ...); lists have the type of their elements. */
  type: string;
}
type RuntimeModels = Record<string, { fields: RuntimeField[] }>;

/** The transaction a query runs in, as Prisma passes it to query hooks. */
export interface InternalTransaction {
  kind: "itx" | "batch";
  id: string | number;
}
/** What a query hook receives besides model/operation/args/query. */
interface InternalParams {
  transaction?: InternalTransaction;
}

type RawClient = { $queryRawUnsafe<T = unknown>(sql: string, ...values: unknown[]): Promise<T> };

function prismaVersion(): string {
  return (Prisma as { prismaVersion?: { client?: string } }).prismaVersion?.client ?? "unknown";
}

/** The error for an internal that is missing or has changed shape. */
function internalsChanged(what: string): OutboxConfigError {
  return new OutboxConfigError(
    `prisma-outbox cannot work with @prisma/client ${prismaVersion()}: ${what}. ` +
      `The Prisma internals it relies on are proven on @prisma/client ${PROVEN_RANGE}. ` +
      "Install a proven version, or a prisma-outbox release that supports this one.",
  );
}

/** What the extension keeps of the client it is applied to, after checking every internal it can check now. */
export interface ClientInternals {
  models: RuntimeModels;
  /** Fields omitted by the client's `omit` option, by model name. */
  globalOmit: Map<string, Set<string>>;
  /** A client bound to an interactive transaction (its raw queries run inside it). */
  itxClient(transaction: InternalTransaction): RawClient;
}

/** Checks, once per `$extends`, the internals reachable from the client itself. */
export function clientInternals(client: unknown): ClientInternals {
  const c = client as {
    _runtimeDataModel?: { models?: unknown };
    _globalOmit?: unknown;
    _createItxClient?: unknown;
    $transaction?: unknown;
  };
  const models = c._runtimeDataModel?.models;
  if (typeof models !== "object" || models === null)
    throw internalsChanged("the client has no _runtimeDataModel.models");
  for (const [name, model] of Object.entries(models)) {
    const fields = (model as { fields?: unknown }).fields;
    if (!Array.isArray(fields) || fields.some((f) => typeof f?.name !== "string" || typeof f?.kind !== "string")) {
      throw internalsChanged(`the runtime data model of ${name} has no fields of the expected shape`);
    }
  }
  if (typeof c._createItxClient !== "function") throw internalsChanged("the client has no _createItxClient()");
  if (typeof c.$transaction !== "function") throw internalsChanged("the client has no $transaction()");
  const omit = c._globalOmit;
  if (omit !== undefined && (typeof omit !== "object" || omit === null)) {
    throw internalsChanged("the client's _globalOmit is not an object");
  }
  const runtimeModels = models as RuntimeModels;
  const globalOmit = new Map<string, Set<string>>();
  for (const [key, fields] of Object.entries((omit ?? {}) as Record<string, Record<string, unknown> | undefined>)) {
    // The `omit` option is keyed by delegate name (`order`); find the model it means.
    const model = Object.keys(runtimeModels).find((m) => m === key || lowerFirst(m) === key);
    if (model === undefined || fields === undefined) continue;
    globalOmit.set(model, new Set(Object.keys(fields).filter((f) => fields[f] === true)));
  }
  const createItx = c._createItxClient as (transaction: InternalTransaction) => RawClient;
  return {
    models: runtimeModels,
    globalOmit,
    itxClient: (transaction) => createItx.call(client, transaction),
  };
}

/** The transaction a query hook's write runs in (undefined outside any), checking the hook's internal params. */
export function transactionOfQuery(params: unknown): InternalTransaction | undefined {
  const internal = (params as { __internalParams?: InternalParams }).__internalParams;
  if (typeof internal !== "object" || internal === null) {
    throw internalsChanged("query hooks receive no __internalParams");
  }
  const transaction = internal.transaction;
  if (transaction === undefined) return undefined;
  if (
    typeof transaction !== "object" ||
    transaction === null ||
    (transaction.kind !== "itx" && transaction.kind !== "batch") ||
    transaction.id === undefined
  ) {
    throw internalsChanged("a query hook's __internalParams.transaction is not { kind: 'itx' | 'batch', id }");
  }
  return transaction;
}

/** The internal params of a query hook, to continue the query in another transaction. */
export function internalParamsOf(params: unknown): InternalParams {
  return (params as { __internalParams: InternalParams }).__internalParams;
}

/** The id of the interactive transaction `client` is bound to, or undefined for a client outside any. */
export function transactionIdOf(client: unknown): string | undefined {
  const context = (client as Record<symbol, { kind?: string; txId?: string } | undefined> | null)?.[SCOPE_CONTEXT];
  return context?.kind === "nested" ? context.txId : undefined;
}

/** Like transactionIdOf, for a client known to be a transaction's: its id must be there. */
export function requireTransactionId(tx: unknown): string {
  const id = transactionIdOf(tx);
  if (typeof id !== "string") throw internalsChanged("an interactive transaction's client carries no scope context");
  return id;
}

/** The transaction object of an interactive transaction's client, as query hooks see it inside that transaction. */
export async function transactionOfClient(tx: unknown): Promise<InternalTransaction> {
  const create = (tx as { _createPrismaPromise?: unknown })._createPrismaPromise;
  if (typeof create !== "function")
    throw internalsChanged("an interactive transaction's client has no _createPrismaPromise");
  // The callback of a transaction client's PrismaPromise receives the transaction it is bound to.
  const transaction = (await (create as (cb: (t: unknown) => Promise<unknown>) => PromiseLike<unknown>)(
    async (t) => t,
  )) as InternalTransaction | undefined;
  if (transaction?.kind !== "itx" || transaction.id === undefined) {
    throw internalsChanged("an interactive transaction's client is not bound to { kind: 'itx', id }");
  }
  if (String(transaction.id) !== requireTransactionId(tx)) {
    throw internalsChanged("an interactive transaction's id differs between its client and its queries");
  }
  return transaction;
}

export function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}
