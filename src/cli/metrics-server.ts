// The worker CLI's optional HTTP port (--metrics-port), for Prometheus and Kubernetes probes:
//   GET /metrics  Prometheus text of the package's metrics (telemetry/metrics.ts)
//   GET /healthz  200 while the process is up (liveness)
//   GET /readyz   200 when health() says ok, else 503 (readiness); the body is health()'s JSON either way
//   /ui           the dashboard, when the command was given --dashboard (src/cli/dashboard/: its own guard)
//
// For /metrics the CLI registers a MeterProvider of its own, with a reader that collects on each scrape, before the
// relay or inbox starts (they take their meter at start). The SDK (@opentelemetry/sdk-metrics) is loaded here only,
// when the port is asked for: the library itself uses @opentelemetry/api alone. When a provider is registered
// already (an SDK set up with `node --import`), the metrics go through it, and /metrics says so with a 404.
import { once } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { metrics } from "@opentelemetry/api";
import type { Logger } from "../runtime/logger.js";
import { meterProviderRegistered } from "../telemetry/metrics.js";
import { toPrometheus } from "./prometheus.js";

export interface MetricsServer {
  /** The port listened on (the one given, or the one the system chose for 0). */
  port: number;
  close(): Promise<void>;
}

export interface MetricsServerOptions {
  port: number;
  /** The address to listen on; undefined: every interface (what Node's listen() does without one). */
  host?: string | undefined;
  /** health() of the relay or the inbox. */
  health: () => Promise<{ ok: boolean }>;
  logger: Logger;
  /** The dashboard's handler: answers /ui and under it (true), or leaves the request alone (false). */
  ui?: ((req: IncomingMessage, res: ServerResponse) => Promise<boolean>) | undefined;
}

type Collect = () => Promise<string>;

/** Registers a MeterProvider whose reader collects on demand; undefined when one is registered already. */
async function registerProvider(): Promise<{ collect: Collect; shutdown: () => Promise<void> } | undefined> {
  if (meterProviderRegistered()) return undefined;
  const { MeterProvider, MetricReader } = await import("@opentelemetry/sdk-metrics");
  class PullReader extends MetricReader {
    protected override async onForceFlush(): Promise<void> {}
    protected override async onShutdown(): Promise<void> {}
  }
  const reader = new PullReader();
  const provider = new MeterProvider({ readers: [reader] });
  if (!metrics.setGlobalMeterProvider(provider)) return undefined;
  return {
    collect: async () => toPrometheus((await reader.collect()).resourceMetrics),
    shutdown: () => provider.shutdown(),
  };
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { "content-type": type, "cache-control": "no-store" });
  res.end(body);
}

export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const { health, logger } = options;
  const provider = await registerProvider();
  if (!provider) {
    logger.warn("a MeterProvider is registered already: metrics go through it, and /metrics answers 404");
  }
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "/").split("?")[0];
    if (options.ui && (await options.ui(req, res))) return;
    if (req.method !== "GET" && req.method !== "HEAD") return send(res, 405, "text/plain", "GET only\n");
    switch (path) {
      case "/healthz":
        return send(res, 200, "text/plain", "ok\n");
      case "/readyz": {
        const report = await health().catch((error: unknown) => ({ ok: false, error: String(error) }));
        return send(res, report.ok ? 200 : 503, "application/json", `${JSON.stringify(report)}\n`);
      }
      case "/metrics":
        if (!provider)
          return send(res, 404, "text/plain", "metrics go through the MeterProvider registered in the process\n");
        return send(res, 200, "text/plain; version=0.0.4; charset=utf-8", await provider.collect());
      default:
        return send(res, 404, "text/plain", "not found: /metrics, /healthz, /readyz\n");
    }
  };
  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      logger.warn("metrics endpoint failed", { path: req.url, error: String(error) });
      if (!res.headersSent) send(res, 500, "text/plain", "internal error\n");
      else res.end();
    });
  });
  server.listen(options.port, options.host);
  await Promise.race([
    once(server, "listening"),
    once(server, "error").then(([error]) => {
      throw error;
    }),
  ]);
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : options.port;
  logger.info("metrics and health endpoints listening", {
    host: options.host ?? "every interface",
    port,
    paths: options.ui ? "/metrics /healthz /readyz /ui" : "/metrics /healthz /readyz",
  });
  return {
    port,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await provider?.shutdown();
    },
  };
}
