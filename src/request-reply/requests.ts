// `requests()`: asynchronous request-reply over the outbox and the inbox. The web side submits (a status row and the
// outbox message that starts the work, in one transaction), serves status(id) and cancel(id); the worker side runs
// each type's work as an inbox handler made by handler(type, work). Both sides make the same requests() with the same
// options. Framework-free: the HTTP mapping is the app's (docs/request-reply.md; examples/request-reply/).

import { rejectUnknownKeys } from "../config/validate.js";
import { RequestIdempotencyError, RequestInputError } from "../errors.js";
import type { BatchOptions, HandlerSpec } from "../inbox/types.js";
import { serializePayload } from "../message/message.js";
import { isUuid, uuidv7 } from "../message/uuid.js";
import { type RequestNames, requestNames } from "../sql/names.js";
import { cancelRequestSql } from "../sql/requests/finish.js";
import { type RequestRow, readRequestSql } from "../sql/requests/read.js";
import { insertRequestSql, requestByKeySql } from "../sql/requests/submit.js";
import { type RawClient, type RequestMessage, type RequestWork, requestHandler } from "./handler.js";
import { REQUEST_TYPE, type RequestsOptions, resolveRequestsOptions } from "./options.js";
import { RequestRetention } from "./retention.js";
import { type RequestStatus, toRequestStatus } from "./status.js";

/** A client (or a transaction's client) of a Prisma client extended with outbox(). */
interface OutboxClient extends RawClient {
  $enqueue(message: {
    exchange: string;
    routingKey: string;
    payload: unknown;
    messageId: string;
    type: string;
  }): Promise<string[]>;
  $transaction<R>(fn: (tx: OutboxClient) => Promise<R>): Promise<R>;
}

export interface SubmitOptions<TTx> {
  /**
   * The client's idempotency key (1 to 255 characters): a second submit of the same type with the same key and the
   * same input returns the first request (no second job); with another input it throws RequestIdempotencyError.
   * Kept as long as the request (`retentionMs` after it finished).
   */
  idempotencyKey?: string;
  /** Your interactive transaction: the request commits with your writes, or not at all. Default: its own. */
  tx?: TTx;
}

export interface Submitted {
  id: string;
  /** False when an earlier request with the same idempotency key and input was returned. */
  created: boolean;
}

/** Parses a JSON-faithful value into JSON text, or throws RequestInputError saying where it is not. */
function inputJson(input: unknown): string {
  try {
    return serializePayload(input === undefined ? null : input, "request input");
  } catch (error) {
    throw new RequestInputError((error as Error).message, { cause: error });
  }
}

export class Requests<TTx = any> {
  readonly #prisma: OutboxClient;
  readonly #options: ReturnType<typeof resolveRequestsOptions>;
  readonly #retention: RequestRetention;
  readonly #names: RequestNames;

  constructor(options: RequestsOptions<unknown>) {
    this.#options = resolveRequestsOptions(options);
    this.#names = requestNames(this.#options.schema);
    this.#prisma = options.prisma as OutboxClient;
    this.#retention = new RequestRetention(this.#prisma, this.#options);
  }

  /** The routing key of the messages that start requests of `type` (bind the worker's queue to it). */
  routingKey(type: string): string {
    return `${this.#options.routingKeyPrefix}${checkType(type)}`;
  }

