// Every TypeScript code block of the README and docs/ compiles against the package's types, so the examples users
// copy are the API as it is. Each ```ts block becomes a module of its own in test/docs/.blocks/, beside:
//   - generated/prisma: the client of test/docs/prisma/schema (`npm run generate`), the app the docs write about
//     (Order with BigInt, String and Decimal columns, Invoice, Audit, and the shipped models);
//   - db.ts: `export const prisma`, the client extended with outbox(), for blocks that import "./db.js";
//   - globals.ts: what a block uses without declaring it (`base`, `prisma`, `idempotencyKey`), as the text around
//     it says.
// "prisma-outbox" resolves to src/index.ts, "prisma-outbox/testing" to src/testing/index.ts. The compiler is the
// project's tsc (a native binary: one process for all blocks, a few seconds). Blocks in other languages (```js, ```sh, ```jsonc, ```text) are not compiled.
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { markdownFiles, ROOT } from "./markdown.js";

const DIR = join(ROOT, "test/docs/.blocks");

interface Block {
  file: string;
  line: number;
  code: string;
}

function tsBlocks(file: string): Block[] {
  const blocks: Block[] = [];
  const lines = readFileSync(file, "utf8").split("\n");
  let open: { line: number; indent: number; code: string[] } | undefined;
  lines.forEach((text, i) => {
    const fence = /^(\s*)```(\w*)/.exec(text);
    if (open === undefined) {
      if (fence !== null && (fence[2] === "ts" || fence[2] === "typescript")) {
        open = { line: i + 1, indent: fence[1]?.length ?? 0, code: [] };
      }
    } else if (fence !== null) {
      blocks.push({ file, line: open.line, code: open.code.join("\n") });
      open = undefined;
    } else {
      open.code.push(text.slice(open.indent));
    }
  });
  return blocks;
}

const GLOBALS = `import { outbox } from "prisma-outbox";
import { PrismaClient } from "./generated/prisma/client.js";

declare const client: PrismaClient;
const extended = client.$extends(outbox<typeof client>({ exchange: "shop" }));

declare global {
  /** The app's client before $extends, as the README's quick start makes it. */
  var base: PrismaClient;
  /** The app's client extended with outbox(). */
  var prisma: typeof extended;
  var idempotencyKey: string;
}
`;

const DB = `import { PrismaPg } from "@prisma/adapter-pg";
import { outbox } from "prisma-outbox";
import { PrismaClient } from "./generated/prisma/client.js";

const base = new PrismaClient({ adapter: new PrismaPg({ connectionString: process.env.DATABASE_URL }) });
export const prisma = base.$extends(outbox<typeof base>({ exchange: "shop" }));
`;

function tsconfig(files: string[]) {
  return {
    extends: "../../../tsconfig.json",
    compilerOptions: {
      noEmit: true,
      rootDir: "../../..",
      allowImportingTsExtensions: true,
      // Examples elide what is not the point (an unused result, a parameter), as prose does.
      noUnusedLocals: false,
      noUnusedParameters: false,
      paths: {
        "prisma-outbox": ["../../../src/index.ts"],
        "prisma-outbox/testing": ["../../../src/testing/index.ts"],
      },
    },
    include: [],
    files,
  };
}

async function compile(): Promise<{ output: string; names: Map<string, Block> }> {
  if (!existsSync(join(DIR, "generated/prisma/client.ts"))) {
    throw new Error("test/docs/.blocks/generated/prisma is missing: run `npm run generate`");
  }
  rmSync(join(DIR, "blocks"), { recursive: true, force: true });
  mkdirSync(join(DIR, "blocks"), { recursive: true });
  writeFileSync(join(DIR, "globals.ts"), GLOBALS);
  writeFileSync(join(DIR, "db.ts"), DB);
  const names = new Map<string, Block>();
  for (const file of markdownFiles()) {
    for (const block of tsBlocks(file)) {
      const name = `${relative(ROOT, file).replace(/[/.]/g, "_")}_${block.line}.ts`;
      // At the top of .blocks (not in blocks/) a block's "./generated/..." and "./db.js" resolve as in the docs.
      writeFileSync(join(DIR, name), `${block.code}\nexport {};\n`);
      names.set(name, block);
    }
  }
  writeFileSync(
    join(DIR, "tsconfig.json"),
    JSON.stringify(tsconfig(["globals.ts", "db.ts", ...names.keys()]), null, 2),
  );
  const tsc = join(ROOT, "node_modules/.bin/tsc");
  try {
    await promisify(execFile)(tsc, ["-p", join(DIR, "tsconfig.json")], { cwd: DIR, timeout: 120_000 });
    return { output: "", names };
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    return { output: `${e.stdout ?? ""}${e.stderr ?? ""}` || e.message, names };
  }
}

/** tsc's errors, each pointed back at its markdown file and line. */
function located(output: string, names: Map<string, Block>): string[] {
  return output
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => {
      const m = /^([\w.]+\.ts)\((\d+),(\d+)\): (.*)$/.exec(l.trim());
      const block = m?.[1] === undefined ? undefined : names.get(m[1]);
      if (m === null || block === undefined) return l;
      return `${relative(ROOT, block.file)}:${block.line + Number(m[2])}: ${m[4]}`;
    });
}

describe("TypeScript code blocks of the README and docs/", () => {
  it("there are blocks to check, and each compiles against the package's types", async () => {
    const { output, names } = await compile();
    expect(names.size).toBeGreaterThanOrEqual(5);
    expect(located(output, names)).toEqual([]);
  });

  it("a block that misuses the API fails the check (the check is not vacuous)", async () => {
    const bad = join(DIR, "bad_example.ts");
    const { output: good } = await compile();
    expect(good).toBe("");
    writeFileSync(
      bad,
      `import { startRelay } from "prisma-outbox";\nawait startRelay({ databaseUrl: 1, exchanges: "shop" });\nexport {};\n`,
    );
    const config = JSON.parse(readFileSync(join(DIR, "tsconfig.json"), "utf8"));
    config.files.push("bad_example.ts");
    writeFileSync(join(DIR, "tsconfig.json"), JSON.stringify(config));
    const tsc = join(ROOT, "node_modules/.bin/tsc");
    const run = promisify(execFile)(tsc, ["-p", join(DIR, "tsconfig.json")], { cwd: DIR, timeout: 120_000 });
    await expect(run).rejects.toMatchObject({ stdout: expect.stringContaining("bad_example.ts") });
    rmSync(bad);
  });
});
