// A TCP proxy that tests put between a client and a server (RabbitMQ, PostgreSQL: it knows no protocol) to break
// the network on purpose: cut every connection, refuse new ones, or let traffic hang.
import { once } from "node:events";
import { connect, createServer, type Server, type Socket } from "node:net";

export interface TcpProxy {
  readonly host: "127.0.0.1";
  readonly port: number;
  /** The same URL with host and port replaced by the proxy's, e.g. `amqp://guest:guest@127.0.0.1:40123`. */
  url(original: string): string;
  /** Resets every current connection and resets new ones at once, until `restore()`. */
  cut(): void;
  /** Forwards again: new connections go through; connections held by `blackhole()` resume where they stopped. */
  restore(): void;
  /** Stops forwarding in both directions without closing anything: current and new connections hang. */
  blackhole(): void;
  /**
   * Current connections hang for good (as when a NAT or firewall forgets them: no packet, no reset, ever), while new
   * ones are forwarded. restore() does not revive them.
   */
  strand(): void;
  /** How many client connections are open now (forwarded or held). */
  readonly connections: number;
  /** Closes the listener and every connection. */
  close(): Promise<void>;
}

export interface TcpProxyOptions {
  targetHost: string;
  targetPort: number;
}

type Mode = "forward" | "cut" | "blackhole";

/** One client connection and, once forwarded, its connection to the target. */
interface Pair {
  client: Socket;
  upstream: Socket | undefined;
  flowing: boolean;
}

export async function startTcpProxy({ targetHost, targetPort }: TcpProxyOptions): Promise<TcpProxy> {
  let mode: Mode = "forward";
  const pairs = new Set<Pair>();
  const stranded = new Set<Pair>();

  const drop = (pair: Pair) => {
    pairs.delete(pair);
    // A reset rather than a FIN, as a broken network or a killed server would look to the client.
    if (!pair.client.destroyed) pair.client.resetAndDestroy();
    pair.upstream?.destroy();
  };

  const forward = (pair: Pair) => {
    const { client } = pair;
    if (pair.flowing) return;
    pair.flowing = true;
    if (!pair.upstream) {
      const upstream = connect({ host: targetHost, port: targetPort });
      pair.upstream = upstream;
      upstream.on("error", () => drop(pair));
      // The server closed first: let the client read what is still in flight, then see the end.
      upstream.on("close", (hadError) => (hadError ? drop(pair) : client.end()));
    }
    client.pipe(pair.upstream);
    pair.upstream.pipe(client);
    client.resume();
    pair.upstream.resume();
  };

  const hold = (pair: Pair) => {
    // Unread data stays in the socket buffers and flows on restore(), as packets do after a network partition heals.
    pair.flowing = false;
    pair.client.unpipe();
    pair.client.pause();
    if (pair.upstream) {
      pair.upstream.unpipe();
      pair.upstream.pause();
    }
  };

  const server = createServer({ pauseOnConnect: true }, (client) => {
    client.on("error", () => {});
    if (mode === "cut") {
      client.resetAndDestroy();
      return;
    }
    const pair: Pair = { client, upstream: undefined, flowing: false };
    pairs.add(pair);
    client.on("close", () => drop(pair));
    if (mode === "forward") forward(pair);
  });
  const port = await listenLocally(server, "The proxy");

  return {
    host: "127.0.0.1",
    port,
    url: (original) => atLocalPort(original, port),
    cut() {
      mode = "cut";
      for (const pair of [...pairs]) drop(pair);
    },
    restore() {
      mode = "forward";
      for (const pair of pairs) forward(pair);
    },
    blackhole() {
      mode = "blackhole";
      for (const pair of pairs) hold(pair);
    },
    strand() {
      mode = "forward";
      for (const pair of [...pairs]) {
        hold(pair);
        pairs.delete(pair); // forgotten: restore() and close() leave it hanging until its client gives up
        stranded.add(pair);
      }
    },
    get connections() {
      return pairs.size;
    },
    async close() {
      mode = "cut";
      for (const pair of [...pairs, ...stranded]) drop(pair);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The same URL with host and port replaced by 127.0.0.1:`port`. */
export function atLocalPort(original: string, port: number): string {
  const url = new URL(original);
  url.hostname = "127.0.0.1";
  url.port = String(port);
  return url.toString();
}

/** Listens on a free port of 127.0.0.1 and resolves with it. */
export async function listenLocally(server: Server, what: string): Promise<number> {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error(`${what} did not get a TCP port`);
  return address.port;
}

export interface InterceptingProxy {
  /** The same URL with host and port replaced by the proxy's. */
  url(original: string): string;
  /** Client connections open now. */
  readonly connections: number;
  /** Closes the listener and every connection. */
  close(): Promise<void>;
}

/**
 * A TCP proxy whose forwarding the test writes, for faults that must read the protocol (hold a COMMIT, swallow an
 * ack) or shape the traffic (throttle): `wire` gets each client connection and its own connection to the target, and
 * moves the bytes itself. An error or a close on either side ends both.
 */
export async function startInterceptingProxy(
  {
    targetHost,
    targetPort,
    name = "The proxy",
    noDelay = false,
  }: TcpProxyOptions & { name?: string; noDelay?: boolean },
  wire: (client: Socket, upstream: Socket) => void,
): Promise<InterceptingProxy> {
  const sockets = new Set<Socket>();
  let open = 0;
  const server = createServer((client) => {
    const upstream = connect({ host: targetHost, port: targetPort });
    sockets.add(client);
    sockets.add(upstream);
    open++;
    if (noDelay) {
      client.setNoDelay(true);
      upstream.setNoDelay(true);
    }
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      open--;
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    for (const s of [client, upstream]) {
      s.on("error", close);
      s.on("close", close);
    }
    wire(client, upstream);
  });
  const port = await listenLocally(server, name);
  return {
    url: (original) => atLocalPort(original, port),
    get connections() {
      return open;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface ThrottledProxy extends InterceptingProxy {
  /** Client-to-server bytes per second from now on; undefined: no limit. */
  setRate(bytesPerSecond: number | undefined): void;
}

/**
 * A TCP proxy that passes client-to-server bytes at `bytesPerSecond` (server-to-client unthrottled): a slow but
 * healthy link, e.g. to a broker that confirms late because the publishes reach it late. `undefined`: no limit, until
 * setRate() sets one.
 */
export async function startThrottledProxy(
  target: TcpProxyOptions,
  bytesPerSecond: number | undefined,
): Promise<ThrottledProxy> {
  let rate = bytesPerSecond;
  const proxy = await startInterceptingProxy({ ...target, name: "The throttled proxy" }, (client, upstream) => {
    upstream.pipe(client);
    client.on("data", (chunk: Buffer) => {
      upstream.write(chunk);
      if (rate === undefined) return;
      client.pause();
      setTimeout(() => client.resume(), (chunk.length / rate) * 1000);
    });
  });
  return {
    ...proxy,
    get connections() {
      return proxy.connections;
    },
    setRate(next) {
      rate = next;
    },
  };
}
