// `prisma-outbox/testing`: the test kit. Real outbox and inbox rows, transactions, relay and inbox; only the broker
// is replaced, by one in memory that routes as RabbitMQ does. Loads no amqplib. docs/testing.md shows it in use.

export { OutboxExpectationError } from "../errors.js";
export { MemoryTransport, type MemoryTransportOptions } from "../transport/memory.js";
export {
  type BrokerMessage,
  type ExchangeType,
  MemoryBroker,
  type PublishedEntry,
} from "../transport/memory-broker.js";
export { TestClock } from "./clock.js";
export {
  type DeliveryInput,
  type DeliveryOutcome,
  type HandlerOutcome,
  InboxHarness,
  type InboxHarnessOptions,
  startInboxHarness,
} from "./inbox-harness.js";
export type { CapturedMessage, MessageFilter } from "./match.js";
export {
  CAPTURE_QUEUE,
  type ExpectOptions,
  type HarnessRelayOptions,
  type Mark,
  OutboxHarness,
  type OutboxHarnessOptions,
  startOutboxHarness,
} from "./outbox-harness.js";
