// Builds the package: ESM and declarations with tsc into dist/esm, the same modules
// as CommonJS with esbuild into dist/cjs (a nested package.json marks them so, and
// the declarations beside them are read as CommonJS ones). With --demo it also
// bundles the demo page's script into the edge's demo folder.
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");

function files(dir, suffix) {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith(suffix))
    .map((entry) => join(entry.parentPath, entry.name));
}

rmSync(dist, { recursive: true, force: true });
execFileSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", join(root, "tsconfig.build.json")], {
  stdio: "inherit",
});
await esbuild.build({
  entryPoints: files(join(root, "src"), ".ts"),
  outdir: join(dist, "cjs"),
  outbase: join(root, "src"),
  format: "cjs",
  platform: "neutral",
  target: "es2020",
  logLevel: "warning",
});
for (const declaration of files(join(dist, "esm"), ".d.ts")) {
  const target = join(dist, "cjs", relative(join(dist, "esm"), declaration));
  mkdirSync(dirname(target), { recursive: true });
  cpSync(declaration, target);
}
writeFileSync(join(dist, "cjs", "package.json"), '{ "type": "commonjs" }\n');

if (process.argv.includes("--demo")) {
  const { buildDemo } = await import("./demo.mjs");
  await buildDemo();
}
