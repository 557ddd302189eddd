// The dashboard's guard and flags without servers: the token comparison, who counts as loopback, what a request
// without a token may reach, what counts as the page's own POST, and the flags' refusals.
import type { IncomingMessage } from "node:http";
import { describe, expect, it } from "vitest";
import { admit, crossSiteRefusal, isLoopbackAddress, requester, tokenMatches } from "../../src/cli/dashboard/guard.js";
import { parseDashboardConfig, parsePortDashboard } from "../../src/cli/flags/dashboard.js";
import { parseInboxWorkerConfig } from "../../src/cli/flags/inbox.js";
import { parseWorkerConfig } from "../../src/cli/flags/worker.js";

const TOKEN = "0123456789abcdef-token";

function req(headers: Record<string, string>, remoteAddress = "127.0.0.1"): IncomingMessage {
  return { headers, socket: { remoteAddress } } as unknown as IncomingMessage;
}

describe("guard", () => {
  it("compares tokens whole, whatever their lengths", () => {
    expect(tokenMatches(TOKEN, TOKEN)).toBe(true);
    expect(tokenMatches(`${TOKEN}x`, TOKEN)).toBe(false);
    expect(tokenMatches(TOKEN.slice(0, -1), TOKEN)).toBe(false);
    expect(tokenMatches("", TOKEN)).toBe(false);
    expect(tokenMatches(undefined, TOKEN)).toBe(false);
  });

  it("knows loopback peers, IPv4-mapped included", () => {
    for (const a of ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"]) expect(isLoopbackAddress(a)).toBe(true);
    for (const a of ["10.0.0.1", "::ffff:10.0.0.1", "0.0.0.0", "fe80::1", undefined]) {
      expect(isLoopbackAddress(a)).toBe(false);
    }
  });

  it("without a token: loopback peers asking for a loopback host name only", () => {
    expect(admit(req({ host: "127.0.0.1:8089" }), undefined, false)).toBeUndefined();
    expect(admit(req({ host: "localhost:8089" }), undefined, false)).toBeUndefined();
    expect(admit(req({ host: "[::1]:8089" }, "::1"), undefined, true)).toBeUndefined();
    expect(admit(req({ host: "127.0.0.1:8089" }, "10.1.2.3"), undefined, true)?.status).toBe(403);
    expect(admit(req({ host: "evil.example:8089" }), undefined, true)?.status).toBe(403);
    expect(admit(req({}), undefined, false)?.status).toBe(403);
  });

  it("with a token: any peer and host; the page without it, the API with it", () => {
    const remote = (headers: Record<string, string>) => req({ host: "dash.example", ...headers }, "10.1.2.3");
    expect(admit(remote({}), TOKEN, true)).toBeUndefined();
    expect(admit(remote({}), TOKEN, false)?.status).toBe(401);
    expect(admit(remote({ authorization: `Bearer ${TOKEN}` }), TOKEN, false)).toBeUndefined();
    expect(admit(remote({ authorization: `Basic ${TOKEN}` }), TOKEN, false)?.status).toBe(401);
  });

  it("a POST is the page's own (its header, or the token) and from the same origin", () => {
    const host = "127.0.0.1:8089";
    expect(crossSiteRefusal(req({ host, "x-prisma-outbox-dashboard": "1" }), undefined)).toBeUndefined();
    expect(crossSiteRefusal(req({ host }), undefined)?.status).toBe(403);
    expect(crossSiteRefusal(req({ host, authorization: `Bearer ${TOKEN}` }), TOKEN)).toBeUndefined();
    const page = { host, "x-prisma-outbox-dashboard": "1" };
    expect(crossSiteRefusal(req({ ...page, origin: `http://${host}` }), undefined)).toBeUndefined();
    expect(crossSiteRefusal(req({ ...page, origin: "http://evil.example" }), undefined)?.status).toBe(403);
    expect(crossSiteRefusal(req({ ...page, origin: "null" }), undefined)?.status).toBe(403);
  });

  it("says who asked without the token", () => {
    const who = requester(req({ authorization: `Bearer ${TOKEN}`, "x-forwarded-for": "10.9.9.9" }), TOKEN);
    expect(who).toEqual({ peer: "127.0.0.1", forwardedFor: "10.9.9.9", authenticated: true });
    expect(JSON.stringify(who)).not.toContain(TOKEN);
  });
});

describe("flags", () => {
  const env = { DATABASE_URL: "postgres://u:secret@db/app" };

  it("prisma-outbox dashboard: 127.0.0.1:8089, read-only, no token by default", () => {
    expect(parseDashboardConfig([], env)).toMatchObject({
      host: "127.0.0.1",
      port: 8089,
      allowActions: false,
      token: undefined,
      sampleIntervalMs: 5000,
      schema: "public",
    });
  });

  it("another host than loopback needs a token; the token comes from the variable too", () => {
    expect(() => parseDashboardConfig(["--host", "0.0.0.0"], env)).toThrow(/without a token/);
    expect(parseDashboardConfig(["--host", "::1"], env).host).toBe("::1");
    const withToken = parseDashboardConfig(["--host", "0.0.0.0", "--allow-actions"], {
      ...env,
      PRISMA_OUTBOX_DASHBOARD_TOKEN: TOKEN,
    });
    expect(withToken).toMatchObject({ host: "0.0.0.0", token: TOKEN, allowActions: true });
    expect(() => parseDashboardConfig(["--host", "a b"], env)).toThrow(/Expected --host/);
    expect(() => parseDashboardConfig(["--port", "70000"], env)).toThrow(/--port/);
    expect(() => parseDashboardConfig([], {})).toThrow(/DATABASE_URL/);
  });

  it("worker and inbox: --dashboard needs --metrics-port; its other flags need --dashboard", () => {
    const worker = { ...env, AMQP_URL: "amqp://localhost" };
    expect(parseWorkerConfig([], worker).dashboard).toBeUndefined();
    expect(() => parseWorkerConfig(["--dashboard"], worker)).toThrow(/--metrics-port/);
    expect(() => parseWorkerConfig(["--metrics-port", "0", "--dashboard-allow-actions"], worker)).toThrow(
      /need --dashboard/,
    );
    expect(
      parseWorkerConfig(["--metrics-port", "0", "--dashboard", "--dashboard-allow-actions"], worker).dashboard,
    ).toEqual({ allowActions: true, token: undefined });
    const inbox = parseInboxWorkerConfig(["--handlers", "./h.js", "--metrics-port", "9464", "--dashboard"], {
      ...worker,
      PRISMA_OUTBOX_DASHBOARD_TOKEN: TOKEN,
      OUTBOX_SCHEMA: "ops",
    });
    expect(inbox).toMatchObject({ dashboard: { allowActions: false, token: TOKEN }, dashboardSchema: "ops" });
    expect(parsePortDashboard({}, { PRISMA_OUTBOX_DASHBOARD_TOKEN: TOKEN }, 9464)).toBeUndefined();
  });
});
