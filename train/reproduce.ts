/**
 * The seed's experiment grids (its README and results/ folders: which solvers, learning rates or
 * CG iterations, and seeds each experiment ran), turned into `train` runs. {@link reproduce}
 * runs a grid into a results folder, skipping runs already done, so an interrupted reproduction
 * resumes where it stopped. cli.ts `reproduce` is its command-line face; this module never
 * prints.
 *
 * @module
 */

import { SgnError } from "../errors.ts";
import { runConfig, runExperiment } from "./experiment.ts";
import {
  resolveSettings,
  settingsFromOptions,
  settingsToArgs,
  type TrainSettings,
} from "./settings.ts";
import { SEED_PRESET } from "../sgn/options.ts";
import { InterruptedError, type ProgressEvent } from "./loop.ts";
import { fsError, moveAside, type RunState, runState, RunTakenError } from "./run_folder.ts";

/** One experiment of the seed: its data and network flags and the settings it swept. */
export interface ExperimentGrid {
  /** What the seed's README says the experiment is. */
  description: string;
  /** Settings shared by every run: data set, network, batch size. */
  base: Partial<TrainSettings>;
  /** SGD learning rates of the seed's runs. */
  sgd: number[];
  /** SGN CG iteration counts (MAX_CG_ITERS) of the seed's runs. */
  sgn: number[];
  /** Our default number of epochs (the seed ran 10 to 600; its per-epoch curves are what count). */
  epochs: number;
  /** Settings of single configurations, where the seed's config.json differs from `base`. */
  overrides?: Record<string, Partial<TrainSettings>>;
  /**
   * Further configurations of grids of our own (the ablations), by name
   * (`<solver>_<setting>`, e.g. "Adam_0.001" or "SGN_3+fisher", as run folders are named): the
   * solver's settings on top of `base`.
   */
  variants?: Record<string, Partial<TrainSettings>>;
  /**
   * What an ablation measures the time to: the seed's published mean test accuracy of SGN(3)
   * after `epoch` epochs (REFERENCE-RESULTS.md).
   */
  target?: { testAcc: number; epoch: number };
}

const MLP_20: Partial<TrainSettings> = { layers: [20, 20, 20] };

/** The seed preset's group name, "SGN_3" (its CG iterations, as the seed names run folders). */
const SEED_GROUP = `SGN_${SEED_PRESET.cgMaxIters}`;

/** The ablation's configurations beside the seed's SGN_3 and SGD: Adam, and SGN(3) plus each option. */
function ablationVariants(): Record<string, Partial<TrainSettings>> {
  return {
    "Adam_0.001": { solver: "Adam", lr: 0.001 },
    ...Object.fromEntries(
      Object.entries(ABLATION_OPTIONS).map(([name, s]) => [
        `${SEED_GROUP}+${name}`,
        { ...SGN_SETTINGS, ...s },
      ]),
    ),
  };
}

/** The options the ablation tries on top of the seed's SGN(3), alone (and combined), by name. */
const ABLATION_OPTIONS: Record<string, Partial<TrainSettings>> = {
  // Martens (2010): the previous solution decayed by 0.95 as CG's start.
  "warm0.95": { cg_warm_start: 0.95 },
  // The relative-progress stop decides within a budget of 50 (with the seed's 3 it never can:
  // it waits at least 10 iterations).
  relstop50: { cg_stop: "relative", cg_max_iter: 50, cg_min_iter: 50 },
  backtrack: { cg_backtrack: true },
  // A quarter of the batch for CG's products (Martens 2010; Byrd et al. 2011).
  "cb0.25": { curvature_batch: 0.25 },
  hessian: { curvature: "hessian" },
  fisher: { curvature: "fisher" },
  // The combination, chosen from the options alone on MNIST (results/README.md): backtracking,
  // the only one that took fewer epochs, with the quarter batch, the only one cheaper per epoch.
  "backtrack+cb0.25": { cg_backtrack: true, curvature_batch: 0.25 },
};

