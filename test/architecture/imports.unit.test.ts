// The layer rule of docs/architecture.md#what-may-import-what, checked on every import of every module under src/
// (static, `export ... from`, dynamic and `typeof import()`; type-only imports count: a type import today is a value
// import tomorrow). Database-free.
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { type ImportSite, importSites, layerOf, readSource, resolveSpecifier, sourceFiles } from "./module-graph.js";

const root = fileURLToPath(new URL("../../", import.meta.url));

// What each layer may import besides itself. Lower layers first; nothing imports upward, nothing imports `cli`.
const foundation = ["runtime", "message", "errors", "telemetry"];
const MAY_IMPORT: Record<string, readonly string[]> = {
  runtime: foundation,
  message: foundation,
  errors: foundation,
  telemetry: foundation,
  config: foundation,
  sql: [...foundation, "config"],
  handoff: [...foundation, "config"],
  transport: [...foundation, "config"],
  // An app that only writes loads the extension: it must not load amqplib (transport) nor a consumer.
  extension: [...foundation, "config", "sql", "handoff"],
  // The outbox's relay and the inbox are siblings: neither imports the other. Both run the doctor's cheap checks
  // periodically (ops/doctor-watch.ts): ops sits below them (it imports only what sql may).
  relay: [...foundation, "config", "sql", "handoff", "transport", "ops"],
  inbox: [...foundation, "config", "sql", "transport", "ops"],
  "request-reply": [...foundation, "config", "sql", "extension", "inbox", "ops"],
  ops: [...foundation, "config", "sql"],
  // The test kit (prisma-outbox/testing): runs a relay and inboxes on the in-memory broker, with its clock.
  testing: [
    ...foundation,
    ...["config", "sql", "handoff", "transport", "extension", "relay", "inbox", "request-reply"],
  ],
  cli: [
    ...foundation,
    ...["config", "sql", "handoff", "transport", "extension", "relay", "inbox", "request-reply", "ops"],
  ],
  index: [
    ...foundation,
    ...["config", "sql", "handoff", "transport", "extension", "relay", "inbox", "request-reply", "ops"],
  ],
};

// Packages only some layers may import (types included): amqplib is the transport's, so the write side never loads it.
const PACKAGE_OWNERS: Record<string, readonly string[]> = { amqplib: ["transport"] };

interface Breach {
  at: string;
  rule: string;
}

function describeSite(file: string, site: ImportSite): string {
  return `${file}:${site.line} ${site.kind === "dynamic" ? `import("${site.specifier}")` : `"${site.specifier}"`}`;
}

