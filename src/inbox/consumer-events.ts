// What the inbox makes of its consumer's events: the broker's connection changes and the decoding-loop signals are
// logged in the inbox's words (once per change: the consumer emits each change once) and passed on as inbox events,
// which the health and the metrics read.
import type { Logger } from "../runtime/logger.js";
import type { ConsumerEvent, TransportEvent } from "../transport/transport.js";
import type { InboxEvent } from "./events.js";
import { DECODE_LOOP_HINT } from "./health.js";

export function consumerEventReporter(
  logger: Logger,
  queue: string,
  emit: (event: InboxEvent) => void,
): (event: TransportEvent | ConsumerEvent) => void {
  return (event) => {
    switch (event.type) {
      case "guard-unavailable":
        logger.warn(
          "this amqplib version is not the one the header guard knows: a delivery whose header table cannot be decoded will drop the connection (detected as a loop: see health)",
        );
        return;
      case "decode-loop":
        logger.error(
          "broker: the connection drops on every reconnection: a message this client cannot decode heads the queue and is redelivered forever",
          {
            queue,
            failures: event.failures,
            error: event.error.message,
            hint: DECODE_LOOP_HINT,
          },
        );
        emit(event);
        return;
      case "decode-loop-ended":
        logger.info("the connection to RabbitMQ stays up again: the decoding loop ended", {
          queue,
        });
        emit(event);
        return;
      case "decode-failure":
        emit(event);
        return;
    }
    if (event.type === "reconnecting")
      logger.warn("RabbitMQ reconnecting", {
        attempt: event.attempt,
        delayMs: event.delayMs,
        error: event.error.message,
      });
    if (event.type === "disconnected")
      logger.warn("RabbitMQ connection lost", event.error ? { error: event.error.message } : {});
    emit({ type: "transport", event });
  };
}