/**
 * The seed's SGN settings in every experiment: its preset (SGN_3; the grids set cg_max_iter) with
 * the seed's Armijo test (its right-hand side computed once, with the initial step size).
 */
const SGN_SETTINGS: Partial<TrainSettings> = {
  solver: "SGN",
  ...settingsFromOptions("SGN", SEED_PRESET),
  armijo: "seed",
};
/** The seed's SGD settings: constant learning rate, no momentum. */
const SGD_SETTINGS: Partial<TrainSettings> = { solver: "SGD", mom: 0, scheduler: "const" };

/** The seed's grids, read off its results/ folders and their config.json files. */
export const GRIDS: Record<string, ExperimentGrid> = {
  mnist: {
    description: "MNIST, MLP 784-20-20-20-10 (sigmoid), batch 1000",
    base: { dataset: "mnist", ...MLP_20, batch_size: 1000 },
    sgd: [0.001, 0.01, 0.1, 1, 10],
    sgn: [1, 2, 3, 5, 10],
    epochs: 5,
    // The seed's SGN_1 and SGN_2 MNIST runs used a 784-10-10-10 network (their config.json).
    overrides: { SGN_1: { layers: [10, 10] }, SGN_2: { layers: [10, 10] } },
  },
  fashion: {
    description: "Fashion-MNIST, conv net architecture_1, batch 1000",
    base: { dataset: "fashion", architecture: "architecture_1", batch_size: 1000 },
    sgd: [0.001, 0.01, 0.1, 1],
    sgn: [1, 2, 3, 5, 10],
    epochs: 2,
  },
  cifar10: {
    description: "CIFAR-10, conv net architecture_4, batch 1000 (files from --data-dir)",
    base: { dataset: "cifar10", architecture: "architecture_4", batch_size: 1000 },
    sgd: [0.001, 0.01, 0.1, 1],
    sgn: [1, 2, 3, 5, 10],
    epochs: 1,
  },
  boston: {
    description: "Boston housing, MLP 13-100-100-1 (sigmoid), MSE, batch 101",
    base: { dataset: "boston", layers: [100, 100], batch_size: 101 },
    sgd: [0.001, 0.01, 0.1, 1],
    sgn: [1, 2, 3, 5, 10, 20],
    epochs: 10,
  },
  sine_10: {
    description: "sine wave f = 10, MLP 1-20-20-20-1 (sigmoid), MSE, batch 1000",
    base: { dataset: "sine_10", ...MLP_20, batch_size: 1000 },
    sgd: [0.001, 0.01, 0.1, 1],
    sgn: [2, 3, 5, 10, 20, 30, 40],
    epochs: 10,
  },
  sine_100: {
    description: "sine wave f = 100, MLP 1-20-20-20-1 (sigmoid), MSE, batch 1000",
    base: { dataset: "sine_100", ...MLP_20, batch_size: 1000 },
    sgd: [0.001, 0.01, 0.1, 1],
    sgn: [2, 3, 5, 10, 20, 30, 40],
    epochs: 10,
  },
};

/**
 * Grids of our own (issue 22's ablation): the seed's SGN(3) against each of our options alone
 * and their best combination, with SGD (the seed's best rate) and Adam beside it; epochs one
 * past the epoch whose test accuracy is the target (results/ablation.ts).
 */
export const ABLATIONS: Record<string, ExperimentGrid> = {
  ablation_mnist: {
    description: "Ablation: MNIST, MLP 784-20-20-20-10 (sigmoid), batch 1000",
    base: { dataset: "mnist", ...MLP_20, batch_size: 1000 },
    sgd: [1],
    sgn: [SEED_PRESET.cgMaxIters],
    epochs: 6,
    variants: ablationVariants(),
    target: { testAcc: 0.9190, epoch: 5 },
  },
  ablation_fashion: {
    description: "Ablation: Fashion-MNIST, conv net architecture_1, batch 1000",
    base: { dataset: "fashion", architecture: "architecture_1", batch_size: 1000 },
    sgd: [0.1],
    sgn: [SEED_PRESET.cgMaxIters],
    epochs: 3,
    variants: ablationVariants(),
    target: { testAcc: 0.8521, epoch: 2 },
  },
};

