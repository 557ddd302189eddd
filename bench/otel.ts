// BENCH_OTEL=1: the benchmarks run with an OpenTelemetry SDK registered, as an app that traces and measures would
// (tracer provider sampling every span, AsyncLocalStorage context manager, W3C propagator, MeterProvider with a pull
// reader), and every write inside an active span (an HTTP request's, say), so that each message carries its trace
// context. Spans are dropped once ended: the cost measured is the SDK's and ours, not an exporter's.
// Without it, nothing is registered: the package's no-SDK path.
import { trace } from "@opentelemetry/api";
import { registerMetrics, registerTracing } from "../test/support/otel.js";

export const OTEL = process.env.BENCH_OTEL === "1";

if (OTEL) {
  registerTracing({ discard: true });
  registerMetrics();
}

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
  : "telemetry: off (no SDK registered; BENCH_OTEL=1 registers one)";
