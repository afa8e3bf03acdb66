/** The demo page's committed bundles are what their sources build to. */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { DEMO_DIR, demoFiles } from "../scripts/demo.mjs";

test("the edge's demo/client.js and demo/demo.js match clients/js (run `npm run build:demo`)", async () => {
  for (const [name, built] of Object.entries(await demoFiles())) {
    const committed = readFileSync(join(DEMO_DIR, name), "utf8");
    assert.ok(committed === built, `${name} is stale: run \`npm run build:demo\` in clients/js`);
  }
});

test("the demo page imports no hand-written client", () => {
  const html = readFileSync(join(DEMO_DIR, "index.html"), "utf8");
  assert.match(html, /<script type="module" src="demo.js">/);
  assert.match(readFileSync(join(DEMO_DIR, "demo.js"), "utf8"), /from"\.\/client\.js"/);
});
