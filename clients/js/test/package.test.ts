/** The built package: its size, its import side effects, and its tarball in a fresh project. */

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

import * as esbuild from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const LIMIT = 12_000; // bytes of the minified, gzipped ESM core

test("the ESM core build is at most 12 kB minified and gzipped", async () => {
  const built = await esbuild.build({
    entryPoints: [join(root, "dist/esm/index.js")],
    bundle: true,
    minify: true,
    format: "esm",
    write: false,
    logLevel: "silent",
  });
  const [output] = built.outputFiles;
  assert.ok(output);
  const size = gzipSync(output.contents, { level: 9 }).length;
  assert.ok(size > 1000, `a real bundle (${size} B)`);
  assert.ok(size <= LIMIT, `${size} B > ${LIMIT} B`);
  assert.doesNotMatch(output.text, /react/i, "the core bundle holds no React code");
});

// Every browser global a module could reach for: touching one at import throws.
const TRAPS = `
for (const name of ["window", "document", "navigator", "location", "self", "WebSocket",
                    "EventSource", "fetch", "localStorage", "sessionStorage", "XMLHttpRequest"]) {
  Object.defineProperty(globalThis, name, {
    configurable: true,
    get() { throw new Error("touched " + name + " at import"); },
  });
}
`;

test("importing touches no browser global (ESM and CommonJS)", () => {
  const esm = `${TRAPS}
const core = await import(${JSON.stringify(join(root, "dist/esm/index.js"))});
new core.Roomcast({ url: "http://x", getToken: () => "t" });
console.log("esm ok");`;
  const cjs = `${TRAPS}
const core = require(${JSON.stringify(join(root, "dist/cjs/index.js"))});
new core.Roomcast({ url: "http://x", getToken: () => "t" });
console.log("cjs ok");`;
  assert.match(execFileSync(process.execPath, ["--input-type=module", "-e", esm]).toString(), /esm ok/);
  assert.match(execFileSync(process.execPath, ["--input-type=commonjs", "-e", cjs]).toString(), /cjs ok/);
});

const ESM_USE = `
import { Roomcast, UnauthorizedError } from "@roomcast/client";
import { RoomcastProvider, useTopic } from "@roomcast/client/react";
const client = new Roomcast({ url: "http://127.0.0.1:1", getToken: async () => "t" });
console.log("esm", typeof Roomcast, typeof UnauthorizedError, client.state, typeof RoomcastProvider, typeof useTopic);
`;

const CJS_USE = `
const { Roomcast, UnauthorizedError } = require("@roomcast/client");
const { usePresence } = require("@roomcast/client/react");
const client = new Roomcast({ url: "http://127.0.0.1:1", getToken: async () => "t" });
console.log("cjs", typeof Roomcast, new UnauthorizedError() instanceof Error, client.state, typeof usePresence);
`;

const TS_USE = `
import { Roomcast, UnauthorizedError, type Push, type State } from "@roomcast/client";
import { useRoom, type Feed } from "@roomcast/client/react";

const client = new Roomcast({
  url: "http://127.0.0.1:8081",
  getToken: async (): Promise<string> => {
    throw new UnauthorizedError("signed out");
  },
  rooms: ["1001"],
  topics: ["order:*"],
  transports: ["websocket", "sse"],
});
const off: () => void = client.on("push", (push: Push) => console.log(push.payload, push.meta.position));
client.on("state", ({ state }: { state: State }) => console.log(state));
client.on("continuity_lost", ({ since }) => console.log(since.length));
async function use(): Promise<number> {
  const reply = await client.subscribe("order", "event");
  const page = await client.history({ room: "1001", limit: 10 });
  return reply.timestamp + page.messages.length;
}
const feed: (room: string) => Feed = useRoom;
void use;
void feed;
off();
// @ts-expect-error: an unknown event is a type error
client.on("nope", () => {});
`;

function npm(args: string[], cwd: string): string {
  return execFileSync("npm", args, { cwd, stdio: ["ignore", "pipe", "pipe"] }).toString();
}

test("the packed tarball installs and works from ESM, CommonJS and type-checked TypeScript", () => {
  const scratch = mkdtempSync(join(tmpdir(), "roomcast-pack-"));
  try {
    npm(["pack", "--silent", "--pack-destination", scratch], root);
    const tarball = readdirSync(scratch).find((name) => name.endsWith(".tgz"));
    assert.ok(tarball, "npm pack wrote a tarball");
    const app = join(scratch, "app");
    mkdirSync(app);
    writeFileSync(join(app, "package.json"), '{ "name": "app", "private": true, "type": "module" }\n');
    npm(["install", "--no-audit", "--no-fund", "--offline", join(scratch, tarball)], app);
    // React is the package's peer: the app brings its own (here, the one of this repository).
    for (const peer of ["react", "@types/react"]) {
      mkdirSync(dirname(join(app, "node_modules", peer)), { recursive: true });
      symlinkSync(join(root, "node_modules", peer), join(app, "node_modules", peer));
    }
    writeFileSync(join(app, "use.mjs"), ESM_USE);
    writeFileSync(join(app, "use.cjs"), CJS_USE);
    writeFileSync(join(app, "use.mts"), TS_USE);
    // The same source as CommonJS: resolved through the "require" conditions and .d.ts files.
    writeFileSync(join(app, "use.cts"), TS_USE);
    const ran = (file: string) => execFileSync(process.execPath, [join(app, file)], { cwd: app }).toString();
    assert.equal(ran("use.mjs").trim(), "esm function function disconnected function function");
    assert.equal(ran("use.cjs").trim(), "cjs function true disconnected function");
    const tsc = join(root, "node_modules/typescript/bin/tsc");
    const flags = ["--strict", "--noEmit", "--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022", "--lib", "es2022,dom"];
    try {
      execFileSync(process.execPath, [tsc, ...flags, "use.mts", "use.cts"], { cwd: app, stdio: "pipe" });
    } catch (error) {
      assert.fail(`tsc found errors:\n${String((error as { stdout?: unknown }).stdout)}`);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
});
