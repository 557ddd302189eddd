// The message a user writes, and the normalised row the outbox stores.
import { OutboxMessageError, OutboxPayloadError } from "../errors.js";
import { CLOUD_EVENTS_PREFIX, cloudEventHeaderProblem } from "./cloud-events.js";
import { EXPIRES_AT_HEADER, expiresAtHeaderValue } from "./expiry.js";
import { isUuid, uuidv7 } from "./uuid.js";

/** A header value RabbitMQ carries as is. */
export type HeaderValue = string | number | boolean | null;

/** A message to publish, as given to `$enqueue` or returned by a declared event. */
export interface OutboxMessageInput {
  /** The exchange to publish to. Falls back to the `exchange` option of `outbox()`. */
  exchange?: string;
  /** The routing key (1 to 255 bytes). */
  routingKey: string;
  /** The body: anything that JSON represents faithfully. */
  payload: unknown;
  /** AMQP headers. */
  headers?: Record<string, HeaderValue>;
  /** Your own stable id (a UUID), for idempotent producers. Default: a new time-ordered UUID (v7). */
  messageId?: string;
  /** AMQP `type` property. */
  type?: string;
  /** AMQP `correlationId` property. */
  correlationId?: string;
  /** Do not publish before this time. */
  availableAt?: Date;
  /**
   * Ordering key (1 to 255 bytes), e.g. the aggregate id: messages of one key are published, and handled by the inbox,
   * one at a time in the order their transactions committed (see docs/ordering.md). Sent as the AMQP header
   * `x-ordering-key`. Default: none (no order with other messages, and nothing waits for it).
   */
  key?: string;
  /**
   * Do not publish or handle the message after this time: the relay moves it to the dead letters instead of publishing
   * it, the inbox stores it dead instead of handling it (both with a MessageExpiredError). Sent as the header
   * `x-expires-at` and, while it is published, as the AMQP `expiration` (docs/writing-messages.md#expiry). Not with
   * `ttlMs`. Default: never expires.
   */
  expiresAt?: Date;
  /** The same as `expiresAt`, as a time to live in milliseconds from the write (`expiresAt` = now + ttlMs). */
  ttlMs?: number;
}

/** A validated message, ready for the INSERT. */
export interface NormalizedMessage {
  messageId: string;
  exchange: string;
  routingKey: string;
  /** The payload as JSON text: the exact bytes the consumer will receive. */
  payload: string;
  /** Headers as JSON text, or null. */
  headers: string | null;
  type: string | null;
  correlationId: string | null;
  availableAt: Date | null;
  /** The ordering key, or null. */
  key: string | null;
}

interface MessageLimits {
  /** Largest payload in bytes, as UTF-8 JSON. */
  maxPayloadBytes: number;
}

const MAX_SHORT_STRING_BYTES = 255;

/** 0001-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z. */
const MIN_AVAILABLE_AT = Date.parse("0001-01-01T00:00:00.000Z");
const MAX_AVAILABLE_AT = Date.parse("9999-12-31T23:59:59.999Z");

/** The AMQP header that carries a message's ordering key to consumers (the inbox stores it). Set from `key` only. */
export const ORDERING_KEY_HEADER = "x-ordering-key";

/**
 * Refuses a NUL character: PostgreSQL's text cannot hold one (the INSERT would fail with a raw driver error, after the
 * user's other writes), and AMQP consumers in C treat it as the end of the string.
 */
function noNul(value: string, what: string): void {
  const at = value.indexOf("\u0000");
  if (at >= 0) {
    throw new OutboxMessageError(
      `Expected \`${what}\` to have no NUL character (\\u0000), found one at index ${at}: PostgreSQL text cannot store it.`,
    );
  }
}

function shortString(value: unknown, what: string, required: boolean): string | null {
  if (value === undefined || value === null) {
    if (required) throw new OutboxMessageError(`Expected \`${what}\` to be a non-empty string, got ${String(value)}.`);
    return null;
  }
  if (typeof value !== "string") {
    throw new OutboxMessageError(`Expected \`${what}\` to be a string, got ${typeof value}.`);
  }
  if (value.length === 0) throw new OutboxMessageError(`Expected \`${what}\` to be a non-empty string, got "".`);
  noNul(value, what);
  const bytes = Buffer.byteLength(value);
  if (bytes > MAX_SHORT_STRING_BYTES) {
    throw new OutboxMessageError(
      `Expected \`${what}\` to be at most ${MAX_SHORT_STRING_BYTES} bytes (AMQP short string), got ${bytes} bytes: "${value.slice(0, 40)}...".`,
    );
  }
  return value;
}

