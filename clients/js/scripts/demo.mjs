// Bundles the demo page's script (demo/demo.ts and this package) into the one file
// the edge serves; the bundle is committed, so the edge needs no Node to serve it.
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
export const DEMO_BUNDLE = join(root, "../../services/ws-edge/src/roomcast_edge/demo/demo.js");

const BANNER =
  "// Built from clients/js/demo/demo.ts and @roomcast/client by `npm run build:demo`" +
  " in clients/js; do not edit.";

/** The bundle's text; written to `outfile` unless it is null. */
export async function buildDemo(outfile = DEMO_BUNDLE) {
  const result = await esbuild.build({
    entryPoints: [join(root, "demo/demo.ts")],
    bundle: true,
    format: "esm",
    target: "es2020",
    minify: true,
    legalComments: "none",
    banner: { js: BANNER },
    write: false,
    outfile: outfile ?? DEMO_BUNDLE,
    logLevel: "warning",
  });
  const text = result.outputFiles[0].text;
  if (outfile !== null) {
    const { writeFileSync } = await import("node:fs");
    writeFileSync(outfile, text);
  }
  return text;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildDemo();
