// Prisma CLI configuration of the example (generate, and migrate deploy on machines with the native engine).
import { defineConfig } from "prisma/config";

export default defineConfig({
  schema: "prisma/schema",
  migrations: { path: "prisma/migrations" },
  datasource: { url: process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/prisma_outbox_example" },
});
