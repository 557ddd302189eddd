// The inbox's public types: what a handler receives and how handlers are declared.
import type { CloudEventAttributes } from "../message/cloud-events.js";
import type { ContractOutput, MessageContract } from "../message/contract.js";

/** A message as a handler receives it. */
export interface InboxMessage<TPayload = unknown> {
  /** The inbox row's id. */
  id: string;
  /** The AMQP messageId (the outbox's UUID); the deduplication key, with the handler's name. */
  messageId: string;
  /** The name of the handler the message is for. */
  handler: string;
  exchange: string;
  routingKey: string;
  /** The body, parsed as JSON. */
  payload: TPayload;
  headers: Record<string, unknown>;
  type: string | undefined;
  correlationId: string | undefined;
  /** This attempt's number, from 1. */
  attempt: number;
  receivedAt: Date;
  /** The ordering key (AMQP header x-ordering-key): messages of one key are handled one at a time, in order. */
  key: string | undefined;
  /**
   * The CloudEvents attributes, when the delivery carried them (`cloudEvents:` headers, AMQP binding, binary content
   * mode; checked on receipt): docs/cloudevents.md. Undefined otherwise.
   */
  cloudEvent?: CloudEventAttributes | undefined;
}

/** What a handler gets besides the message and the transaction. */
export interface HandlerContext {
  /** Aborted when the handler's time (`handlerTimeoutMs`) is up or the inbox stops past its deadline. */
  signal: AbortSignal;
}

/**
 * A handler: runs inside an interactive transaction of your Prisma client, `tx`, which also marks the message
 * processed. Its writes (and any `tx.$enqueue`) commit with that mark, or roll back with it if it throws.
 */
export type HandleFunction<TPayload, TTx> = (
  message: InboxMessage<TPayload>,
  tx: TTx,
  context: HandlerContext,
) => Promise<unknown>;

/**
 * A batch handler (docs/inbox.md#batch-handlers): up to `batch.size` messages of one handler in one interactive
 * transaction of your Prisma client, which also marks them all processed. Messages are in claim order; at most one
 * per ordering key. If it throws, nothing of the batch commits and each message is retried alone (a one-message
 * array), so one bad message cannot fail its neighbours.
 */
export type HandleBatchFunction<TPayload, TTx> = (
  messages: InboxMessage<TPayload>[],
  tx: TTx,
  context: HandlerContext,
) => Promise<unknown>;

/** How a batch handler's batches are formed. */
export interface BatchOptions {
  /** Most messages in one batch (one transaction). @defaultValue 50 */
  size?: number;
  /**
   * Longest a claimed message waits for others to fill its batch before the batch starts smaller. @defaultValue 20
   */
  waitMs?: number;
}

/** A handler takes one message (`handle`) or a batch (`handleBatch`, with `batch` options), not both. */
export type Handling<TPayload, TTx> =
  | { handle: HandleFunction<TPayload, TTx>; handleBatch?: never; batch?: never }
  | { handle?: never; handleBatch: HandleBatchFunction<TPayload, TTx>; batch?: BatchOptions };

/**
 * Called once a message is dead for a handler (its last attempt failed, or every attempt started and none finished),
 * inside the transaction of your Prisma client that marks the row dead: what it writes commits with that mark, or,
 * if it throws, neither does and the row stays due for the dead transition again. `error` is the last attempt's.
 */
export type DeadFunction<TPayload, TTx> = (message: InboxMessage<TPayload>, tx: TTx, error: Error) => Promise<unknown>;

/**
 * Which deliveries a handler takes: `on` (an exact routing key: the payload is typed from your message map),
 * `pattern` (AMQP topic patterns: `*` one word, `#` any number) and/or `type` (the AMQP type property). A delivery
 * matching several handlers is stored once per handler, and each handles it, fails and retries on its own.
 */
export type HandlerSpec<TMessages, TTx> =
  | {
      [K in keyof TMessages & string]: {
        on: K;
        pattern?: never;
        type?: never;
        dead?: DeadFunction<TMessages[K], TTx>;
      } & Handling<TMessages[K], TTx>;
    }[keyof TMessages & string]
  | ({
      on?: never;
      pattern?: string | string[];
      type?: string | string[];
      dead?: DeadFunction<unknown, TTx>;
    } & Handling<unknown, TTx>)
  | ContractHandlerSpec<MessageContract, TTx>;

/**
 * A handler of a message contract (`defineMessage`): it takes the contract's routing key, and its payload is the
 * schema's output, validated before `handle` runs (an invalid payload is dead with the schema's issues).
 */
export interface ContractHandlerSpec<C extends MessageContract, TTx> {
  contract: C;
  on?: never;
  pattern?: never;
  type?: never;
  handle: HandleFunction<ContractOutput<C>, TTx>;
  handleBatch?: never;
  batch?: never;
  dead?: DeadFunction<unknown, TTx>;
}

/** The handlers of `inbox()` called without type arguments: each contract handler's payload typed by its contract. */
export type InferredHandlers<H, TTx> = {
  // H[K] is inferred from the `contract` of the true branch (a contract), or is not one (any other handler).
  [K in keyof H]: H[K] extends MessageContract
    ? ContractHandlerSpec<H[K], TTx>
    : HandlerSpec<Record<string, unknown>, TTx>;
};

/** The transaction client of a Prisma client (what `$transaction(async (tx) => ...)` passes). */
export type TransactionClientOf<TClient> = TClient extends {
  $transaction<R>(fn: (tx: infer T) => Promise<R>, options?: infer _O): Promise<R>;
}
  ? T
  : TClient extends { $transaction(fn: (tx: infer T) => Promise<unknown>, ...rest: never[]): unknown }
    ? T
    : any;
