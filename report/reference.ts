/**
 * Reference runs for the report of one training run: runs of the same configuration found in a
 * folder of results, by default the project's own committed reproduction runs (results/ beside
 * this module). A configuration is what the comparison is about: data set, network, solver with
 * its setting (CG iterations or learning rate), batch size and precision, read from config.json.
 * Other settings that differ (the CG iterations of the first steps, the backend, ...) do not
 * rule a run out; they are listed so that the page can say so.
 *
 * @module
 */

import { basename, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { SgnError } from "../errors.ts";
import { checkConfig } from "../train/results.ts";
import { readRunConfig } from "./collect.ts";
import { configNaming, type Problem } from "./run.ts";
import { findRunDirs } from "./walk.ts";

/** What makes two runs comparable: the same value of every field. */
export interface Configuration {
  /** The data set, e.g. "mnist". */
  dataset: string;
  /** "MLP 20-20-20" (hidden layers) or the conv net's architecture. */
  network: string;
  /** "SGN", "SGD" or "Adam". */
  solver: string;
  /** CG iterations (SGN) or learning rate (SGD, Adam), as in run folder names. */
  setting: string;
  /** Mini-batch size. */
  batchSize: number;
  /** "float32" or "float64". */
  dtype: string;
}

/**
 * The configuration a config.json (ours) records, or undefined when it lacks a part of one (the
 * seed's files name no data set or precision).
 *
 * @example
 * ```ts
 * import { configurationOf, describeConfiguration } from "./reference.ts";
 * const c = configurationOf({
 *   config: { SOLVER: "SGN", MAX_CG_ITERS: 3, BATCH_SIZE: 1000 },
 *   layers: [20, 20, 20],
 *   dataset: "mnist",
 *   dtype: "float32",
 * });
 * console.log(describeConfiguration(c!)); // mnist, MLP 20-20-20, SGN_3, batch 1000, float32
 * ```
 */
export function configurationOf(config: unknown): Configuration | undefined {
  const naming = configNaming(config);
  const c = checkConfig(config).config;
  if (!naming?.dataset || !c) return undefined;
  const network = c.architecture ?? (c.layers ? `MLP ${c.layers.join("-")}` : undefined);
  const batchSize = c["config.BATCH_SIZE"];
  if (network === undefined || batchSize === undefined || c.dtype === undefined) return undefined;
  return {
    dataset: naming.dataset,
    network,
    solver: naming.solver,
    setting: naming.setting,
    batchSize,
    dtype: c.dtype,
  };
}

/**
 * A configuration in words, e.g. "mnist, MLP 20-20-20, SGN_3, batch 1000, float32".
 *
 * @example
 * ```ts
 * import { describeConfiguration } from "./reference.ts";
 * const c = { dataset: "sine_10", network: "MLP 8", solver: "SGD", setting: "0.1", batchSize: 500, dtype: "float64" };
 * console.log(describeConfiguration(c)); // sine_10, MLP 8, SGD_0.1, batch 500, float64
 * ```
 */
export function describeConfiguration(c: Configuration): string {
  return `${c.dataset}, ${c.network}, ${c.solver}_${c.setting}, batch ${c.batchSize}, ${c.dtype}`;
}

function sameConfiguration(a: Configuration, b: Configuration): boolean {
  return (Object.keys(a) as (keyof Configuration)[]).every((k) => a[k] === b[k]);
}

/**
 * The folder of the committed runs that holds issue 22's ablation (results/ablation, see
 * results/README.md): runs of SGN with options beyond the seed's, left out of the reference.
 */
export const ABLATION_FOLDER = "ablation";

function committedResults(): string | undefined {
  const url = new URL("../results", import.meta.url);
  return url.protocol === "file:" ? fileURLToPath(url) : undefined;
}

/**
 * The project's committed reproduction runs: the results/ folder beside this module, or
 * undefined when the module was not loaded from local files (imported by URL).
 *
 * @example
 * ```ts ignore
 * console.log(COMMITTED_RESULTS); // /home/me/sgn/results
 * ```
 */
export const COMMITTED_RESULTS: string | undefined = committedResults();

/** Runs of one folder that have a run's configuration. */
export interface ReferenceSet {
  /** The legend's source name, e.g. "reference: sgn committed runs (results/mnist)". */
  label: string;
  /** The folder holding the runs. */
  folder: string;
  /** The run folders, sorted. */
  runs: string[];
  /**
   * Settings outside the configuration on which these runs and the run differ, e.g.
   * `MIN_CG_ITERS: this run 3, reference 10`.
   */
  differences: string[];
}

/** What {@link findReference} found. */
export interface ReferenceSearch {
  /** The run's configuration; undefined when its config.json does not give one. */
  configuration?: Configuration;
  /** The folder searched; undefined when there was none to search. */
  root?: string;
  /** True when `root` is the project's committed runs ({@link COMMITTED_RESULTS}). */
  committed: boolean;
  /** Reference runs, one set per folder; empty when none has the run's configuration. */
  sets: ReferenceSet[];
  /** Why nothing could be searched, when that is so. */
  unavailable?: string;
  /** Unreadable config.json files met on the way (those runs are not taken). */
  problems: Problem[];
}

/** Options of {@link findReference}. */
export interface ReferenceOptions {
  /** The folder to search (default {@link COMMITTED_RESULTS}). */
  root?: string;
  /** A run folder never to take (the run itself, when it lies under `root`). */
  exclude?: string;
}

/**
 * Keys that differ from run to run of one configuration by design, not worth a word: the seed,
 * the length, the printing, and the curvature diagnostics (which change neither the training nor
 * its times).
 */
const PER_RUN = new Set([
  "seed",
  "epochs",
  "EPOCHS",
  "PRINT_LEVEL",
  "diagnose",
  "diagnose_lanczos",
  "diagnose_probes",
]);

/** A config.json's settings, the seed's block flattened beside ours. */
function settingsOf(config: unknown): Map<string, unknown> {
  const out = new Map<string, unknown>();
  const top = config as Record<string, unknown>;
  const block = top.config as Record<string, unknown>;
  for (const [k, v] of [...Object.entries(top), ...Object.entries(block)]) {
    if (k !== "config" && !PER_RUN.has(k)) out.set(k, v);
  }
  return out;
}

function show(v: unknown): string {
  return v === undefined ? "not set" : JSON.stringify(v);
}

function differences(mine: unknown, theirs: unknown[]): string[] {
  const a = settingsOf(mine);
  const others = theirs.map(settingsOf);
  const keys = new Set([...a.keys(), ...others.flatMap((o) => [...o.keys()])]);
  const out: string[] = [];
  for (const k of keys) {
    const values = new Set(others.map((o) => show(o.get(k))));
    if (values.size === 1 && values.has(show(a.get(k)))) continue;
    out.push(`${k}: this run ${show(a.get(k))}, reference ${[...values].join(" or ")}`);
  }
  return out;
}

/**
 * Checks that `path` is a folder to search for reference runs; throws an {@link SgnError}
 * naming it otherwise.
 *
 * @example
 * ```ts ignore
 * await checkReferenceRoot("results"); // fine; "nowhere" would throw
 * ```
 */
export async function checkReferenceRoot(path: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    throw new SgnError(
      `--reference: ${path} ${
        e instanceof Deno.errors.NotFound ? "does not exist" : `cannot be read (${e})`
      }; give a folder of runs (res_<solver>_<setting>_<seed> folders with config.json)`,
    );
  }
  if (!info.isDirectory) throw new SgnError(`--reference: ${path} is not a folder`);
}

