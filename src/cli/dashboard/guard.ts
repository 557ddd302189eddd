// Who may use the dashboard, decided once per request before any route runs:
// - With a token: every /ui/api request carries `Authorization: Bearer <token>`, compared in constant time (both
//   sides hashed to the same length first, so neither the content nor the length leaks through timing). The page
//   itself (static, no data) is served to anyone; it asks for the token.
// - Without a token: only loopback peers, asking for a loopback host name. The host check stops DNS rebinding (a
//   site whose name resolves to 127.0.0.1 would otherwise be same-origin with the dashboard in the victim's browser).
// - Actions (POST) are never accepted from another site (CSRF): they need the header the page sets (a cross-site
//   form cannot set a header, and a cross-site fetch with one needs a CORS preflight we never grant) or the bearer
//   token (which a browser never adds by itself), and an Origin, when sent, equal to the Host.
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { isIP } from "node:net";

/** The header the page sets on every API request. */
export const PAGE_HEADER = "x-prisma-outbox-dashboard";

export type Refusal = { status: 401 | 403; error: string } | undefined;

const digest = (text: string) => createHash("sha256").update(text, "utf8").digest();

/** Whether `given` is the token, in time independent of where they differ. */
export function tokenMatches(given: string | undefined, token: string): boolean {
  return given !== undefined && timingSafeEqual(digest(given), digest(token));
}

export function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined) return false;
  const bare = address.replace(/^::ffff:/i, "");
  return bare === "::1" || (isIP(bare) === 4 && bare.startsWith("127."));
}

/** The host name of a Host or Origin header's authority, without port and brackets. */
function hostName(authority: string): string {
  const bracketed = /^\[([^\]]+)\]/.exec(authority);
  if (bracketed) return bracketed[1]!.toLowerCase();
  return authority.replace(/:\d+$/, "").toLowerCase();
}

function isLoopbackName(authority: string | undefined): boolean {
  if (authority === undefined) return false;
  const name = hostName(authority);
  return name === "localhost" || name.endsWith(".localhost") || isLoopbackAddress(name);
}

function bearer(req: IncomingMessage): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? "");
  return match?.[1];
}

/** Whether the request may reach the API (or, `page`, the page); the refusal says why when not. */
export function admit(req: IncomingMessage, token: string | undefined, page: boolean): Refusal {
  if (token === undefined) {
    if (!isLoopbackAddress(req.socket.remoteAddress)) {
      return { status: 403, error: "the dashboard answers this host only: set a token to use it from elsewhere" };
    }
    if (!isLoopbackName(req.headers.host)) {
      return { status: 403, error: "the dashboard answers only to a loopback host name without a token" };
    }
    return undefined;
  }
  if (page || tokenMatches(bearer(req), token)) return undefined;
  return { status: 401, error: "a token is required: Authorization: Bearer <token>" };
}

/** Whether a POST is the page's own (or carries the token) and not another site's. */
export function crossSiteRefusal(req: IncomingMessage, token: string | undefined): Refusal {
  const origin = req.headers.origin;
  if (origin !== undefined) {
    let originHost: string | undefined;
    try {
      originHost = new URL(origin).host.toLowerCase();
    } catch {}
    if (originHost !== (req.headers.host ?? "").toLowerCase()) {
      return { status: 403, error: "a request from another origin" };
    }
  }
  const fromPage = req.headers[PAGE_HEADER] === "1";
  if (fromPage || (token !== undefined && tokenMatches(bearer(req), token))) return undefined;
  return { status: 403, error: `actions need the ${PAGE_HEADER} header the page sets, or the token` };
}

/** Who asked, for the action log: the peer address and whether the token was shown (never the token itself). */
export function requester(req: IncomingMessage, token: string | undefined): Record<string, unknown> {
  return {
    peer: req.socket.remoteAddress,
    forwardedFor: req.headers["x-forwarded-for"],
    authenticated: token !== undefined && tokenMatches(bearer(req), token),
  };
}
