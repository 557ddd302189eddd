// CloudEvents 1.0 in the AMQP protocol binding, binary content mode: the body is the event's data as it is, the AMQP
// content_type is its `datacontenttype`, and every other attribute is an application property (in AMQP 0-9-1, a
// header) named `cloudEvents:<attribute>`. What a producer or consumer in another language (a CloudEvents SDK, Knative,
// Dapr, Azure Service Bus...) reads and writes. Pure: the relay writes these headers, the inbox reads them.
//
// Reading is for untrusted input: every attribute is checked against the spec's type system, and what is wrong is said
// in one reason, with the value escaped and cut (docs/cloudevents.md).
import type { HeaderValue } from "./message.js";

/** The prefix of a CloudEvents attribute's application property (header) name. Case matters. */
export const CLOUD_EVENTS_PREFIX = "cloudEvents:";

/** The one version this package writes and reads. */
export const CLOUD_EVENTS_SPEC_VERSION = "1.0";

/**
 * A CloudEvent's attributes, as a handler sees them in `message.cloudEvent` (flat, as the CloudEvents SDKs hold them).
 * Timestamps are RFC 3339 strings, binary extension values base64 text.
 */
export interface CloudEventAttributes {
  specversion: "1.0";
  /** With `source`, identifies the event. The inbox's messageId when the delivery has no AMQP message-id. */
  id: string;
  /** A URI-reference: the context the event happened in. */
  source: string;
  /** The kind of event, e.g. `com.example.order.created`. */
  type: string;
  /** When it happened (RFC 3339). */
  time?: string;
  subject?: string;
  /** An absolute URI. */
  dataschema?: string;
  /** Only when sent as a header: the binary mode carries it as the AMQP content_type, which the inbox does not keep. */
  datacontenttype?: string;
  /** Extension attributes: lower-case letters and digits. */
  [extension: string]: string | number | boolean | undefined;
}

/** Attributes the relay always sets from the row: a header of that name written with the message would contradict it. */
export const RELAY_SET_ATTRIBUTES = ["specversion", "id"] as const;

const CORE_STRINGS = ["id", "source", "type", "subject", "dataschema", "datacontenttype"] as const;

/** RFC 3339 date-time (the `time` attribute's canonical string form). */
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
/** An absolute URI starts with a scheme. */
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;
/** CloudEvents attribute names: lower-case ASCII letters and digits (the spec's MUST; 20 characters is a SHOULD). */
const ATTRIBUTE_NAME = /^[a-z0-9]+$/;
const INT32_MIN = -2_147_483_648;
const INT32_MAX = 2_147_483_647;

/** A value as a reason shows it: JSON-escaped (control characters visible), cut to 60 characters. */
function shown(value: unknown): string {
  let text: string;
  try {
    text =
      typeof value === "bigint" ? `${value}n` : Buffer.isBuffer(value) ? "a byte array" : String(JSON.stringify(value));
  } catch {
    text = Object.prototype.toString.call(value);
  }
  return text.length > 60 ? `${text.slice(0, 60)}...` : text;
}

/** Whether `value` is a non-empty string without whitespace or control characters, as a URI-reference is. */
export function isUriReference(value: unknown): value is string {
  if (typeof value !== "string" || value.length === 0) return false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f || (c >= 0x80 && /\s/.test(value[i]!))) return false;
  }
  return true;
}

/** Whether `value` is a valid RFC 3339 timestamp string. */
export function isCloudEventTime(value: unknown): value is string {
  return typeof value === "string" && RFC3339.test(value) && !Number.isNaN(Date.parse(value));
}

/**
 * The problem with a `cloudEvents:` header written with a message (the write side refuses it at once), or undefined.
 * `specversion` and `id` are the relay's; the rest must have the spec's types, so that a consumer can read them.
 */
export function cloudEventHeaderProblem(name: string, value: HeaderValue): string | undefined {
  const attribute = name.slice(CLOUD_EVENTS_PREFIX.length);
  if ((RELAY_SET_ATTRIBUTES as readonly string[]).includes(attribute)) {
    return `the relay sets \`${name}\` (specversion 1.0, id from the messageId) when its \`cloudEvents\` option is on`;
  }
  if (!ATTRIBUTE_NAME.test(attribute)) {
    return `a CloudEvents attribute name is lower-case letters and digits, got ${shown(attribute)}`;
  }
  return valueProblem(attribute, value);
}

/** What is wrong with an attribute's value (already decoded: string, number, boolean), or undefined. */
function valueProblem(attribute: string, value: unknown): string | undefined {
  const where = `${CLOUD_EVENTS_PREFIX}${attribute}`;
  if ((CORE_STRINGS as readonly string[]).includes(attribute) || attribute === "time") {
    if (typeof value !== "string") return `${where} must be a string, got ${shown(value)}`;
    if (value.length === 0) return `${where} must not be empty`;
    if (attribute === "time" && !isCloudEventTime(value))
      return `${where} is not an RFC 3339 timestamp: ${shown(value)}`;
    if (attribute === "source" && !isUriReference(value)) return `${where} is not a URI-reference: ${shown(value)}`;
    if (attribute === "dataschema" && !(isUriReference(value) && SCHEME.test(value)))
      return `${where} is not an absolute URI: ${shown(value)}`;
    return undefined;
  }
  if (typeof value === "string" || typeof value === "boolean") return undefined;
  if (typeof value === "number" && Number.isInteger(value) && value >= INT32_MIN && value <= INT32_MAX)
    return undefined;
  return `${where} must be a string, a boolean or a 32-bit integer, got ${shown(value)}`;
}