  /**
   * Submits a request: writes its status row (pending) and the outbox message that starts its work, in `tx` or in a
   * transaction of its own. Resolves with its id once written (committed, without `tx`).
   */
  async submit(type: string, input: unknown, options: SubmitOptions<TTx> = {}): Promise<Submitted> {
    const routingKey = this.routingKey(type);
    const json = inputJson(input);
    const key = options.idempotencyKey;
    if (key !== undefined && (typeof key !== "string" || key.length === 0 || key.length > 255)) {
      throw new RequestInputError(
        `Expected \`idempotencyKey\` to be a string of 1 to 255 characters, got ${String(key)}.`,
      );
    }
    const run = async (tx: OutboxClient): Promise<Submitted> => {
      // Twice at most: a key's row can be purged between the INSERT that found it and the SELECT that looks for it.
      for (let round = 0; round < 2; round++) {
        const id = uuidv7();
        const inserted = await tx.$queryRawUnsafe<Array<{ id: string }>>(
          insertRequestSql(this.#names),
          id,
          type,
          json,
          key ?? null,
        );
        if (inserted.length === 1) {
          const payload: RequestMessage = { requestId: id, type };
          // The request id is the message id: the inbox deduplicates the work's message by it.
          await tx.$enqueue({ exchange: this.#options.exchange, routingKey, payload, messageId: id, type: "request" });
          return { id, created: true };
        }
        const [held] = await tx.$queryRawUnsafe<Array<{ id: string; same_input: boolean }>>(
          requestByKeySql(this.#names),
          type,
          key,
          json,
        );
        if (!held) continue;
        if (!held.same_input) {
          throw new RequestIdempotencyError(
            `The idempotency key "${key}" was used for another ${type} request (${held.id}) with a different input: use a new key for a new request.`,
            held.id,
            key!,
          );
        }
        return { id: held.id, created: false };
      }
      throw new Error(`submitting a ${type} request with key "${key}" raced with its purge twice; try again`);
    };
    const given = options.tx as unknown as OutboxClient | undefined;
    return given ? run(given) : this.#prisma.$transaction(run);
  }

  /** The request's status, or undefined when there is none (never submitted, not a UUID, or expired and deleted). */
  async status<TInput = unknown, TResult = unknown>(id: string): Promise<RequestStatus<TInput, TResult> | undefined> {
    if (typeof id !== "string" || !isUuid(id)) return undefined;
    const [row] = await this.#prisma.$queryRawUnsafe<RequestRow[]>(readRequestSql(this.#names), id);
    return row ? (toRequestStatus(row) as RequestStatus<TInput, TResult>) : undefined;
  }

  /**
   * Cancels a pending or running request: a pending one never starts; a running one's work sees its signal aborted
   * (within `cancelCheckIntervalMs`, or at its next progress report), and its writes roll back. A finished request is
   * left as it is. Resolves with the status after, or undefined when there is no such request.
   */
  async cancel(id: string): Promise<RequestStatus | undefined> {
    if (typeof id !== "string" || !isUuid(id)) return undefined;
    await this.#prisma.$executeRawUnsafe(cancelRequestSql(this.#names), id, this.#options.retentionMs);
    return this.status(id);
  }

  /**
   * The inbox handler that runs the work of `type`: put it into an inbox's `handlers` whose queue is bound to
   * `routingKey(type)` on the requests' exchange. The work gets the input and a context (transaction, signal,
   * progress); what it returns is the result (JSON). See handler.ts for the states of one attempt. With `batch`, it
   * is a batch handler (docs/inbox.md#batch-handlers): the works of up to `batch.size` requests run one after the
   * other in one transaction, each request's result written in it; if one throws, each request is retried alone.
   */
  handler<TInput = any, TResult = unknown>(
    type: string,
    work: RequestWork<TInput, TResult, TTx>,
    options: { batch?: BatchOptions } = {},
  ): HandlerSpec<Record<string, unknown>, TTx> {
    checkType(type);
    if (typeof work !== "function") throw new RequestInputError(`Expected the work of "${type}" to be a function.`);
    rejectUnknownKeys(`handler("${type}")`, options ?? {}, ["batch"]);
    const spec = requestHandler(this.#prisma, this.#options, type, work, options?.batch);
    return spec as HandlerSpec<Record<string, unknown>, TTx>;
  }

  /** Deletes every expired request now, in batches of `purgeBatchSize`; resolves with how many. */
  purgeExpired(): Promise<number> {
    return this.#retention.purge();
  }

  /** Deletes expired requests every `purgeIntervalMs` until stopRetention(). Idempotent. */
  startRetention(): void {
    this.#retention.start();
  }

  stopRetention(): Promise<void> {
    return this.#retention.stop();
  }
}

function checkType(type: unknown): string {
  if (typeof type !== "string" || !REQUEST_TYPE.test(type) || type.length > 50) {
    throw new RequestInputError(
      `Expected a request type of 1 to 50 letters, digits, "_", "-" and dots (e.g. "report"), got ${JSON.stringify(type)}.`,
    );
  }
  return type;
}

/**
 * Asynchronous request-reply: `requests({ prisma, exchange })`. Pass your client's type to have transactions typed:
 * `requests<typeof prisma>({ prisma, exchange: "reports" })`.
 */
export function requests<TClient = any>(
  options: RequestsOptions<TClient>,
): Requests<TClient extends { $transaction(fn: (tx: infer T) => Promise<any>, ...rest: any[]): any } ? T : any> {
  return new Requests(options);
}
