// The import sites of a TypeScript module, found without a compiler (TypeScript 7 has no JavaScript API): a small
// lexer skips comments, strings, template literals and regular expressions, so that SQL text such as
// `FROM "schema"."table"` or an `import(` inside a string is never taken for an import.
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";

export interface ImportSite {
  /** The module specifier as written, e.g. `../runtime/logger.js` or `amqplib`. */
  specifier: string;
  /** 1-based line of the specifier. */
  line: number;
  kind: "import" | "export-from" | "dynamic";
}

interface Token {
  type: "word" | "string" | "punct";
  value: string;
  start: number;
}

// After these, a `/` starts a regular expression rather than a division.
const KEYWORDS_BEFORE_EXPRESSION = new Set(["return", "typeof", "case", "in", "of", "new", "delete", "void", "throw"]);

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  // Open template literals: the brace depth at which each `${` was entered, so `}` can resume the template.
  const templateDepths: number[] = [];
  let braceDepth = 0;
  let i = 0;

  const readTemplate = (from: number): number => {
    let j = from;
    while (j < source.length) {
      const c = source[j];
      if (c === "\\") j += 2;
      else if (c === "`") return j + 1;
      else if (c === "$" && source[j + 1] === "{") {
        templateDepths.push(braceDepth);
        braceDepth++;
        return j + 2;
      } else j++;
    }
    return j;
  };

  const regexAllowed = (): boolean => {
    const previous = tokens.at(-1);
    if (previous === undefined) return true;
    if (previous.type === "string") return false;
    if (previous.type === "word") return KEYWORDS_BEFORE_EXPRESSION.has(previous.value);
    return !/^[)\]}]$/.test(previous.value);
  };

  while (i < source.length) {
    const c = source[i]!;
    const next = source[i + 1];
    if (/\s/.test(c)) i++;
    else if (c === "/" && next === "/") i = source.indexOf("\n", i) === -1 ? source.length : source.indexOf("\n", i);
    else if (c === "/" && next === "*") {
      const end = source.indexOf("*/", i + 2);
      i = end === -1 ? source.length : end + 2;
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      let value = "";
      while (j < source.length && source[j] !== c && source[j] !== "\n") {
        if (source[j] === "\\") {
          value += source[j + 1] ?? "";
          j += 2;
        } else value += source[j++];
      }
      tokens.push({ type: "string", value, start: i });
      i = j + 1;
    } else if (c === "`") {
      // A template literal is an expression, never a specifier we follow; a punctuation token stands for it.
      tokens.push({ type: "punct", value: ")", start: i });
      i = readTemplate(i + 1);
    } else if (c === "/" && regexAllowed()) {
      let j = i + 1;
      let inClass = false;
      while (j < source.length && source[j] !== "\n") {
        const r = source[j];
        if (r === "\\") j++;
        else if (r === "[") inClass = true;
        else if (r === "]") inClass = false;
        else if (r === "/" && !inClass) break;
        j++;
      }
      j++;
      while (j < source.length && /[a-z]/i.test(source[j]!)) j++;
      tokens.push({ type: "punct", value: ")", start: i });
      i = j;
    } else if (/[A-Za-z_$]/.test(c)) {
      let j = i + 1;
      while (j < source.length && /[\w$]/.test(source[j]!)) j++;
      tokens.push({ type: "word", value: source.slice(i, j), start: i });
      i = j;
    } else if (/[0-9]/.test(c)) {
      let j = i + 1;
      while (j < source.length && /[\w.]/.test(source[j]!)) j++;
      tokens.push({ type: "word", value: "0", start: i });
      i = j;
    } else if (c === "}" && templateDepths.at(-1) === braceDepth - 1) {
      templateDepths.pop();
      braceDepth--;
      i = readTemplate(i + 1);
    } else {
      if (c === "{") braceDepth++;
      if (c === "}") braceDepth--;
      tokens.push({ type: "punct", value: c, start: i });
      i++;
    }
  }
  return tokens;
}

/** Every `import ... from`, `import "x"`, `export ... from` and `import("x")` (also `typeof import("x")`) of a module. */
export function importSites(source: string): ImportSite[] {
  const tokens = tokenize(source);
  const lineOf = (offset: number) => source.slice(0, offset).split("\n").length;
  const sites: ImportSite[] = [];
  for (let t = 0; t < tokens.length; t++) {
    const token = tokens[t]!;
    if (token.type !== "word" || (token.value !== "import" && token.value !== "export")) continue;
    const previous = tokens[t - 1];
    if (previous?.value === ".") continue; // a property named import/export
    const next = tokens[t + 1];
    if (token.value === "import" && next?.value === "(") {
      const specifier = tokens[t + 2];
      if (specifier?.type === "string" && tokens[t + 3]?.value === ")") {
        sites.push({ specifier: specifier.value, line: lineOf(specifier.start), kind: "dynamic" });
      }
      continue;
    }
    if (token.value === "import") {
      if (next?.value === ".") continue; // import.meta
      if (next?.type === "string") {
        sites.push({ specifier: next.value, line: lineOf(next.start), kind: "import" });
        continue;
      }
      // import X / { ... } / * as n / type ... from "x": the clause holds no string, `;`, `=` or `(`.
      for (let u = t + 1; u < tokens.length; u++) {
        const clause = tokens[u]!;
        if (clause.value === "from" && tokens[u + 1]?.type === "string") {
          const specifier = tokens[u + 1]!;
          sites.push({ specifier: specifier.value, line: lineOf(specifier.start), kind: "import" });
          break;
        }
        if (clause.type === "string" || clause.value === ";" || clause.value === "=" || clause.value === "(") break;
      }
      continue;
    }
    // export { ... } from "x", export * (as n) from "x", export type { ... } / * from "x"; anything else that follows
    // `export` is a declaration.
    let u = t + 1;
    if (tokens[u]?.value === "type" && (tokens[u + 1]?.value === "{" || tokens[u + 1]?.value === "*")) u++;
    if (tokens[u]?.value === "{") {
      while (u < tokens.length && tokens[u]!.value !== "}") u++;
      u++;
    } else if (tokens[u]?.value === "*") {
      u++;
      if (tokens[u]?.value === "as") u += 2;
    } else continue;
    const specifier = tokens[u + 1];
    if (tokens[u]?.value === "from" && specifier?.type === "string") {
      sites.push({ specifier: specifier.value, line: lineOf(specifier.start), kind: "export-from" });
    }
  }
  return sites;
}

/** Every `.ts` file under `dir`, as paths relative to `root` with `/` separators, sorted. */
export function sourceFiles(root: string, dir: string): string[] {
  const found: string[] = [];
  const walk = (at: string) => {
    for (const entry of readdirSync(at, { withFileTypes: true })) {
      const path = join(at, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith(".ts")) found.push(relative(root, path).split(sep).join("/"));
    }
  };
  walk(join(root, dir));
  return found.sort();
}

/** The layer of a module under src/: its first folder, or the file's name without `.ts` for a top-level module. */
export function layerOf(srcRelativePath: string): string {
  const [first, ...rest] = srcRelativePath.split("/");
  return rest.length === 0 ? first!.replace(/\.ts$/, "") : first!;
}

/** The src/-relative path a relative specifier of `fromFile` (src/-relative) points to, `.js` read as `.ts`. */
export function resolveSpecifier(fromFile: string, specifier: string): string {
  const absolute = resolve("/", dirname(fromFile), specifier.replace(/\.js$/, ".ts"));
  return absolute.slice(1);
}

export function readSource(root: string, path: string): string {
  return readFileSync(join(root, path), "utf8");
}
