// Routing as RabbitMQ does it, without a broker: which of an exchange's bindings a message matches. Pure functions;
// the in-memory broker (memory-broker.ts) keeps the exchanges, queues and bindings and asks these.
//
// Sources, read for each rule (RabbitMQ 3.10-3.13, the server's Erlang modules) and checked against a running
// broker by test/transport/memory-routing.test.ts:
// - direct: the binding key equals the routing key, byte for byte.
// - topic (rabbit_exchange_type_topic): both keys split on "." into words; the empty key is zero words, not one
//   empty word ("a." is ["a", ""]); `*` matches exactly one word (an empty one too), `#` zero or more.
// - fanout: every binding.
// - headers (rabbit_exchange_type_headers): `x-match` all (the default, also for an unknown value bound before the
//   broker validated it) or any; binding arguments starting with "x-" are ignored unless all-with-x / any-with-x
//   ("x-match" itself always is). A binding argument without a value (AMQP void: `null` here) matches the header's
//   presence; any other matches an equal value. Values are compared as Erlang's `==` does: by value, not by AMQP
//   type (1 as a byte equals 1 as a long, "ab" equals the bytes "ab"), except inside nested tables and arrays, where
//   the types are part of the value. `any` with nothing to compare matches nothing; `all` with nothing matches all.
// - the default exchange "": the queue named by the routing key, if it exists (handled by the broker, which knows
//   the queues).
// A queue bound several times to an exchange matching one message gets one copy.

export type ExchangeType = "direct" | "topic" | "fanout" | "headers";

export const EXCHANGE_TYPES: readonly ExchangeType[] = ["direct", "topic", "fanout", "headers"];

/** One binding of a queue to an exchange. */
export interface Binding {
  queue: string;
  routingKey: string;
  arguments: Record<string, unknown> | undefined;
}

/** The queues a message reaches through an exchange of `type` with these bindings, each once, in binding order. */
export function routeBindings(
  type: ExchangeType,
  bindings: readonly Binding[],
  routingKey: string,
  headers: Record<string, unknown> | undefined,
): string[] {
  const queues = new Set<string>();
  for (const binding of bindings) {
    if (queues.has(binding.queue)) continue;
    if (bindingMatches(type, binding, routingKey, headers)) queues.add(binding.queue);
  }
  return [...queues];
}

export function bindingMatches(
  type: ExchangeType,
  binding: Binding,
  routingKey: string,
  headers: Record<string, unknown> | undefined,
): boolean {
  switch (type) {
    case "direct":
      return binding.routingKey === routingKey;
    case "fanout":
      return true;
    case "topic":
      return topicMatches(binding.routingKey, routingKey);
    case "headers":
      return headersMatch(binding.arguments ?? {}, headers ?? {});
  }
}

/** A routing or binding key's words, as RabbitMQ splits them: the empty key has none. */
export function topicWords(key: string): string[] {
  return key === "" ? [] : key.split(".");
}

/** Whether a topic binding key (with `*` and `#`) matches a routing key. */
export function topicMatches(bindingKey: string, routingKey: string): boolean {
  const pattern = topicWords(bindingKey);
  const words = topicWords(routingKey);
  // can[i][j]: pattern from i matches words from j. Filled backwards: linear in the product of the lengths, where a
  // naive recursion over several `#` would be exponential in a hostile key.
  let next = new Array<boolean>(words.length + 1).fill(false);
  next[words.length] = true; // the empty pattern matches the empty tail only
  for (let i = pattern.length - 1; i >= 0; i--) {
    const p = pattern[i]!;
    const row = new Array<boolean>(words.length + 1).fill(false);
    for (let j = words.length; j >= 0; j--) {
      if (p === "#") row[j] = next[j]! || (j < words.length && row[j + 1]!);
      else row[j] = j < words.length && (p === "*" || p === words[j]) && next[j + 1]!;
    }
    next = row;
  }
  return next[0]!;
}

type MatchKind = "all" | "any" | "all-with-x" | "any-with-x";
const MATCH_KINDS: readonly string[] = ["all", "any", "all-with-x", "any-with-x"];

/**
 * Why RabbitMQ refuses these binding arguments on a headers exchange (406 PRECONDITION_FAILED), or undefined: an
 * `x-match` that is not one of the four strings.
 */
