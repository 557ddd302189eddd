// One module per responsibility: a module under src/ over 350 lines says why at its top, in a comment within its
// first 10 lines that starts with the marker below (docs/architecture.md#where-a-new-feature-goes). Database-free.
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";
import { readSource, sourceFiles } from "./module-graph.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const MAX_LINES = 350;
const MARKER = /^\s*(\/\/|\/?\*+)\s*Longer than 350 lines because \S/;

/** The modules over the limit whose top gives no reason, with their length. */
function unexplainedLongModules(files: Record<string, string>): string[] {
  return Object.entries(files).flatMap(([file, source]) => {
    const lines = source.split("\n");
    if (lines.at(-1) === "") lines.pop();
    if (lines.length <= MAX_LINES) return [];
    return lines.slice(0, 10).some((line) => MARKER.test(line)) ? [] : [`${file}: ${lines.length} lines`];
  });
}

it(`no module under src/ is over ${MAX_LINES} lines without a reason at its top`, () => {
  const files = Object.fromEntries(sourceFiles(root, "src").map((file) => [file, readSource(root, file)]));
  const long = unexplainedLongModules(files);
  expect(long, `split these, or start them with "// Longer than 350 lines because ...":\n${long.join("\n")}`).toEqual(
    [],
  );
});

it("accepts a long module that says why, and only with the marker at its top", () => {
  const body = "const x = 1;\n".repeat(MAX_LINES);
  expect(
    unexplainedLongModules({
      "short.ts": "const x = 1;\n".repeat(MAX_LINES),
      "explained.ts": `// Longer than 350 lines because the state machine reads best in one place.\n${body}`,
      "unexplained.ts": `// The relay.\n${body}`,
      "marker-too-late.ts": `${"// ...\n".repeat(10)}// Longer than 350 lines because of a late reason.\n${body}`,
    }),
  ).toEqual(["unexplained.ts: 351 lines", "marker-too-late.ts: 361 lines"]);
});
