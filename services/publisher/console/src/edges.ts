// The edges: a searchable, paged table of their latest figures, totals, and charts of
// the last 15 minutes (the totals over every edge, plus each edge of the shown page).

import uPlot from "uplot";
import { getJson } from "./api";
import { byId, el, query, row, time, value } from "./dom";

interface Edge {
  edge_id: string;
  connections: number;
  rooms: number;
  subscriptions: number;
  messages_in_per_s: number;
  deliveries_per_s: number;
  p99_ms: number;
  seen_at: number;
}

interface History {
  columns: string[];
  totals: number[][];
  edges: { edge_id: string; points: number[][] }[];
  now: number;
}

const PAGE = 10;
const STEP_MS = 2000;
const WINDOW_MS = 15 * 60 * 1000;
const CHARTS: [string, string][] = [
  ["connections", "connections"],
  ["rooms", "rooms"],
  ["messages_in_per_s", "messages in / s"],
  ["deliveries_per_s", "deliveries / s"],
  ["p99_ms", "p99 publish→deliver (ms)"],
];
const COLORS = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7ea4", "#6e7781", "#cf222e", "#116329"];

// Per series (the totals under "", then each edge): step -> its point.
type Series = Map<string, Map<number, number[]>>;

export class EdgesView {
  private edges: Edge[] = [];
  private page = 0;
  private shown: string[] = [];
  private columns: string[] = [];
  private series: Series = new Map();
  private since = 0;
  private charts: uPlot[] = [];

  constructor() {
    byId("edge-search").addEventListener("input", () => {
      this.page = 0;
      this.render();
    });
    byId("edge-prev").addEventListener("click", () => this.turn(-1));
    byId("edge-next").addEventListener("click", () => this.turn(1));
    new ResizeObserver(() => this.resize()).observe(byId("charts"));
  }

  async refresh(): Promise<void> {
    const body = await getJson<{ edges: Edge[] }>("/v1/admin/edges");
    this.edges = body.edges;
    this.render();
    await this.refreshHistory();
  }

  private matching(): Edge[] {
    const search = value("edge-search").toLowerCase();
    return this.edges.filter((e) => e.edge_id.toLowerCase().includes(search));
  }

  private turn(by: number): void {
    const pages = Math.max(1, Math.ceil(this.matching().length / PAGE));
    this.page = Math.min(pages - 1, Math.max(0, this.page + by));
    this.render();
    void this.refreshHistory();
  }

  private render(): void {
    const all = this.edges;
    const sum = (pick: (e: Edge) => number): number => all.reduce((total, e) => total + pick(e), 0);
    const worst = all.reduce((most, e) => Math.max(most, e.p99_ms), 0);
    byId("totals").textContent =
      `${all.length} edges · ${sum((e) => e.connections)} connections · ${sum((e) => e.rooms)} rooms · ` +
      `${sum((e) => e.subscriptions)} subscriptions · ${sum((e) => e.messages_in_per_s).toFixed(1)} msg/s in · ` +
      `${sum((e) => e.deliveries_per_s).toFixed(1)} deliveries/s · worst p99 ${worst.toFixed(1)} ms`;
    const matching = this.matching();
    const pages = Math.max(1, Math.ceil(matching.length / PAGE));
    this.page = Math.min(this.page, pages - 1);
    const visible = matching.slice(this.page * PAGE, (this.page + 1) * PAGE);
    byId("edge-page").textContent = `page ${this.page + 1} of ${pages} (${matching.length} edges)`;
    const body = byId("edge-rows");
    body.replaceChildren(
      ...visible.map((e, i) => {
        const swatch = el("span", "■", "swatch");
        swatch.style.color = COLORS[(i + 1) % COLORS.length] ?? "#000";
        const name = el("span");
        name.append(swatch, ` ${e.edge_id}`);
        const tr = row([
          name,
          String(e.connections),
          String(e.rooms),
          String(e.subscriptions),
          e.messages_in_per_s.toFixed(1),
          e.deliveries_per_s.toFixed(1),
          e.p99_ms.toFixed(1),
          time(e.seen_at),
        ]);
        tr.dataset.edge = e.edge_id;
        return tr;
      }),
    );
    const shown = visible.map((e) => e.edge_id);
    if (shown.join() !== this.shown.join()) {
      this.shown = shown;
      this.since = 0; // other edges: their whole 15 minutes
      this.series = new Map();
    }
  }

  private async refreshHistory(): Promise<void> {
    const body = await getJson<History>(
      `/v1/admin/edges/history${query({ since: String(this.since), edge_id: this.shown.join(",") })}`,
    );
    this.columns = body.columns;
    this.add("", body.totals, false);
    for (const edge of body.edges) this.add(edge.edge_id, edge.points, true);
    this.since = body.now - 2 * STEP_MS; // a little overlap: a report may land late
    for (const [, points] of this.series) {
      for (const step of points.keys()) if (step * STEP_MS < body.now - WINDOW_MS) points.delete(step);
    }
    this.draw();
  }

  private add(name: string, points: number[][], bucket: boolean): void {
    let known = this.series.get(name);
    if (known === undefined) {
      known = new Map();
      this.series.set(name, known);
    }
    for (const point of points) {
      const at = point[0] ?? 0;
      known.set(bucket ? Math.floor(at / STEP_MS) : Math.round(at / STEP_MS), point);
    }
  }

  private draw(): void {
    const steps = [...(this.series.get("")?.keys() ?? [])].sort((a, b) => a - b);
    const xs = steps.map((s) => (s * STEP_MS) / 1000);
    const names = ["", ...this.shown];
    const container = byId("charts");
    if (this.charts.length === 0 || this.charts[0]?.series.length !== names.length + 1) {
      for (const chart of this.charts) chart.destroy();
      container.replaceChildren();
      this.charts = CHARTS.map(([, label]) => {
        const holder = el("div", undefined, "chart");
        container.append(holder);
        const options: uPlot.Options = {
          title: label,
          width: this.chartWidth(),
          height: 160,
          legend: { show: false },
          series: [
            {},
            ...names.map((name, i) => ({
              label: name || "total",
              stroke: COLORS[i % COLORS.length] ?? "#000",
              width: name ? 1 : 2,
              spanGaps: false,
            })),
          ],
        };
        return new uPlot(options, [[]], holder);
      });
    }
    CHARTS.forEach(([column], index) => {
      const at = this.columns.indexOf(column);
      const data: (number | null)[][] = names.map((name) => {
        const points = this.series.get(name);
        return steps.map((s) => points?.get(s)?.[at] ?? null);
      });
      this.charts[index]?.setData([xs, ...data] as uPlot.AlignedData);
    });
  }

  private chartWidth(): number {
    const width = byId("charts").clientWidth;
    return Math.max(260, width >= 900 ? Math.floor(width / 2) - 12 : width - 4);
  }

  private resize(): void {
    const width = this.chartWidth();
    for (const chart of this.charts) chart.setSize({ width, height: 160 });
  }
}
