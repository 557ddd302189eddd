// The relay's `cloudEvents` option: publish every message as a CloudEvent in the AMQP binding's binary content mode
// (message/cloud-events.ts has the mapping). Per relay, since `source` names the producing service: every message of
// the outbox this relay drains is published the same way, and a message may still set its own `cloudEvents:source`,
// `cloudEvents:type`, `cloudEvents:time`, `cloudEvents:subject` or extensions as headers.
import { expected, rejectUnknownKeys } from "../config/validate.js";
import { cloudEventHeaders, isUriReference } from "../message/cloud-events.js";
import type { OutboundMessage } from "../transport/transport.js";

export interface CloudEventsOptions {
  /**
   * The CloudEvents `source` of every message (unless a message sets the header `cloudEvents:source`): a
   * URI-reference naming the producing service, e.g. `"https://shop.example.com/orders"` or `"/shop/orders"`.
   * With `id` (the messageId) it identifies an event.
   */
  source: string;
}

/** The `cloudEvents` option, checked: undefined (or false) for plain messages. */
export function cloudEventsOption(name: string, value: unknown): CloudEventsOptions | undefined {
  if (value === undefined || value === false) return undefined;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw expected(`\`${name}\``, "an object `{ source }` or false", value);
  }
  rejectUnknownKeys(name, value, ["source"]);
  const source = (value as { source?: unknown }).source;
  // A URI-reference: no whitespace or control characters; at most 255 bytes, so that the header stays a short value
  // every consumer takes.
  if (typeof source !== "string" || !isUriReference(source) || Buffer.byteLength(source) > 255) {
    throw expected(`\`${name}.source\``, "a URI-reference of 1 to 255 bytes without whitespace", source);
  }
  return { source };
}

/** The message with its CloudEvents headers, when the option is on. */
export function asCloudEvent(message: OutboundMessage, options: CloudEventsOptions | undefined): OutboundMessage {
  if (options === undefined) return message;
  return { ...message, headers: cloudEventHeaders(message, message.headers, options.source) };
}
