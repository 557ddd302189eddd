// The public surface. The write side (outbox, errors, queue) loads neither amqplib nor pg: the relay loads them
// only when it starts.

export type { InboxOptions, InvalidMessagePolicy } from "./config/inbox-options.js";
export type { EventContext, EventOperation, EventSpec, EventsConfig, OutboxOptions } from "./config/outbox-options.js";
export type { RelayLogger, RelayOptions } from "./config/relay-options.js";
export type { RequestsOptions } from "./config/request-options.js";
export { outbox } from "./extension/outbox.js";
export type { InboxEvent, InboxEventListener } from "./inbox/events.js";
export { Inbox, type InboxConnection, type InboxHealth, inbox } from "./inbox/inbox.js";
export { InboxHandlerTimeoutError } from "./inbox/processor.js";
export type {
  DeadFunction,
  HandleFunction,
  HandlerContext,
  HandlerSpec,
  InboxMessage,
  TransactionClientOf,
} from "./inbox/types.js";
export type { BatchFailureReason } from "./message/errors.js";
export {
  OutboxBatchTransactionError,
  OutboxConfigError,
  OutboxError,
  OutboxMessageError,
  OutboxNackError,
  OutboxPayloadError,
  OutboxPublishError,
  OutboxStartError,
} from "./message/errors.js";
export type { HeaderValue, OutboxMessageInput } from "./message/message.js";
export { uuidv7 } from "./message/uuid.js";
export {
  type ChangeOptions,
  type DeadLetterChange,
  type DeadLetterFilter,
  type DeadLetterList,
  type DeadLetterTarget,
  type ListedDeadLetter,
  listDeadLetters,
  purgeDeadLetters,
  retryDeadLetters,
} from "./ops/dead-letters.js";
export { type OutboxStatus, outboxStatus, type StatusOptions } from "./ops/status.js";
export { defaultOutboxQueue, OutboxQueue, type OutboxQueueOptions } from "./queue/outbox-queue.js";
export type { ClaimPath, RelayEvent, RelayEventListener } from "./relay/events.js";
export { createRelay, Relay, type RelayHealth, type RelayStats, startRelay } from "./relay/relay.js";
export { RequestCancelledError, RequestIdempotencyError, RequestInputError } from "./request-reply/errors.js";
export type { RequestContext, RequestMessage, RequestWork } from "./request-reply/handler.js";
export { Requests, requests, type SubmitOptions, type Submitted } from "./request-reply/requests.js";
export type { ProblemDetails, RequestState, RequestStatus } from "./request-reply/status.js";
export type { BacklogSnapshot } from "./telemetry/metrics.js";
export { AmqpTransport, type AmqpTransportOptions, redactUrl } from "./transport/amqp.js";
export type { QueueSpec } from "./transport/amqp-consumer.js";
export { MemoryTransport, type MemoryTransportOptions } from "./transport/memory.js";
export type {
  ExchangeSpec,
  OutboundMessage,
  PublishOutcome,
  Transport,
  TransportEvent,
} from "./transport/transport.js";
