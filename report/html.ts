/**
 * Builds the report page: one self-contained HTML file with the runs' statistics embedded as
 * JSON, the bundled page script inline, and the parts that need no script (sources, notes,
 * problems, the table of final figures) written as plain HTML, so they read even where
 * scripts do not run.
 *
 * @module
 */

import type { Collection } from "./collect.ts";
import type { Group } from "./group.ts";
import type { Final } from "./stats.ts";
import type { Band, Metric, PageData, PageDiagnostics, PageGroup } from "./types.ts";
import { seriesStyle } from "./style.ts";

/** Options of {@link buildReportHtml}. */
export interface HtmlOptions {
  /** Page title, shown as the heading and in the browser's tab. */
  title: string;
  /** The bundled page script (see report/bundle.ts). */
  script: string;
  /** When the report was made (shown on the page). */
  generatedAt?: Date;
  /** What a reader should know first (e.g. what the reference is): shown under the title. */
  about?: string[];
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Six significant digits: enough for a plot, a fraction of the bytes of full doubles. */
function round(x: number | null): number | null {
  return x === null || !Number.isFinite(x) ? null : Number(x.toPrecision(6));
}

function roundBand(b: Band): Band {
  return {
    mean: b.mean.map(round),
    min: b.min.map(round),
    max: b.max.map(round),
    std: b.std.map(round),
  };
}

function metricText(metric: Metric, x: number): string {
  return metric === "test_acc" ? `${(100 * x).toFixed(2)}%` : x.toPrecision(4);
}

function finalText(f: Final, n: number, show: (x: number) => string): string {
  if (f.mean === null) return n === 1 ? "not finite" : `not finite (all ${n} runs)`;
  let s = show(f.mean);
  if (n - f.nonFinite > 1) s += ` [${show(f.min!)} – ${show(f.max!)}]`;
  if (f.nonFinite) s += ` (${f.nonFinite} of ${n} diverged)`;
  return s;
}

/** Paths as code, those in one folder as `folder/` followed by their names. */
function pathList(paths: string[]): string {
  const parent = (p: string) => p.replace(/\/+$/, "").replace(/\/[^/]*$/, "");
  const first = parent(paths[0]);
  if (paths.length < 2 || !first || paths.some((p) => parent(p) !== first)) {
    return paths.map((p) => `<code>${esc(p)}</code>`).join(", ");
  }
  const names = paths.map((p) => p.replace(/\/+$/, "").slice(first.length + 1));
  return `<code>${esc(first)}/</code> (${names.map((n) => `<code>${esc(n)}</code>`).join(", ")})`;
}

const BASIS: Record<Group["timeBasis"], string> = {
  epoch_time: "measured per epoch (epoch_time)",
  tot_time: "tot_time, epochs taken as equal",
  mixed: "mixed (epoch_time and tot_time)",
};

/**
 * The page's data: groups with their line style (see `seriesStyle`: the hue of the
 * experiment/configuration, the shade and dash of the source, so that every pair has its own
 * colour), numbers rounded to six significant digits; and the runs' curvature diagnostics, each
 * in its group's style, when some run has them.
 *
 * @example
 * ```ts ignore
 * const data = pageData(await collectRuns([{ label: "ours", path: "results/mnist" }]), "MNIST");
 * console.log(data.groups.map((g) => [g.label, g.color, g.dash]));
 * ```
 */
export function pageData(collection: Collection, title: string): PageData {
  const sources = [...new Set(collection.sources.map((s) => s.label))];
  const configs = new Map<string, number>();
  const groups: PageGroup[] = collection.groups.map((g) => {
    const key = `${g.experiment}/${g.config}`;
    if (!configs.has(key)) configs.set(key, configs.size);
    const k = g.epochs.min;
    return {
      label: g.label,
      source: g.source,
      ...seriesStyle(configs.get(key)!, Math.max(0, sources.indexOf(g.source))),
      experiment: g.experiment,
      config: g.config,
      n: g.runs.length,
      epochs: Array.from({ length: k }, (_, i) => i + 1),
      seconds: g.seconds.map((x) => round(x) ?? 0),
      loss: roundBand(g.loss),
      metric: g.metric,
      metricBand: g.metricBand ? roundBand(g.metricBand) : undefined,
      status: g.status.short,
      statusDetail: g.status.summary,
    };
  });
  const diagnostics: PageDiagnostics[] = collection.groups.flatMap((g, gi) =>
    g.runs.flatMap((r) => {
      const d = r.diagnostics;
      if (!d || d.step.length === 0) return [];
      const run = r.seed !== undefined
        ? `seed ${r.seed}`
        : r.dir.replace(/\/+$/, "").replace(/^.*\//, "");
      return [{
        label: `${g.source} ${g.experiment} ${g.config} ${run}`,
        group: gi,
        color: groups[gi].color,
        dash: groups[gi].dash,
        step: d.step,
        topEigenvalue: d.top_eigenvalue.map(round),
        trace: d.trace.map(round),
        condition: d.condition.map(round),
      }];
    })
  );
  return { title, groups, ...(diagnostics.length ? { diagnostics } : {}) };
}

/**
 * The report as one HTML document: four chart canvases (train loss and test metric against
 * seconds and epochs), controls (log scale, band), sources, notes, problems and the table of
 * final figures per group, whose last column says how the runs stand (groups with runs that
 * are running, diverged or interrupted are marked there and in the legend); and, when some run
 * measured them (`train --diagnose`), three charts of curvature diagnostics per run against the
 * step (top eigenvalue, trace, condition number).
 *
 * @example
 * ```ts ignore
 * const html = buildReportHtml(await collectRuns(sources), {
 *   title: "MNIST",
 *   script: await bundlePageScript(),
 * });
 * await Deno.writeTextFile("report.html", html);
 * ```
 */
export function buildReportHtml(collection: Collection, options: HtmlOptions): string {
  const data = pageData(collection, options.title);
  const groups = collection.groups;
  const kinds = [...new Set(groups.flatMap((g) => g.metric ? [g.metric] : []))];

  const notes: string[] = [
    "Lines: the mean over the seeds (runs) of a configuration; bands: min–max over them, or ±1 " +
    "sample standard deviation (choose above the charts). A point's seconds are the mean over " +
    "the runs of their cumulative seconds at that epoch.",
  ];
  const uniform: string[] = [];
  for (const label of new Set(collection.sources.map((s) => s.label))) {
    const all = collection.runs.filter((r) => r.source === label);
    const some = all.filter((r) => r.timeBasis === "tot_time");
    if (!some.length) continue;
    uniform.push(
      some.length === all.length
        ? `all ${all.length} runs of ${label}`
        : `${some.length} of the ${all.length} runs of ${label} (in ${
          groups.filter((g) => g.source === label && g.timeBasis !== "epoch_time")
            .map((g) => g.label).join(", ")
        })`,
    );
  }
  if (uniform.length) {
    notes.push(
      "Seconds: runs with epoch_time (cumulative seconds per epoch) are drawn at their " +
        `measured times. Only tot_time is known for ${uniform.join("; ")} (as in the seed's ` +
        "files), so there epoch k of n is drawn at tot_time · k / n, as if every epoch took " +
        "equally long.",
    );
  }
  for (const g of groups) for (const n of g.notes) notes.push(`${g.label}: ${n}.`);
  if (data.diagnostics) {
    notes.push(
      "Curvature diagnostics (train --diagnose): per run, at the steps measured, on that " +
        "step's mini-batch and at the parameters it started from: the largest eigenvalue of the " +
        "Gauss-Newton matrix G (Lanczos), its trace (Hutchinson, a few random probes: noisy), " +
        "and the condition number (largest + rho) / (smallest + rho) of the system G + rho I " +
        "that conjugate gradient solves (rho: the SGN step's damping; for SGD and Adam the SGN " +
        "default). The smallest eigenvalue is 0 when the batch has fewer outputs than the model " +
        "parameters. Their time is not in the runs' seconds.",
    );
  }

  const problems = collection.problems.map((p) =>
    `<li><code>${esc(p.file)}</code>: ${esc(p.reason)} <span class="${
      p.skipped ? "skipped" : "drawn"
    }">${p.skipped ? "(run left out)" : "(drawn)"}</span></li>`
  );

  const rows = groups.map((g) => {
    const n = g.runs.length;
    const epochs = g.epochs.min === g.epochs.max
      ? `${g.epochs.min}`
      : `${g.epochs.min}–${g.epochs.max}`;
    const metric = g.metric && g.final.metric
      ? `${g.metric}: ${finalText(g.final.metric, n, (x) => metricText(g.metric!, x))}`
      : "—";
    const status = g.status.summary === undefined
      ? `<td class="status">${n === 1 ? "finished" : `all ${n} finished`}</td>`
      : `<td class="status unfinished">${esc(g.status.summary)}</td>`;
    return `<tr data-group="${esc(g.label)}"${
      g.status.summary === undefined ? "" : ' class="unfinished"'
    }><td>${esc(g.source)}</td><td>${esc(g.experiment)}</td><td>${
      esc(g.config)
    }</td><td class="num">${n}</td><td class="num">${epochs}</td><td>${
      esc(finalText(g.final.loss, n, (x) => x.toPrecision(4)))
    }</td><td>${esc(metric)}</td><td class="num">${
      g.final.secondsPerEpoch.toPrecision(3)
    }</td><td>${BASIS[g.timeBasis]}</td>${status}</tr>`;
  });

  // One line per label: a source given as several paths (run folders) lists them together.
  const byLabel = new Map<string, { paths: string[]; runs: number }>();
  for (const s of collection.sources) {
    const entry = byLabel.get(s.label) ?? { paths: [], runs: 0 };
    entry.paths.push(s.path);
    entry.runs += s.runs;
    byLabel.set(s.label, entry);
  }
  const sources = [...byLabel].map(([label, { paths, runs }]) =>
    `<li><b>${esc(label)}</b> = ${pathList(paths)} (${runs} run${runs === 1 ? "" : "s"})</li>`
  );
  const about = (options.about ?? []).map((a) => `<li>${esc(a)}</li>`);

  const metricSelect = kinds.length > 1
    ? `<label>test metric <select id="metric">${
      kinds.map((k) => `<option value="${k}">${k === "test_acc" ? "accuracy" : "loss"}</option>`)
        .join("")
    }</select></label>`
    : "";

  const json = JSON.stringify(data).replace(/</g, "\\u003c");
  const script = options.script.replace(/<\/script/gi, "<\\/script");
  const when = (options.generatedAt ?? new Date()).toISOString().replace("T", " ").slice(0, 16);

  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(options.title)}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em 2em; color: #222; }
h1 { font-size: 1.5em; margin: 0 0 0.2em; }
h2 { font-size: 1.15em; margin: 1.2em 0 0.4em; }
.meta, .notes { color: #555; }
.notes li, #problems li { margin: 0.15em 0; }
#about { border-left: 3px solid #1f77b4; padding: 0.3em 1em 0.3em 2em; background: #f4f8fc; }
#problems { border: 1px solid #e0a800; background: #fff8e1; padding: 0.5em 1em; border-radius: 4px; }
#problems .skipped { color: #b00020; }
#problems .drawn { color: #666; }
#controls, #diagnostic-controls { margin: 0.8em 0; display: flex; gap: 1.5em; align-items: center; }
#charts, #diagnostic-charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 1em; }
.chart { position: relative; height: 380px; border: 1px solid #ddd; border-radius: 4px; padding: 4px; }
table { border-collapse: collapse; margin-top: 0.5em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
th { background: #f3f3f3; }
td.num { text-align: right; }
td.unfinished, #legend .status { color: #b00020; }
code { font-size: 0.92em; }
#legend { display: flex; flex-wrap: wrap; gap: 0.2em 1em; margin: 0 0 0.8em; }
#legend .entry { display: flex; align-items: center; gap: 0.4em; border: 0; background: none; font: inherit; cursor: pointer; padding: 1px 2px; }
#legend .entry.off { opacity: 0.35; text-decoration: line-through; }
</style>
</head>
<body>
<h1>${esc(options.title)}</h1>
<div class="meta">Generated ${when} UTC from ${collection.runs.length} runs in ${groups.length} groups.</div>
<ul class="meta" id="sources">${sources.join("")}</ul>
${about.length ? `<ul id="about">${about.join("")}</ul>` : ""}
${
    problems.length
      ? `<section id="problems"><b>${problems.length} problem${
        problems.length === 1 ? "" : "s"
      } in the input</b><ul>${problems.join("")}</ul></section>`
      : ""
  }
<div id="controls">
<label><input type="checkbox" id="log-loss" checked> log scale for losses</label>
<label><input type="checkbox" id="log-x"> log scale for seconds and epochs</label>
<label>band <select id="band"><option value="minmax">min–max</option><option value="std">±1 std</option><option value="none">none</option></select></label>
${metricSelect}
</div>
<div id="legend" title="click an entry to hide or show it in all charts"></div>
<div id="charts">
<div class="chart"><canvas id="chart-loss-seconds"></canvas></div>
<div class="chart"><canvas id="chart-loss-epochs"></canvas></div>
<div class="chart"><canvas id="chart-metric-seconds"></canvas></div>
<div class="chart"><canvas id="chart-metric-epochs"></canvas></div>
</div>
${
    data.diagnostics
      ? `<h2>Curvature diagnostics</h2>
<div id="diagnostic-controls"><label><input type="checkbox" id="log-diagnostics" checked> log scale</label></div>
<div id="diagnostic-charts">
<div class="chart"><canvas id="chart-diag-top"></canvas></div>
<div class="chart"><canvas id="chart-diag-trace"></canvas></div>
<div class="chart"><canvas id="chart-diag-condition"></canvas></div>
</div>`
      : ""
  }
<h2>Notes</h2>
<ul class="notes" id="notes">${notes.map((n) => `<li>${esc(n)}</li>`).join("")}</ul>
<h2>Final figures per group</h2>
<table id="final">
<thead><tr><th>source</th><th>experiment</th><th>configuration</th><th>runs</th><th>epochs</th><th>final train loss: mean [min – max]</th><th>final test metric: mean [min – max]</th><th>seconds / epoch</th><th>seconds from</th><th>status</th></tr></thead>
<tbody>
${rows.join("\n")}
</tbody>
</table>
<script type="application/json" id="sgn-data">${json}</script>
<script>${script}</script>
</body>
</html>
`;
}
