// Debian's Chromium for the browser tests, driven by playwright-core: where it is, and how it is started here. The
// background-networking flags keep it from reaching for Google's hosts, which this machine's closed network refuses.
import { execFileSync } from "node:child_process";
import { type BrowserContext, chromium } from "playwright-core";

function chromiumPath(): string {
  try {
    return execFileSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).trim();
  } catch {
    throw new Error("chromium is not installed: apt-get install -y chromium (npm test does it when run as root)");
  }
}

/** A headless Chromium with a profile of its own in `profileDir`. */
export function launchChromium(
  profileDir: string,
  options: { viewport?: { width: number; height: number } } = {},
): Promise<BrowserContext> {
  return chromium.launchPersistentContext(profileDir, {
    executablePath: chromiumPath(),
    headless: true,
    ...options,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}
