// What the docs tests share: the repository's markdown files and the anchors GitHub (and npm) make of their headings.
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "../..");

/** The README, every page of docs/, and the examples' READMEs. */
export function markdownFiles(): string[] {
  const docs = readdirSync(join(ROOT, "docs"))
    .filter((n) => n.endsWith(".md"))
    .map((n) => join(ROOT, "docs", n));
  return [
    join(ROOT, "README.md"),
    ...docs,
    join(ROOT, "examples/README.md"),
    join(ROOT, "examples/request-reply/README.md"),
  ];
}

/** GitHub's heading slug: lower case, punctuation dropped (hyphens and underscores kept), spaces to hyphens. */
export function slug(heading: string): string {
  return heading
    .replace(/`/g, "")
    .replace(/\[([^\]]*)\]\([^)]*\)/g, "$1")
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

const cache = new Map<string, Set<string>>();

/** The anchors of a markdown file's headings (outside code fences), with -1, -2 for repeated ones. */
export function anchorsOf(file: string): Set<string> {
  const known = cache.get(file);
  if (known !== undefined) return known;
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  let inFence = false;
  for (const line of readFileSync(file, "utf8").split("\n")) {
    if (/^\s*```/.test(line)) inFence = !inFence;
    const m = inFence ? null : /^#{1,6}\s+(.+?)\s*#*\s*$/.exec(line);
    if (m === null) continue;
    const base = slug(m[1] ?? "");
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  cache.set(file, anchors);
  return anchors;
}
