// Trace context through the outbox, with @opentelemetry/api only: the app picks (and registers) the SDK.
//
//   write ($enqueue, declared event)  the active context goes into the message's stored headers (traceparent,
//                                     tracestate), so that it survives the commit, the relay's process and a crash
//   relay publish                     one PRODUCER span per published part, linked to each message's stored context;
//                                     the headers travel on as AMQP headers unchanged
//   inbox handling                    one CONSUMER span per handling, whose parent is the stored context: the trace
//                                     of the HTTP request that wrote the message continues in the handler (and in
//                                     what the handler enqueues, since it runs inside that span)
//
// No cost without an SDK: the write side checks for a valid active span before any work (no SDK means no context
// manager, so there never is one); the relay and inbox side check that a tracer provider is registered before making
// any span (bench:telemetry measures both), and links are built only for a span that records.
//
// Propagation goes through the globally registered propagator (W3C trace context in every SDK's default set up), so
// that baggage or another format the app chose travels too. A registered tracer without a propagator still gets W3C
// traceparent/tracestate: the headers are written (and read) here then.
import {
  type Attributes,
  type Context,
  context,
  isSpanContextValid,
  type Link,
  ProxyTracerProvider,
  propagation,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";

/** The instrumentation scope of every span of the package. */
const TRACER_NAME = "prisma-outbox";

const TRACEPARENT = "traceparent";
const TRACESTATE = "tracestate";
/** The SDK's default limit of links per span: more would be dropped anyway. */
const MAX_LINKS = 128;

const tracer = () => trace.getTracer(TRACER_NAME);

/** The API's no-op provider, which the global proxy delegates to until an SDK registers one. */
const NoopTracerProvider = new ProxyTracerProvider().getDelegate().constructor;

/** Whether an SDK registered a tracer provider: without one every span would be a no-op, so none is made. */
function tracing(): boolean {
  const provider = trace.getTracerProvider();
  return !(provider instanceof ProxyTracerProvider && provider.getDelegate() instanceof NoopTracerProvider);
}

/**
 * The headers that carry the active trace context, or undefined when there is none (no SDK registered, or no span
 * active). Called once per write, for all of its messages.
 */
export function traceHeaders(): Record<string, string> | undefined {
  const active = context.active();
  const span = trace.getSpan(active);
  if (span === undefined) return undefined;
  const spanContext = span.spanContext();
  if (!isSpanContextValid(spanContext)) return undefined;
  const carrier: Record<string, string> = {};
  propagation.inject(active, carrier);
  if (carrier[TRACEPARENT] === undefined) {
    carrier[TRACEPARENT] = formatTraceparent(spanContext);
    const state = spanContext.traceState?.serialize();
    if (state) carrier[TRACESTATE] = state;
  }
  return carrier;
}

function formatTraceparent(sc: SpanContext): string {
  return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, "0")}`;
}

const TRACEPARENT_FORM = /^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The trace context stored with a message, or undefined when it has none (or only an invalid one). */
function extractContext(headers: Readonly<Record<string, unknown>> | null | undefined): Context | undefined {
  if (!headers || typeof headers[TRACEPARENT] !== "string") return undefined;
  const extracted = propagation.extract(ROOT_CONTEXT, headers, {
    get: (carrier, key) => {
      const value = (carrier as Record<string, unknown>)[key];
      return typeof value === "string" ? value : undefined;
    },
    keys: (carrier) => Object.keys(carrier as object),
  });
  if (isSpanContextValid(trace.getSpanContext(extracted) ?? { traceId: "", spanId: "", traceFlags: 0 })) {
    return extracted;
  }
  // No propagator registered: read W3C traceparent ourselves (the form written by traceHeaders()).
  const match = TRACEPARENT_FORM.exec((headers[TRACEPARENT] as string).trim().toLowerCase());
  if (!match) return undefined;
  const spanContext: SpanContext = {
    traceId: match[1]!,
    spanId: match[2]!,
    traceFlags: Number.parseInt(match[3]!, 16),
    isRemote: true,
  };
  return isSpanContextValid(spanContext) ? trace.setSpanContext(ROOT_CONTEXT, spanContext) : undefined;
}

/** What the publish span needs of each message. */
interface TracedMessage {
  messageId: string;
  exchange: string;
  routingKey: string;
  headers: Readonly<Record<string, unknown>> | null | undefined;
}

const BASE_ATTRIBUTES = { "messaging.system": "rabbitmq" } as const;

/**
 * Starts the PRODUCER span of one publish of `messages`, linked to the context each was written in. Named
 * "publish <exchange>" (or "publish" when the part goes to several exchanges), per the messaging conventions.
 * Undefined when no tracer provider is registered.
 */
export function startPublishSpan(messages: readonly TracedMessage[]): Span | undefined {
  if (!tracing()) return undefined;
  const first = messages[0];
  const oneExchange = first !== undefined && messages.every((m) => m.exchange === first.exchange);
  const attributes: Attributes = {
    ...BASE_ATTRIBUTES,
    "messaging.operation.type": "send",
    "messaging.operation.name": "publish",
  };
  if (oneExchange) attributes["messaging.destination.name"] = first.exchange;
  if (messages.length === 1 && first) {
    attributes["messaging.message.id"] = first.messageId;
    attributes["messaging.rabbitmq.destination.routing_key"] = first.routingKey;
  } else attributes["messaging.batch.message_count"] = messages.length;
  const span = tracer().startSpan(
    oneExchange ? `publish ${first.exchange}` : "publish",
    { kind: SpanKind.PRODUCER, attributes },
    ROOT_CONTEXT,
  );
  linkStoredContexts(span, messages);
  return span;
}

/** Links a recording span to the context each message was written in (up to MAX_LINKS). */
function linkStoredContexts(
  span: Span,
  messages: readonly { messageId: string; headers: Readonly<Record<string, unknown>> | null | undefined }[],
): void {
  if (!span.isRecording()) return;
  const links: Link[] = [];
  for (const m of messages) {
    if (links.length >= MAX_LINKS) break;
    const stored = extractContext(m.headers);
    const sc = stored && trace.getSpanContext(stored);
    if (sc) links.push({ context: sc, attributes: { "messaging.message.id": m.messageId } });
  }
  if (links.length > 0) span.addLinks(links);
}

/** Ends a span, as failed when `error` is given. */
export function endSpan(span: Span | undefined, error?: unknown): void {
  if (span === undefined) return;
  if (error !== undefined) {
    const e = error instanceof Error ? error : new Error(String(error));
    span.recordException(e);
    span.setStatus({ code: SpanStatusCode.ERROR, message: e.message });
    span.setAttribute("error.type", e.name);
  }
  span.end();
}

/** What the consumer span needs of an inbox message. */
interface ConsumedMessage {
  messageId: string;
  exchange: string;
  routingKey: string;
  handler: string;
  attempt: number;
  headers: Readonly<Record<string, unknown>> | null | undefined;
}

/**
 * Runs `work` (a handler's transaction) inside a CONSUMER span whose parent is the context the message was written
 * in (a new trace when it carries none). The span ends when `work` settles, as failed when it throws.
 */
export async function withConsumerSpan<T>(message: ConsumedMessage, work: () => Promise<T>): Promise<T> {
  if (!tracing()) return work();
  const parent = extractContext(message.headers) ?? ROOT_CONTEXT;
  const span = tracer().startSpan(
    `process ${message.exchange}`,
    {
      kind: SpanKind.CONSUMER,
      attributes: {
        ...BASE_ATTRIBUTES,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": message.exchange,
        "messaging.rabbitmq.destination.routing_key": message.routingKey,
        "messaging.message.id": message.messageId,
        "messaging.consumer.group.name": message.handler,
        "prisma_outbox.inbox.attempt": message.attempt,
      },
    },
    parent,
  );
  return runInSpan(span, parent, work);
}

async function runInSpan<T>(span: Span, parent: Context, work: () => Promise<T>): Promise<T> {
  try {
    const result = await context.with(trace.setSpan(parent, span), work);
    endSpan(span);
    return result;
  } catch (error) {
    endSpan(span, error);
    throw error;
  }
}

/**
 * Runs `work` (a batch handler's transaction) inside ONE CONSUMER span for the whole batch, linked to the context
 * each message was written in (the messages come from many traces, so none of them is the parent: the messaging
 * conventions' batch receive). What the handler enqueues continues this span's trace.
 */
export async function withConsumerBatchSpan<T>(
  handler: string,
  messages: readonly ConsumedMessage[],
  work: () => Promise<T>,
): Promise<T> {
  if (!tracing()) return work();
  const exchange = messages[0]?.exchange;
  const oneExchange = exchange !== undefined && messages.every((m) => m.exchange === exchange);
  const attributes: Attributes = {
    ...BASE_ATTRIBUTES,
    "messaging.operation.type": "process",
    "messaging.operation.name": "process",
    "messaging.consumer.group.name": handler,
    "messaging.batch.message_count": messages.length,
  };
  if (oneExchange) attributes["messaging.destination.name"] = exchange;
  const name = oneExchange ? `process ${exchange}` : "process";
  const span = tracer().startSpan(name, { kind: SpanKind.CONSUMER, attributes }, ROOT_CONTEXT);
  linkStoredContexts(span, messages);
  return runInSpan(span, ROOT_CONTEXT, work);
}
