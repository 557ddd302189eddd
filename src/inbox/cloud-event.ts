// A delivery that is a CloudEvent in the AMQP binding's binary content mode (`cloudEvents:` headers), from any
// producer: our relay with its `cloudEvents` option, or a CloudEvents SDK in another language. On receipt, its
// attributes are checked (untrusted: a malformed one makes the delivery invalid, with the reason), and the delivery
// takes its messageId from `cloudEvents:id` and its type from `cloudEvents:type` when the AMQP properties have none;
// on handling, the handler sees the attributes as `message.cloudEvent` (read again from the stored headers).
import { type CloudEventAttributes, readCloudEvent } from "../message/cloud-events.js";
import type { Delivery } from "../transport/transport.js";

/**
 * Checks a delivery's CloudEvents attributes and fills its messageId and type from them where the AMQP properties
 * have none. Returns why the delivery is invalid, or undefined (a valid CloudEvent, or not one).
 */
export function adoptCloudEvent(delivery: Delivery): string | undefined {
  const reading = readCloudEvent(delivery.headers);
  if (reading === undefined) return undefined;
  if (!reading.ok) return `the CloudEvents attributes are malformed: ${reading.reason}`;
  // The AMQP message-id, when there is one, stays the deduplication key (the relay sends both, equal).
  if (delivery.messageId === undefined || delivery.messageId.length === 0) delivery.messageId = reading.attributes.id;
  if (delivery.type === undefined || delivery.type.length === 0) delivery.type = reading.attributes.type;
  return undefined;
}

/** The attributes of a stored row's headers (checked when it was received), or undefined when it is no CloudEvent. */
export function cloudEventOf(headers: Record<string, unknown> | null): CloudEventAttributes | undefined {
  const reading = readCloudEvent(headers);
  return reading?.ok ? reading.attributes : undefined;
}
