/// <reference lib="dom" />
/**
 * The report page's script (bundled with chart.js by report/bundle.ts, run in the browser): it
 * reads the embedded JSON and draws train loss and the test metric against seconds and epochs,
 * each group as its mean line with a band (min-max or ±1 sample std) over its seeds, in the
 * colour and dash the data gives it (report/style.ts: the configuration's hue in the source's
 * shade, the source's dash), so every pair has its own colour and the runs of one setting pair up.
 *
 * When runs measured curvature diagnostics (`train --diagnose`), three more charts draw them per
 * run against the step: the top eigenvalue of G, its trace and the damped condition number.
 *
 * For tests, `globalThis.sgnReport` holds the four charts (and the diagnostic ones) once drawn.
 *
 * @module
 */

// A full npm: specifier (the project has no import map) that Deno's check and esbuild
// (report/bundle.ts) both resolve.
import {
  Chart,
  type ChartDataset,
  Filler,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  LogarithmicScale,
  PointElement,
  Title,
  Tooltip,
  // deno-lint-ignore no-import-prefix
} from "npm:chart.js@4.6.1";
import type { Band, Metric, PageData, PageGroup } from "./types.ts";

// Only what line charts need, so the bundle stays small.
Chart.register(
  LineController,
  LineElement,
  PointElement,
  LinearScale,
  LogarithmicScale,
  Filler,
  Legend,
  Tooltip,
  Title,
);

type View = "lossSeconds" | "lossEpochs" | "metricSeconds" | "metricEpochs";
type Role = "low" | "high" | "mean";
interface Point {
  x: number;
  y: number;
}

const data: PageData = JSON.parse(document.getElementById("sgn-data")!.textContent!);
const hidden = new Set<number>();
/** Which group and which part of it (band edge or mean line) each dataset draws. */
const roles = new WeakMap<object, { group: number; role: Role }>();
const charts = new Map<View, Chart<"line", Point[]>>();

type DiagnosticView = "top" | "trace" | "condition";
const DIAGNOSTICS: Record<DiagnosticView, { canvas: string; title: string; axis: string }> = {
  top: { canvas: "chart-diag-top", title: "Top eigenvalue of G", axis: "largest eigenvalue" },
  trace: { canvas: "chart-diag-trace", title: "Trace of G (Hutchinson)", axis: "trace" },
  condition: {
    canvas: "chart-diag-condition",
    title: "Condition number of G + rho I",
    axis: "(largest + rho) / (smallest + rho)",
  },
};
const diagnosticCharts = new Map<DiagnosticView, Chart<"line", Point[]>>();

function control<T extends HTMLElement>(id: string): T | null {
  return document.getElementById(id) as T | null;
}

function bandMode(): string {
  return control<HTMLSelectElement>("band")?.value ?? "minmax";
}

function logX(): boolean {
  return control<HTMLInputElement>("log-x")?.checked ?? false;
}

function logLoss(): boolean {
  return control<HTMLInputElement>("log-loss")?.checked ?? true;
}

function logDiagnostics(): boolean {
  return control<HTMLInputElement>("log-diagnostics")?.checked ?? true;
}

function metricKinds(): Metric[] {
  return [...new Set(data.groups.flatMap((g) => g.metric ? [g.metric] : []))];
}

function chosenMetric(): Metric | undefined {
  const v = control<HTMLSelectElement>("metric")?.value;
  return (v as Metric | undefined) || metricKinds()[0];
}

