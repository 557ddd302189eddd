// The receiver stores a delivery's ordering key (header x-ordering-key) only when it is a string of 1 to 255 bytes
// (the column's width, and what the outbox's writer allows). Any other value is dropped and the delivery is handled
// like a message without a key, out of order with the key's others: said here, once per delivery, so that an
// operator sees why (a producer other than this package's relay, or a broken one).

import { ORDERING_KEY_HEADER } from "../message/message.js";
import type { Logger } from "../runtime/logger.js";
import type { Delivery } from "../transport/transport.js";

const MAX_KEY_BYTES = 255;

/** Logs a warning when the delivery carries an ordering key header that the receiver will not use. */
export function warnUnusableOrderingKey(delivery: Delivery, logger: Logger): void {
  const raw = delivery.headers?.[ORDERING_KEY_HEADER];
  if (raw === undefined) return;
  const key = Buffer.isBuffer(raw) ? raw.toString("utf8") : raw;
  let reason: string;
  if (typeof key !== "string") reason = `not a string (${raw === null ? "null" : typeof raw})`;
  else if (key.length === 0) reason = "empty";
  else if (Buffer.byteLength(key) > MAX_KEY_BYTES) reason = `longer than ${MAX_KEY_BYTES} bytes`;
  else return;
  logger.warn("ordering key dropped: the delivery is handled without order", {
    reason,
    messageId: delivery.messageId,
    routingKey: delivery.routingKey,
    ...(typeof key === "string" ? { keyBytes: Buffer.byteLength(key), keyStart: key.slice(0, 32) } : {}),
  });
}