/**
 * Finds the runs under `options.root` (default: the committed runs) that have the configuration
 * recorded in `config` (a run's config.json), grouped by folder and labelled as references.
 * Folders moved aside as stale (`*.stale-*`) are not taken. A `root` that is not a folder throws
 * an {@link SgnError}; committed runs that are not on this machine give no sets and a reason.
 *
 * @example
 * ```ts ignore
 * const config = JSON.parse(await Deno.readTextFile("runs/mine/config.json"));
 * const found = await findReference(config, { exclude: "runs/mine" });
 * for (const s of found.sets) console.log(s.label, s.runs.length, s.differences);
 * ```
 */
export async function findReference(
  config: unknown,
  options: ReferenceOptions = {},
): Promise<ReferenceSearch> {
  const configuration = configurationOf(config);
  const root = options.root ?? COMMITTED_RESULTS;
  const committed = root !== undefined && COMMITTED_RESULTS !== undefined &&
    resolve(root) === resolve(COMMITTED_RESULTS);
  const none = (unavailable: string): ReferenceSearch => ({
    configuration,
    root,
    committed,
    sets: [],
    unavailable,
    problems: [],
  });
  if (root === undefined) {
    return none(
      "sgn's committed runs are not on this machine (the module was not loaded from " +
        "local files); give a folder of runs with --reference",
    );
  }
  if (options.root !== undefined) await checkReferenceRoot(root);
  else if (!(await Deno.stat(root).then((s) => s.isDirectory, () => false))) {
    return none(`sgn's committed runs (${root}) are not on this machine`);
  }
  if (!configuration) {
    return none(
      "this run's config.json does not record a whole configuration (data set, " +
        "network, solver and setting, batch size, precision)",
    );
  }
  const excluded = options.exclude === undefined
    ? undefined
    : await Deno.realPath(options.exclude).catch(() => resolve(options.exclude!));
  const problems: Problem[] = [];
  const byFolder = new Map<string, { dir: string; config: unknown }[]>();
  const ablation = resolve(root, ABLATION_FOLDER);
  for (const dir of await findRunDirs(root)) {
    if (/\.stale-/.test(dir)) continue;
    // The committed ablation runs vary SGN's options under one configuration's name: not a
    // reproduction to draw a run against.
    if (committed && resolve(dir).startsWith(ablation + "/")) continue;
    if (excluded !== undefined && await Deno.realPath(dir).catch(() => dir) === excluded) continue;
    const read = await readRunConfig(dir);
    if (read.problem) {
      if (read.problem.reason !== "missing") problems.push(read.problem);
      continue;
    }
    const theirs = configurationOf(read.config);
    if (!theirs || !sameConfiguration(theirs, configuration)) continue;
    const folder = dirname(dir);
    byFolder.set(folder, [...(byFolder.get(folder) ?? []), { dir, config: read.config }]);
  }
  const sets = [...byFolder].sort(([a], [b]) => a.localeCompare(b)).map(([folder, runs]) => {
    const where = committed
      ? `sgn committed runs (${join(basename(resolve(root)), relative(root, folder))})`
      : `runs in ${folder}`;
    return {
      label: `reference: ${where}`,
      folder,
      runs: runs.map((r) => r.dir).sort(),
      differences: differences(config, runs.map((r) => r.config)),
    };
  });
  return { configuration, root, committed, sets, problems };
}
