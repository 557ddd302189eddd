// Where the tests, benchmarks and the example find PostgreSQL and RabbitMQ. One module for all of them:
//   1. DATABASE_URL / AMQP_URL when set;
//   2. else containers started with testcontainers, when a Docker engine answers;
//   3. else the local servers on 127.0.0.1:5432 (user postgres, database test) and 127.0.0.1:5672 (guest/guest);
//   4. else an error that says which of these to provide (resolveServers), or "none" for that server (findServers:
//      the example then runs on an embedded default, examples/run-embedded.ts).
// Each server is resolved on its own, so DATABASE_URL may be set while RabbitMQ comes from a container.
//
// Pointing the discovery elsewhere, e.g. at closed ports to see what a machine with nothing installed does:
//   PRISMA_OUTBOX_LOCAL_DATABASE_URL  replaces step 3's PostgreSQL URL (its host and port are probed);
//   PRISMA_OUTBOX_LOCAL_AMQP_URL      replaces step 3's RabbitMQ URL (the same);
//   DOCKER_HOST                       testcontainers' own variable: a closed tcp://127.0.0.1:PORT means no Docker.
// test/examples/embedded-example.test.ts sets all three to closed ports.
import { connect } from "node:net";

/** What findServers found: a server it did not find is undefined. */
export interface FoundServers {
  databaseUrl: string | undefined;
  amqpUrl: string | undefined;
  source: { database: string; amqp: string };
  stop(): Promise<void>;
}

export interface Servers {
  /** Admin connection string: a database in which CREATE DATABASE may be run. */
  databaseUrl: string;
  amqpUrl: string;
  /** How each was found, for one line of log output. */
  source: { database: string; amqp: string };
  /** Stops the containers this call started (nothing for env or local servers). */
  stop(): Promise<void>;
}

const LOCAL_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test";
const LOCAL_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672";

/** Whether the server of `url` accepts a TCP connection (its port, or the scheme's default). */
function urlAnswers(url: string, defaultPort: number): Promise<boolean> {
  const u = new URL(url);
  return answers(u.hostname.replace(/^\[|\]$/g, ""), u.port === "" ? defaultPort : Number(u.port));
}

function answers(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

async function dockerAnswers(): Promise<boolean> {
  try {
    const { getContainerRuntimeClient } = await import("testcontainers");
    await getContainerRuntimeClient();
    return true;
  } catch {
    return false;
  }
}

/** Finds each server as the header says; one not found is undefined (nothing thrown). */
export async function findServers(env: NodeJS.ProcessEnv = process.env): Promise<FoundServers> {
  const stops: Array<() => Promise<unknown>> = [];
  const source = { database: "DATABASE_URL", amqp: "AMQP_URL" };
  let databaseUrl = env.DATABASE_URL || undefined;
  let amqpUrl = env.AMQP_URL || undefined;
  const docker = !databaseUrl || !amqpUrl ? await dockerAnswers() : false;
  const localDatabaseUrl = env.PRISMA_OUTBOX_LOCAL_DATABASE_URL || LOCAL_DATABASE_URL;
  const localAmqpUrl = env.PRISMA_OUTBOX_LOCAL_AMQP_URL || LOCAL_AMQP_URL;

  if (!databaseUrl && docker) {
    const { PostgreSqlContainer } = await import("@testcontainers/postgresql");
    const pg = await new PostgreSqlContainer("postgres:15-alpine").start();
    stops.push(() => pg.stop());
    databaseUrl = pg.getConnectionUri();
    source.database = "testcontainers";
  } else if (!databaseUrl && (await urlAnswers(localDatabaseUrl, 5432))) {
    databaseUrl = localDatabaseUrl;
    source.database = "local";
  } else if (!databaseUrl) {
    source.database = "none";
  }
  if (!amqpUrl && docker) {
    const { RabbitMQContainer } = await import("@testcontainers/rabbitmq");
    const mq = await new RabbitMQContainer("rabbitmq:3.13-alpine").start();
    stops.push(() => mq.stop());
    amqpUrl = mq.getAmqpUrl();
    source.amqp = "testcontainers";
  } else if (!amqpUrl && (await urlAnswers(localAmqpUrl, 5672))) {
    amqpUrl = localAmqpUrl;
    source.amqp = "local";
  } else if (!amqpUrl) {
    source.amqp = "none";
  }
  const stop = async () => {
    await Promise.all(stops.map((s) => s()));
  };
  return { databaseUrl, amqpUrl, source, stop };
}

/** Finds both servers, or throws saying which is missing and how to provide it. */
export async function resolveServers(env: NodeJS.ProcessEnv = process.env): Promise<Servers> {
  const { databaseUrl, amqpUrl, source, stop } = await findServers(env);
  if (!databaseUrl || !amqpUrl) {
    await stop();
    const missing = [!databaseUrl && "PostgreSQL", !amqpUrl && "RabbitMQ"].filter(Boolean).join(" and ");
    throw new Error(
      `No ${missing} to run against. Set DATABASE_URL / AMQP_URL, or start a Docker engine (testcontainers), ` +
        "or run PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth) and RabbitMQ on 127.0.0.1:5672 (guest/guest).",
    );
  }
  return { databaseUrl, amqpUrl, source, stop };
}

/** The same URL with another database name. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}
