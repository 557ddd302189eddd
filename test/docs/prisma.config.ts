// Prisma CLI configuration of the docs' example app (generate only: test/docs/prisma/schema).
import { defineConfig } from "prisma/config";

export default defineConfig({
  schema: "prisma/schema",
});
