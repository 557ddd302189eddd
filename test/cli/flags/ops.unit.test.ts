// The operator commands' options and the filter SQL they become: parsed values, refusals, and bind parameters only.
import { describe, expect, it } from "vitest";
import { parseTime } from "../../../src/cli/flags/common.js";
import { parseDeadLettersConfig } from "../../../src/cli/flags/dead-letters.js";
import { parseStatusConfig } from "../../../src/cli/flags/status.js";
import { redactUrl } from "../../../src/config/redact.js";
import { deadLetterFilterSql, routingKeyLike } from "../../../src/sql/ops/dead-letter-filter.js";

const env = { DATABASE_URL: "postgresql://db/x" };

describe("operator command options", () => {
  it("status: flags win over the environment", () => {
    expect(parseStatusConfig(["--schema", "s", "--top", "3", "--json"], { ...env, OUTBOX_SCHEMA: "t" })).toEqual({
      help: false,
      databaseUrl: env.DATABASE_URL,
      schema: "s",
      top: 3,
      json: true,
    });
    expect(parseStatusConfig([], { ...env, OUTBOX_SCHEMA: "t" }).schema).toBe("t");
  });

  it("dead-letters: filters parsed into one filter object", () => {
    const c = parseDeadLettersConfig(
      [
        "retry",
        "--inbox",
        "--exchange",
        "a,b",
        "--routing-key",
        "",
        "--id",
        "12,0192A0D0-0000-7000-8000-000000000001",
        "--id",
        "x",
        "--handler",
        "h",
        "--since",
        "2026-11-24 03:00",
      ],
      env,
    );
    expect(c).toMatchObject({ action: "retry", source: "inbox", all: false, dryRun: false });
    expect(c.filter).toEqual({
      exchanges: ["a", "b"],
      routingKey: "",
      ids: ["12", "0192a0d0-0000-7000-8000-000000000001", "x"],
      handlers: ["h"],
      since: "2026-11-24T03:00:00.000Z",
    });
  });

  it("times: ISO 8601, UTC unless an offset is given", () => {
    expect(parseTime("--since", "2026-11-24")).toBe("2026-11-24T00:00:00.000Z");
    expect(parseTime("--since", "2026-11-24T05:00:00+02:00")).toBe("2026-11-24T03:00:00.000Z");
    expect(parseTime("--since", "2026-11-24T03:00:00.5")).toBe("2026-11-24T03:00:00.500Z");
    for (const bad of ["now", "1700000000", "2026-11-24T25:00", "24/11/2026", "2026-02-30", "2026-04-31T00:00Z"]) {
      expect(() => parseTime("--since", bad), bad).toThrow(/Expected --since to be an ISO 8601 time/);
    }
  });

  it("filters become bind parameters; the statement text holds no value", () => {
    const evil = "x'); DROP TABLE outbox_message; --";
    const f = deadLetterFilterSql(
      { exchanges: [evil], routingKey: evil, error: evil, since: evil, until: evil, ids: [evil], handlers: [evil] },
      "failed_at",
      3,
    );
    expect(f.where).not.toContain("DROP");
    expect(f.where).toContain("$3");
    expect(f.where).toContain("$9");
    expect(f.params).toHaveLength(7);
    expect(deadLetterFilterSql({}, "received_at")).toEqual({ where: "TRUE", params: [] });
    expect(routingKeyLike("a.*_%\\")).toBe("a.%\\_\\%\\\\");
  });

  it("a URL with its scheme forgotten never shows its password", () => {
    expect(redactUrl("admin:s3cret@db:5432/x")).toBe("***@db:5432/x");
    expect(redactUrl("postgres://u:p@h/db")).toBe("postgres://u:***@h/db");
    expect(redactUrl("postgres://u@h/db")).toBe("postgres://u@h/db");
  });
});
