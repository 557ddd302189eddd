// Which packages a piece of code loads, seen from a fresh Node.js: an ESM resolve hook reports every resolution, ES
// modules included (which require.cache never shows). For the tests that keep amqplib or an OpenTelemetry SDK out of
// what an app or a test suite loads.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));

/**
 * Runs `code` (an ES module body, run from the repository root with tsx) and says whether it resolved a module of
 * `packageName`, with the run's exit status and output.
 */
export function probeImports(
  code: string,
  packageName: string,
  env: NodeJS.ProcessEnv = process.env,
): { loaded: boolean; status: number | null; output: string } {
  const marker = `LOADED:${packageName}`;
  const hook = `export async function resolve(s, c, next) { const r = await next(s, c);
    if (r.url.includes(${JSON.stringify(`/node_modules/${packageName}/`)})) process.stderr.write(${JSON.stringify(`${marker}\n`)});
    return r; }`;
  const register = `import { register } from "node:module"; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hook)}`)});`;
  const args = ["--import", "tsx", "--import", `data:text/javascript,${encodeURIComponent(register)}`];
  const out = spawnSync(process.execPath, [...args, "--input-type=module", "-e", code], {
    cwd: root,
    encoding: "utf8",
    env,
    timeout: 60_000,
  });
  return { loaded: out.stderr.includes(marker), status: out.status, output: out.stdout + out.stderr };
}
