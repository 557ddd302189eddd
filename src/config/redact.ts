// Passwords never leave the process in a message, a log line or a public property. Helpers to show connection
// settings without them, and to take them out of a driver's error text.
//
// Where a URL may hold a secret:
// - the userinfo password (`scheme://user:secret@host`);
// - query parameters that pg honours: `?password=`, `?sslpassword=` (and anything named like a password, secret or
//   token: `passfile` is a path, hiding it costs nothing);
// - a password with an unencoded `@` followed by `#`, `/` or `?` (`user:p@ss#word@host`): a WHATWG parser, and so
//   pg, ends the userinfo at the first `@` and reads the rest of the password as the host, the path, the query or
//   the fragment. Everything up to the LAST `@` is therefore treated as credentials when the URL has a userinfo.

/** Query parameter names (decoded, any case) whose value is hidden. */
const SECRET_PARAM = /pass|secret|token/i;

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, " "));
  } catch {
    return text;
  }
}

/** `tail` (host, path, query, fragment) with the values of its secret query parameters replaced by `***`. */
function redactQuery(tail: string): string {
  const q = tail.indexOf("?");
  if (q < 0) return tail;
  const hash = tail.indexOf("#", q);
  const end = hash < 0 ? tail.length : hash;
  const params = tail
    .slice(q + 1, end)
    .split("&")
    .map((param) => {
      const eq = param.indexOf("=");
      const name = eq < 0 ? param : param.slice(0, eq);
      return eq >= 0 && SECRET_PARAM.test(safeDecode(name)) ? `${name}=***` : param;
    });
  return `${tail.slice(0, q + 1)}${params.join("&")}${tail.slice(end)}`;
}

/** libpq's keyword/value form (`host=h password=secret`): the secret keywords' values hidden. */
function redactKeywords(text: string): string {
  return text.replace(
    /([a-z_]*(?:pass|secret|token)[a-z_]*\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)/gi,
    (_m, keyword: string) => `${keyword}***`,
  );
}

interface SplitUrl {
  scheme: string;
  /** Everything before the last `@` (when the URL has a userinfo), raw; undefined when there is none. */
  credentials: string | undefined;
  /** What pg reads as the host, path, query and fragment once the credentials are taken away. */
  tail: string;
  /** Whether the WHATWG parser accepted the URL. */
  parsed: boolean;
}

function splitUrl(url: string): SplitUrl | undefined {
  const scheme = /^([a-z][a-z0-9+.-]*:\/\/)/i.exec(url)?.[1];
  if (scheme === undefined) return undefined;
  const rest = url.slice(scheme.length);
  const at = rest.lastIndexOf("@");
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {}
  // Without a userinfo, an `@` can only be inside the path or the query (`?application_name=a@b`): not credentials.
  const hasUserinfo = parsed === undefined ? at >= 0 : parsed.username !== "" || parsed.password !== "";
  if (!hasUserinfo || at < 0) return { scheme, credentials: undefined, tail: rest, parsed: parsed !== undefined };
  return { scheme, credentials: rest.slice(0, at), tail: rest.slice(at + 1), parsed: parsed !== undefined };
}

/** The URL with its password (userinfo and query parameters) replaced by `***`, to show in messages. */
export function redactUrl(url: string): string {
  const split = splitUrl(url);
  if (split === undefined) {
    // Not a URL (`user:secret@host/db`, the scheme forgotten; or libpq's `key=value` form): hide everything up to
    // the last `@`, where credentials would be, and every secret keyword's value.
    return redactKeywords(url.replace(/^.*@/s, "***@"));
  }
  const { scheme, credentials, tail, parsed } = split;
  if (credentials === undefined) return `${scheme}${redactQuery(tail)}`;
  const colon = credentials.indexOf(":");
  const user = colon < 0 ? credentials : credentials.slice(0, colon);
  // A user name that holds `/`, `?`, `#` or `@` means the split is not what it seems: show none of it.
  const shownUser = parsed && !/[/?#@]/.test(user) ? user : undefined;
  const shownCredentials = shownUser === undefined ? "***" : colon < 0 ? shownUser : `${shownUser}:***`;
  return `${scheme}${shownCredentials}@${redactQuery(tail)}`;
}

/**
 * The secrets a connection URL holds, as a driver may echo them in an error: the password as pg reads it (up to the
 * first `@`), as meant (up to the last `@`), the pieces a misread password was split into (pg may name one as the
 * host it could not find), and the secret query parameters; raw and decoded.
 */
export function urlSecrets(url: string): string[] {
  const found = new Set<string>();
  const add = (value: string) => {
    for (const v of [value, safeDecode(value)]) if (v.length > 0) found.add(v);
  };
  const split = splitUrl(url);
  if (split?.credentials !== undefined) {
    const colon = split.credentials.indexOf(":");
    if (colon >= 0) {
      const password = split.credentials.slice(colon + 1);
      add(password);
      for (const piece of password.split(/[@#/?:]/)) add(piece);
    }
  }
  try {
    const parsed = new URL(url);
    if (parsed.password) add(parsed.password);
    for (const [name, value] of parsed.searchParams) if (SECRET_PARAM.test(name)) add(value);
  } catch {}
  return [...found];
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * `text` without the URL (or `alsoUrls`, other spellings of it) and its secrets. A secret is replaced only where it
 * stands as a token of its own (not inside a longer word), so that a short password does not turn every matching
 * letter of the message into `***`, which would garble the message and show where the password's letters are.
 */
export function scrubSecrets(text: string, url: string, alsoUrls: readonly string[] = []): string {
  return secretScrubber([url], alsoUrls)(text);
}

/**
 * A function that takes `urls` (and `alsoUrls`, other spellings of them) and their secrets out of a text, as
 * scrubSecrets does, built once for the texts of a long-lived component (every log line of a relay or an inbox).
 */
export function secretScrubber(urls: readonly string[], alsoUrls: readonly string[] = []): (text: string) => string {
  // The text is split at the URLs, its parts scrubbed, and joined with the URLs redacted: no secret is searched for
  // inside a shown URL.
  const cut = [...urls.map((u, i) => [u, i] as const), ...alsoUrls.map((u) => [u, 0] as const)]
    .filter(([u]) => u.length > 0)
    .sort((a, b) => b[0].length - a[0].length);
  const shown = urls.map((u) => redactUrl(u));
  const secrets = [...new Set(urls.flatMap((u) => urlSecrets(u)))].sort((a, b) => b.length - a.length);
  const pattern =
    secrets.length === 0
      ? undefined
      : new RegExp(`(?<![A-Za-z0-9])(?:${secrets.map(escapeRegExp).join("|")})(?![A-Za-z0-9])`, "g");
  const scrub = (text: string, k: number): string => {
    const next = cut[k];
    if (next === undefined) return pattern ? text.replace(pattern, "***") : text;
    return text
      .split(next[0])
      .map((part) => scrub(part, k + 1))
      .join(shown[next[1]] ?? "***");
  };
  return (text) => scrub(text, 0);
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
    else if ((SECRET_KEYS.has(key) || SECRET_PARAM.test(key)) && value !== true && value !== false) shown[key] = "***";
    else if (typeof value === "function") shown[key] = "[function]";
    else shown[key] = value;
  }
  return shown;
}