/** Every experiment `reproduce` runs: the seed's grids, then ours. */
export const EXPERIMENTS: Record<string, ExperimentGrid> = { ...GRIDS, ...ABLATIONS };

/** One planned run: its folder name (the seed's `res_<group>_<seed>`) and its `train` flags. */
export interface PlannedRun {
  /** Configuration, e.g. "SGN_3" or "SGD_0.1". */
  group: string;
  seed: number;
  /** Folder name, e.g. "res_SGN_3_1". */
  name: string;
  /** The run's settings, checked. */
  settings: TrainSettings;
  /** The same as `train` flags (what --dry-run prints; they parse back to `settings`). */
  args: string[];
}

/** Options of {@link planRuns} and {@link reproduce}. */
export interface ReproduceOptions {
  /** Configurations to run, e.g. ["SGN_3", "SGD_1"] (default: the whole grid). */
  runs?: string[];
  /** Seeds (default 1-5, as the seed). */
  seeds?: number[];
  /** Epochs per run (default: the grid's). */
  epochs?: number;
  /** Folder that receives `<experiment>/res_*` (default "results"). */
  path?: string;
  /** Extra settings for every run (e.g. `{ backend: "cpu" }`, `{ "data-dir": DIR }`). */
  extra?: Partial<TrainSettings>;
  /**
   * This process's share of the grid: runs whose position in the full plan is `index - 1`
   * modulo `count` (index from 1), so N processes with shards 1/N .. N/N cover the grid once.
   */
  shard?: { index: number; count: number };
  /** Stops the grid between two steps of a run (the run is marked interrupted). */
  signal?: AbortSignal;
  /** A claim without a heartbeat for this long (ms) is stale (default 30 minutes). */
  staleMs?: number;
}

/** The configurations of a grid, SGD first, in the seed's naming. */
export function gridGroups(grid: ExperimentGrid): string[] {
  return [
    ...grid.sgd.map((lr) => `SGD_${lr}`),
    ...grid.sgn.map((k) => `SGN_${k}`),
    ...Object.keys(grid.variants ?? {}),
  ];
}

function gridOf(experiment: string): ExperimentGrid {
  const grid = Object.hasOwn(EXPERIMENTS, experiment) ? EXPERIMENTS[experiment] : undefined;
  if (!grid) {
    throw new SgnError(
      `unknown experiment "${experiment}" (available: ${Object.keys(EXPERIMENTS).join(", ")})`,
    );
  }
  return grid;
}

/**
 * The runs of an experiment's grid, as `train` flags.
 *
 * @example
 * ```ts
 * import { planRuns } from "./reproduce.ts";
 * const runs = planRuns("mnist", { runs: ["SGN_3"], seeds: [1, 2] });
 * console.log(runs.map((r) => r.name)); // ["res_SGN_3_1", "res_SGN_3_2"]
 * ```
 */
