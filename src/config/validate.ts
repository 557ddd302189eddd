// The checks every component's options share: numbers, exchange specs, URLs and PostgreSQL names. One module, so
// that `createRelay()`, `new AmqpTransport()` and the worker's flags refuse the same input with the same words.
// Every failure is an OutboxConfigError of the form: Expected `name` to be <what>, got <value>. The value shown is
// redacted when it could hold a password.
import { OutboxConfigError } from "../errors.js";
import type { ExchangeSpec } from "../transport/transport.js";
import { redactUrl } from "./redact.js";

/** The longest delay setTimeout takes (about 24.8 days); longer ones would fire at once. */
export const MAX_TIMER_MS = 2_147_483_647;

/** The exchange types RabbitMQ declares without a plugin. */
export const EXCHANGE_TYPES = ["direct", "topic", "fanout", "headers"] as const;

/** AMQP short strings (exchange names, routing keys) are at most 255 bytes. */
const MAX_SHORT_STRING_BYTES = 255;

/** PostgreSQL truncates identifiers longer than NAMEDATALEN - 1 bytes; refusing them is clearer than truncating. */
const MAX_IDENTIFIER_BYTES = 63;

function shown(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "object" && value !== null) {
    try {
      return JSON.stringify(value);
    } catch {
      return Object.prototype.toString.call(value);
    }
  }
  return String(value);
}

export interface NumberRule {
  min: number;
  /** Omitted: no upper bound (the message then says `>= min`). */
  max?: number | undefined;
  integer?: boolean | undefined;
}

/** Throws unless `value` is a number (an integer when `integer`) within the bounds; returns it. */
export function expectNumber(name: string, value: unknown, { min, max, integer = false }: NumberRule): number {
  const inRange = typeof value === "number" && value >= min && (max === undefined || value <= max);
  if (!inRange || (integer && !Number.isInteger(value))) {
    const kind = integer ? "an integer" : "a number";
    const range = max === undefined ? `>= ${min}` : `from ${min} to ${max}`;
    throw new OutboxConfigError(`Expected \`${name}\` to be ${kind} ${range}, got ${shown(value)}.`);
  }
  return value as number;
}

/** An optional integer option: `fallback` when undefined, else checked like expectNumber. */
export function integerOption(name: string, value: unknown, fallback: number, min: number, max?: number): number {
  if (value === undefined) return fallback;
  return expectNumber(name, value, { min, max, integer: true });
}

/** A duration in milliseconds that ends up in a timer: an integer no longer than setTimeout accepts. */
export function durationOption(name: string, value: unknown, fallback: number, min: number): number {
  return integerOption(name, value, fallback, min, MAX_TIMER_MS);
}

export function booleanOption(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== "boolean")
    throw new OutboxConfigError(`Expected \`${name}\` to be a boolean, got ${shown(value)}.`);
  return value;
}

/** Throws unless `value` is a URL string with one of `protocols` (e.g. ["amqp:", "amqps:"]); never shows a password. */
export function expectUrl(name: string, value: unknown, protocols: readonly string[]): URL {
  const kinds = protocols.map((p) => `${p}//`).join(" or ");
  const article = /^[aeiou]/i.test(kinds) ? "an" : "a";
  if (typeof value !== "string") {
    throw new OutboxConfigError(`Expected \`${name}\` to be ${article} ${kinds} URL string, got ${typeof value}.`);
  }
  let parsed: URL | undefined;
  try {
    parsed = new URL(value);
  } catch {}
  if (!parsed || !protocols.includes(parsed.protocol)) {
    throw new OutboxConfigError(`Expected \`${name}\` to be ${article} ${kinds} URL, got ${redactUrl(value)}.`);
  }
  return parsed;
}

function isExchangeType(type: unknown): type is ExchangeSpec["type"] {
  return (EXCHANGE_TYPES as readonly unknown[]).includes(type);
}

/** Throws unless `value` is a valid exchange name (1 to 255 bytes). */
export function expectExchangeName(name: string, value: unknown): string {
  if (typeof value !== "string" || value.length === 0 || Buffer.byteLength(value) > MAX_SHORT_STRING_BYTES) {
    throw new OutboxConfigError(`Expected \`${name}\` to be an exchange name of 1 to 255 bytes, got ${shown(value)}.`);
  }
  return value;
}

/** Throws unless `value` is an array of `{ name, type, durable? }`; returns a copy (later changes do not leak in). */
export function exchangesOption(name: string, value: unknown): ExchangeSpec[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new OutboxConfigError(`Expected \`${name}\` to be an array, got ${shown(value)}.`);
  return value.map((spec: Partial<ExchangeSpec> | undefined, i) => {
    const nameOk =
      typeof spec?.name === "string" && spec.name.length > 0 && Buffer.byteLength(spec.name) <= MAX_SHORT_STRING_BYTES;
    if (!nameOk || !isExchangeType(spec?.type) || (spec?.durable !== undefined && typeof spec.durable !== "boolean")) {
      throw new OutboxConfigError(
        `Expected each of \`${name}\` to be { name (1 to 255 bytes), type: ${EXCHANGE_TYPES.map((t) => `"${t}"`).join(" | ")}, durable?: boolean }, got ${shown(spec)} at index ${i}.`,
      );
    }
    const copy: ExchangeSpec = { name: spec!.name!, type: spec!.type! };
    if (spec!.durable !== undefined) copy.durable = spec!.durable;
    return copy;
  });
}

/** An exchange type given as text (flags, environment); `source` names where it came from. */
export function parseExchangeType(text: string, source: string): ExchangeSpec["type"] {
  if (!isExchangeType(text)) {
    throw new OutboxConfigError(
      `Expected the type in ${source} to be one of ${EXCHANGE_TYPES.join(", ")}, got "${text}".`,
    );
  }
  return text;
}

/**
 * A PostgreSQL schema name (the outbox tables' schema). Any name PostgreSQL accepts is allowed: the SQL quotes it.
 * Only the empty string, NUL and names longer than PostgreSQL keeps are refused.
 */
export function schemaOption(name: string, value: unknown, fallback = "public"): string {
  if (value === undefined) return fallback;
  if (
    typeof value !== "string" ||
    value.length === 0 ||
    value.includes("\0") ||
    Buffer.byteLength(value) > MAX_IDENTIFIER_BYTES
  ) {
    throw new OutboxConfigError(
      `Expected \`${name}\` to be a PostgreSQL schema name of 1 to ${MAX_IDENTIFIER_BYTES} bytes, got ${shown(value)}.`,
    );
  }
  return value;
}
