// Scenario S: the soak run (test/soak/soak.ts; `npm run soak` is its hour-long form) for 3 minutes, with a fault
// every 12 s (each kind twice or more: relay and inbox SIGKILLed and restarted, every worker's database connections
// terminated, the broker connection cut, the broker link slowed, LISTEN lost), at a modest load. The same checks as
// the long run: nothing lost, no double effect, nothing rolled back handled, everything drained; and the figures of
// the long-lived relay and inbox (handles, timers, sockets, connections, channels, listeners, signals) back to where
// they started, within the short run's wider bounds: a leak of one object per reconnect fails here. The table and
// plot are written to soak-output/<timestamp>/.
import { expect, it } from "vitest";
import { SHORT_BOUNDS } from "../soak/analysis.js";
import { soakReport, writeSoakOutput } from "../soak/report.js";
import { LONG_LIVED, outputDir, runSoak } from "../soak/soak.js";
import * as h from "./harness.js";

const { amqpUrl, url } = await h.useScenario();
const MINUTES = h.size(3, 10);

it(
  `S. soak for ${MINUTES} min with a fault every 12 s: nothing lost or doubled, drained, no figure grows`,
  async () => {
    const run = await runSoak({
      databaseUrl: url,
      amqpUrl,
      minutes: MINUTES,
      sampleMs: 3_000,
      faultEveryMs: 12_000,
      opsPerSecond: 12,
      log: () => {},
    });
    const report = soakReport(run, SHORT_BOUNDS, "short");
    const plot = writeSoakOutput(outputDir(), run, report);
    console.log(`${report.table}\n\n${report.summary}\nplot: ${plot}`);
    const l = run.ledger;
    h.recordRow({
      scenario: `S. soak ${MINUTES} min, a fault every 12 s`,
      messages: l.committed,
      delivered: l.committed - l.lost,
      lost: l.lost,
      duplicates: l.doubles,
      maxDelayMs: 0,
      notes: `${run.faults.length} faults; ${report.failed.length} figures over their bound`,
      missing: l.missing,
      unexpected: [],
    });
    expect(report.problems).toEqual([]);
    expect(report.failed.map((r) => `${r.who} ${r.figure}: ${r.start} -> ${r.end} (${r.bound})`)).toEqual([]);
    // The faults were real, and each long-lived worker was sampled through them.
    expect(new Set(run.faults.map((f) => f.kind)).size).toBe(6);
    for (const slot of LONG_LIVED) {
      expect(run.samples.filter((s) => s.slot === slot).length).toBeGreaterThan(30);
    }
  },
  MINUTES * 60_000 + 300_000,
);
