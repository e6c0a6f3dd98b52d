// `npm run bench -- <name> [args...]` runs bench/<name>.ts. Each benchmark
// prints a human-readable table and one machine-readable JSON line per row.
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const available = readdirSync(here)
  .filter((f) => f.endsWith(".ts") && f !== "index.ts" && !f.startsWith("_"))
  .map((f) => f.slice(0, -3))
  .sort();

const [name, ...args] = process.argv.slice(2);
if (!name || !available.includes(name)) {
  console.error(`usage: npm run bench -- <${available.join("|")}> [args...]`);
  process.exit(name ? 1 : 0);
}
const mod = (await import(pathToFileURL(join(here, `${name}.ts`)).href)) as {
  main(args: string[]): Promise<void>;
};
await mod.main(args);
