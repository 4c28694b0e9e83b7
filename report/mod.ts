/**
 * The training report: runs of the seed's results format from folders or globs, drawn against
 * seconds and epochs into one self-contained HTML file (see {@link writeReport}).
 *
 * @example
 * ```ts ignore
 * import { writeReport } from "./mod.ts";
 *
 * const s = await writeReport(["ours=results/mnist", "seed=../shared/seed/results/mnist"], "r.html");
 * console.log(`${s.runs} runs in ${s.groups} groups`, s.problems);
 * ```
 *
 * @module
 */

import { basename, dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { writeFileAtomic } from "../train/atomic.ts";
import { SgnError } from "../errors.ts";
import { bundlePageScript } from "./bundle.ts";
import { collectRuns, readRunConfig } from "./collect.ts";
import type { Problem } from "./run.ts";
import { type InputLimits, parseSourceArg, type ReportSource } from "./walk.ts";
import { buildReportHtml } from "./html.ts";
import { describeConfiguration, findReference, type ReferenceSet } from "./reference.ts";

export { type Collection, type CollectOptions, collectRuns, readRunConfig } from "./collect.ts";
export { type Group, groupRuns, type GroupStatus, groupStatus } from "./group.ts";
export {
  configNaming,
  type Diagnostics,
  parseResults,
  parseRunName,
  type Problem,
  type Run,
  type RunSeries,
  truncateRun,
} from "./run.ts";
export { aggregate, type Final, finalFigure } from "./stats.ts";
export {
  defaultLabel,
  expandGlob,
  findRunDirs,
  INPUT_LIMITS,
  type InputLimits,
  parseSourceArg,
  type ReportSource,
} from "./walk.ts";
export { type DiagnosticsRecord, RUN_STATUSES, type RunStatus } from "../train/results.ts";
export { buildReportHtml, type HtmlOptions, pageData } from "./html.ts";
export { bundlePageScript } from "./bundle.ts";
export { type SeriesStyle, seriesStyle } from "./style.ts";
export {
  checkReferenceRoot,
  COMMITTED_RESULTS,
  type Configuration,
  configurationOf,
  describeConfiguration,
  findReference,
  type ReferenceOptions,
  type ReferenceSearch,
  type ReferenceSet,
} from "./reference.ts";
export type { Band, Metric, PageData, PageDiagnostics, PageGroup } from "./types.ts";

/** Options of {@link writeReport}. */
export interface ReportOptions {
  /** Page title (default "sgn training report"). */
  title?: string;
  /** Time shown as the report's date (default now). */
  generatedAt?: Date;
  /** Draw only the first this many epochs of every run (default: all). */
  maxEpochs?: number;
  /** Size limits of the input files, in bytes (default `INPUT_LIMITS`). */
  limits?: Partial<InputLimits>;
  /** What a reader should know first (e.g. what the reference is): shown under the title. */
  about?: string[];
}

/** What {@link writeReport} wrote. */
export interface ReportSummary {
  /** The path the report was written to, as given. */
  outPath: string;
  /** How many runs were read. */
  runs: number;
  /** How many groups (source, experiment, configuration) are drawn. */
  groups: number;
  /** Group legend names, e.g. "ours mnist SGN_3 (n=3)", in table order. */
  labels: string[];
  /** Missing or malformed files (also shown on the page); `skipped` runs are left out. */
  problems: Problem[];
  /** Size of the HTML file written, in bytes. */
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
  /** Always "NoRunsError". */
  override name = "NoRunsError";
  /** What was found in the sources instead of runs. */
  readonly problems: Problem[];
  /** An error naming the sources searched, with what was found in them. */
  constructor(sources: readonly ReportSource[], problems: Problem[]) {
    super(`no runs found in ${sources.map((s) => s.path).join(", ") || "(no sources)"}`);
    this.problems = problems;
  }
}

const RUN_FILES = ["results.json", "config.json"];

function fail(outPath: string, why: string): SgnError {
  return new SgnError(`cannot write the report to "${outPath}": ${why}`);
}

/**
 * Where the report goes: `outPath` with its folder's real path (and the target of a symlink at
 * `outPath`), checked before any work is done: the folder exists, and the path is not a folder,
 * a device or a FIFO, nor named like a run's file. Commands that write a report after long work
 * call it first, so that a bad path is said before the work, not after.
 *
 * @example
 * ```ts
 * import { checkReportPath } from "./mod.ts";
 * await checkReportPath("/no/such/folder/report.html").catch((e) => console.log(e.message));
 * ```
 */
export async function checkReportPath(outPath: string): Promise<string> {
  if (outPath === "" || /[/\\]$/.test(outPath)) {
    throw fail(outPath, "that names a folder; give a file name, e.g. report.html");
  }
  const refuseRunFile = (name: string) => {
    if (!RUN_FILES.includes(name)) return;
    throw fail(
      outPath,
      `the report is HTML, and a file named ${name} would be taken for a run's results by ` +
        `later reports; choose another name, e.g. ${join(dirname(outPath), "report.html")}`,
    );
  };
  refuseRunFile(basename(outPath));
  let dest = resolve(outPath);
  try {
    if ((await Deno.lstat(dest)).isSymlink) {
      // Write to the link's target, as a plain write would, instead of replacing the link.
      const target = resolve(dirname(dest), await Deno.readLink(dest));
      try {
        dest = await Deno.realPath(dest);
      } catch {
        throw fail(outPath, `it is a symlink to ${target}, which does not exist; remove the link`);
      }
      refuseRunFile(basename(dest));
    }
    const info = await Deno.stat(dest);
    if (info.isDirectory) {
      throw fail(
        outPath,
        `that is a folder; give the report a file name, e.g. ${join(outPath, "report.html")}`,
      );
    }
    if (!info.isFile) {
      throw fail(outPath, "that is not a regular file (a device or a FIFO); choose a file path");
    }
  } catch (e) {
    if (e instanceof SgnError) throw e;
    // Not there yet (or a part of the path is not a folder, said below): fine so far.
    if (!(e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory)) {
      throw fail(outPath, `it cannot be checked (${(e as Error).message})`);
    }
  }
  const folder = dirname(dest);
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(folder);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw fail(
        outPath,
        `the folder ${folder} does not exist; create it first (mkdir -p ${folder}) or choose ` +
          "another path",
      );
    }
    if (e instanceof Deno.errors.NotADirectory) {
      throw fail(outPath, `${folder} is not a folder (a part of it is a file)`);
    }
    throw fail(outPath, `its folder ${folder} cannot be used (${(e as Error).message})`);
  }
  if (!info.isDirectory) throw fail(outPath, `${folder} is not a folder`);
  return join(await Deno.realPath(folder), basename(dest));
}

