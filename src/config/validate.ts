// The checks every component's options share: numbers, durations, booleans, byte-length strings, enums, URLs,
// exchange specs, PostgreSQL names and unknown keys. One module, so that `outbox()`, `createRelay()`, `inbox()`,
// `requests()`, `new AmqpTransport()`, `new OutboxQueue()` and the CLI's flags refuse the same input with the same
// words. Every failure is an OutboxConfigError of the form: Expected `name` to be <what>, got <value>. The value
// shown is redacted when it could hold a password.
import { OutboxConfigError } from "../errors.js";
import { type Clock, databaseClock } from "../runtime/clock.js";
import { redactUrl } from "./redact.js";

/** The longest delay setTimeout takes (about 24.8 days); longer ones would fire at once. */
export const MAX_TIMER_MS = 2_147_483_647;

/** The exchange types RabbitMQ declares without a plugin. */
export const EXCHANGE_TYPES = ["direct", "topic", "fanout", "headers"] as const;
export type ExchangeType = (typeof EXCHANGE_TYPES)[number];

/** An exchange to declare, in the shape the transports take (`ExchangeSpec`). */
export interface ExchangeShape {
  name: string;
  type: ExchangeType;
  durable?: boolean;
}

/** AMQP short strings (exchange names, routing keys) are at most 255 bytes. */
const MAX_SHORT_STRING_BYTES = 255;

/** PostgreSQL truncates identifiers longer than NAMEDATALEN - 1 bytes; refusing them is clearer than truncating. */
const MAX_IDENTIFIER_BYTES = 63;

/** A value as a message shows it: strings quoted (control characters escaped), objects as JSON. */
export function shown(value: unknown): string {
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

/**
 * The one form of a refusal: Expected <subject> to be <what>, got <value>. `subject` is written as given: an option
 * in backticks (`` `batchSize` ``), a flag or an environment variable bare (--batch-size, OUTBOX_BATCH_SIZE).
 */
export function expected(subject: string, what: string, value: unknown): OutboxConfigError {
  return new OutboxConfigError(`Expected ${subject} to be ${what}, got ${shown(value)}.`);
}

/**
 * Allowed values as a message lists them: `"a" or "b"`, `"a", "b" or "c"`, and from four on `one of a, b, c or d`.
 * Strings are quoted as the JavaScript values they are, unless `bare` (flags and environment variables are text).
 */
export function describeChoices(allowed: readonly unknown[], bare = false): string {
  const items = allowed.map((v) => (typeof v === "string" && !bare ? JSON.stringify(v) : String(v)));
  const list = items.length < 2 ? items.join("") : `${items.slice(0, -1).join(", ")} or ${items.at(-1)}`;
  return items.length > 3 ? `one of ${list}` : list;
}

export interface NumberRule {
  min: number;
  /** Omitted: no upper bound (the message then says `>= min`). */
  max?: number | undefined;
  integer?: boolean | undefined;
  /** Said after the range, in brackets: `an integer >= 1 (milliseconds)`. */
  unit?: string | undefined;
}

/** Throws unless `value` is a number (an integer when `integer`) within the bounds; returns it. */
export function expectNumber(name: string, value: unknown, { min, max, integer = false, unit }: NumberRule): number {
  const inRange = typeof value === "number" && value >= min && (max === undefined || value <= max);
  if (!inRange || (integer && !Number.isInteger(value))) {
    const kind = integer ? "an integer" : "a number";
    const range = max === undefined ? `>= ${min}` : `from ${min} to ${max}`;
    throw expected(`\`${name}\``, `${kind} ${range}${unit === undefined ? "" : ` (${unit})`}`, value);
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

/** An optional function option (a predicate, a hook): the function, or undefined when absent. */
export function functionOption<F extends (...args: never[]) => unknown>(name: string, value: unknown): F | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "function") throw expected(`\`${name}\``, "a function", value);
  return value as F;
}

export function booleanOption(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== "boolean") throw expected(`\`${name}\``, "a boolean", value);
  return value;
}

/** One of `allowed` (compared with ===); `fallback` when undefined. `bare` lists string values without quotes. */
export function enumOption<const T>(
  name: string,
  value: unknown,
  allowed: readonly T[],
  fallback: T,
  { bare = false }: { bare?: boolean } = {},
): T {
  if (value === undefined) return fallback;
  if (!allowed.includes(value as T)) throw expected(`\`${name}\``, describeChoices(allowed, bare), value);
  return value as T;
}

export interface StringRule {
  /** @defaultValue 0 */
  minBytes?: number;
  maxBytes: number;
  /** What the string is, in the message. @defaultValue "a string" */
  noun?: string;
}

/** Whether `value` is a string whose UTF-8 length is within the bounds (AMQP and PostgreSQL count bytes). */
export function withinBytes(value: unknown, maxBytes: number, minBytes = 0): value is string {
  if (typeof value !== "string") return false;
  const bytes = Buffer.byteLength(value);
  return bytes >= minBytes && bytes <= maxBytes;
}

/** Throws unless `value` is a string of `minBytes` to `maxBytes` bytes of UTF-8; returns it. */
export function expectString(name: string, value: unknown, { minBytes = 0, maxBytes, noun = "a string" }: StringRule) {
  if (!withinBytes(value, maxBytes, minBytes)) {
    const size = minBytes > 0 ? `${minBytes} to ${maxBytes}` : `at most ${maxBytes}`;
    throw expected(`\`${name}\``, `${noun} of ${size} bytes`, value);
  }
  return value;
}

