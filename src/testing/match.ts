// What the kit's assertions compare: a message as a test sees it (payload decoded), a filter, and the words a failed
// expectation prints. Pure: no database, no broker.
import { ORDERING_KEY_HEADER } from "../message/message.js";
import { escapeControl } from "../runtime/escape.js";

/** A message as it reached the broker, for assertions: the payload decoded from JSON (else the raw bytes). */
export interface CapturedMessage {
  messageId: string | undefined;
  exchange: string;
  routingKey: string;
  /** The ordering key (`x-ordering-key` header), if any. */
  key: string | undefined;
  payload: unknown;
  headers: Record<string, unknown>;
  type: string | undefined;
  correlationId: string | undefined;
  /** The queues of the in-memory broker it reached. */
  queues: string[];
}

/**
 * Which messages an assertion means; every field given must match. `payload` matches as a deep subset (the message's
 * payload may hold more fields; arrays match element by element and must have the same length); a function tests it.
 */
export interface MessageFilter {
  exchange?: string;
  /** Exact, or a RegExp. */
  routingKey?: string | RegExp;
  key?: string;
  type?: string;
  correlationId?: string;
  messageId?: string;
  payload?: unknown;
  headers?: Record<string, unknown>;
  /** Anything else. */
  where?: (message: CapturedMessage) => boolean;
}

/** The bytes of a message body as a test wants them: JSON decoded, else a UTF-8 string, else the Buffer. */
export function decodePayload(body: Buffer): unknown {
  const text = body.toString("utf8");
  try {
    return JSON.parse(text);
  } catch {
    return Buffer.from(text, "utf8").equals(body) ? text : body;
  }
}

export function orderingKeyOf(headers: Record<string, unknown> | undefined): string | undefined {
  const value = headers?.[ORDERING_KEY_HEADER];
  return value === undefined || value === null ? undefined : String(value);
}

/** True when `actual` holds every field of `expected` with an equal value (deeply; arrays by position). */
export function isSubset(expected: unknown, actual: unknown): boolean {
  if (typeof expected === "function") return Boolean((expected as (value: unknown) => unknown)(actual));
  if (expected instanceof RegExp) return typeof actual === "string" && expected.test(actual);
  if (Array.isArray(expected)) {
    return (
      Array.isArray(actual) && actual.length === expected.length && expected.every((e, i) => isSubset(e, actual[i]))
    );
  }
  if (Buffer.isBuffer(expected)) return Buffer.isBuffer(actual) && expected.equals(actual);
  if (typeof expected === "object" && expected !== null) {
    if (typeof actual !== "object" || actual === null || Array.isArray(actual)) return false;
    return Object.entries(expected).every(([k, v]) => isSubset(v, (actual as Record<string, unknown>)[k]));
  }
  return Object.is(expected, actual);
}

export function matches(filter: MessageFilter, message: CapturedMessage): boolean {
  if (filter.exchange !== undefined && filter.exchange !== message.exchange) return false;
  if (filter.routingKey !== undefined) {
    const ok =
      typeof filter.routingKey === "string"
        ? filter.routingKey === message.routingKey
        : filter.routingKey.test(message.routingKey);
    if (!ok) return false;
  }
  if (filter.key !== undefined && filter.key !== message.key) return false;
  if (filter.type !== undefined && filter.type !== message.type) return false;
  if (filter.correlationId !== undefined && filter.correlationId !== message.correlationId) return false;
  if (filter.messageId !== undefined && filter.messageId !== message.messageId) return false;
  if (filter.payload !== undefined && !isSubset(filter.payload, message.payload)) return false;
  if (filter.headers !== undefined && !isSubset(filter.headers, message.headers)) return false;
  return filter.where === undefined || filter.where(message);
}

/**
 * Pairs each filter with a distinct message it matches, or says which filters found none. Filters are tried in order
 * against messages in order; a filter takes the first message no earlier filter took (so "two order.created" needs
 * two messages).
 */
export function pairUp(
  filters: MessageFilter[],
  messages: CapturedMessage[],
): { matched: CapturedMessage[]; unmatched: number[]; extra: CapturedMessage[] } {
  const taken = new Set<number>();
  const matched: CapturedMessage[] = [];
  const unmatched: number[] = [];
  filters.forEach((filter, i) => {
    const index = messages.findIndex((m, j) => !taken.has(j) && matches(filter, m));
    if (index < 0) unmatched.push(i);
    else {
      taken.add(index);
      matched.push(messages[index]!);
    }
  });
  return { matched, unmatched, extra: messages.filter((_, j) => !taken.has(j)) };
}

const MAX_SHOWN = 20;
const MAX_PAYLOAD_CHARS = 200;

function shown(value: unknown): string {
  let text: string;
  if (value instanceof RegExp) text = String(value);
  else if (typeof value === "function") text = `[function ${value.name || "anonymous"}]`;
  else if (Buffer.isBuffer(value)) text = `<${value.length} bytes>`;
  else {
    try {
      text = JSON.stringify(value, (_k, v) => (v instanceof RegExp ? String(v) : v)) ?? String(value);
    } catch {
      text = String(value);
    }
  }
  text = escapeControl(text);
  return text.length > MAX_PAYLOAD_CHARS ? `${text.slice(0, MAX_PAYLOAD_CHARS)}...` : text;
}

/** One line per filter: the fields it sets. */
export function describeFilter(filter: MessageFilter): string {
  const parts = Object.entries(filter)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}: ${shown(v)}`);
  return parts.length === 0 ? "any message" : `{ ${parts.join(", ")} }`;
}

/** One line per message: where it went, its key, and its payload. */
export function describeMessage(message: CapturedMessage): string {
  const key = message.key === undefined ? "" : ` key ${shown(message.key)}`;
  return `${escapeControl(message.exchange || '""')} ${escapeControl(message.routingKey)}${key} ${shown(message.payload)}`;
}

/** The list a failed expectation prints: every message, or the first MAX_SHOWN and how many more. */
export function describeMessages(messages: CapturedMessage[]): string {
  if (messages.length === 0) return "  (none)";
  const lines = messages.slice(0, MAX_SHOWN).map((m, i) => `  ${i + 1}. ${describeMessage(m)}`);
  if (messages.length > MAX_SHOWN) lines.push(`  ... and ${messages.length - MAX_SHOWN} more`);
  return lines.join("\n");
}
