// The request-reply example (examples/request-reply) as the HTTP tests and the browser test run it: its web server and
// worker as real processes on the test file's database, with an exchange and a queue of the test's own; and a log of
// every status transition of outbox_request, written by a trigger, to prove "written once" and "never backwards".
import type pg from "pg";
import { uniqueName } from "../support/consumer.js";
import { type Proc, spawnTsx } from "../support/process-harness.js";

export interface ExampleApp {
  env: Record<string, string>;
  /** Starts a web server (resolves with its base URL once it listens). */
  startServer(extra?: Record<string, string>): Promise<{ proc: Proc; url: string }>;
  startWorker(extra?: Record<string, string>): Promise<Proc>;
  exchange: string;
  queue: string;
}

export function exampleApp(databaseUrl: string, amqpUrl: string, env: Record<string, string> = {}): ExampleApp {
  const exchange = uniqueName("rr.http.x");
  const queue = uniqueName("rr.http.q");
  const base = {
    DATABASE_URL: databaseUrl,
    AMQP_URL: amqpUrl,
    REPORTS_EXCHANGE: exchange,
    REPORTS_QUEUE: queue,
    REPORT_STEP_MS: "100",
    ...env,
  };
  let n = 0;
  return {
    env: base,
    exchange,
    queue,
    async startServer(extra = {}) {
      const proc = spawnTsx(`web-${++n}`, "examples/request-reply/server.ts", [], { ...base, PORT: "0", ...extra });
      const line = await proc.waitForLine(/^listening on http:\/\/127\.0\.0\.1:\d+/, 30_000);
      return { proc, url: /http:\/\/[\d.]+:\d+/.exec(line)![0] };
    },
    async startWorker(extra = {}) {
      const proc = spawnTsx(`worker-${++n}`, "examples/request-reply/worker.ts", [], { ...base, ...extra });
      await proc.waitForLine(/^worker ready/, 30_000);
      return proc;
    },
  };
}

/** A trigger that logs each change of status (and each write of a result) of every request. */
export async function logTransitions(pool: pg.Pool): Promise<void> {
  await pool.query(`
    CREATE TABLE IF NOT EXISTS request_transition (
      n bigserial PRIMARY KEY, id uuid NOT NULL, old_status text, new_status text, result_written boolean
    );
    CREATE OR REPLACE FUNCTION log_request_transition() RETURNS trigger AS $$
    BEGIN
      INSERT INTO request_transition (id, old_status, new_status, result_written)
      VALUES (NEW.id, OLD.status, NEW.status, NEW.result IS DISTINCT FROM OLD.result);
      RETURN NEW;
    END $$ LANGUAGE plpgsql;
    DROP TRIGGER IF EXISTS request_transition ON outbox_request;
    CREATE TRIGGER request_transition AFTER UPDATE ON outbox_request FOR EACH ROW
      WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.result IS DISTINCT FROM NEW.result)
      EXECUTE FUNCTION log_request_transition();`);
}

export interface Transition {
  id: string;
  old_status: string;
  new_status: string;
  result_written: boolean;
}

export async function transitions(pool: pg.Pool): Promise<Transition[]> {
  return (
    await pool.query<Transition>(
      "SELECT id::text, old_status, new_status, result_written FROM request_transition ORDER BY n",
    )
  ).rows;
}
