// The public surface, one group per part. The write side (outbox(), its options, the hand-off queue, the errors)
// loads neither amqplib nor pg: the relay loads them only when it starts, the inbox when it starts.

// Write side: the Prisma extension, its options, and the in-process hand-off of committed ids to a relay.

export type {
  EventContext,
  EventOperation,
  EventSpec,
  EventsConfig,
  KeyedEventSpec,
  OutboxOptions,
  OutboxTransactionOptions,
} from "./extension/options.js";
export { outbox } from "./extension/outbox.js";
export { defaultOutboxQueue, OutboxQueue, type OutboxQueueOptions } from "./handoff/outbox-queue.js";
export type { CloudEventAttributes } from "./message/cloud-events.js";
export type { HeaderValue, OutboxMessageInput } from "./message/message.js";
export { uuidv7 } from "./message/uuid.js";

// Relay: publishes the outbox's rows, its options, events, health and stats.

export type { CloudEventsOptions } from "./relay/cloud-events.js";
export type { ClaimPath, RelayEvent, RelayEventListener } from "./relay/events.js";
export type { RefusedMessage } from "./relay/give-up.js";
export type { RelayLogger, RelayOptions } from "./relay/options.js";
export { createRelay, Relay, type RelayHealth, type RelayStats, startRelay } from "./relay/relay.js";
export type { KeyAfterDeadLetter } from "./sql/outbox/claim.js";
export type { BacklogSnapshot } from "./telemetry/metrics.js";

// Typed contracts: a message defined once (routing key, Standard Schema of its payload) for both sides.

export {
  type ContractInput,
  type ContractMessageOptions,
  type ContractOutput,
  defineMessage,
  type MessageContract,
} from "./message/contract.js";
export type { StandardSchemaV1 } from "./message/standard-schema.js";

// Inbox: consumes, deduplicates and handles messages, its options, handlers, events and health.

export type { InboxEvent, InboxEventListener } from "./inbox/events.js";
export { Inbox, type InboxConnection, type InboxHealth, inbox } from "./inbox/inbox.js";
export type { InboxOptions, InvalidMessagePolicy } from "./inbox/options.js";
export type {
  BatchOptions,
  ContractHandlerSpec,
  DeadFunction,
  HandleBatchFunction,
  HandleFunction,
  HandlerContext,
  HandlerSpec,
  InboxMessage,
  TransactionClientOf,
} from "./inbox/types.js";

// Request-reply: asynchronous requests over the outbox and the inbox, with a status resource.

export type { RequestContext, RequestMessage, RequestWork } from "./request-reply/handler.js";
export type { RequestsOptions } from "./request-reply/options.js";
export { Requests, requests, type SubmitOptions, type Submitted } from "./request-reply/requests.js";
export type { ProblemDetails, RequestState, RequestStatus } from "./request-reply/status.js";

// Operations: what the `status`, `dead-letters` and `doctor` commands do, as library calls.

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
export {
  type DoctorOptions,
  type DoctorPart,
  type DoctorReport,
  doctor,
  type Finding,
  type FindingLevel,
} from "./ops/doctor.js";
export type { DoctorThresholds } from "./ops/doctor-options.js";
export { type OutboxStatus, outboxStatus, type StatusOptions } from "./ops/status.js";

// Transports: RabbitMQ (amqplib, loaded on first connect), in memory, and the contract a transport implements.

// Runtime: the logger every part takes, and the clock the relay and the inbox read "now" from (the test kit's
// TestClock is one).
export type { Clock } from "./runtime/clock.js";
export type { Logger } from "./runtime/logger.js";
export {
  type AmqpReconnectOptions,
  AmqpTransport,
  type AmqpTransportOptions,
  type AmqpTransportState,
  redactUrl,
} from "./transport/amqp.js";
export { MemoryTransport, type MemoryTransportOptions } from "./transport/memory.js";
export type {
  Consumer,
  ConsumerEvent,
  ConsumerOptions,
  Delivery,
  ExchangeSpec,
  InboxTransport,
  OutboundMessage,
  PublishOptions,
  PublishOutcome,
  QueueSpec,
  Transport,
  TransportEvent,
} from "./transport/transport.js";

// Errors: every error a user may catch. OutboxConfigError: a person must change something (options, URL, schema);
// OutboxStartError: start() failed on something waiting may fix (a database or broker down or refusing).

export type { BatchFailureReason, DeadLetterReason } from "./errors.js";
export {
  InboxHandlerTimeoutError,
  InboxPartitionsError,
  InboxUnhandledError,
  isNonRetryable,
  MessageExpiredError,
  NonRetryableError,
  OutboxBatchTransactionError,
  OutboxConfigError,
  OutboxError,
  OutboxExpectationError,
  OutboxMessageError,
  OutboxNackError,
  OutboxPayloadError,
  OutboxPublishError,
  OutboxSchemaError,
  OutboxStartError,
  RequestCancelledError,
  RequestIdempotencyError,
  RequestInputError,
} from "./errors.js";
