// Prometheus text exposition (format 0.0.4) of what an OpenTelemetry MetricReader collected: what /metrics serves.
// A few dozen lines instead of @opentelemetry/exporter-prometheus, which would bring its own HTTP server and a second
// copy of the SDK packages pinned to other versions. Names follow the OpenTelemetry-to-Prometheus mapping: dots and
// other characters become `_`, unit `s` adds `_seconds`, monotonic sums add `_total`; `{...}` units are annotations
// and add nothing.
import type { DataPoint, Histogram, MetricData, ResourceMetrics } from "@opentelemetry/sdk-metrics";

// The SDK's DataPointType values, as numbers: importing the enum would load the SDK into this module's importers.
const HISTOGRAM = 0;
const GAUGE = 2;
const SUM = 3;

function sanitize(name: string): string {
  const s = name.replace(/[^a-zA-Z0-9_:]/g, "_");
  return /^[0-9]/.test(s) ? `_${s}` : s;
}

function metricName(metric: MetricData): string {
  let name = sanitize(metric.descriptor.name);
  if (metric.descriptor.unit === "s" && !name.endsWith("_seconds")) name += "_seconds";
  if (metric.dataPointType === SUM && metric.isMonotonic && !name.endsWith("_total")) name += "_total";
  return name;
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function labels(attributes: DataPoint<unknown>["attributes"], extra?: [string, string]): string {
  const parts = Object.entries(attributes)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${sanitize(k)}="${escapeLabel(Array.isArray(v) ? v.join(",") : String(v))}"`);
  if (extra) parts.push(`${extra[0]}="${escapeLabel(extra[1])}"`);
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

function number(n: number): string {
  if (Number.isNaN(n)) return "NaN";
  if (n === Number.POSITIVE_INFINITY) return "+Inf";
  if (n === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(n);
}

/** The collected metrics as Prometheus text. */
export function toPrometheus(resourceMetrics: ResourceMetrics): string {
  const lines: string[] = [];
  for (const scope of resourceMetrics.scopeMetrics) {
    for (const metric of scope.metrics) {
      const name = metricName(metric);
      const help = metric.descriptor.description.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
      if (metric.dataPointType === HISTOGRAM) {
        lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
        for (const point of metric.dataPoints as DataPoint<Histogram>[]) {
          const { boundaries, counts } = point.value.buckets;
          let cumulative = 0;
          boundaries.forEach((bound, i) => {
            cumulative += counts[i] ?? 0;
            lines.push(`${name}_bucket${labels(point.attributes, ["le", number(bound)])} ${cumulative}`);
          });
          lines.push(`${name}_bucket${labels(point.attributes, ["le", "+Inf"])} ${point.value.count}`);
          lines.push(`${name}_sum${labels(point.attributes)} ${number(point.value.sum ?? 0)}`);
          lines.push(`${name}_count${labels(point.attributes)} ${point.value.count}`);
        }
      } else if (metric.dataPointType === SUM || metric.dataPointType === GAUGE) {
        const type = metric.dataPointType === SUM && metric.isMonotonic ? "counter" : "gauge";
        lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
        for (const point of metric.dataPoints as DataPoint<number>[]) {
          lines.push(`${name}${labels(point.attributes)} ${number(point.value)}`);
        }
      }
      // Exponential histograms: not produced by this package's instruments (no view asks for them).
    }
  }
  return `${lines.join("\n")}\n`;
}
