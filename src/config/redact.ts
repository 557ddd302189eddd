// Passwords never leave the process in a message, a log line or a public property. Helpers to show connection
// settings without them.

/** The URL with its password replaced by `***`, to show in messages. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    // `user:secret@host/db` (the scheme forgotten) parses as scheme `user:` with the secret in its path: a URL
    // without a host but with an `@` is treated as not a URL.
    if (parsed.host === "" && url.includes("@")) throw new TypeError("no host");
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    // Not a URL: hide everything up to the last `@`, where credentials would be.
    return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)?.*@/i, "$1***@");
  }
}

/** Keys of a pg connection config that hold secrets: shown as `***` when set. */
const SECRET_KEYS = new Set(["password", "ssl", "key", "passphrase", "pfx", "cert"]);

/**
 * A pg connection config as it may be shown: the password (a string or a function), TLS material and the password
 * of `connectionString` hidden. `ssl: true` stays visible, since it hides nothing.
 */
export function redactConnectionConfig(config: Record<string, unknown>): Record<string, unknown> {
  const shown: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config)) {
    if (value === undefined) continue;
    if (key === "connectionString" && typeof value === "string") shown[key] = redactUrl(value);
    else if (SECRET_KEYS.has(key) && value !== true && value !== false) shown[key] = "***";
    else if (typeof value === "function") shown[key] = "[function]";
    else shown[key] = value;
  }
  return shown;
}