function alpha(hex: string, a: number): string {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${a})`;
}

/** The values of one role of a band; accuracy in percent; NaN where Chart.js should leave a gap. */
function values(band: Band, role: Role, scale: number, log: boolean): number[] {
  const mode = bandMode();
  return band.mean.map((m, k) => {
    let v: number | null = m;
    if (role !== "mean") {
      if (mode === "none" || m === null) v = null;
      else if (mode === "std") {
        const s = band.std[k] ?? NaN;
        v = role === "low" ? m - s : m + s;
      } else v = role === "low" ? band.min[k] : band.max[k];
    }
    if (v === null || (log && v <= 0)) return NaN;
    return v * scale;
  });
}

function seriesFor(g: PageGroup, view: View): { band: Band; scale: number; log: boolean } | null {
  if (view.startsWith("loss")) return { band: g.loss, scale: 1, log: logLoss() };
  const metric = chosenMetric();
  if (!g.metricBand || g.metric !== metric) return null;
  return metric === "test_acc"
    ? { band: g.metricBand, scale: 100, log: false }
    : { band: g.metricBand, scale: 1, log: logLoss() };
}

function datasets(view: View): ChartDataset<"line", Point[]>[] {
  const sets: ChartDataset<"line", Point[]>[] = [];
  data.groups.forEach((g, gi) => {
    const s = seriesFor(g, view);
    if (!s) return;
    const xs = view.endsWith("Seconds") ? g.seconds : g.epochs;
    const { color, dash } = g;
    const points = (role: Role) =>
      values(s.band, role, s.scale, s.log).map((y, k) => ({ x: xs[k], y }));
    const few = xs.length <= 30;
    for (const role of ["low", "high", "mean"] as const) {
      const mean = role === "mean";
      const set: ChartDataset<"line", Point[]> = {
        label: mean ? g.label : `${g.label} ${role}`,
        data: points(role),
        borderColor: mean ? color : "transparent",
        backgroundColor: mean ? color : alpha(color, 0.15),
        borderDash: dash,
        borderWidth: mean ? 2 : 0,
        pointRadius: mean && few ? 2.5 : 0,
        // The high edge fills down to the low edge just before it: the band.
        fill: role === "high" ? "-1" : false,
        hidden: hidden.has(gi),
        spanGaps: false,
      };
      roles.set(set, { group: gi, role });
      sets.push(set);
    }
  });
  return sets;
}

function yTitle(view: View): string {
  if (view.startsWith("loss")) return "train loss (avg_loss)";
  return chosenMetric() === "test_loss" ? "test loss (test_loss)" : "test accuracy (%, test_acc)";
}

function scales(view: View) {
  const logY = view.startsWith("loss") ? logLoss() : chosenMetric() === "test_loss" && logLoss();
  const title = { display: true, text: view.endsWith("Seconds") ? "seconds" : "epoch" };
  // A log time axis lets a 30-second run and an 800-second one share a chart.
  const x = logX()
    ? { type: "logarithmic" as const, title }
    : { type: "linear" as const, title, min: view.endsWith("Seconds") ? 0 : undefined };
  return {
    x,
    y: logY
      ? { type: "logarithmic" as const, title: { display: true, text: yTitle(view) } }
      : { type: "linear" as const, title: { display: true, text: yTitle(view) } },
  };
}

function chartTitle(view: View): string {
  const what = view.startsWith("loss")
    ? "Train loss"
    : chosenMetric() === "test_loss"
    ? "Test loss"
    : chosenMetric() === "test_acc"
    ? "Test accuracy"
    : "No test metric in these runs";
  return `${what} vs ${view.endsWith("Seconds") ? "seconds" : "epochs"}`;
}

function isMean(dataset: object | undefined): boolean {
  return dataset !== undefined && roles.get(dataset)?.role === "mean";
}

/** The options every chart of the page shares: points as given, sized by the page, no animation. */
const LINE_CHART = {
  animation: false,
  parsing: false,
  normalized: true,
  responsive: true,
  maintainAspectRatio: false,
  interaction: { mode: "nearest", intersect: false },
} as const;

function makeChart(view: View, canvasId: string): Chart<"line", Point[]> {
  const canvas = document.getElementById(canvasId) as HTMLCanvasElement;
  const chart: Chart<"line", Point[]> = new Chart<"line", Point[]>(canvas, {
    type: "line",
    data: { datasets: datasets(view) },
    options: {
      ...LINE_CHART,
      scales: scales(view),
      plugins: {
        title: { display: true, text: chartTitle(view) },
        // One legend above all four charts (see buildLegend) instead of four copies.
        legend: { display: false },
        tooltip: { filter: (item) => isMean(item.dataset) },
      },
    },
  });
  charts.set(view, chart);
  return chart;
}

/** One line per run with diagnostics, in its group's colour and dash; NaN leaves a gap. */
function diagnosticDatasets(view: DiagnosticView): ChartDataset<"line", Point[]>[] {
  const log = logDiagnostics();
  return (data.diagnostics ?? []).map((d) => {
    const ys = view === "top" ? d.topEigenvalue : view === "trace" ? d.trace : d.condition;
    return {
      label: d.label,
      data: d.step.map((x, k) => {
        const y = ys[k];
        return { x, y: y === null || (log && y <= 0) ? NaN : y };
      }),
      borderColor: d.color,
      backgroundColor: d.color,
      borderDash: d.dash,
      borderWidth: 2,
      pointRadius: d.step.length <= 30 ? 2.5 : 0,
      fill: false,
      hidden: hidden.has(d.group),
      spanGaps: false,
    };
  });
}

function diagnosticScales(view: DiagnosticView) {
  const title = { display: true, text: "step" };
  const y = { display: true, text: DIAGNOSTICS[view].axis };
  return {
    x: logX() ? { type: "logarithmic" as const, title } : { type: "linear" as const, title },
    y: logDiagnostics()
      ? { type: "logarithmic" as const, title: y }
      : { type: "linear" as const, title: y },
  };
}

function makeDiagnosticChart(view: DiagnosticView): Chart<"line", Point[]> {
  const canvas = document.getElementById(DIAGNOSTICS[view].canvas) as HTMLCanvasElement;
  const chart = new Chart<"line", Point[]>(canvas, {
    type: "line",
    data: { datasets: diagnosticDatasets(view) },
    options: {
      ...LINE_CHART,
      scales: diagnosticScales(view),
      plugins: {
        title: { display: true, text: DIAGNOSTICS[view].title },
        legend: { display: false },
      },
    },
  });
  diagnosticCharts.set(view, chart);
  return chart;
}

function redraw() {
  for (const [view, chart] of charts) {
    chart.data.datasets = datasets(view);
    chart.options.scales = scales(view);
    chart.options.plugins!.title!.text = chartTitle(view);
    chart.update("none");
  }
  for (const [view, chart] of diagnosticCharts) {
    chart.data.datasets = diagnosticDatasets(view);
    chart.options.scales = diagnosticScales(view);
    chart.update("none");
  }
}

const SVG = "http://www.w3.org/2000/svg";

/** The shared legend: a line sample with the series' colour and dash; a click hides a group everywhere. */
function buildLegend() {
  const box = document.getElementById("legend");
  if (!box) return;
  data.groups.forEach((g, gi) => {
    const entry = document.createElement("button");
    entry.type = "button";
    entry.className = "entry";
    entry.dataset.group = String(gi);
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("width", "34");
    svg.setAttribute("height", "10");
    const line = document.createElementNS(SVG, "line");
    for (const [k, v] of [["x1", "1"], ["y1", "5"], ["x2", "33"], ["y2", "5"]]) {
      line.setAttribute(k, v);
    }
    line.setAttribute("stroke", g.color);
    line.setAttribute("stroke-width", "2.5");
    line.setAttribute("stroke-dasharray", g.dash.join(" "));
    svg.append(line);
    entry.append(svg, document.createTextNode(g.label));
    if (g.status) {
      // Not all runs finished: say so beside the name, the details on hover.
      const mark = document.createElement("span");
      mark.className = "status";
      mark.textContent = `(${g.status})`;
      entry.title = g.statusDetail ?? g.status;
      entry.append(mark);
    }
    entry.addEventListener("click", () => {
      if (hidden.has(gi)) hidden.delete(gi);
      else hidden.add(gi);
      entry.classList.toggle("off", hidden.has(gi));
      redraw();
    });
    box.append(entry);
  });
}

function main() {
  buildLegend();
  const byName: Record<View, Chart<"line", Point[]>> = {
    lossSeconds: makeChart("lossSeconds", "chart-loss-seconds"),
    lossEpochs: makeChart("lossEpochs", "chart-loss-epochs"),
    metricSeconds: makeChart("metricSeconds", "chart-metric-seconds"),
    metricEpochs: makeChart("metricEpochs", "chart-metric-epochs"),
  };
  const diagnostics = data.diagnostics && document.getElementById(DIAGNOSTICS.top.canvas)
    ? {
      top: makeDiagnosticChart("top"),
      trace: makeDiagnosticChart("trace"),
      condition: makeDiagnosticChart("condition"),
    }
    : undefined;
  for (const id of ["band", "log-loss", "log-x", "metric", "log-diagnostics"]) {
    control(id)?.addEventListener("change", redraw);
  }
  (globalThis as unknown as { sgnReport: unknown }).sgnReport = {
    charts: byName,
    ...(diagnostics ? { diagnostics } : {}),
    data,
    ready: true,
  };
}

try {
  main();
} catch (e) {
  // Surfaces in the console (and so in the tests' page.errors) instead of a silently blank page.
  console.error(`report page: ${(e as Error).stack ?? e}`);
}
