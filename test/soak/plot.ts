// The soak run's plot, hand-written SVG (no dependency): one panel per figure, time across, one line per worker
// (a restarted worker's lines break at each restart), the faults as thin vertical lines coloured by kind, the warm-up
// quarter shaded (the bounds look only at what follows it) and the calm end after draining shaded green.
import type { Figure } from "./analysis.js";
import { windowOf } from "./analysis.js";
import type { FaultKind, SoakRun } from "./soak.js";

const PANELS: Array<{ title: string; figures: Figure[] }> = [
  { title: "heap used after GC (MiB)", figures: ["heapMiB"] },
  { title: "RSS (MiB)", figures: ["rssMiB"] },
  { title: "active handles + requests", figures: ["resources"] },
  { title: "timers", figures: ["timers"] },
  { title: "sockets", figures: ["sockets"] },
  { title: "pg clients open", figures: ["pgOpen"] },
  { title: "pg clients closed but still reachable", figures: ["pgStale", "pgStaleApp"] },
  { title: "listeners on pg clients (sum)", figures: ["pgListeners"] },
  { title: "listeners on pg clients (most on one)", figures: ["pgMaxListeners"] },
  { title: "AMQP channels open", figures: ["amqpChannels"] },
  { title: "listeners on AMQP connections + channels", figures: ["amqpListeners"] },
  { title: "AbortSignals reachable", figures: ["signals"] },
  { title: "'abort' listeners", figures: ["signalListeners"] },
];

const SLOT_COLOURS: Record<string, string> = {
  "relay-1": "#1f77b4",
  "relay-2": "#9ecae1",
  "inbox-1": "#d62728",
  "inbox-2": "#fcae91",
};
const FAULT_COLOURS: Record<FaultKind, string> = {
  "kill-relay": "#6a3d9a",
  "kill-inbox": "#b15928",
  "db-terminate": "#33a02c",
  "broker-cut": "#ff7f00",
  "slow-link": "#e7298a",
  "listen-lost": "#666666",
};

const W = 560;
const H = 170;
const PAD = { left: 52, right: 12, top: 22, bottom: 24 };
const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/'/g, "&#39;");
const num = (n: number) => (Math.abs(n) >= 100 ? n.toFixed(0) : Number(n.toPrecision(3)).toString());

interface Series {
  colour: string;
  lines: Array<Array<[number, number]>>;
  /** Shown in the panel's own legend (for series that are not the workers). */
  label?: string;
}

function panel(run: SoakRun, title: string, series: Series[]) {
  const all = series.flatMap((s) => s.lines.flat());
  const maxY = Math.max(1, ...all.map(([, y]) => y)) * 1.1;
  const minY = Math.min(0, ...all.map(([, y]) => y));
  const endT = Math.max(run.endT, 1);
  const x = (t: number) => PAD.left + (t / endT) * (W - PAD.left - PAD.right);
  const y = (v: number) => H - PAD.bottom - ((v - minY) / (maxY - minY)) * (H - PAD.top - PAD.bottom);
  const { from } = windowOf(run);
  const out: string[] = [];
  out.push(
    `<rect x="${x(0)}" y="${PAD.top}" width="${x(from) - x(0)}" height="${H - PAD.top - PAD.bottom}" fill="#eee"/>`,
  );
  out.push(
    `<rect x="${x(run.drainedT)}" y="${PAD.top}" width="${x(endT) - x(run.drainedT)}" height="${H - PAD.top - PAD.bottom}" fill="#e5f5e0"/>`,
  );
  for (const f of run.faults) {
    out.push(
      `<line x1="${x(f.t)}" x2="${x(f.t)}" y1="${PAD.top}" y2="${H - PAD.bottom}" stroke="${FAULT_COLOURS[f.kind]}" stroke-width="0.6" opacity="0.6"/>`,
    );
  }
  for (const s of series) {
    for (const line of s.lines) {
      if (line.length === 0) continue;
      const pts = line.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
      out.push(`<polyline points="${pts}" fill="none" stroke="${s.colour}" stroke-width="1.3"/>`);
    }
  }
  out.push(
    `<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${H - PAD.bottom}" y2="${H - PAD.bottom}" stroke="#000"/>`,
  );
  out.push(`<line x1="${PAD.left}" x2="${PAD.left}" y1="${PAD.top}" y2="${H - PAD.bottom}" stroke="#000"/>`);
  for (const v of [minY, (minY + maxY) / 2, maxY]) {
    out.push(`<text x="${PAD.left - 4}" y="${y(v) + 4}" text-anchor="end">${num(v)}</text>`);
  }
  for (let k = 0; k <= 4; k++) {
    const t = (endT * k) / 4;
    const anchor = k === 0 ? "start" : k === 4 ? "end" : "middle";
    out.push(`<text x="${x(t)}" y="${H - 8}" text-anchor="${anchor}">${(t / 60).toFixed(1)} min</text>`);
  }
  out.push(`<text x="${PAD.left}" y="14" font-weight="bold">${esc(title)}</text>`);
  series.forEach((s, i) => {
    if (s.label === undefined) return;
    out.push(`<text x="${PAD.left + 6}" y="${PAD.top + 10 + i * 11}" fill="${s.colour}">${esc(s.label)}</text>`);
  });
  return out.join("\n");
}

