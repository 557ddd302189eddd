// The tables and ratio lines of bench:inbox (p) (bench/inbox-partitioned.ts) that are computed from its results.
import type { ChildStats } from "./inbox-partitioned.js";

export interface Measured {
  label: string;
  inboxUs: number;
  busyUs: number;
}

/**
 * Per process count K: the plain loop's and the inbox's CPU per message, and the ratio lines: each one's growth (K / 1
 * process) and the inbox's growth divided by the plain loop's (what the library adds as processes are added).
 */
export function baselineLines(
  inboxes: Measured[],
  plains: Measured[],
  processCounts: number[],
  idleMeasured: boolean,
): string[] {
  const lines: string[] = [];
  const less = idleMeasured;
  for (const [k, r] of inboxes.entries()) {
    const p = plains[k]!;
    lines.push(
      `(p) ${processCounts[k]} process(es): CPU µs per message, plain loop ${p.inboxUs}, inbox ${r.inboxUs}` +
        (less ? `; less idle: plain loop ${p.busyUs}, inbox ${r.busyUs}` : ""),
    );
    if (k === 0) continue;
    const grow = (x: Measured, one: Measured, f: "inboxUs" | "busyUs") => x[f] / one[f];
    for (const f of less ? (["inboxUs", "busyUs"] as const) : (["inboxUs"] as const)) {
      const what = f === "busyUs" ? "CPU per message less idle" : "CPU per message";
      const gi = grow(r, inboxes[0]!, f);
      const gp = grow(p, plains[0]!, f);
      lines.push(
        `ratio (p) ${what}, ${processCounts[k]} processes / 1: inbox ${gi.toFixed(3)}, plain loop ${gp.toFixed(3)}; ` +
          `inbox growth / plain growth ${(gi / gp).toFixed(3)}`,
      );
    }
  }
  return lines;
}

/** One process's counts per message handled: receive batch size, acks, statements by kind. */
export function perMessage(index: number, s: ChildStats & { handled: number }): Record<string, string | number> {
  const per = (n: number) => (n / Math.max(1, s.handled)).toFixed(3);
  const statements = Object.values(s.statements).reduce((a, b) => a + b, 0);
  const top = Object.entries(s.statements)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 8)
    .map(([k, n]) => `${k} ${per(n)}`)
    .join("; ");
  return {
    process: index,
    handled: s.handled,
    "deliveries/batch": (s.deliveries / Math.max(1, s.batches)).toFixed(2),
    "acks/msg": per(s.acks),
    "statements/msg": per(statements),
    "read, write syscalls/msg": `${per(s.kernel.syscr ?? 0)}, ${per(s.kernel.syscw ?? 0)}`,
    "ctx switches/msg: voluntary, involuntary": `${per(s.kernel.voluntary_ctxt_switches ?? 0)}, ${per(s.kernel.nonvoluntary_ctxt_switches ?? 0)}`,
    "claimed rows/msg: due (empty claims/msg), by ids (empty)": `${per(s.claimed.due)} (${per(s.claimed.dueEmpty)}), ${per(s.claimed.byIds)} (${per(s.claimed.byIdsEmpty)})`,
    "by kind (/msg)": top,
  };
}