export function planRuns(experiment: string, options: ReproduceOptions = {}): PlannedRun[] {
  const grid = gridOf(experiment);
  const all = gridGroups(grid);
  const groups = options.runs ?? all;
  for (const g of groups) {
    if (!all.includes(g)) {
      throw new SgnError(
        `${experiment} has no configuration "${g}" in the seed's grid (available: ${
          all.join(", ")
        })`,
      );
    }
  }
  const seeds = options.seeds ?? [1, 2, 3, 4, 5];
  if (seeds.length === 0 || seeds.some((s) => !Number.isInteger(s) || s < 0 || s > MAX_SEED)) {
    throw new SgnError(
      `seeds must be integers from 0 to ${MAX_SEED}, got ${seeds.slice(0, 10).join(", ")}`,
    );
  }
  if (seeds.length > MAX_SEEDS) {
    throw new SgnError(`at most ${MAX_SEEDS} seeds per grid, got ${seeds.length}`);
  }
  const epochs = options.epochs ?? grid.epochs;
  if (!Number.isInteger(epochs) || epochs < 1 || epochs > MAX_EPOCHS) {
    throw new SgnError(`epochs must be an integer from 1 to ${MAX_EPOCHS}, got ${epochs}`);
  }
  const shard = options.shard;
  if (
    shard &&
    !(Number.isInteger(shard.count) && Number.isInteger(shard.index) && shard.count >= 1 &&
      shard.index >= 1 && shard.index <= shard.count && shard.count <= 100000)
  ) {
    throw new SgnError(
      `shard must be I/N with 1 <= I <= N (e.g. 2/8), got ${shard.index}/${shard.count}`,
    );
  }
  const folder = resultsFolder(experiment, options.path);
  const out: PlannedRun[] = [];
  for (const group of groups) {
    const [solver, setting] = group.split("_");
    const solverSettings: Partial<TrainSettings> =
      grid.variants && Object.hasOwn(grid.variants, group)
        ? grid.variants[group]
        : solver === "SGN"
        ? { ...SGN_SETTINGS, cg_max_iter: Number(setting) }
        : { ...SGD_SETTINGS, lr: Number(setting) };
    for (const seed of seeds) {
      const name = `res_${group}_${seed}`;
      const given: Partial<TrainSettings> = {
        ...grid.base,
        ...solverSettings,
        ...(grid.overrides?.[group] ?? {}),
        epochs,
        seed,
        path: folder,
        f: name,
        ...(options.extra ?? {}),
      };
      out.push({
        group,
        seed,
        name,
        settings: resolveSettings(given),
        args: settingsToArgs(given),
      });
    }
  }
  return shard ? out.filter((_, i) => i % shard.count === shard.index - 1) : out;
}

/** The folder that holds an experiment's runs: `<path>/<experiment>` (path default "results"). */
export function resultsFolder(experiment: string, path = "results"): string {
  return `${path.replace(/\/+$/, "") || "."}/${experiment}`;
}

/** Bounds of a grid (checked up front, so a typo does not plan a billion runs). */
const MAX_SEED = 2 ** 32 - 1;
const MAX_SEEDS = 10000;
const MAX_EPOCHS = 100000;

/** What {@link reproduce} reports as it goes. */
export type ReproduceEvent =
  | { kind: "start"; run: PlannedRun; index: number; total: number }
  | { kind: "skip"; run: PlannedRun; index: number; total: number }
  | { kind: "busy"; run: PlannedRun; index: number; total: number; claim: string }
  | { kind: "stale"; run: PlannedRun; index: number; total: number; why: string; to: string }
  | { kind: "done"; run: PlannedRun; index: number; total: number; seconds: number }
  | { kind: "failed"; run: PlannedRun; index: number; total: number; error: string }
  | { kind: "progress"; run: PlannedRun; event: ProgressEvent };

/** The outcome of {@link reproduce}: the experiment's folder and each run's fate. */
export interface ReproduceSummary {
  folder: string;
  ran: string[];
  /** Runs already finished. */
  skipped: string[];
  /** Runs that another process is training (or claimed first). */
  busy: string[];
  failed: { name: string; error: string }[];
}