/** Every import under `src/` that the table does not allow. */
function breaches(files: string[], read: (file: string) => string): Breach[] {
  const found: Breach[] = [];
  for (const file of files) {
    const srcPath = file.replace(/^src\//, "");
    const layer = layerOf(srcPath);
    const allowed = MAY_IMPORT[layer];
    if (allowed === undefined) {
      found.push({ at: file, rule: `layer "${layer}" is not in the table of test/architecture/imports.unit.test.ts` });
      continue;
    }
    for (const site of importSites(read(file))) {
      if (site.specifier.startsWith(".")) {
        const target = resolveSpecifier(srcPath, site.specifier);
        if (target.startsWith("../")) {
          found.push({ at: describeSite(file, site), rule: "imports from outside src/" });
          continue;
        }
        const targetLayer = layerOf(target);
        if (targetLayer !== layer && !allowed.includes(targetLayer)) {
          found.push({ at: describeSite(file, site), rule: `${layer} may not import ${targetLayer}` });
        }
      } else {
        const name = site.specifier.startsWith("@")
          ? site.specifier.split("/").slice(0, 2).join("/")
          : site.specifier.split("/")[0]!;
        const owners = PACKAGE_OWNERS[name];
        if (owners !== undefined && !owners.includes(layer)) {
          found.push({ at: describeSite(file, site), rule: `only ${owners.join(", ")} may import ${name}` });
        }
      }
    }
  }
  return found;
}

function report(found: Breach[]): string {
  return found.map((breach) => `${breach.at}: ${breach.rule}`).join("\n");
}

const files = sourceFiles(root, "src");
const read = (file: string) => readSource(root, file);

describe("the layer rule", () => {
  it("every layer under src/ is in the table", () => {
    const layers = new Set(files.map((file) => layerOf(file.replace(/^src\//, ""))));
    expect([...layers].filter((layer) => MAY_IMPORT[layer] === undefined)).toEqual([]);
  });

  it("no module imports against the layer rule", () => {
    const found = breaches(files, read);
    // The message lists every breach with its file and line.
    expect(found, `imports against docs/architecture.md#what-may-import-what:\n${report(found)}`).toEqual([]);
  });

  it("src/index.ts only re-exports", () => {
    const source = read("src/index.ts")
      .replace(/\/\*[\s\S]*?\*\//g, "")
      .replace(/\/\/.*$/gm, "");
    const rest = source.replace(/export\s+(type\s+)?(\{[^}]*\}|\*(\s+as\s+\w+)?)\s+from\s+"[^"]+";/g, "").trim();
    expect(rest).toBe("");
  });

  it("finds a breach when there is one (the check is not vacuous)", () => {
    const planted: Record<string, string> = {
      "src/extension/planted.ts": 'import { AmqpTransport } from "../transport/amqp.js";\n',
      "src/inbox/planted.ts": 'export type { RelayOptions } from "../relay/options.js";\n',
      "src/transport/planted.ts": 'const lazy = () => import("../relay/relay.js");\n',
      "src/relay/planted.ts": "// a comment\nimport type {\n  Inbox,\n} from '../inbox/inbox.js';\n",
      "src/runtime/planted.ts": 'import { main } from "../cli/main.js";\n',
      "src/message/planted.ts": 'export type Channel = import("amqplib").Channel;\n',
    };
    expect(report(breaches(Object.keys(planted), (file) => planted[file]!)).split("\n")).toEqual([
      'src/extension/planted.ts:1 "../transport/amqp.js": extension may not import transport',
      'src/inbox/planted.ts:1 "../relay/options.js": inbox may not import relay',
      'src/transport/planted.ts:1 import("../relay/relay.js"): transport may not import relay',
      'src/relay/planted.ts:4 "../inbox/inbox.js": relay may not import inbox',
      'src/runtime/planted.ts:1 "../cli/main.js": runtime may not import cli',
      'src/message/planted.ts:1 import("amqplib"): only transport may import amqplib',
    ]);
  });
});

describe("importSites", () => {
  it("finds static, re-export, dynamic and type imports with their lines", () => {
    const source = [
      'import a from "./a.js";',
      "import {",
      "  b,",
      '} from "./b.js";',
      'import type { C } from "./c.js";',
      'import "./side-effect.js";',
      'export { d } from "./d.js";',
      'export type { E } from "./e.js";',
      'export * as f from "./f.js";',
      'const g = await import("./g.js");',
      'type H = typeof import("./h.js");',
      "export const i = 1;",
      'export function j() { return "from"; }',
    ].join("\n");
    expect(importSites(source).map((site) => `${site.line} ${site.kind} ${site.specifier}`)).toEqual([
      "1 import ./a.js",
      "4 import ./b.js",
      "5 import ./c.js",
      "6 import ./side-effect.js",
      "7 export-from ./d.js",
      "8 export-from ./e.js",
      "9 export-from ./f.js",
      "10 dynamic ./g.js",
      "11 dynamic ./h.js",
    ]);
  });

  it("ignores what only looks like an import: comments, strings, templates, regular expressions, import.meta", () => {
    const source = [
      '// import x from "./comment.js";',
      '/* export * from "./block.js"; */',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the source text of a template literal
      'const sql = `SELECT 1 FROM "outbox" WHERE x = ${value} -- import("./template.js")`;',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the source text of a nested template literal
      'const nested = `a ${f({ k: `b ${c}` })} import("./nested.js")`;',
      "const text = 'import y from \"./string.js\"';",
      'const pattern = /import z from "(.*)"/;',
      "const url = new URL('.', import.meta.url);",
      'import real from "./real.js";',
    ].join("\n");
    expect(importSites(source).map((site) => `${site.line} ${site.specifier}`)).toEqual(["8 ./real.js"]);
  });
});