export function invalidHeadersBinding(args: Record<string, unknown> | undefined): string | undefined {
  const match = plain(args?.["x-match"]);
  if (match === undefined) return undefined;
  if (typeof match !== "string") return `Invalid x-match field type (value ${String(match)}); expected longstr`;
  if (!MATCH_KINDS.includes(match)) return `Invalid x-match field value "${match}"; expected ${MATCH_KINDS.join(", ")}`;
  return undefined;
}

/** Whether a message's headers match a headers-exchange binding's arguments. */
export function headersMatch(args: Record<string, unknown>, headers: Record<string, unknown>): boolean {
  const given = plain(args["x-match"]);
  const kind: MatchKind = typeof given === "string" && MATCH_KINDS.includes(given) ? (given as MatchKind) : "all";
  const withX = kind === "all-with-x" || kind === "any-with-x";
  const all = kind === "all" || kind === "all-with-x";
  let anyMatched = false;
  for (const [key, expected] of Object.entries(args)) {
    if (key === "x-match" || (!withX && key.startsWith("x-"))) continue;
    const present = Object.hasOwn(headers, key);
    const value = plain(expected);
    const matched = present && (value === null || value === undefined || sameValue(expected, headers[key]));
    if (matched) anyMatched = true;
    else if (all) return false;
    if (matched && !all) return true;
  }
  return all ? true : anyMatched;
}

/** amqplib's typed value `{ "!": "long", value: 1 }` is its value; anything else is itself. */
function plain(value: unknown): unknown {
  if (typeof value === "object" && value !== null && "!" in value && "value" in value) {
    return (value as { value: unknown }).value;
  }
  return value;
}

/** Erlang's `==` on two decoded field values at the top of a table: numbers by value, strings and bytes by bytes. */
function sameValue(a: unknown, b: unknown): boolean {
  const x = plain(a);
  const y = plain(b);
  if (typeof x === "number" || typeof x === "bigint") {
    // biome-ignore lint/suspicious/noDoubleEquals: 1 == 1n, as Erlang compares a long with an int
    return (typeof y === "number" || typeof y === "bigint") && x == y;
  }
  if (isBytes(x) || isBytes(y)) return isBytes(x) && isBytes(y) && Buffer.from(x).equals(Buffer.from(y));
  if (typeof x !== "object" || x === null || typeof y !== "object" || y === null) return x === y;
  return sameTyped(a, b);
}

function isBytes(value: unknown): value is string | Buffer {
  return typeof value === "string" || Buffer.isBuffer(value);
}

/** Inside a nested table or array, Erlang compares {type, value} tuples: the AMQP type amqplib encodes counts. */
function sameTyped(a: unknown, b: unknown): boolean {
  if (fieldType(a) !== fieldType(b)) return false;
  const x = plain(a);
  const y = plain(b);
  if (Array.isArray(x)) return Array.isArray(y) && x.length === y.length && x.every((v, i) => sameTyped(v, y[i]));
  if (Buffer.isBuffer(x)) return Buffer.isBuffer(y) && x.equals(y);
  if (typeof x === "object" && x !== null && typeof y === "object" && y !== null) {
    // A table's fields are compared in the order they were encoded, keys and typed values.
    const xs = Object.entries(x);
    const ys = Object.entries(y);
    return xs.length === ys.length && xs.every(([k, v], i) => k === ys[i]![0] && sameTyped(v, ys[i]![1]));
  }
  // biome-ignore lint/suspicious/noDoubleEquals: Erlang's == (1 == 1.0) on values of one AMQP type
  return x == y;
}

/** The AMQP field type amqplib encodes a JS value as (lib/codec.js), by family: what Erlang's tuples carry. */
function fieldType(value: unknown): string {
  if (typeof value === "object" && value !== null && "!" in value) return String((value as { "!": unknown })["!"]);
  if (typeof value === "number") {
    if (!Number.isInteger(value)) return "double";
    if (value >= -128 && value < 128) return "byte";
    if (value >= -0x8000 && value < 0x8000) return "short";
    if (value >= -0x80000000 && value < 0x80000000) return "int";
    return "long";
  }
  if (value === null || value === undefined) return "void";
  if (Array.isArray(value)) return "array";
  if (Buffer.isBuffer(value)) return "bytes";
  return typeof value;
}
