/**
 * Collecting the runs of a report: the run folders of each source (walk.ts), each read and named
 * (run.ts), and grouped (group.ts). Nothing here prints: every problem comes back as a
 * {@link Problem} naming its file, so one bad run never hides the others.
 *
 * @module
 */

import { basename, dirname, join, resolve } from "node:path";
import { checkConfig, parseLenientJson } from "../train/results.ts";
import { type Group, groupRuns } from "./group.ts";
import {
  configNaming,
  parseResults,
  parseRunName,
  type Problem,
  type Run,
  truncateRun,
} from "./run.ts";
import {
  exists,
  expandGlob,
  findRunDirs,
  GLOB,
  INPUT_LIMITS,
  type InputLimits,
  isDir,
  readInput,
  realPathOrUndefined,
  type ReportSource,
} from "./walk.ts";

/** What {@link collectRuns} found. */
export interface Collection {
  /** Each source with its label, its path and how many runs were read from it. */
  sources: { label: string; path: string; runs: number }[];
  /** Every run read, from all sources. */
  runs: Run[];
  /** The runs grouped by source, experiment and configuration (see {@link groupRuns}). */
  groups: Group[];
  /** Missing or malformed files met on the way. */
  problems: Problem[];
  /**
   * Absolute real paths of the input files: the results.json and config.json of every run
   * folder looked at (whether or not it exists or could be read) and, for symlinks, their
   * targets. The report refuses to write over any of them.
   */
  inputs: string[];
}

/**
 * Reads a run folder's config.json, as the report reads every input: a regular file of at most
 * `limits.configJson` bytes, JSON with Python's NaN and Infinity allowed. What stops it is a
 * {@link Problem} (not `skipped`: config.json only names a run), and `config` is then undefined.
 *
 * @example
 * ```ts ignore
 * const { config, problem } = await readRunConfig("results/mnist/res_SGN_3_1");
 * console.log(configNaming(config), problem?.reason);
 * ```
 */
export async function readRunConfig(
  dir: string,
  limits: InputLimits = INPUT_LIMITS,
): Promise<{ config?: unknown; problem?: Problem }> {
  const file = join(dir, "config.json");
  const read = await readInput(file, limits.configJson, "config.json");
  if ("missing" in read) return { problem: { file, reason: "missing", skipped: false } };
  if ("reason" in read) return { problem: { file, reason: read.reason, skipped: false } };
  try {
    return { config: parseLenientJson(read.text) };
  } catch (e) {
    return {
      problem: { file, reason: `not valid JSON (${(e as Error).message})`, skipped: false },
    };
  }
}

/** Reads one run folder: its results, and its name from the folder or config.json. */
async function readRun(
  dir: string,
  source: string,
  problems: Problem[],
  limits: InputLimits,
): Promise<Run | undefined> {
  const resultsFile = join(dir, "results.json");
  const results = await readInput(resultsFile, limits.resultsJson, "results.json");
  if ("missing" in results) {
    problems.push({
      file: resultsFile,
      reason: "missing (the run has not finished, or failed)",
      skipped: true,
    });
    return undefined;
  }
  if ("reason" in results) {
    problems.push({ file: resultsFile, reason: results.reason, skipped: true });
    return undefined;
  }
  // config.json only names the run: when it cannot be read, the run is still drawn.
  const { config, problem } = await readRunConfig(dir, limits);
  if (problem) problems.push(problem);
  for (const { reason } of config === undefined ? [] : checkConfig(config).issues) {
    problems.push({ file: join(dir, "config.json"), reason, skipped: false });
  }
  const parsed = parseResults(results.text, resultsFile);
  problems.push(...parsed.problems);
  if (!parsed.series) return undefined;

  const name = basename(resolve(dir));
  const parent = basename(dirname(resolve(dir)));
  let naming: { solver: string; setting: string; seed?: string };
  let experiment = parent;
  const fromName = parseRunName(name);
  const fromConfig = configNaming(config);
  if (fromName) {
    naming = fromName;
  } else if (fromConfig) {
    naming = fromConfig;
    // A folder not named res_<solver>_<setting>_<seed> was made by hand (e.g. --f res_mnist):
    // its parent says little, the data set it ran says what the experiment is.
    experiment = fromConfig.dataset ?? parent;
  } else {
    naming = { solver: name, setting: "" };
    problems.push({
      file: dir,
      reason: "name is not res_<solver>_<setting>_<seed> and config.json names no solver: " +
        "drawn on its own",
      skipped: false,
    });
  }
  return {
    ...parsed.series,
    source,
    dir,
    experiment,
    config: naming.setting ? `${naming.solver}_${naming.setting}` : naming.solver,
    solver: naming.solver,
    setting: naming.setting,
    seed: naming.seed,
  };
}

