// A small trace view over Jaeger's HTTP query API (/api/services, /api/traces): a search
// by service and operation, and a waterfall on a time axis with every span's attributes.
const content = document.getElementById("content");
const COLORS = ["#3366ff", "#1f9d55", "#d69e2e", "#9f7aea", "#dd6b20", "#319795"];
const TICKS = 5; // at most this many intervals on the time axis

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

// Axis labels: short, and in one unit for the whole axis.
function tickLabel(micros, total) {
  if (total >= 1000) return `${+(micros / 1000).toFixed(2)} ms`;
  return `${+micros.toFixed(2)} µs`;
}

// A round step (1, 2, 2.5 or 5 times a power of ten) giving about TICKS intervals.
function tickStep(total) {
  const raw = total / TICKS;
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 2.5, 5, 10].map((m) => m * power).find((step) => step >= raw);
}

function tickTimes(total) {
  const step = tickStep(total);
  const times = [];
  for (let i = 0; i * step <= total * (1 + 1e-9); i += 1) times.push(i * step);
  return times;
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

function keyValues(title, pairs, cls = "") {
  const block = el("div", { class: `group ${cls}` }, el("div", { class: "group-title" }, title));
  for (const { key, value } of pairs) {
    block.append(el("div", {}, el("span", { class: "key" }, `${key} = `), String(value)));
  }
  return block;
}

function axis(total) {
  const ticks = el("div", { class: "ticks" });
  for (const time of tickTimes(total)) {
    const at = Math.min(100, (time / total) * 100);
    const where = time === 0 ? " start" : at >= 99.5 ? " end" : "";
    ticks.append(el("span", { class: `tick${where}`, style: `left: ${at}%` }, tickLabel(time, total)));
  }
  return el(
    "div",
    { class: "axis", id: "axis" },
    el("div", { class: "label" }, "service · operation"),
    el("div", { class: "timeline" }, ticks),
    el("div", { class: "duration" }, "duration"),
  );
}

function gridLines(total) {
  return tickTimes(total)
    .filter((time) => time > 0 && time < total)
    .map((time) => el("div", { class: "grid", style: `left: ${(time / total) * 100}%` }));
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
  document.title = `${rootService}: ${root.operationName} · roomcast trace view`;
  const list = el("div", { class: "trace", id: "spans" }, axis(total));
  for (const [span, depth] of rows) {
    const process = trace.processes[span.processID];
    const service = process.serviceName;
    const left = ((span.startTime - start) / total) * 100;
    const width = (span.duration / total) * 100;
    const details = el(
      "div",
      { class: "tags" },
      el("div", { class: "when" }, `starts at +${ms(span.startTime - start)}, lasts ${ms(span.duration)}, span ${span.spanID}`),
      keyValues("attributes", span.tags),
      keyValues(`resource (${service})`, process.tags ?? [], "resource"),
    );
    // Span events (an exception, for one), as Jaeger's query API calls them: logs.
    for (const log of span.logs ?? []) {
      const fields = log.fields.map((f) => `${f.key}=${f.value}`).join("  ");
      details.append(el("div", { class: "log" }, el("span", { class: "key" }, `@${ms(log.timestamp - span.startTime)} `), fields));
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
      el("div", { class: "timeline" }, ...gridLines(total), el("div", { class: "bar", style: `left: ${left}%; width: ${width}%` })),
      el("div", { class: "duration" }, ms(span.duration)),
      details,
    );
    row.onclick = () => row.classList.toggle("open");
    // Selecting an attribute to copy it must not fold the row away.
    details.onclick = (event) => event.stopPropagation();
    list.append(row);
  }
  const toggle = el("button", { id: "toggle-all", type: "button" }, "show all attributes");
  toggle.onclick = () => {
    const open = toggle.textContent.startsWith("show");
    for (const row of list.querySelectorAll(".span")) row.classList.toggle("open", open);
    toggle.textContent = open ? "hide all attributes" : "show all attributes";
  };
  content.replaceChildren(
    el("p", {}, el("a", { href: `search?service=${encodeURIComponent(rootService)}` }, "← search")),
    el("h1", {}, `${rootService}: ${root.operationName}`),
    el(
      "div",
      { class: "summary" },
      el("span", {}, `trace ${trace.traceID}`),
      el("span", {}, `started ${new Date(start / 1000).toLocaleString()}`),
      el("span", {}, `duration ${ms(total)}`),
      el("span", { id: "span-count" }, `${spans.length} span${spans.length === 1 ? "" : "s"}`),
      el("span", {}, `services: ${services.join(", ")}`),
    ),
    list,
    el("p", { class: "hint" }, "click a span for its attributes, resource and events ", toggle),
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

async function getData(path) {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return (await response.json()).data ?? [];
}

function select(name, values, picked, first) {
  const node = el("select", { name, id: `search-${name}` });
  if (first) node.append(el("option", { value: "" }, first));
  for (const value of values) {
    const option = el("option", { value }, value);
    if (value === picked) option.selected = true;
    node.append(option);
  }
  return node;
}

const LOOKBACKS = ["15m", "1h", "6h", "24h"];

async function showSearch() {
  const params = new URLSearchParams(window.location.search);
  const services = (await getData("api/services")).sort();
  const service = params.get("service") || services[0] || "";
  const operation = params.get("operation") ?? "";
  const lookback = LOOKBACKS.includes(params.get("lookback")) ? params.get("lookback") : "1h";
  const operations = service
    ? (await getData(`api/services/${encodeURIComponent(service)}/operations`)).sort()
    : [];
  const serviceSelect = select("service", services, service);
  // A new service has other operations: search it at once, for all of them.
  serviceSelect.onchange = () => {
    window.location.search = new URLSearchParams({ service: serviceSelect.value, lookback }).toString();
  };
  const form = el(
    "form",
    { action: "search", class: "search" },
    el("label", {}, "service ", serviceSelect),
    el("label", {}, "operation ", select("operation", operations, operation, "all operations")),
    el("label", {}, "last ", select("lookback", LOOKBACKS, lookback)),
    el("button", { id: "find" }, "Find traces"),
  );
  const table = el(
    "table",
    { id: "results" },
    el("tr", {}, ...["trace", "root span", "spans", "duration", "started"].map((h) => el("th", {}, h))),
  );
  let found = 0;
  if (service) {
    const query = new URLSearchParams({ service, limit: "20", lookback });
    if (operation) query.set("operation", operation);
    const traces = await getData(`api/traces?${query}`);
    found = traces.length;
    for (const trace of traces.sort((a, b) => b.spans[0].startTime - a.spans[0].startTime)) {
      const [root] = ordered(trace.spans)[0];
      const first = Math.min(...trace.spans.map((s) => s.startTime));
      const last = Math.max(...trace.spans.map((s) => s.startTime + s.duration));
      table.append(
        el(
          "tr",
          {},
          el("td", {}, el("a", { href: `trace/${trace.traceID}` }, trace.traceID)),
          el("td", {}, `${trace.processes[root.processID].serviceName}: ${root.operationName}`),
          el("td", {}, String(trace.spans.length)),
          el("td", {}, ms(last - first)),
          el("td", {}, new Date(first / 1000).toLocaleTimeString()),
        ),
      );
    }
  }
  const what = operation ? `${service}: ${operation}` : service;
  content.replaceChildren(
    el("h1", {}, "Search"),
    form,
    el("p", { class: "hint", id: "found" }, service ? `${found} trace${found === 1 ? "" : "s"} of ${what}, newest first (at most 20)` : "no service has sent a trace yet"),
    table,
  );
}

const match = window.location.pathname.match(/\/trace\/([0-9a-fA-F]+)/);
(match ? showTrace(match[1]) : showSearch()).catch((error) => {
  content.replaceChildren(el("p", { class: "hint" }, `could not reach the query API: ${error.message}`));
});