/** The whole plot: the panels two a row, a legend on top. */
export function renderSvg(run: SoakRun, heading: string): string {
  const slots = [...new Set(run.samples.map((s) => s.slot))].sort();
  const panels: string[] = [];
  for (const p of PANELS) {
    panels.push(
      panel(
        run,
        p.title,
        slots.map((slot) => {
          const own = run.samples.filter((s) => s.slot === slot);
          const incarnations = [...new Set(own.map((s) => s.incarnation))];
          return {
            colour: SLOT_COLOURS[slot] ?? "#000",
            lines: incarnations.map((i) =>
              own.filter((s) => s.incarnation === i).map((s): [number, number] => [s.t, s[p.figures[0]!]]),
            ),
          };
        }),
      ),
    );
  }
  const names = [...new Set(run.db.flatMap((d) => Object.keys(d.sessions)))].sort();
  const palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"];
  panels.push(
    panel(
      run,
      "PostgreSQL sessions per application_name (pg_stat_activity)",
      names.map((n, i) => ({
        colour: palette[i % palette.length]!,
        label: n,
        lines: [run.db.map((d): [number, number] => [d.t, d.sessions[n] ?? 0])],
      })),
    ),
  );
  const legendH = 64;
  const cols = 2;
  const rows = Math.ceil(panels.length / cols);
  const width = cols * W;
  const height = legendH + rows * H;
  const legend: string[] = [`<text x="10" y="18" font-weight="bold" font-size="13">${esc(heading)}</text>`];
  let lx = 10;
  for (const slot of slots) {
    legend.push(`<rect x="${lx}" y="28" width="14" height="4" fill="${SLOT_COLOURS[slot]}"/>`);
    legend.push(`<text x="${lx + 18}" y="34">${slot}${slot.endsWith("2") ? " (killed and restarted)" : ""}</text>`);
    lx += 190;
  }
  lx = 10;
  for (const [kind, colour] of Object.entries(FAULT_COLOURS)) {
    legend.push(`<line x1="${lx}" x2="${lx}" y1="42" y2="56" stroke="${colour}" stroke-width="2"/>`);
    legend.push(`<text x="${lx + 5}" y="53">${kind}</text>`);
    lx += 120;
  }
  legend.push(`<text x="${lx + 10}" y="53">grey: warm-up (not judged); green: calm end after draining</text>`);
  const body = panels.map(
    (p, i) => `<g transform="translate(${(i % cols) * W},${legendH + Math.floor(i / cols) * H})">${p}</g>`,
  );
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="10">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    ...legend,
    ...body,
    "</svg>",
    "",
  ].join("\n");
}