/** Options of {@link collectRuns}. */
export interface CollectOptions {
  /** Keep only the first this many epochs of every run (default: all). */
  maxEpochs?: number;
  /** Size limits of the input files, in bytes (default {@link INPUT_LIMITS}). */
  limits?: Partial<InputLimits>;
}

/**
 * Finds, reads, validates and groups the runs of the sources. A source path may be a run
 * folder, any folder above run folders (searched recursively), a results.json, or a glob. A
 * missing, malformed, oversized (see {@link INPUT_LIMITS}) or irregular file (a FIFO, a device, a
 * folder) is a {@link Problem} and the other runs are still collected; a run reached twice
 * under one label counts once. Symlinked folders are followed, each real folder once.
 *
 * @example
 * ```ts ignore
 * const c = await collectRuns([
 *   { label: "ours", path: "results/mnist" },
 *   { label: "seed", path: "../shared/seed/results/mnist/res_SGN_3_*" },
 * ]);
 * for (const g of c.groups) console.log(g.label, g.final.metric?.mean);
 * for (const p of c.problems) console.log(`${p.file}: ${p.reason}`);
 * ```
 */
export async function collectRuns(
  sources: readonly ReportSource[],
  options: CollectOptions = {},
): Promise<Collection> {
  const max = options.maxEpochs;
  if (max !== undefined && !(Number.isInteger(max) && max >= 1)) {
    throw new RangeError(`maxEpochs must be a positive integer, got ${max}`);
  }
  const limits = { ...INPUT_LIMITS, ...options.limits };
  for (const [key, v] of Object.entries(limits)) {
    if (!(Number.isSafeInteger(v) && v >= 1)) {
      throw new RangeError(`limits.${key} must be a positive number of bytes, got ${v}`);
    }
  }
  const problems: Problem[] = [];
  const runs: Run[] = [];
  const inputs = new Set<string>();
  const seen = new Set<string>();
  const summary: Collection["sources"] = [];
  for (const source of sources) {
    let count = 0;
    const paths = GLOB.test(source.path)
      ? await expandGlob(source.path)
      : await exists(source.path)
      ? [source.path]
      : [];
    if (!paths.length) {
      const reason = GLOB.test(source.path) ? "matches nothing" : "no such file or folder";
      problems.push({ file: source.path, reason, skipped: true });
    }
    for (const path of paths) {
      const dirs = !(await isDir(path)) && /\.json$/.test(path)
        ? [dirname(path)]
        : await findRunDirs(path);
      if (!dirs.length) {
        problems.push({ file: path, reason: "holds no results.json at any depth", skipped: true });
      }
      for (const dir of dirs) {
        const real = await realPathOrUndefined(dir);
        if (real === undefined) {
          problems.push({ file: dir, reason: "is gone, or not a folder", skipped: true });
          continue;
        }
        for (const name of ["results.json", "config.json"]) {
          inputs.add(join(real, name));
          const target = await realPathOrUndefined(join(real, name));
          if (target !== undefined) inputs.add(target);
        }
        const key = `${source.label}\u0000${real}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const run = await readRun(dir, source.label, problems, limits);
        if (run) {
          runs.push(max === undefined ? run : truncateRun(run, max));
          count++;
        }
      }
    }
    summary.push({ label: source.label, path: source.path, runs: count });
  }
  const order = [...new Set(sources.map((s) => s.label))];
  return { sources: summary, runs, groups: groupRuns(runs, order), problems, inputs: [...inputs] };
}