function describe(value: unknown): string {
  if (typeof value === "bigint") return `a BigInt (${value}n)`;
  if (typeof value === "function") return "a function";
  if (typeof value === "symbol") return "a symbol";
  if (typeof value === "number") return String(value);
  if (value === undefined) return "undefined";
  return Object.prototype.toString.call(value).slice(8, -1);
}

/**
 * JSON text for `value`, or an OutboxPayloadError naming the first place that JSON would silently change or drop.
 * JSON.stringify alone turns NaN into null, drops functions and symbols, empties Maps and Sets, and throws a bare
 * TypeError on BigInt and cycles; a consumer would receive something other than what the writer meant.
 */
export function serializePayload(value: unknown, what = "payload"): string {
  const seen = new Set<object>();
  const walk = (v: unknown, path: string, inArray: boolean, key: string): void => {
    switch (typeof v) {
      case "string":
      case "boolean":
        return;
      case "number":
        if (!Number.isFinite(v)) throw unfaithful(v, path, "JSON has no NaN or Infinity");
        return;
      case "undefined":
        if (path === "$" || inArray) throw unfaithful(v, path, inArray ? "JSON writes null in its place" : "");
        return; // an undefined property is left out, as JSON does
      case "bigint":
        throw unfaithful(v, path, "convert it to a string or a number first");
      case "function":
      case "symbol":
        throw unfaithful(v, path, "JSON cannot represent it");
    }
    if (v === null) return;
    const o = v as object;
    if (seen.has(o)) throw new OutboxPayloadError(`The ${what} has a circular reference at ${path}.`, path);
    seen.add(o);
    const toJSON = (o as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === "function") {
      // Date, Decimal, Buffer...: JSON uses what toJSON returns, so that is what must be faithful.
      if (o instanceof Date && Number.isNaN(o.getTime())) throw unfaithful(v, path, "it is an invalid Date");
      walk(toJSON.call(o, key), path, inArray, key);
    } else if (o instanceof Number || o instanceof String || o instanceof Boolean) {
      walk(o.valueOf(), path, inArray, key);
    } else if (o instanceof Map || o instanceof Set || o instanceof WeakMap || o instanceof WeakSet) {
      throw unfaithful(v, path, "JSON writes {} for it; convert it to an object or array first");
    } else if (ArrayBuffer.isView(o)) {
      throw unfaithful(v, path, "encode binary data (e.g. base64) first");
    } else if (Array.isArray(o)) {
      for (let i = 0; i < o.length; i++) walk(o[i], `${path}[${i}]`, true, String(i));
    } else {
      for (const [k, item] of Object.entries(o)) walk(item, `${path}.${k}`, false, k);
    }
    seen.delete(o);
  };
  const unfaithful = (v: unknown, path: string, hint: string) =>
    new OutboxPayloadError(
      `The ${what} cannot be stored as JSON faithfully: ${path} is ${describe(v)}${hint ? `; ${hint}` : ""}.`,
      path,
    );
  walk(value, "$", false, "");
  return JSON.stringify(value);
}

function normalizeHeaders(headers: unknown, expiresAt: number | null): string | null {
  if (headers === undefined || headers === null) {
    return expiresAt === null ? null : JSON.stringify({ [EXPIRES_AT_HEADER]: expiresAtHeaderValue(expiresAt) });
  }
  if (typeof headers !== "object" || Array.isArray(headers)) {
    throw new OutboxMessageError(`Expected \`headers\` to be a plain object, got ${describe(headers)}.`);
  }
  for (const [key, value] of Object.entries(headers)) {
    shortString(key, "headers key", true);
    // The inbox orders by this header: a user header of that name, on a message without `key`, would pass for one.
    if (key.toLowerCase() === ORDERING_KEY_HEADER) {
      throw new OutboxMessageError(
        `Expected no header \`${key}\`: the name is reserved for the ordering key. Set the message's \`key\` instead.`,
      );
    }
    // The relay and the inbox decide on this header: set from `expiresAt` / `ttlMs` only, so it is always well formed.
    if (key.toLowerCase() === EXPIRES_AT_HEADER) {
      throw new OutboxMessageError(
        `Expected no header \`${key}\`: the name is reserved for the expiry. Set the message's \`expiresAt\` or \`ttlMs\` instead.`,
      );
    }
    if (typeof value === "string") noNul(value, `headers.${key}`);
    if (value !== null && !["string", "number", "boolean"].includes(typeof value)) {
      throw new OutboxMessageError(
        `Expected header \`${key}\` to be a string, number, boolean or null, got ${describe(value)}.`,
      );
    }
    if (typeof value === "number" && !Number.isFinite(value)) {
      throw new OutboxMessageError(`Expected header \`${key}\` to be a finite number, got ${value}.`);
    }
    // An inbox (ours or a CloudEvents SDK) reads these as CloudEvents attributes, and refuses the whole message when
    // one is malformed: refuse it here, before the INSERT, instead.
    if (key.toLowerCase().startsWith(CLOUD_EVENTS_PREFIX.toLowerCase())) {
      const problem = key.startsWith(CLOUD_EVENTS_PREFIX)
        ? cloudEventHeaderProblem(key, value)
        : `the prefix of CloudEvents attributes is "${CLOUD_EVENTS_PREFIX}" (case matters)`;
      if (problem !== undefined) throw new OutboxMessageError(`Expected header \`${key}\` to be valid: ${problem}.`);
    }
  }
  if (expiresAt === null) return JSON.stringify(headers);
  return JSON.stringify({ ...headers, [EXPIRES_AT_HEADER]: expiresAtHeaderValue(expiresAt) });
}

