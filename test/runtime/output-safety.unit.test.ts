// What the package prints: URLs without any form of password, driver errors scrubbed, control characters escaped in
// text logs, JSON logs and CLI tables.
import { afterEach, describe, expect, it, vi } from "vitest";
import { parseMetricsHost } from "../../src/cli/flags/common.js";
import { table } from "../../src/cli/table.js";
import { redactConnectionConfig, redactUrl, scrubSecrets } from "../../src/config/redact.js";
import { OutboxConfigError } from "../../src/errors.js";
import { resolveRelayOptions } from "../../src/relay/options.js";
import { escapeControl, escapeJsonControl } from "../../src/runtime/escape.js";
import { createLogger, stderrLogger } from "../../src/runtime/logger.js";

/** Every control character a terminal or a log line reader acts on: C0, DEL, C1, bidirectional, separators. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is the point
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/;
const EVIL =
  "order.x\n2026-01-01T00:00:00.000Z ERROR forged line\r\u001b[2J\u001b]0;title\u0007\u009b31m\u007f\u0000" +
  "\u202edetacer.x\u202c\u2066\u2069\u2028\u061c";

describe("redactUrl: every form of a password", () => {
  it.each([
    ["userinfo", "postgresql://u:pw-SECRET@h:5432/db", "postgresql://u:***@h:5432/db"],
    ["?password=", "postgresql://u@h/db?password=pw-SECRET", "postgresql://u@h/db?password=***"],
    [
      "?password= without a user",
      "postgres://h/db?sslmode=disable&password=pw-SECRET",
      "postgres://h/db?sslmode=disable&password=***",
    ],
    [
      "sslpassword=",
      "postgresql://u:pw-SECRET@h/db?sslpassword=pw-SECRET&sslmode=require",
      "postgresql://u:***@h/db?sslpassword=***&sslmode=require",
    ],
    ["a percent-encoded parameter name", "postgresql://h/db?pass%77ord=pw-SECRET", "postgresql://h/db?pass%77ord=***"],
    ["passfile=", "postgresql://h/db?passfile=/run/pw-SECRET", "postgresql://h/db?passfile=***"],
    ["an unencoded @ then #", "postgresql://postgres:p@ss#pw-SECRET@h/db", "postgresql://postgres:***@h/db"],
    ["an unencoded @ then /", "postgresql://postgres:p@ss/pw-SECRET@h/db", "postgresql://postgres:***@h/db"],
    ["an unencoded @ then ?", "postgresql://postgres:p@ss?pw-SECRET@h/db", "postgresql://postgres:***@h/db"],
    [
      "an unencoded @ then a query password",
      "postgresql://u:a@b@h/db?password=pw-SECRET",
      "postgresql://u:***@h/db?password=***",
    ],
    ["amqp userinfo", "amqp://guest:pw-SECRET@h:5672/v", "amqp://guest:***@h:5672/v"],
    ["amqp with an unencoded @ then #", "amqps://svc:p@ss#pw-SECRET@h/v", "amqps://svc:***@h/v"],
    ["the scheme forgotten", "admin:pw-SECRET@db:5432/x", "***@db:5432/x"],
    ["libpq keyword/value", "host=h password='pw SECRET' user=u", "host=h password=*** user=u"],
  ])("%s", (_, url, shown) => {
    expect(redactUrl(url)).toBe(shown);
    expect(redactUrl(url)).not.toMatch(/SECRET|p@ss/);
  });

  it("keeps what holds no secret: no password, an @ in a query value without a userinfo", () => {
    expect(redactUrl("postgres://u@h/db")).toBe("postgres://u@h/db");
    expect(redactUrl("postgresql://h/db?application_name=a@b&sslmode=require")).toBe(
      "postgresql://h/db?application_name=a@b&sslmode=require",
    );
    expect(redactUrl("amqps://broker.example")).toBe("amqps://broker.example");
  });

  it("a connection config hides sslpassword-like keys too", () => {
    expect(redactConnectionConfig({ host: "h", sslpassword: "pw-SECRET", password: "pw-SECRET" })).toEqual({
      host: "h",
      sslpassword: "***",
      password: "***",
    });
  });

  it("relay options keep none of them, in a string, JSON or inspect", async () => {
    const { inspect } = await import("node:util");
    for (const url of [
      "postgresql://u@h/db?password=pw-SECRET",
      "postgresql://u@h/db?sslpassword=pw-SECRET",
      "postgresql://u:p@ss#pw-SECRET@h/db",
      "postgresql://u:p@ss/pw-SECRET@h/db",
      "postgresql://u:p@ss?pw-SECRET@h/db",
    ]) {
      const { options } = resolveRelayOptions({
        databaseUrl: url,
        listenUrl: url,
        amqpUrl: "amqp://u:p@ss#pw-SECRET@h",
      });
      expect(`${JSON.stringify(options)}${inspect(options, { depth: 5 })}`).not.toMatch(/SECRET|p@ss/);
    }
  });
});

describe("scrubSecrets: a driver's error text", () => {
  const url = "postgresql://postgres:p@ss#pw-SECRET@127.0.0.1/db";

  it("removes the URL and every piece of a misread password (pg names one as the host)", () => {
    const text = `getaddrinfo ENOTFOUND ss; connecting to ${url} with p@ss#pw-SECRET`;
    const out = scrubSecrets(text, url);
    expect(out).not.toMatch(/SECRET|\bss\b|p@ss/);
    expect(out).toContain("postgresql://postgres:***@127.0.0.1/db");
  });

  it("a short password does not garble the message (no ***ostgresql://***ostgres)", () => {
    const out = scrubSecrets("password authentication failed for user postgres", url);
    expect(out).toBe("password authentication failed for user postgres");
  });

  it("?password= and sslpassword= values", () => {
    const u = "postgresql://h/db?password=pw-SECRET&sslpassword=key-SECRET";
    expect(scrubSecrets("bad pw-SECRET or key-SECRET", u)).toBe("bad *** or ***");
  });
});

describe("control characters", () => {
  it("escapeControl writes C0, DEL and C1 as visible escapes", () => {
    const out = escapeControl(EVIL);
    expect(out).not.toMatch(CONTROLS);
    expect(out).toContain("\\n2026-01-01");
    expect(out).toContain("\\u001b[2J");
    expect(out).toContain("\\u009b31m");
    expect(out).toContain("\\u007f\\u0000");
  });

  it("the CLI's text log: one line, no control character, in the message and the fields", () => {
    const lines: string[] = [];
    const logger = createLogger("text", (_level, line) => lines.push(line));
    logger.warn(`no handler takes routing key "${EVIL}"`, { routingKey: EVIL, error: new Error(EVIL) });
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toMatch(CONTROLS);
    expect(lines[0]).toContain("forged line");
  });

  it("the CLI's JSON log: JSON.stringify escapes C0 only; DEL and C1 are escaped too, and the value is the same", () => {
    const lines: string[] = [];
    const logger = createLogger("json", (_level, line) => lines.push(line));
    logger.warn(EVIL, { routingKey: EVIL });
    expect(JSON.stringify(EVIL)).toMatch(CONTROLS); // DEL, C1: why the extra step
    expect(lines[0]).not.toMatch(CONTROLS);
    expect(JSON.parse(lines[0]!)).toMatchObject({ msg: EVIL, routingKey: EVIL });
    expect(JSON.parse(escapeJsonControl(JSON.stringify(EVIL)))).toBe(EVIL);
  });

  it("the default stderr loggers of the relay and the inbox write one escaped line", () => {
    const written: string[] = [];
    const spy = vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    });
    try {
      resolveRelayOptions({ databaseUrl: "postgres://h/db", amqpUrl: "amqp://h" }).options.logger.warn(EVIL, {
        routingKey: EVIL,
      });
      stderrLogger("inbox").warn(EVIL, { routingKey: EVIL });
    } finally {
      spy.mockRestore();
    }
    expect(written).toHaveLength(2);
    for (const chunk of written) {
      expect(chunk.endsWith("\n")).toBe(true);
      expect(chunk.slice(0, -1)).not.toMatch(CONTROLS);
    }
  });

  it("table cells: escaped, still one line per row", () => {
    const out = table(["routing key", "last error"], [[EVIL, "line one\nline two"]]);
    expect(out.split("\n")).toHaveLength(2);
    for (const line of out.split("\n")) expect(line).not.toMatch(CONTROLS);
    expect(out).toContain("line one\\nline two");
  });
});

describe("--metrics-host / OUTBOX_METRICS_HOST", () => {
  afterEach(() => vi.restoreAllMocks());
  it("takes an IP address or a host name; the flag wins over the environment; none: every interface", () => {
    expect(parseMetricsHost(undefined, {})).toBeUndefined();
    expect(parseMetricsHost("127.0.0.1", { OUTBOX_METRICS_HOST: "0.0.0.0" })).toBe("127.0.0.1");
    expect(parseMetricsHost(undefined, { OUTBOX_METRICS_HOST: "::1" })).toBe("::1");
    expect(parseMetricsHost("[::1]", {})).toBe("::1");
    expect(parseMetricsHost("localhost", {})).toBe("localhost");
    expect(() => parseMetricsHost("http://x:1", {})).toThrow(OutboxConfigError);
    expect(() => parseMetricsHost("a b", {})).toThrow(/--metrics-host to be an IP address or a host name/);
    expect(() => parseMetricsHost(undefined, { OUTBOX_METRICS_HOST: "\u001b[2J" })).toThrow(
      /OUTBOX_METRICS_HOST.*\\u001b/,
    );
  });
});