/**
 * The headers of a message published as a CloudEvent: the message's own headers (its `cloudEvents:` ones included:
 * `source`, `type`, `time`, `subject` and extensions per message), then `specversion` 1.0 and `id` (the messageId)
 * always, and `source`, `type` (the AMQP type, else the routing key) and `time` (when the row was written) unless the
 * message set them.
 */
export function cloudEventHeaders(
  message: { messageId: string; routingKey: string; type: string | undefined; createdAt: number },
  headers: Record<string, HeaderValue> | undefined,
  source: string,
): Record<string, HeaderValue> {
  const own = (attribute: string): string | undefined => {
    const value = headers?.[`${CLOUD_EVENTS_PREFIX}${attribute}`];
    return typeof value === "string" && value.length > 0 ? value : undefined;
  };
  return {
    ...headers,
    [`${CLOUD_EVENTS_PREFIX}specversion`]: CLOUD_EVENTS_SPEC_VERSION,
    [`${CLOUD_EVENTS_PREFIX}id`]: message.messageId,
    [`${CLOUD_EVENTS_PREFIX}source`]: own("source") ?? source,
    [`${CLOUD_EVENTS_PREFIX}type`]: own("type") ?? message.type ?? message.routingKey,
    [`${CLOUD_EVENTS_PREFIX}time`]: own("time") ?? new Date(message.createdAt).toISOString(),
  };
}

/** What reading a delivery's headers as a CloudEvent gave. */
export type CloudEventReading =
  | { ok: true; attributes: CloudEventAttributes }
  | { ok: false; reason: string }
  /** No `cloudEvents:` header: not a CloudEvent (binary mode). */
  | undefined;

/**
 * An AMQP value in its CloudEvents form, or a problem: a native timestamp (amqplib decodes it as
 * `{ "!": "timestamp", value: seconds }`, and the inbox stores it so) becomes RFC 3339 text, a byte array base64 text
 * (the canonical form of Binary; the inbox stores it so too).
 */
function canonical(value: unknown): unknown {
  if (Buffer.isBuffer(value)) return value.toString("base64");
  if (typeof value === "object" && value !== null && (value as { "!"?: unknown })["!"] === "timestamp") {
    const seconds = (value as { value?: unknown }).value;
    const date = typeof seconds === "number" ? new Date(seconds * 1000) : undefined;
    return date && !Number.isNaN(date.getTime()) ? date.toISOString() : value;
  }
  return value;
}

/**
 * Reads the `cloudEvents:` headers of a delivery (untrusted). Undefined when there is none; else the attributes, or
 * the first thing wrong with them: a name in the wrong case or with other characters, a missing or mistyped required
 * attribute (specversion, id, source, type), a specversion other than 1.0, a value of a type the spec does not have.
 */
export function readCloudEvent(headers: Record<string, unknown> | null | undefined): CloudEventReading {
  if (!headers) return undefined;
  const prefix = CLOUD_EVENTS_PREFIX.toLowerCase();
  const attributes: Record<string, unknown> = {};
  let found = false;
  for (const [name, raw] of Object.entries(headers)) {
    if (!name.toLowerCase().startsWith(prefix)) continue;
    found = true;
    if (!name.startsWith(CLOUD_EVENTS_PREFIX)) {
      return {
        ok: false,
        reason: `the header ${shown(name)} is not a CloudEvents attribute: the prefix is "cloudEvents:"`,
      };
    }
    const attribute = name.slice(CLOUD_EVENTS_PREFIX.length);
    if (!ATTRIBUTE_NAME.test(attribute)) {
      return {
        ok: false,
        reason: `${shown(name)} is not a CloudEvents attribute name (lower-case letters and digits)`,
      };
    }
    const isBinaryCore = Buffer.isBuffer(raw) && (CORE_STRINGS as readonly string[]).includes(attribute);
    const value = isBinaryCore ? raw : canonical(raw);
    const problem = valueProblem(attribute, value);
    if (problem !== undefined) return { ok: false, reason: problem };
    attributes[attribute] = value;
  }
  if (!found) return undefined;
  const version = attributes.specversion;
  if (version === undefined) return { ok: false, reason: "cloudEvents:specversion is missing" };
  if (version !== CLOUD_EVENTS_SPEC_VERSION) {
    return { ok: false, reason: `cloudEvents:specversion is ${shown(version)}; only "1.0" is read` };
  }
  for (const required of ["id", "source", "type"]) {
    if (attributes[required] === undefined) return { ok: false, reason: `cloudEvents:${required} is missing` };
  }
  return { ok: true, attributes: attributes as CloudEventAttributes };
}
