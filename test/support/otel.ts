// OpenTelemetry SDK set-ups for tests and benchmarks: what an app would register, with in-memory exporters.
import { context, metrics, propagation, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { type DataPoint, MeterProvider, MetricReader, type ResourceMetrics } from "@opentelemetry/sdk-metrics";
import type { ReadableSpan, SpanProcessor } from "@opentelemetry/sdk-trace";
import { TracerProvider } from "@opentelemetry/sdk-trace";

/** A span as the tests compare it (also what child processes write to their file). */
export interface SpanRecord {
  name: string;
  kind: number;
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  links: Array<{ traceId: string; spanId: string }>;
  attributes: Record<string, unknown>;
  status: number;
}

export function spanRecord(span: ReadableSpan): SpanRecord {
  const sc = span.spanContext();
  return {
    name: span.name,
    kind: span.kind,
    traceId: sc.traceId,
    spanId: sc.spanId,
    parentSpanId: span.parentSpanContext?.spanId,
    links: span.links.map((l) => ({ traceId: l.context.traceId, spanId: l.context.spanId })),
    attributes: { ...span.attributes },
    status: span.status.code,
  };
}

/**
 * Keeps finished spans in memory, synchronously (the SDK's SimpleSpanProcessor exports on a later tick, which a
 * process exiting at once never reaches); `discard`: keeps nothing (benchmarks: the SDK's cost without an exporter's).
 */
class MemoryProcessor implements SpanProcessor {
  readonly finished: ReadableSpan[] = [];
  constructor(private readonly discard: boolean) {}
  onStart(): void {}
  onEnd(span: ReadableSpan): void {
    if (!this.discard) this.finished.push(span);
  }
  async forceFlush(): Promise<void> {}
  async shutdown(): Promise<void> {}
}

/**
 * Registers a tracer provider (every span sampled), the AsyncLocalStorage context manager and, unless `propagator`
 * is false, the W3C trace-context propagator: what an app's SDK set-up does.
 */
export function registerTracing(options: { propagator?: boolean; discard?: boolean } = {}) {
  const processor = new MemoryProcessor(options.discard === true);
  const provider = new TracerProvider({ spanProcessors: [processor] });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  if (options.propagator !== false) propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  return {
    provider,
    tracer: trace.getTracer("test"),
    spans: () => processor.finished.map(spanRecord),
  };
}

class PullReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

/** Registers a MeterProvider with a reader that collects when asked. */
export function registerMetrics() {
  const reader = new PullReader();
  const provider = new MeterProvider({ readers: [reader] });
  metrics.setGlobalMeterProvider(provider);
  return {
    provider,
    collect: async (): Promise<ResourceMetrics> => (await reader.collect()).resourceMetrics,
  };
}

/** The sum of a counter's points whose attributes include `attributes` (0 when there is none). */
export function sumOf(all: ResourceMetrics, name: string, attributes: Record<string, string>): number {
  const metric = all.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === name);
  return ((metric?.dataPoints ?? []) as DataPoint<number>[])
    .filter((p) => Object.entries(attributes).every(([k, v]) => p.attributes[k] === v))
    .reduce((n, p) => n + p.value, 0);
}

/** Unregisters everything registered above. */
export function disableTelemetry(): void {
  trace.disable();
  context.disable();
  propagation.disable();
  metrics.disable();
}
