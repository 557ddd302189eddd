// Prisma CLI configuration for this repository's own tests and benchmarks (not shipped).
import { defineConfig } from "prisma/config";

export default defineConfig({
  schema: "test/prisma/schema",
});
