// BENCH_OTEL=1: the benchmarks run with an OpenTelemetry SDK registered, as an app that traces and measures would
// (tracer provider sampling every span, AsyncLocalStorage context manager, W3C propagator, MeterProvider with a pull
// reader), and every write inside an active span (an HTTP request's, say), so that each message carries its trace
// context. Spans are dropped once ended: the cost measured is the SDK's and ours, not an exporter's.
// Without it, nothing is registered: the package's no-SDK path. BENCH_OTEL=context registers only the
// AsyncLocalStorage context manager (no tracer, no meter): what an SDK costs the process before any span or metric.
import { context, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { registerMetrics, registerTracing } from "../test/support/otel.js";

export const OTEL = process.env.BENCH_OTEL === "1";

if (OTEL) {
  registerTracing({ discard: true });
  registerMetrics();
} else if (process.env.BENCH_OTEL === "context") {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
}

/** Whether stored messages carry a traceparent: with BENCH_OTEL=1, or BENCH_HEADERS=1 alone (their cost alone). */
export const TRACE_HEADERS = OTEL || process.env.BENCH_HEADERS === "1";

const tracer = trace.getTracer("bench");

/** Runs `work` inside a new active span when BENCH_OTEL=1, else just runs it. */
export function inSpan<T>(work: () => Promise<T>): Promise<T> {
  if (!OTEL) return work();
  return tracer.startActiveSpan("request", async (span) => {
    try {
      return await work();
    } finally {
      span.end();
    }
  });
}

/** The line that says which mode ran. */
export const OTEL_LINE = OTEL
  ? "telemetry: ON (BENCH_OTEL=1: SDK registered, every write in an active span)"
  : process.env.BENCH_OTEL === "context"
    ? `telemetry: context manager only (BENCH_OTEL=context)${TRACE_HEADERS ? ", rows with a traceparent" : ""}`
    : `telemetry: off (no SDK registered; BENCH_OTEL=1 registers one)${TRACE_HEADERS ? ", rows with a traceparent (BENCH_HEADERS=1)" : ""}`;
