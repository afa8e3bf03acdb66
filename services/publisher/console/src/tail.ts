// The live tail: what passes on the bus, filtered and sampled by the publisher.

import { openStream } from "./api";
import { byId, el, errorText, query, row, say, value } from "./dom";
import { readEvents } from "./sse";

const KEEP_ROWS = 200;

interface Push {
  topic?: string;
  type?: string;
  room?: string;
  payload: unknown;
  payload_truncated?: boolean;
  skipped?: number;
  meta: { receive_time: string; message_id: string; position: string };
}

export class TailView {
  private abort: AbortController | null = null;
  private shown = 0;
  private skipped = 0;

  constructor() {
    byId("tail-start").addEventListener("click", () => void this.start());
    byId("tail-stop").addEventListener("click", () => this.stop("stopped"));
  }

  async start(): Promise<void> {
    this.stop("");
    const abort = new AbortController();
    this.abort = abort;
    this.shown = 0;
    this.skipped = 0;
    const path = `/v1/admin/tail${query({
      room: value("tail-room"),
      topic: value("tail-topic"),
      type: value("tail-type"),
      rate: value("tail-rate"),
    })}`;
    say("tail-status", "connecting…");
    byId("tail-start").toggleAttribute("disabled", true);
    try {
      // The stream ends after a while (or when the publisher restarts): open another.
      while (!abort.signal.aborted) {
        const response = await openStream(path, abort.signal);
        if (response.body === null) break;
        for await (const sse of readEvents(response.body)) {
          if (sse.event === "ready") say("tail-status", "watching");
          else if (sse.event === "end") say("tail-status", "reopening…");
          else if (sse.event === "message") this.show(JSON.parse(sse.data) as Push);
        }
      }
    } catch (error) {
      if (!abort.signal.aborted) say("tail-status", errorText(error), true);
    } finally {
      if (this.abort === abort) byId("tail-start").toggleAttribute("disabled", false);
    }
  }

  stop(status: string): void {
    this.abort?.abort();
    this.abort = null;
    byId("tail-start").toggleAttribute("disabled", false);
    if (status) say("tail-status", status);
  }

  private show(push: Push): void {
    this.shown += 1;
    this.skipped += push.skipped ?? 0;
    byId("tail-count").textContent = `${this.shown} shown, ${this.skipped} skipped by the rate`;
    const payload = typeof push.payload === "string" && push.payload_truncated ? push.payload : JSON.stringify(push.payload);
    const tr = row([
      push.meta.receive_time.slice(11, 23),
      push.room ?? "",
      push.topic ?? "",
      push.type ?? "",
      push.meta.position,
      push.meta.message_id,
      el("code", push.payload_truncated ? `${payload}… (cut)` : payload),
    ]);
    if (push.skipped) tr.title = `${push.skipped} skipped before this one`;
    const body = byId("tail-rows");
    body.prepend(tr);
    while (body.childElementCount > KEEP_ROWS) body.lastElementChild?.remove();
  }
}
