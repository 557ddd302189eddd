// Resolves the servers once for the whole run and builds the template database every test file clones.
import type { TestProject } from "vitest/node";
import { createTemplateDatabase, dropDatabase } from "./database.js";
import { resolveServers, type Servers } from "./servers.js";

let servers: Servers | undefined;
let template: string | undefined;

declare module "vitest" {
  export interface ProvidedContext {
    databaseUrl: string;
    amqpUrl: string;
    templateDatabase: string;
  }
}

export async function setup(project: TestProject) {
  servers = await resolveServers();
  console.log(`servers: PostgreSQL from ${servers.source.database}, RabbitMQ from ${servers.source.amqp}`);
  project.provide("databaseUrl", servers.databaseUrl);
  project.provide("amqpUrl", servers.amqpUrl);
  template = await createTemplateDatabase(servers.databaseUrl);
  project.provide("templateDatabase", template);
}

export async function teardown() {
  if (servers && template) await dropDatabase(servers.databaseUrl, template);
  await servers?.stop();
}
