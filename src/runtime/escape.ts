// What the package writes for people to read (text log lines, the CLI's tables) may hold text from outside: routing
// keys, header values and error messages from the broker or from other apps' rows. A line feed there forges log
// lines; ESC or a C1 control (U+009B is CSI on many terminals) drives the operator's terminal. Every C0 control,
// DEL and every C1 control is written as an escape instead: `\n`, `\r`, `\t`, else `\u001b`-style. So are the
// Unicode bidirectional controls (U+061C, U+200E/F, U+202A-E, U+2066-9: they reorder what a reader sees, so a
// routing key could show as another) and the line and paragraph separators U+2028/9 (a new line to some viewers).

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching the controls is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;
const NAMED: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/** `text` with its control characters (C0, DEL, C1, bidirectional, separators) written as visible escapes. */
export function escapeControl(text: string): string {
  return text.replace(CONTROL, (c) => NAMED[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/**
 * JSON text with DEL, the C1 controls and the bidirectional controls and separators escaped as well
 * (JSON.stringify escapes only C0): the same JSON value, safe to print on a terminal.
 */
export function escapeJsonControl(json: string): string {
  return json.replace(
    /[\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** One text log line's fields: ` key=value`, strings quoted; the whole escaped by the caller. */
export function textFields(fields: Record<string, unknown> | undefined): string {
  if (!fields) return "";
  return Object.entries(fields)
    .map(([k, v]) => ` ${k}=${typeof v === "string" ? JSON.stringify(v) : String(v)}`)
    .join("");
}
