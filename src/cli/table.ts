// Plain-text tables for the operator commands: columns padded to their widest cell, cells cut at a width so that
// one long error text does not wrap every line.
import { escapeControl } from "../runtime/escape.js";

const MAX_CELL = 60;

function cell(value: unknown): string {
  // Controls escaped first (a routing key's line feed or ESC stays visible as `\n`, `\u001b`), then the remaining
  // runs of spaces collapsed.
  const text = value === null || value === undefined ? "-" : escapeControl(String(value)).replace(/\s+/g, " ");
  return text.length > MAX_CELL ? `${text.slice(0, MAX_CELL - 1)}…` : text;
}

/** Right-aligns numbers, left-aligns the rest. */
export function table(headers: string[], rows: unknown[][]): string {
  const cells = [headers, ...rows.map((r) => r.map(cell))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] as string).length)));
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === "number"));
  return cells
    .map((r) =>
      r
        .map((c, i) => (numeric[i] ? (c as string).padStart(widths[i]!) : (c as string).padEnd(widths[i]!)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}