/** The expiry of a message (ms since the epoch) from `expiresAt` or `ttlMs`, or null. */
function expiryOf(input: OutboxMessageInput): number | null {
  const { expiresAt, ttlMs } = input;
  if (expiresAt !== undefined && ttlMs !== undefined) {
    throw new OutboxMessageError("Expected `expiresAt` or `ttlMs`, not both.");
  }
  if (ttlMs !== undefined) {
    if (typeof ttlMs !== "number" || !Number.isSafeInteger(ttlMs) || ttlMs < 1) {
      throw new OutboxMessageError(`Expected \`ttlMs\` to be an integer >= 1 (milliseconds), got ${describe(ttlMs)}.`);
    }
    return within(Date.now() + ttlMs, "ttlMs");
  }
  if (expiresAt === undefined || expiresAt === null) return null;
  if (!(expiresAt instanceof Date) || Number.isNaN(expiresAt.getTime())) {
    throw new OutboxMessageError(`Expected \`expiresAt\` to be a valid Date, got ${describe(expiresAt)}.`);
  }
  return within(expiresAt.getTime(), "expiresAt");
}

function within(ms: number, what: string): number {
  if (ms < MIN_AVAILABLE_AT || ms > MAX_AVAILABLE_AT) {
    throw new OutboxMessageError(`Expected \`${what}\` to end between the years 1 and 9999.`);
  }
  return ms;
}

/** Validates one message and fills its defaults. Throws OutboxMessageError / OutboxPayloadError. */
export function normalizeMessage(
  input: OutboxMessageInput,
  defaults: { exchange?: string | undefined },
  limits: MessageLimits,
): NormalizedMessage {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    throw new OutboxMessageError(`Expected a message object, got ${describe(input)}.`);
  }
  const exchange = shortString(input.exchange ?? defaults.exchange, "exchange", true) as string;
  const routingKey = shortString(input.routingKey, "routingKey", true) as string;
  if (!("payload" in input)) throw new OutboxMessageError("Expected `payload`; pass null for an empty body.");
  const payload = serializePayload(input.payload);
  const bytes = Buffer.byteLength(payload);
  if (bytes > limits.maxPayloadBytes) {
    throw new OutboxPayloadError(
      `The payload is ${bytes} bytes as JSON, above the limit of ${limits.maxPayloadBytes} (option \`maxPayloadBytes\`). ` +
        "Send a reference to the data instead, or raise the limit.",
      "$",
    );
  }
  let messageId = input.messageId;
  if (messageId === undefined) messageId = uuidv7();
  else if (typeof messageId !== "string" || !isUuid(messageId)) {
    throw new OutboxMessageError(`Expected \`messageId\` to be a UUID, got ${JSON.stringify(messageId)}.`);
  }
  const availableAt = input.availableAt ?? null;
  if (availableAt !== null && (!(availableAt instanceof Date) || Number.isNaN(availableAt.getTime()))) {
    throw new OutboxMessageError(`Expected \`availableAt\` to be a valid Date, got ${describe(availableAt)}.`);
  }
  // What a timestamptz holds and the claim's epoch arithmetic handles exactly; a Date outside it would fail the INSERT
  // with a raw driver error, after the user's other writes.
  if (availableAt !== null && (availableAt.getTime() < MIN_AVAILABLE_AT || availableAt.getTime() > MAX_AVAILABLE_AT)) {
    throw new OutboxMessageError(
      `Expected \`availableAt\` to be between the years 1 and 9999, got ${availableAt.toISOString()}.`,
    );
  }
  return {
    messageId: messageId.toLowerCase(),
    exchange,
    routingKey,
    payload,
    headers: normalizeHeaders(input.headers, expiryOf(input)),
    type: shortString(input.type, "type", false),
    correlationId: shortString(input.correlationId, "correlationId", false),
    availableAt,
    key: shortString(input.key, "key", false),
  };
}
