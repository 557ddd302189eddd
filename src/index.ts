// The public surface. The write side (outbox, errors, queue) loads neither amqplib nor pg: the relay loads them
// only when it starts.

export type { BatchFailureReason } from "./errors.js";
export {
  InboxHandlerTimeoutError,
  OutboxBatchTransactionError,
  OutboxConfigError,
  OutboxError,
  OutboxMessageError,
  OutboxNackError,
  OutboxPayloadError,
  OutboxPublishError,
  OutboxStartError,
  RequestCancelledError,
  RequestIdempotencyError,
  RequestInputError,
} from "./errors.js";
export type { EventContext, EventOperation, EventSpec, EventsConfig, OutboxOptions } from "./extension/options.js";
export { outbox } from "./extension/outbox.js";
export { defaultOutboxQueue, OutboxQueue, type OutboxQueueOptions } from "./handoff/outbox-queue.js";
export type { InboxEvent, InboxEventListener } from "./inbox/events.js";
export { Inbox, type InboxConnection, type InboxHealth, inbox } from "./inbox/inbox.js";
export type { InboxOptions, InvalidMessagePolicy } from "./inbox/options.js";
export type {
  DeadFunction,
  HandleFunction,
  HandlerContext,
  HandlerSpec,
  InboxMessage,
  TransactionClientOf,
} from "./inbox/types.js";
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
export type { ClaimPath, RelayEvent, RelayEventListener } from "./relay/events.js";
export type { RelayLogger, RelayOptions } from "./relay/options.js";
export { createRelay, Relay, type RelayHealth, type RelayStats, startRelay } from "./relay/relay.js";
export type { RequestContext, RequestMessage, RequestWork } from "./request-reply/handler.js";
export type { RequestsOptions } from "./request-reply/options.js";
export { Requests, requests, type SubmitOptions, type Submitted } from "./request-reply/requests.js";
export type { ProblemDetails, RequestState, RequestStatus } from "./request-reply/status.js";
export type { Logger } from "./runtime/logger.js";
export type { BacklogSnapshot } from "./telemetry/metrics.js";
export type { QueueSpec } from "./transport/amqp/consumer.js";
export { AmqpTransport, type AmqpTransportOptions, redactUrl } from "./transport/amqp.js";
export { MemoryTransport, type MemoryTransportOptions } from "./transport/memory.js";
export type {
  ExchangeSpec,
  OutboundMessage,
  PublishOutcome,
  Transport,
  TransportEvent,
} from "./transport/transport.js";
