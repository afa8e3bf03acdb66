// Bundles the real-stack test's React page (stack/react-page.tsx, React included)
// into the directory named by the first argument, with an index.html to load it.
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = process.argv[2];
if (!out) throw new Error("usage: node scripts/stack-pages.mjs <out dir>");

await esbuild.build({
  entryPoints: [join(root, "stack/react-page.tsx")],
  bundle: true,
  format: "esm",
  target: "es2020",
  jsx: "automatic",
  define: { "process.env.NODE_ENV": '"development"' },
  outfile: join(out, "react-page.js"),
  logLevel: "warning",
});
writeFileSync(
  join(out, "index.html"),
  '<!doctype html><meta charset="utf-8"><title>react</title><div id="root"></div>' +
    '<script type="module" src="react-page.js"></script>\n',
);
