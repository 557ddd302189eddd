// Typed message contracts: a message defined once (its routing key, optional exchange, and a Standard Schema of its
// payload) and used on both sides: `$enqueue(contract, payload)` validates before the INSERT, and an inbox handler
// `{ contract, handle }` validates the received payload before the handler runs. Any Standard Schema v1 library
// works (zod, valibot, arktype...): only its `~standard.validate` is called, so none becomes our dependency.
//
// The wire carries the schema's input, never its output: the sender's payload is sent as given once it validates,
// and the receiver validates that same JSON with the same schema, so a schema that transforms (defaults, coercions)
// transforms once, on the receiving side, and the handler gets the output type.
import { OutboxConfigError, OutboxSchemaError } from "../errors.js";
import type { OutboxMessageInput } from "./message.js";
import type { StandardSchemaV1 } from "./standard-schema.js";

/** Marks contracts, so `$enqueue` tells one from a message (a global symbol: two copies of the package agree). */
const CONTRACT = Symbol.for("prisma-outbox.message-contract");

/** A message defined once, for the sending and the receiving side. */
export interface MessageContract<K extends string = string, S extends StandardSchemaV1 = StandardSchemaV1> {
  readonly routingKey: K;
  /** The exchange to publish to; undefined: the `exchange` option of `outbox()`. */
  readonly exchange: string | undefined;
  readonly schema: S;
  readonly [CONTRACT]: true;
}

/** What `$enqueue(contract, payload)` takes: the schema's input type. */
export type ContractInput<C> = C extends MessageContract<string, infer S> ? StandardSchemaV1.InferInput<S> : never;
/** What a handler of the contract receives: the schema's output type. */
export type ContractOutput<C> = C extends MessageContract<string, infer S> ? StandardSchemaV1.InferOutput<S> : never;

/** The rest of a message sent through a contract (its routing key, exchange and payload come from the contract). */
export type ContractMessageOptions = Omit<OutboxMessageInput, "routingKey" | "exchange" | "payload">;

/**
 * Defines a message: `routingKey` (1 to 255 bytes), `exchange` (default: `outbox()`'s), and `schema`, any Standard
 * Schema v1 object (a zod, valibot or arktype schema) describing the payload as JSON.
 */
export function defineMessage<const K extends string, S extends StandardSchemaV1>(definition: {
  routingKey: K;
  exchange?: string;
  schema: S;
}): MessageContract<K, S> {
  const { routingKey, exchange, schema } = (definition ?? {}) as Partial<typeof definition>;
  if (typeof routingKey !== "string" || routingKey.length === 0 || Buffer.byteLength(routingKey) > 255) {
    throw new OutboxConfigError(
      `Expected defineMessage()'s \`routingKey\` to be 1 to 255 bytes, got ${JSON.stringify(routingKey)}.`,
    );
  }
  if (exchange !== undefined && (typeof exchange !== "string" || Buffer.byteLength(exchange) > 255)) {
    throw new OutboxConfigError(`Expected defineMessage()'s \`exchange\` to be a string of at most 255 bytes.`);
  }
  const standard = (schema as Partial<StandardSchemaV1> | undefined)?.["~standard"];
  if (typeof standard?.validate !== "function" || standard.version !== 1) {
    throw new OutboxConfigError(
      `Expected defineMessage({ routingKey: ${JSON.stringify(routingKey)} })'s \`schema\` to be a Standard Schema v1 ` +
        "object (a zod, valibot or arktype schema: one with `~standard.validate`).",
    );
  }
  return Object.freeze({ routingKey, exchange, schema: schema as S, [CONTRACT]: true as const });
}

export function isMessageContract(value: unknown): value is MessageContract {
  return typeof value === "object" && value !== null && (value as { [CONTRACT]?: unknown })[CONTRACT] === true;
}

/** "path: message" per issue, joined; a path reads `$.items[2].price`. */
function describeIssues(issues: readonly StandardSchemaV1.Issue[]): string {
  return issues
    .map((issue) => {
      let path = "$";
      for (const segment of issue.path ?? []) {
        const key = typeof segment === "object" && segment !== null ? segment.key : segment;
        path += typeof key === "number" ? `[${key}]` : `.${String(key)}`;
      }
      return `${path}: ${issue.message}`;
    })
    .join("; ");
}

/**
 * The payload validated by the contract's schema (awaited when the schema validates asynchronously): the schema's
 * output, or OutboxSchemaError with the schema's issues. `where` says which side validated, for the message.
 */
export async function validatePayload<C extends MessageContract>(
  contract: C,
  payload: unknown,
  where: "to enqueue" | "received",
): Promise<ContractOutput<C>> {
  let result = contract.schema["~standard"].validate(payload);
  if (result instanceof Promise) result = await result;
  if (result.issues !== undefined) {
    const issues = result.issues;
    throw new OutboxSchemaError(
      `The payload ${where} for "${contract.routingKey}" does not match its contract: ${describeIssues(issues)}`,
      contract.routingKey,
      issues,
    );
  }
  return result.value as ContractOutput<C>;
}

/**
 * `$enqueue`: messages as objects (one or many), or one message through its contract: `$enqueue(contract, payload,
 * options?)`, the payload typed by the schema's input and validated before the INSERT (OutboxSchemaError).
 */
export interface Enqueue {
  (messages: OutboxMessageInput | readonly OutboxMessageInput[]): Promise<string[]>;
  <C extends MessageContract>(
    contract: C,
    payload: ContractInput<C>,
    options?: ContractMessageOptions,
  ): Promise<string[]>;
}

/** The message `$enqueue(contract, payload, options)` writes, once the payload validates (the payload as given). */
export async function contractMessage(
  contract: MessageContract,
  payload: unknown,
  options: ContractMessageOptions | undefined,
): Promise<OutboxMessageInput> {
  await validatePayload(contract, payload, "to enqueue");
  const message: OutboxMessageInput = { ...options, routingKey: contract.routingKey, payload };
  if (contract.exchange !== undefined) message.exchange = contract.exchange;
  return message;
}

/**
 * A handler's `contract` (inbox options), checked: undefined when not given. A contract handler takes its routing key
 * from the contract, so `on`, `pattern` and `type` beside it would only say it twice, or differently.
 */
export function handlerContract(
  name: string,
  spec: { contract?: unknown; on?: unknown; pattern?: unknown; type?: unknown; handleBatch?: unknown },
): MessageContract | undefined {
  if (spec.contract === undefined) return undefined;
  if (spec.handleBatch !== undefined) {
    // The payload is validated on the one-message path (attempt.ts); a batch's would need its own rule for a batch
    // with one invalid message in it.
    throw new OutboxConfigError(
      `\`handlers.${name}\` has a \`contract\`: give it \`handle\`; contracts do not take \`handleBatch\` yet.`,
    );
  }
  if (!isMessageContract(spec.contract)) {
    throw new OutboxConfigError(`Expected \`handlers.${name}.contract\` to be a contract made by defineMessage().`);
  }
  if (spec.on !== undefined || spec.pattern !== undefined || spec.type !== undefined) {
    throw new OutboxConfigError(
      `\`handlers.${name}\` has a \`contract\`: it takes the contract's routing key; leave out \`on\`, \`pattern\` and \`type\`.`,
    );
  }
  return spec.contract;
}
