// The operator console: log in with an admin key, then every panel talks to /v1/admin/*.

import "uplot/dist/uPlot.min.css";
import "./console.css";
import { Unauthorized, saveKey, savedKey } from "./api";
import { byId, errorText, say } from "./dom";
import { EdgesView } from "./edges";
import { wireForms } from "./forms";
import { TailView } from "./tail";

const REFRESH_MS = 2000;

let timer: number | undefined;

function showLogin(message: string): void {
  window.clearTimeout(timer);
  saveKey(null);
  byId("app").hidden = true;
  byId("login").hidden = false;
  say("login-error", message, message !== "");
}

async function poll(edges: EdgesView): Promise<void> {
  try {
    await edges.refresh();
    say("edges-status", `updated ${new Date().toLocaleTimeString()}`);
  } catch (error) {
    if (error instanceof Unauthorized) {
      showLogin("the admin key was refused");
      return;
    }
    say("edges-status", errorText(error), true);
  }
  timer = window.setTimeout(() => void poll(edges), REFRESH_MS);
}

function start(edges: EdgesView): void {
  byId("login").hidden = true;
  byId("app").hidden = false;
  void poll(edges);
}

function main(): void {
  const edges = new EdgesView();
  const tail = new TailView();
  wireForms();
  byId<HTMLFormElement>("login").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = byId<HTMLInputElement>("admin-key").value.trim();
    if (!key) return;
    saveKey(key);
    start(edges);
  });
  byId("logout").addEventListener("click", () => {
    tail.stop("stopped");
    showLogin("");
  });
  if (savedKey()) start(edges);
}

main();
