// Builds what the edge serves under /demo/: client.js (this package's core as one ES
// module) and demo.js (the page's script, demo/demo.ts, importing ./client.js). Both
// are committed, so an edge serves the demo without Node; `npm test` checks that they
// match their sources.
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
export const DEMO_DIR = join(root, "../../services/ws-edge/src/roomcast_edge/demo");

const BANNER = "// Built by `npm run build:demo` in clients/js from its sources; do not edit.";

// The page's own import of the package becomes the client.js served beside it.
const servedClient = {
  name: "served-client",
  setup(build) {
    build.onResolve({ filter: /\/src\/index\.js$/ }, () => ({ path: "./client.js", external: true }));
  },
};

const COMMON = {
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: true,
  legalComments: "none",
  banner: { js: BANNER },
  write: false,
  logLevel: "warning",
};

/** {"client.js": text, "demo.js": text}: what the edge's demo folder must hold. */
export async function demoFiles() {
  const client = await esbuild.build({
    ...COMMON,
    entryPoints: [join(root, "src/index.ts")],
    outfile: join(DEMO_DIR, "client.js"),
  });
  const page = await esbuild.build({
    ...COMMON,
    entryPoints: [join(root, "demo/demo.ts")],
    outfile: join(DEMO_DIR, "demo.js"),
    plugins: [servedClient],
  });
  return { "client.js": client.outputFiles[0].text, "demo.js": page.outputFiles[0].text };
}

export async function buildDemo() {
  for (const [name, text] of Object.entries(await demoFiles())) writeFileSync(join(DEMO_DIR, name), text);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildDemo();