/** An optional string option: `fallback` when undefined, else checked like expectString. */
export function stringOption<F extends string | undefined>(
  name: string,
  value: unknown,
  fallback: F,
  rule: StringRule,
): string | F {
  return value === undefined ? fallback : expectString(name, value, rule);
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

/** Throws unless `value` is a valid exchange name (1 to 255 bytes). */
export function expectExchangeName(name: string, value: unknown): string {
  return expectString(name, value, { minBytes: 1, maxBytes: MAX_SHORT_STRING_BYTES, noun: "an exchange name" });
}

/** Throws unless `value` is an array of `{ name, type, durable? }`; returns a copy (later changes do not leak in). */
export function exchangesOption(name: string, value: unknown): ExchangeShape[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw expected(`\`${name}\``, "an array", value);
  return value.map((spec: Partial<ExchangeShape> | undefined, i) => {
    const ok =
      withinBytes(spec?.name, MAX_SHORT_STRING_BYTES, 1) &&
      (EXCHANGE_TYPES as readonly unknown[]).includes(spec?.type) &&
      (spec?.durable === undefined || typeof spec.durable === "boolean");
    if (!ok) {
      throw new OutboxConfigError(
        `Expected each of \`${name}\` to be { name (1 to 255 bytes), type: ${EXCHANGE_TYPES.map((t) => `"${t}"`).join(" | ")}, durable?: boolean }, got ${shown(spec)} at index ${i}.`,
      );
    }
    const copy: ExchangeShape = { name: spec!.name!, type: spec!.type! };
    if (spec!.durable !== undefined) copy.durable = spec!.durable;
    return copy;
  });
}

/**
 * A PostgreSQL schema name (the outbox tables' schema). Any name PostgreSQL accepts is allowed: the SQL quotes it.
 * Only the empty string, NUL and names longer than PostgreSQL keeps are refused.
 */
export function schemaOption(name: string, value: unknown, fallback = "public"): string {
  if (value === undefined) return fallback;
  if (!withinBytes(value, MAX_IDENTIFIER_BYTES, 1) || value.includes("\0")) {
    throw expected(`\`${name}\``, `a PostgreSQL schema name of 1 to ${MAX_IDENTIFIER_BYTES} bytes`, value);
  }
  return value;
}

/**
 * The clock of the relay or the inbox (runtime/clock.ts): `{ sql, onAdvance, install? }`, the test kit's TestClock;
 * PostgreSQL's now() when undefined.
 */
export function clockOption(name: string, value: unknown): Clock {
  if (value === undefined) return databaseClock;
  const clock = value as Partial<Clock> | null;
  const ok =
    typeof clock === "object" &&
    clock !== null &&
    typeof clock.sql === "string" &&
    clock.sql.trim() !== "" &&
    typeof clock.onAdvance === "function" &&
    (clock.install === undefined || typeof clock.install === "function");
  if (!ok) throw expected(`\`${name}\``, "a clock ({ sql, onAdvance }: the test kit's TestClock)", value);
  return clock as Clock;
}

/** Edit distance (insertions, deletions, substitutions, swaps of neighbours), case ignored. */
function distance(a: string, b: string): number {
  const s = a.toLowerCase();
  const t = b.toLowerCase();
  const d = Array.from({ length: s.length + 1 }, (_, i) => [i, ...Array<number>(t.length).fill(0)]);
  for (let j = 1; j <= t.length; j++) d[0]![j] = j;
  for (let i = 1; i <= s.length; i++) {
    for (let j = 1; j <= t.length; j++) {
      const cost = s[i - 1] === t[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && s[i - 1] === t[j - 2] && s[i - 2] === t[j - 1]) {
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      }
      d[i]![j] = best;
    }
  }
  return d[s.length]![t.length]!;
}

/** The known name closest to `key`, when it is close enough to be a slip (a third of its letters at most). */
export function closestName(key: string, known: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const name of known) {
    const d = distance(key, name);
    if (d < bestDistance) [best, bestDistance] = [name, d];
  }
  return best !== undefined && bestDistance <= Math.max(1, Math.floor(key.length / 3)) ? best : undefined;
}

/**
 * Throws when `options` has a key that is not in `known`: a misspelt option would otherwise be ignored without a
 * word. `what` names the object: a call (`createRelay()`: "Unknown option `x` of createRelay()") or an option that
 * is an object (`transactionOptions`: "Unknown `transactionOptions` key `x`"). A close known name is suggested.
 */
export function rejectUnknownKeys(what: string, options: object, known: Iterable<string>): void {
  const names = new Set(known);
  const unknown = Object.keys(options).filter((key) => !names.has(key));
  if (unknown.length === 0) return;
  const described = unknown.map((key) => {
    const near = closestName(key, names);
    return { key: `\`${key}\``, hint: near === undefined ? "" : `did you mean \`${near}\`?` };
  });
  const call = what.endsWith(")");
  if (described.length === 1) {
    const { key, hint } = described[0]!;
    const head = call ? `Unknown option ${key} of ${what}` : `Unknown \`${what}\` key ${key}`;
    throw new OutboxConfigError(hint ? `${head}; ${hint}` : `${head}: known are ${[...names].join(", ")}.`);
  }
  const list = described.map(({ key, hint }) => (hint ? `${key} (${hint})` : key)).join(", ");
  throw new OutboxConfigError(call ? `Unknown options of ${what}: ${list}.` : `Unknown \`${what}\` keys: ${list}.`);
}