/**
 * Runs an experiment's grid (see {@link planRuns}) one run after another. A run counts as done
 * only when its results.json parses, says it finished and holds every epoch, and its config.json
 * records the settings this grid asks for (every setting, the epochs, the precision); a finished
 * run of other settings is left alone and listed as failed. A run whose process lives on this
 * host is left to it whatever its heartbeat says (a stalled heartbeat is reported); on another
 * host, while its heartbeat is fresh. Anything else (a crashed, diverged or interrupted run, a
 * dead or unreadable claim) is moved aside to `<run>.stale-<id>` and run afresh. Every run
 * folder is claimed exclusively, so any number of `reproduce` processes (on one machine or
 * sharing a file system, some possibly killed and restarted) pointed at one results folder run
 * every run exactly once. A run that fails (bad data directory, a diverged step, a path that is
 * a file or a symbolic link) is recorded and the grid goes on; an invalid flag fails before
 * anything runs; an interruption stops the grid.
 *
 * @example
 * ```ts ignore
 * import { reproduce } from "./reproduce.ts";
 * const summary = await reproduce("sine_10", { runs: ["SGN_10"], seeds: [1], epochs: 2 });
 * console.log(summary.ran, summary.failed);
 * ```
 */
export async function reproduce(
  experiment: string,
  options: ReproduceOptions = {},
  onEvent?: (e: ReproduceEvent) => void,
): Promise<ReproduceSummary> {
  // Every run's settings are checked here, up front: a typo must not surface after hours.
  const runs = planRuns(experiment, options);
  const folder = resultsFolder(experiment, options.path);
  const summary: ReproduceSummary = { folder, ran: [], skipped: [], busy: [], failed: [] };
  for (const [index, run] of runs.entries()) {
    const total = runs.length;
    const runDir = `${folder}/${run.name}`;
    const fail = (error: string) => {
      summary.failed.push({ name: run.name, error });
      onEvent?.({ kind: "failed", run, index, total, error });
    };
    // One odd folder (a dangling link, a file, a name too long to move aside) is that run's
    // failure, recorded; the grid goes on.
    let state: RunState;
    try {
      state = await runState(
        runDir,
        run.settings.epochs,
        options.staleMs,
        runConfig(run.settings, ""),
      );
    } catch (e) {
      fail(fsError(e, `cannot read the run folder ${runDir}`).message);
      continue;
    }
    if (state.kind === "finished") {
      summary.skipped.push(run.name);
      onEvent?.({ kind: "skip", run, index, total });
      continue;
    }
    if (state.kind === "other" || state.kind === "bad") {
      fail(state.why);
      continue;
    }
    if (state.kind === "live") {
      summary.busy.push(run.name);
      const claim = state.stalled ? `${state.claim}; ${state.stalled}` : state.claim;
      onEvent?.({ kind: "busy", run, index, total, claim });
      continue;
    }
    if (state.kind === "stale") {
      let to: string | undefined;
      try {
        to = await moveAside(runDir, state.id);
      } catch (e) {
        fail(fsError(e, `cannot move the stale run ${runDir} aside`).message);
        continue;
      }
      if (!to) {
        summary.busy.push(run.name);
        onEvent?.({ kind: "busy", run, index, total, claim: "another process took it over" });
        continue;
      }
      onEvent?.({ kind: "stale", run, index, total, why: state.why, to });
    }
    onEvent?.({ kind: "start", run, index, total });
    const t0 = performance.now();
    try {
      await runExperiment(
        run.settings,
        (event) => onEvent?.({ kind: "progress", run, event }),
        undefined,
        options.signal,
      );
      summary.ran.push(run.name);
      onEvent?.({ kind: "done", run, index, total, seconds: (performance.now() - t0) / 1000 });
    } catch (e) {
      if (e instanceof RunTakenError) {
        summary.busy.push(run.name);
        onEvent?.({ kind: "busy", run, index, total, claim: e.message });
        continue;
      }
      if (e instanceof InterruptedError) throw e;
      // A file-system error is this run's; anything else is a bug, and stops the grid.
      if (!(e instanceof SgnError) && !Object.values(Deno.errors).some((c) => e instanceof c)) {
        throw e;
      }
      fail(fsError(e, `run ${run.name}`).message);
    }
  }
  return summary;
}
