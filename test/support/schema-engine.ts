// Prisma's schema engine, compiled to WebAssembly, for machines where the native engine cannot be downloaded.
// It does what `prisma migrate deploy` and `prisma migrate diff` do. Development and tests only: the package is
// internal to Prisma and pinned to an exact version in package.json.
import { readdir, readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { PrismaPg } from "@prisma/adapter-pg";
import { bindMigrationAwareSqlAdapterFactory } from "@prisma/driver-adapter-utils";
import pg from "pg";

type Engine = {
  diff(params: unknown): Promise<{ exitCode: number; stdout: string | null }>;
  applyMigrations(params: unknown): Promise<{ appliedMigrationNames: string[] }>;
  free(): void;
};

let loaded: Promise<{ SchemaEngine: { new: (o: unknown, cb: unknown, a: unknown) => Promise<Engine> } }> | undefined;

function loadWasm() {
  loaded ??= (async () => {
    const require = createRequire(import.meta.url);
    // The package's exports map hides package.json and the .wasm file: resolve the folder from an exported entry.
    const dir = dirname(require.resolve("@prisma/schema-engine-wasm/schema_engine_bg"));
    const bg = await import(pathToFileURL(join(dir, "schema_engine_bg.js")).href);
    // Node has WebAssembly; the project's lib settings (no DOM) do not declare it.
    const wasm = (globalThis as unknown as { WebAssembly: any }).WebAssembly;
    const module = await wasm.compile(await readFile(join(dir, "schema_engine_bg.wasm")));
    const instance = await wasm.instantiate(module, { "./schema_engine_bg.js": bg });
    bg.__wbg_set_wasm(instance.exports);
    (instance.exports as { __wbindgen_start: () => void }).__wbindgen_start();
    return bg;
  })();
  return loaded;
}

const datasourceHeader = 'datasource db {\n  provider = "postgresql"\n}\n';

/** Opens an engine on a database; `schemaFiles` are the Prisma schema files it knows as the datamodel. */
export async function openSchemaEngine(connectionString: string, schemaFiles: Record<string, string> = {}) {
  const { SchemaEngine } = await loadWasm();
  const datamodels = Object.entries({ "datasource.prisma": datasourceHeader, ...schemaFiles });
  // Our own pool, so that close() really closes the engine's connections (free() leaves them open).
  const pool = new pg.Pool({ connectionString, max: 2 });
  const engine = await SchemaEngine.new(
    { datamodels },
    () => {},
    bindMigrationAwareSqlAdapterFactory(new PrismaPg(pool)),
  );
  const files = (models: Record<string, string>) =>
    Object.entries({ "datasource.prisma": datasourceHeader, ...models }).map(([path, content]) => ({ path, content }));
  const noFilter = { externalTables: [], externalEnums: [] };

  return {
    /** The SQL that takes an empty database to the given Prisma models. */
    async sqlFromEmpty(models: Record<string, string>): Promise<string> {
      const r = await engine.diff({
        from: { tag: "empty" },
        to: { tag: "schemaDatamodel", files: files(models) },
        script: true,
        exitCode: null,
        filters: noFilter,
      });
      return r.stdout ?? "";
    },
    /** The SQL that takes the live database to the given Prisma models; "" when they already agree. */
    async sqlFromDatabase(models: Record<string, string>): Promise<string> {
      const r = await engine.diff({
        from: { tag: "schemaDatasource", files: files({}), configDir: process.cwd() },
        to: { tag: "schemaDatamodel", files: files(models) },
        script: true,
        exitCode: null,
        filters: noFilter,
      });
      return r.stdout ?? "";
    },
    /** What `prisma migrate deploy` does: applies the migrations folder's unapplied migrations. */
    async applyMigrations(migrationsDir: string): Promise<string[]> {
      const dirs = (await readdir(migrationsDir, { withFileTypes: true })).filter((d) => d.isDirectory());
      const migrationDirectories = await Promise.all(
        dirs
          .map((d) => d.name)
          .sort()
          .map(async (name) => ({
            path: name,
            migrationFile: {
              path: "migration.sql",
              content: { tag: "ok", value: await readFile(join(migrationsDir, name, "migration.sql"), "utf8") },
            },
          })),
      );
      const r = await engine.applyMigrations({
        migrationsList: {
          baseDir: migrationsDir,
          lockfile: { path: "migration_lock.toml", content: null },
          shadowDbInitScript: "",
          migrationDirectories,
        },
        filters: noFilter,
      });
      return r.appliedMigrationNames;
    },
    async close() {
      engine.free();
      await pool.end();
    },
  };
}
