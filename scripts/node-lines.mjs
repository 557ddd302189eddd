// Prints the Node.js major versions the package supports, one a line, read from package.json's `engines.node`
// (e.g. "^22.15.0 || ^24.0.0 || >=26.0.0" -> 22 24 26), so that CI and scripts/node-lines.sh test exactly the lines
// the package claims and no list is kept twice.
import { readFileSync } from "node:fs";

const range = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")).engines.node;
const majors = [...range.matchAll(/(?:\^|>=)\s*(\d+)/g)].map((m) => Number(m[1]));
if (majors.length === 0) throw new Error(`engines.node "${range}" names no major version (expected ^N... or >=N...)`);
console.log(majors.join("\n"));