/**
 * Reads the runs of the sources, groups and summarises them, and writes the report to
 * `outPath`: one HTML file with chart.js and the data inline, which opens offline. A source is
 * `label=path`, a bare path (labelled after its folder, see `defaultLabel`) or a
 * {@link ReportSource}; paths may be globs, run folders or folders above them. Problems in the
 * input do not stop it (they are on the page and in the summary); no run at all throws
 * {@link NoRunsError}.
 *
 * The file is written whole or not at all (see `writeFileAtomic` in atomic.ts). `outPath` must
 * be a file in an existing folder, and never one of the report's inputs (a results.json or
 * config.json it looked at, or any file named so); a symlink there is written through. Each of
 * these is an {@link SgnError} saying what to do, thrown before the runs are read where it can
 * be; so is a failed write.
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
  const dest = await checkReportPath(outPath);
  const list = sources.map((s) => typeof s === "string" ? parseSourceArg(s) : s);
  const collection = await collectRuns(list, {
    maxEpochs: options.maxEpochs,
    limits: options.limits,
  });
  if (!collection.runs.length) throw new NoRunsError(list, collection.problems);
  if (collection.inputs.includes(dest)) {
    throw fail(
      outPath,
      `that is ${dest}, one of the report's inputs; choose another path, e.g. ${
        join(dirname(outPath), "report.html")
      }`,
    );
  }
  const html = buildReportHtml(collection, {
    title: options.title ?? "sgn training report",
    script: await bundlePageScript(),
    generatedAt: options.generatedAt,
    about: options.about,
  });
  try {
    await writeFileAtomic(dest, html);
  } catch (e) {
    throw fail(outPath, `${(e as Error).message}; check that the folder is writable and not full`);
  }
  return {
    outPath,
    runs: collection.runs.length,
    groups: collection.groups.length,
    labels: collection.groups.map((g) => g.label),
    problems: collection.problems,
    bytes: new TextEncoder().encode(html).length,
  };
}

/** Options of {@link writeRunReport}. */
export interface RunReportOptions {
  /** The folder searched for reference runs (default: sgn's committed runs, `COMMITTED_RESULTS`). */
  reference?: string;
  /** Time shown as the report's date (default now). */
  generatedAt?: Date;
}

