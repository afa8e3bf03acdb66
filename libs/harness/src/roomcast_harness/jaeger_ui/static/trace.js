// A small trace view over Jaeger's HTTP query API (/api/services, /api/traces).
const content = document.getElementById("content");
const COLORS = ["#3366ff", "#1f9d55", "#d69e2e", "#9f7aea", "#dd6b20", "#319795"];

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "style") node.style.cssText = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function ms(micros) {
  return micros >= 1000 ? `${(micros / 1000).toFixed(2)} ms` : `${micros} µs`;
}

function tagValue(span, key) {
  return span.tags.find((t) => t.key === key)?.value;
}

function isError(span) {
  return tagValue(span, "error") === true || tagValue(span, "otel.status_code") === "ERROR";
}

function parentOf(span) {
  return span.references.find((r) => r.refType === "CHILD_OF")?.spanID ?? null;
}

// Depth-first, children in start order, so the waterfall reads top to bottom.
function ordered(spans) {
  const byId = new Map(spans.map((s) => [s.spanID, s]));
  const children = new Map();
  const roots = [];
  for (const span of spans) {
    const parent = parentOf(span);
    if (parent && byId.has(parent)) {
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(span);
    } else {
      roots.push(span);
    }
  }
  const out = [];
  const visit = (span, depth) => {
    out.push([span, depth]);
    const kids = (children.get(span.spanID) ?? []).sort((a, b) => a.startTime - b.startTime);
    for (const kid of kids) visit(kid, depth + 1);
  };
  for (const root of roots.sort((a, b) => a.startTime - b.startTime)) visit(root, 0);
  return out;
}

function renderTrace(trace) {
  const spans = trace.spans;
  const start = Math.min(...spans.map((s) => s.startTime));
  const end = Math.max(...spans.map((s) => s.startTime + s.duration));
  const total = Math.max(1, end - start);
  const services = [...new Set(Object.values(trace.processes).map((p) => p.serviceName))].sort();
  const color = (service) => COLORS[services.indexOf(service) % COLORS.length];
  const rows = ordered(spans);
  const [root] = rows[0];
  const rootService = trace.processes[root.processID].serviceName;
  document.title = `${rootService}: ${root.operationName} · Jaeger`;
  const list = el("div", { class: "trace", id: "spans" });
  for (const [span, depth] of rows) {
    const service = trace.processes[span.processID].serviceName;
    const left = ((span.startTime - start) / total) * 100;
    const width = (span.duration / total) * 100;
    const tags = el("div", { class: "tags" });
    for (const tag of span.tags) {
      tags.append(el("div", {}, el("span", { class: "key" }, `${tag.key} = `), String(tag.value)));
    }
    // Span events (an exception, for one), as Jaeger's query API calls them: logs.
    for (const log of span.logs ?? []) {
      const fields = log.fields.map((f) => `${f.key}=${f.value}`).join("  ");
      tags.append(el("div", { class: "log" }, el("span", { class: "key" }, `@${ms(log.timestamp - span.startTime)} `), fields));
    }
    const row = el(
      "div",
      { class: `span${isError(span) ? " error" : ""}`, "data-span-id": span.spanID, style: `--color: ${color(service)}` },
      el(
        "div",
        { class: "label", style: `padding-left: ${0.5 + depth * 1.2}rem` },
        el("span", { class: "service" }, service),
        " ",
        el("span", { class: "op" }, span.operationName),
      ),
      el("div", { class: "timeline" }, el("div", { class: "bar", style: `left: ${left}%; width: ${width}%` })),
      el("div", { class: "duration" }, ms(span.duration)),
      tags,
    );
    row.onclick = () => row.classList.toggle("open");
    list.append(row);
  }
  content.replaceChildren(
    el("h1", {}, `${rootService}: ${root.operationName}`),
    el(
      "div",
      { class: "summary" },
      el("span", {}, `trace ${trace.traceID}`),
      el("span", {}, `duration ${ms(total)}`),
      el("span", { id: "span-count" }, `${spans.length} span${spans.length === 1 ? "" : "s"}`),
      el("span", {}, `services: ${services.join(", ")}`),
    ),
    list,
    el("p", { class: "hint" }, "click a span for its attributes"),
  );
  // The last spans of a trace can arrive a moment after its first ones.
  return spans.length;
}

async function showTrace(id) {
  let seen = -1;
  for (let attempt = 0; attempt < 20; attempt += 1) {
    const response = await fetch(`api/traces/${encodeURIComponent(id)}`);
    const body = response.ok ? await response.json() : null;
    const trace = body?.data?.[0];
    if (trace) {
      const count = renderTrace(trace);
      if (count === seen) return;
      seen = count;
    } else if (seen < 0) {
      content.replaceChildren(el("p", { class: "hint" }, `trace ${id} not found (yet)`));
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

async function showSearch() {
  const services = (await (await fetch("api/services")).json()).data ?? [];
  const picked = new URLSearchParams(window.location.search).get("service") ?? services[0] ?? "";
  const select = el("select", { name: "service" });
  for (const name of services) {
    const option = el("option", { value: name }, name);
    if (name === picked) option.selected = true;
    select.append(option);
  }
  const form = el("form", { action: "search" }, select, " ", el("button", {}, "Find traces"));
  const table = el("table", {}, el("tr", {}, el("th", {}, "trace"), el("th", {}, "root span"), el("th", {}, "spans"), el("th", {}, "started")));
  if (picked) {
    const query = new URLSearchParams({ service: picked, limit: "20", lookback: "1h" });
    const traces = (await (await fetch(`api/traces?${query}`)).json()).data ?? [];
    for (const trace of traces.sort((a, b) => b.spans[0].startTime - a.spans[0].startTime)) {
      const [root] = ordered(trace.spans)[0];
      table.append(
        el(
          "tr",
          {},
          el("td", {}, el("a", { href: `trace/${trace.traceID}` }, trace.traceID)),
          el("td", {}, `${trace.processes[root.processID].serviceName}: ${root.operationName}`),
          el("td", {}, String(trace.spans.length)),
          el("td", {}, new Date(root.startTime / 1000).toLocaleTimeString()),
        ),
      );
    }
  }
  content.replaceChildren(el("h1", {}, "Search"), form, el("p"), table);
}

const match = window.location.pathname.match(/\/trace\/([0-9a-fA-F]+)/);
(match ? showTrace(match[1]) : showSearch()).catch((error) => {
  content.replaceChildren(el("p", { class: "hint" }, `could not reach the query API: ${error.message}`));
});
