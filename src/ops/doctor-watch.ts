// The doctor's cheap checks, run periodically inside a relay or an inbox, and surfaced where operators already look:
// one log line per change of a check's state (not one per tick), the health report (its `warnings`, and `doctor`
// with the findings: /readyz shows them), and the `prisma_outbox.doctor.warnings{check}` gauge.
//
// States: idle -> waiting -> checking -> waiting ... -> stopped. start() arms the timer: the first check runs one
// interval after start (a start is not the moment to add load, and the CLI's `doctor` is there for an answer now),
// then one interval after the previous check ended, so checks never overlap. stop() disarms it and waits (briefly)
// for a check under way. A check that fails (the database gone) changes no state: the relay's and the inbox's own
// health says the database is down; the findings stay those of the last check that ran.
import type pg from "pg";
import type { Logger } from "../runtime/logger.js";
import { doctorGauge } from "../telemetry/metrics.js";
import { doctor } from "./doctor.js";
import { type Finding, type FindingLevel, levelRank } from "./doctor-finding.js";
import type { DoctorOptions } from "./doctor-options.js";

/** How long stop() waits for a check under way (its queries end on their own; nothing waits for them). */
const STOP_WAIT_MS = 2_000;

export interface DoctorWatchOptions {
  pool: pg.Pool;
  /** The doctor's options (schema, parts, thresholds); `checks` is always "cheap". */
  doctor: DoctorOptions;
  intervalMs: number;
  logger: Logger;
  component: "relay" | "inbox";
  /** Findings the component knows without a query (the inbox's receiver stall), added at each check. */
  local?: () => Finding[];
}

export class DoctorWatch {
  readonly #o: DoctorWatchOptions;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;
  #findings: Finding[] = [];
  /** The last findings of doctor() itself (kept when a check fails). */
  #fromDatabase: Finding[] = [];
  /** The level of each check as last logged: a change is logged once. */
  readonly #levels = new Map<string, FindingLevel>();
  #removeGauge: (() => void) | undefined;

  constructor(options: DoctorWatchOptions) {
    this.#o = options;
  }

  start(): void {
    if (this.#o.intervalMs <= 0 || this.#stopped) return;
    this.#removeGauge = doctorGauge(
      this.#o.component,
      () => new Map([...this.#levels].map(([check, level]) => [check, levelRank(level)])),
    );
    this.#arm();
  }

  #arm(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#running = this.checkNow().finally(() => {
        this.#running = undefined;
        this.#arm();
      });
    }, this.#o.intervalMs);
    this.#timer.unref();
  }

  /** Runs the checks now (the timer's job; tests and an app may call it too). Never rejects. */
  async checkNow(): Promise<void> {
    try {
      this.#fromDatabase = (await doctor(this.#o.pool, { ...this.#o.doctor, checks: "cheap" })).findings;
    } catch {
      // The database did not answer: the last findings stand (see the top of this module).
    }
    if (this.#stopped) return;
    this.#findings = [...this.#fromDatabase, ...(this.#o.local?.() ?? [])];
    this.#observe(this.#findings);
  }

  /** Logs each check whose level changed since it was last logged. */
  #observe(findings: Finding[]): void {
    const log = this.#o.logger;
    for (const f of findings) {
      const was = this.#levels.get(f.check) ?? "ok";
      this.#levels.set(f.check, f.level);
      if (f.level === was) continue;
      if (f.level === "ok") {
        log.info("doctor: a check is fine again", { check: f.check, was, summary: f.summary });
      } else {
        log.warn("doctor: a check found a problem", {
          check: f.check,
          level: f.level,
          summary: f.summary,
          cost: f.cost,
          action: f.action,
        });
      }
    }
  }

  /** The findings of the last check that are not ok. */
  findings(): Finding[] {
    return this.#findings.filter((f) => f.level !== "ok");
  }

  /** The same, one line each, for health()'s `warnings`. */
  warnings(): string[] {
    return this.findings().map((f) => `doctor ${f.check} (${f.level}): ${f.summary}; ${f.action}`);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#removeGauge?.();
    const running = this.#running;
    if (running) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([running, new Promise<void>((r) => (timer = setTimeout(r, STOP_WAIT_MS)))]);
      clearTimeout(timer);
    }
  }
}
