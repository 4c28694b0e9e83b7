/**
 * The training report: runs of the seed's results format from folders or globs, drawn against
 * seconds and epochs into one self-contained HTML file (see {@link writeReport}).
 *
 * @example
 * ```ts ignore
 * import { writeReport } from "./report/mod.ts";
 *
 * const s = await writeReport(["ours=results/mnist", "seed=../shared/seed/results/mnist"], "r.html");
 * console.log(`${s.runs} runs in ${s.groups} groups`, s.problems);
 * ```
 *
 * @module
 */

import { SgnError } from "../backend.ts";
import { bundlePageScript } from "./bundle.ts";
import { collectRuns, parseSourceArg, type Problem, type ReportSource } from "./collect.ts";
import { buildReportHtml } from "./html.ts";

export {
  aggregate,
  type Collection,
  type CollectOptions,
  collectRuns,
  configNaming,
  defaultLabel,
  expandGlob,
  type Final,
  finalFigure,
  type Group,
  groupRuns,
  type GroupStatus,
  groupStatus,
  INPUT_LIMITS,
  type InputLimits,
  parseResults,
  parseRunName,
  parseSourceArg,
  type Problem,
  type ReportSource,
  type Run,
  RUN_STATUSES,
  type RunSeries,
  type RunStatus,
  truncateRun,
} from "./collect.ts";
export { buildReportHtml, type HtmlOptions, pageData } from "./html.ts";
export { bundlePageScript } from "./bundle.ts";
export type { Band, Metric, PageData, PageGroup } from "./types.ts";

/** Options of {@link writeReport}. */
export interface ReportOptions {
  /** Page title (default "sgn training report"). */
  title?: string;
  /** Time shown as the report's date (default now). */
  generatedAt?: Date;
  /** Draw only the first this many epochs of every run (default: all). */
  maxEpochs?: number;
}

/** What {@link writeReport} wrote. */
export interface ReportSummary {
  outPath: string;
  runs: number;
  groups: number;
  /** Group legend names, e.g. "ours mnist SGN_3 (n=3)", in table order. */
  labels: string[];
  /** Missing or malformed files (also shown on the page); `skipped` runs are left out. */
  problems: Problem[];
  bytes: number;
}

/**
 * No run could be read from any source; `problems` says what was found instead.
 *
 * @example
 * ```ts ignore
 * try {
 *   await writeReport(["results/empty"], "r.html");
 * } catch (e) {
 *   if (e instanceof NoRunsError) for (const p of e.problems) console.error(p.file, p.reason);
 * }
 * ```
 */
export class NoRunsError extends SgnError {
  override name = "NoRunsError";
  readonly problems: Problem[];
  constructor(sources: readonly ReportSource[], problems: Problem[]) {
    super(`no runs found in ${sources.map((s) => s.path).join(", ") || "(no sources)"}`);
    this.problems = problems;
  }
}

/**
 * Reads the runs of the sources, groups and summarises them, and writes the report to
 * `outPath`: one HTML file with chart.js and the data inline, which opens offline. A source is
 * `label=path`, a bare path (labelled after its folder, see `defaultLabel`) or a
 * {@link ReportSource}; paths may be globs, run folders or folders above them. Problems in the
 * input do not stop it (they are on the page and in the summary); no run at all throws
 * {@link NoRunsError}.
 *
 * @example
 * ```ts ignore
 * const summary = await writeReport(
 *   [{ label: "ours", path: "results/mnist" }, "seed=../shared/seed/results/mnist/res_SGN_3_*"],
 *   "/tmp/mnist.html",
 *   { title: "MNIST: ours and the seed's" },
 * );
 * for (const p of summary.problems) console.error(`${p.file}: ${p.reason}`);
 * ```
 */
export async function writeReport(
  sources: readonly (string | ReportSource)[],
  outPath: string,
  options: ReportOptions = {},
): Promise<ReportSummary> {
  const list = sources.map((s) => typeof s === "string" ? parseSourceArg(s) : s);
  const collection = await collectRuns(list, { maxEpochs: options.maxEpochs });
  if (!collection.runs.length) throw new NoRunsError(list, collection.problems);
  const html = buildReportHtml(collection, {
    title: options.title ?? "sgn training report",
    script: await bundlePageScript(),
    generatedAt: options.generatedAt,
  });
  await Deno.writeTextFile(outPath, html);
  return {
    outPath,
    runs: collection.runs.length,
    groups: collection.groups.length,
    labels: collection.groups.map((g) => g.label),
    problems: collection.problems,
    bytes: new TextEncoder().encode(html).length,
  };
}