/** What {@link writeRunReport} wrote. */
export interface RunReportSummary extends ReportSummary {
  /** The report's absolute path. */
  path: string;
  /** Its `file://` URL, to open in a browser. */
  url: string;
  /** The reference runs drawn, one set per folder; empty when there were none. */
  reference: ReferenceSet[];
  /** What the page says about the reference (also when there is none), one sentence each. */
  about: string[];
}

/** The legend's name of the run a {@link writeRunReport} is about. */
export const THIS_RUN = "this run";

/**
 * Writes `report.html` into a run folder (one with config.json and results.json, as `train`
 * writes them): the run drawn against its reference, the runs of the same configuration (data
 * set, network, solver and setting, batch size, precision; see `findReference`) in
 * `options.reference`, by default sgn's committed reproduction runs. The reference is drawn up to
 * the run's last epoch and labelled as such ("reference: sgn committed runs (results/mnist)");
 * the page says which other settings differ. Without a reference run the report still draws the
 * run, and says that no reference exists and why. Written whole or not at all, like
 * {@link writeReport}; a folder without a readable run throws {@link NoRunsError}, an unusable
 * `reference` folder an {@link SgnError}.
 *
 * @example
 * ```ts ignore
 * const r = await writeRunReport("runs/mnist_sgn3_20260101T120000");
 * console.log(r.reference.map((s) => s.label), r.about);
 * console.log(`open ${r.url} in a browser`);
 * ```
 */
export async function writeRunReport(
  runFolder: string,
  options: RunReportOptions = {},
): Promise<RunReportSummary> {
  const mine = await collectRuns([{ label: THIS_RUN, path: runFolder }]);
  const run = mine.runs[0];
  if (!run || mine.runs.length !== 1) {
    throw new SgnError(
      `cannot report on ${runFolder}: ${
        run
          ? "it holds several runs, give one run folder"
          : mine.problems.map((p) => `${p.file}: ${p.reason}`).join("; ") || "no run there"
      }`,
    );
  }
  const { config } = await readRunConfig(runFolder);
  const found = await findReference(config, { root: options.reference, exclude: runFolder });
  const epochs = run.avgLoss.length;
  const what = found.configuration ? describeConfiguration(found.configuration) : undefined;
  const about: string[] = [];
  for (const set of found.sets) {
    about.push(
      `${set.label}: ${set.runs.length} run${set.runs.length === 1 ? "" : "s"} of this run's ` +
        `configuration (${what}), drawn up to this run's last epoch (${epochs}). ` +
        (set.differences.length
          ? `Other settings differ: ${set.differences.join("; ")}.`
          : "No other setting differs."),
    );
  }
  if (!found.sets.length) {
    about.push(
      "No reference: " + (found.unavailable ??
        `no run under ${found.root} has this run's configuration (${what})`) +
        ". Only this run is drawn.",
    );
  }
  const sources: ReportSource[] = [
    { label: THIS_RUN, path: runFolder },
    ...found.sets.flatMap((s) => s.runs.map((path) => ({ label: s.label, path }))),
  ];
  const out = join(runFolder, "report.html");
  const summary = await writeReport(sources, out, {
    title: `${what ?? `${run.experiment} ${run.config}`}: this run ${
      found.sets.length ? "against its reference" : "(no reference run)"
    }`,
    maxEpochs: epochs,
    generatedAt: options.generatedAt,
    about,
  });
  const path = resolve(out);
  return {
    ...summary,
    problems: [...found.problems, ...summary.problems],
    path,
    url: pathToFileURL(path).href,
    reference: found.sets,
    about,
  };
}
