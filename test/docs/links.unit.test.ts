// Every pointer into the documentation must land: links and anchors in the README and docs/, and the references to
// them in source comments, scripts, examples and the CLI's help texts. A reference is a path (README.md, docs/x.md,
// with an optional #anchor) so that it can be checked here; a bare `README, "Section"` or a markdown `see "Section"`
// cannot be, and is refused with the place to fix.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { DEAD_LETTERS_HELP } from "../../src/cli/flags/dead-letters.js";
import { INBOX_WORKER_HELP } from "../../src/cli/flags/inbox.js";
import { STATUS_HELP } from "../../src/cli/flags/status.js";
import { WORKER_HELP } from "../../src/cli/flags/worker.js";
import { anchorsOf, markdownFiles, ROOT } from "./markdown.js";

/** Files whose comments and strings may point at the docs: tracked or new, not ignored (generated copies excluded). */
function sourceFiles(): string[] {
  const listed = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard"], {
    cwd: ROOT,
    encoding: "utf8",
  });
  return listed
    .split("\n")
    .filter((f) =>
      /^(src|test|bench|examples|scripts|prisma)\/.*\.(ts|mts|mjs|js|sh|prisma|sql)$|^\.ci\/run$|^package\.json$/.test(
        f,
      ),
    )
    .map((f) => join(ROOT, f))
    .filter((f) => existsSync(f));
}

/** Where `target` (a path with an optional #anchor, as written in `from`) fails to land; undefined when it lands. */
function brokenTarget(from: string, target: string, relativeTo: "file" | "root-or-file"): string | undefined {
  const [pathPart = "", anchor] = target.split("#", 2);
  let file = from;
  if (pathPart !== "") {
    const candidates =
      relativeTo === "file"
        ? [resolve(dirname(from), pathPart)]
        : [resolve(ROOT, pathPart), resolve(dirname(from), pathPart)];
    const found = candidates.find((c) => existsSync(c));
    if (found === undefined) return `${target}: no such file`;
    file = found;
  }
  if (anchor === undefined || anchor === "") return undefined;
  if (!file.endsWith(".md")) return `${target}: an anchor into a file that is not markdown`;
  return anchorsOf(file).has(anchor)
    ? undefined
    : `${target}: no heading with the anchor #${anchor} in ${relative(ROOT, file)}`;
}

/** Markdown links `[text](target)` outside code, and the refusals of unlinked section references. */
function markdownProblems(file: string, text: string): string[] {
  const problems: string[] = [];
  let inFence = false;
  text.split("\n").forEach((line, i) => {
    if (/^\s*```/.test(line)) inFence = !inFence;
    if (inFence) return;
    const where = `${relative(ROOT, file)}:${i + 1}`;
    const prose = line.replace(/`[^`]*`/g, "``");
    for (const m of prose.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1] ?? "";
      if (/^(https?:|mailto:)/.test(target)) continue;
      const broken = brokenTarget(file, target, "file");
      if (broken !== undefined) problems.push(`${where}: ${broken}`);
    }
    for (const m of prose.matchAll(/\b[Ss]ee "([^"]+)"/g)) {
      problems.push(`${where}: see "${m[1]}" is not a link: write [${m[1]}](page.md#anchor)`);
    }
  });
  return problems;
}

const lineOf = (text: string, index: number) => text.slice(0, index).split("\n").length;

/** References to README.md or docs/*.md in code, comments and help texts, and bare README section references. */
function referenceProblems(where: string, from: string, text: string): string[] {
  const problems: string[] = [];
  for (const m of text.matchAll(/[\w./-]*(?:README\.md|docs\/[\w-]+\.md)(?:#[\w-]+)?/g)) {
    const broken = brokenTarget(from, m[0], "root-or-file");
    if (broken !== undefined) problems.push(`${where}:${lineOf(text, m.index)}: ${broken}`);
  }
  for (const m of text.matchAll(
    /README(?!\.md)('s)?[^\n]{0,3}"[^"\n]+"|README('s)? [A-Z][\w-]* section|\(README, [^)]*\)/g,
  )) {
    problems.push(
      `${where}:${lineOf(text, m.index)}: "${m[0]}" names no file: point at docs/<page>.md#<anchor> (checked here)`,
    );
  }
  return problems;
}

describe("links and anchors", () => {
  it("every link and anchor in the README, docs/ and the examples' READMEs lands", () => {
    const problems = markdownFiles().flatMap((f) => markdownProblems(f, readFileSync(f, "utf8")));
    expect(problems).toEqual([]);
  });

  it("every docs reference in source, tests, scripts, examples and CI lands", () => {
    const problems = sourceFiles()
      .filter((f) => !f.endsWith("test/docs/links.unit.test.ts"))
      .flatMap((f) => referenceProblems(relative(ROOT, f), f, readFileSync(f, "utf8")));
    expect(problems).toEqual([]);
  });

  it("every docs reference in the CLI's help texts lands", () => {
    const helps = { WORKER_HELP, INBOX_WORKER_HELP, STATUS_HELP, DEAD_LETTERS_HELP };
    const problems = Object.entries(helps).flatMap(([name, text]) =>
      referenceProblems(name, join(ROOT, "package.json"), text),
    );
    expect(problems).toEqual([]);
    // The operator commands' --json shapes are documented; their help says where.
    expect(STATUS_HELP + DEAD_LETTERS_HELP).toMatch(/docs\/operating\.md#/);
  });

  it("catches what it is meant to catch", () => {
    const readme = join(ROOT, "README.md");
    expect(markdownProblems(readme, "[x](docs/nowhere.md)")).toHaveLength(1);
    expect(markdownProblems(readme, "[x](docs/relay.md#no-such-heading)")).toHaveLength(1);
    expect(markdownProblems(readme, "[x](#no-such-heading)")).toHaveLength(1);
    expect(markdownProblems(readme, 'see "Operating it"')).toHaveLength(1);
    expect(markdownProblems(readme, "```sh\n[x](nowhere.md)\n```")).toEqual([]);
    expect(referenceProblems("x", readme, "// see docs/operating.md#no-such-heading")).toHaveLength(1);
    expect(referenceProblems("x", readme, '// (its shape is in the README, "Operating it")')).toHaveLength(1);
    expect(referenceProblems("x", readme, "// see the README's Inbox section")).toHaveLength(1);
    expect(referenceProblems("x", readme, "// see docs/relay.md")).toEqual([]);
  });
});
