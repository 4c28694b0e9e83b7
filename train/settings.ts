/**
 * The training settings: one table row per setting of a run (the seed's mlp.py / conv_net.py
 * flags and ours), with its flag, the option it sets, its config.json key, its default, its
 * check and its help text. The command-line parser, `--help`, config.json, the optimizers'
 * options and `reproduce`'s typed grids all come from this table, so a new training setting is
 * one new row.
 *
 * Defaults are the seed's scripts' (mlp.py: TR on, DAMP_RHO_MIN 1e-6, K 1000), which differ on
 * purpose from the optimizer classes' own defaults (`SGN_DEFAULTS`, the seed's SGN class).
 *
 * A row that sets an optimizer's option takes that option's rule or choices (`SGN_RULES`, ...):
 * the command line accepts exactly what the optimizer accepts.
 *
 * @module
 */

import { SgnError } from "../errors.ts";
import { checkFlag, flagHelp, type FlagSpec, parseFlags } from "./flags.ts";
import { BACKEND_CHOICES, noFloat64 } from "../autodiff/device.ts";
import {
  ARMIJO_CHOICES,
  CG_STOP_CHOICES,
  CURVATURES,
  type OptionRule,
  RHO_DECAYS,
  type Rule,
  SGN_DEFAULTS,
  SGN_RULES,
  type SgnOptions,
} from "../sgn/options.ts";
import {
  ADAM_RULES,
  type AdamOptions,
  LR_SCHEDULES,
  SGD_RULES,
  type SgdOptions,
} from "../sgn/baselines.ts";

/** The optimizers a run can use. */
export type Solver = "SGN" | "SGD" | "Adam";

/** One setting: a flag of the one parser (flags.ts) and where its value goes. */
export interface SettingSpec extends FlagSpec {
  kind: "string" | "choice" | "int" | "number" | "bool" | "ints";
  /** The default, typed as the setting (every setting has one). */
  default: string | number | boolean | readonly number[];
  /** The option of SGN, SGD or Adam that it sets. */
  option?: { SGN?: keyof SgnOptions; SGD?: keyof SgdOptions; Adam?: keyof AdamOptions };
  /** Its key in config.json's seed block (`config`), for the solvers it applies to. */
  seedKey?: { SGN?: string; SGD?: string; Adam?: string };
  /** Its key at config.json's top level (written for every run, unless `recordIf` says no). */
  recordKey?: string;
  /**
   * Its `seedKey` is written only when the value is not the default: a setting added after runs
   * were committed, whose config.json files lack it (absent means the default), so that a run
   * with the defaults writes the config.json it wrote before (and its report lists no difference).
   */
  omitDefault?: boolean;
  /**
   * When given, `recordKey` is written only for runs whose settings it accepts (a setting that
   * is off by default leaves config.json as it was without it).
   */
  recordIf?: (settings: Readonly<Record<string, unknown>>) => boolean;
}

/** Whether a run measures curvature diagnostics (its --diagnose rows go into config.json). */
function diagnosing(s: Readonly<Record<string, unknown>>): boolean {
  return typeof s.diagnose === "number" && s.diagnose > 0;
}

/** The rows as written: those that set an optimizer's option without their check. */
const ROWS = {
  dataset: {
    kind: "choice",
    choices: ["mnist", "fashion", "cifar10", "boston", "sine_10", "sine_100"],
    default: "boston",
    help: "mnist | fashion | cifar10 | boston | sine_10 | sine_100",
    recordKey: "dataset",
  },
  layers: {
    kind: "ints",
    default: [16, 16],
    min: 1,
    max: 100000,
    help: "hidden layer sizes of the MLP, e.g. --layers 20 20 20 (at most 100 layers)",
  },
  architecture: {
    kind: "string",
    default: "",
    help: "conv net: architecture_1..4 or a path to a JSON spec (default: MLP)",
  },
  solver: {
    kind: "choice",
    choices: ["SGN", "SGD", "Adam"],
    default: "SGN",
    help: "SGN | SGD | Adam",
    seedKey: { SGN: "SOLVER", SGD: "SOLVER", Adam: "SOLVER" },
  },
  epochs: {
    kind: "int",
    default: 1,
    min: 1,
    max: 100000,
    help: "number of epochs",
    seedKey: { SGD: "EPOCHS" },
    recordKey: "epochs",
  },
  batch_size: {
    kind: "int",
    default: 1000,
    min: 1,
    max: 10000000,
    help: "mini-batch size",
    seedKey: { SGN: "BATCH_SIZE", SGD: "BATCH_SIZE", Adam: "BATCH_SIZE" },
  },
  seed: {
    kind: "int",
    default: 12,
    min: 0,
    max: 2 ** 32 - 1,
    help: "random seed (shuffling, splits; initialization with --init seeded)",
    recordKey: "seed",
  },
  init: {
    kind: "choice",
    choices: ["auto", "numpy10", "seeded"],
    default: "auto",
    help:
      "auto (as the seed: numpy seed 10 for MLPs, RandomState(1) for conv nets) | numpy10 | seeded",
  },
  order: {
    kind: "choice",
    choices: ["python", "permutation"],
    default: "python",
    help:
      "mini-batch order: python (the seed's: random.seed(--seed), random.shuffle per epoch) | permutation",
    recordKey: "order",
  },
  rho: {
    kind: "number",
    default: 0.001,
    help: "SGN: damping rho of the Gauss-Newton matrix (DAMP_RHO)",
    option: { SGN: "dampRho" },
    seedKey: { SGN: "DAMP_RHO" },
  },
  beta: {
    kind: "number",
    default: 0,
    help: "SGN: gradient momentum (BETA)",
    option: { SGN: "beta" },
    seedKey: { SGN: "BETA" },
  },
  cg_prec: {
    kind: "bool",
    default: false,
    help: "SGN: diagonal preconditioner for CG (CG_PREC)",
    option: { SGN: "cgPrec" },
    seedKey: { SGN: "CG_PREC" },
  },
  LS: {
    kind: "bool",
    default: true,
    help: "SGN: backtracking line search (LS; the seed's script always searched)",
    option: { SGN: "lineSearch" },
    seedKey: { SGN: "LS" },
  },
  TR: {
    kind: "bool",
    default: true,
    help: "SGN: trust-region damping (TR)",
    option: { SGN: "trustRegion" },
    seedKey: { SGN: "TR" },
  },
  rho_schedule: {
    kind: "choice",
    choices: RHO_DECAYS,
    default: "const",
    help: "SGN without TR: const | linear | cos (RHO_DECAY)",
    option: { SGN: "rhoDecay" },
  },
  rho_min: {
    kind: "number",
    default: 1e-6,
    help: "SGN: lower bound of rho (DAMP_RHO_MIN)",
    option: { SGN: "dampRhoMin" },
    seedKey: { SGN: "DAMP_RHO_MIN" },
  },
  cg_max_iter: {
    kind: "int",
    default: 10,
    help: "SGN: CG iterations from step K_cg on (MAX_CG_ITERS)",
    option: { SGN: "cgMaxIters" },
    seedKey: { SGN: "MAX_CG_ITERS" },
  },
  cg_min_iter: {
    kind: "int",
    default: 10,
    help: "SGN: CG iterations before step K_cg (MIN_CG_ITERS)",
    option: { SGN: "cgMinIters" },
    seedKey: { SGN: "MIN_CG_ITERS" },
  },
  K_cg: {
    kind: "int",
    default: 10,
    help: "SGN: step at which CG switches to cg_max_iter (K_CG)",
    option: { SGN: "kCg" },
    seedKey: { SGN: "K_CG" },
  },
  alpha_exp: {
    kind: "number",
    default: 1,
    help: "SGN: exponent of the preconditioner (ALPHA_EXP)",
    option: { SGN: "alphaExp" },
    seedKey: { SGN: "ALPHA_EXP" },
  },
  armijo: {
    kind: "choice",
    choices: ARMIJO_CHOICES,
    default: "shrinking",
    help:
      "SGN: Armijo right-hand side: shrinking (Algorithm 3.1) | seed (fixed at the initial step, as the seed)",
    option: { SGN: "armijo" },
    seedKey: { SGN: "ARMIJO" },
  },
  // CG's Hessian-free refinements (Martens 2010).
  cg_warm_start: {
    kind: "number",
    default: SGN_DEFAULTS.cgWarmStart,
    help: "SGN: CG starts from this decay times the previous step's CG solution (Martens: " +
      "0.95); 0 starts from 0, as the seed (CG_WARM_START)",
    option: { SGN: "cgWarmStart" },
    seedKey: { SGN: "CG_WARM_START" },
    omitDefault: true,
  },
  cg_stop: {
    kind: "choice",
    choices: CG_STOP_CHOICES,
    default: SGN_DEFAULTS.cgStop,
    help: "SGN: fixed (the budget and CG_TOL, as the seed) | relative (also Martens' relative " +
      "progress of the quadratic model; the budget stays the cap, so give cg_max_iter > 10) " +
      "(CG_STOP)",
    option: { SGN: "cgStop" },
    seedKey: { SGN: "CG_STOP" },
    omitDefault: true,
  },
  cg_backtrack: {
    kind: "bool",
    default: SGN_DEFAULTS.cgBacktrack,
    help: "SGN: CG backtracking: the best of the iterates at ceil(1.3^j) and the last by the " +
      "mini-batch loss (CG_BACKTRACK)",
    option: { SGN: "cgBacktrack" },
    seedKey: { SGN: "CG_BACKTRACK" },
    omitDefault: true,
  },
  // --- curvature (issue 22): the matrix of CG's products and the rows they use ----------------
  curvature: {
    kind: "choice",
    choices: CURVATURES,
    default: SGN_DEFAULTS.curvature,
    help: "SGN: curvature of CG's products: ggn (Gauss-Newton, the seed's) | hessian (exact; CG " +
      "stops at negative curvature) | fisher (empirical Fisher) (CURVATURE)",
    option: { SGN: "curvature" },
    seedKey: { SGN: "CURVATURE" },
    omitDefault: true,
  },
  curvature_batch: {
    kind: "number",
    default: SGN_DEFAULTS.curvatureBatch,
    help: "SGN: rows of each batch that CG's products use: a fraction in (0, 1] or a number of " +
      "rows (an integer > 1); 1 is the whole batch (CURVATURE_BATCH)",
    option: { SGN: "curvatureBatch" },
    seedKey: { SGN: "CURVATURE_BATCH" },
    omitDefault: true,
  },
  lr: {
    kind: "number",
    default: 0.001,
    help: "SGD/Adam: learning rate",
    option: { SGD: "lr", Adam: "lr" },
    seedKey: { SGD: "LR0", Adam: "LR0" },
  },
  mom: {
    kind: "number",
    default: 0,
    help: "SGD: heavy-ball momentum",
    option: { SGD: "momentum" },
    seedKey: { SGD: "MOMENTUM" },
  },
  scheduler: {
    kind: "choice",
    choices: LR_SCHEDULES,
    default: "const",
    help: "SGD: const | linear | cos | step",
    option: { SGD: "schedule" },
    seedKey: { SGD: "SCHEDULER" },
  },
  lr_final: {
    kind: "number",
    default: 0.001,
    help: "SGD: final learning rate",
    option: { SGD: "lrFinal" },
    seedKey: { SGD: "LR_K" },
  },
  K: {
    kind: "int",
    default: 1000,
    help: "last step of the rho (SGN) or learning-rate (SGD) decay",
    option: { SGN: "k", SGD: "k" },
    seedKey: { SGD: "K" },
  },
  r: {
    kind: "number",
    default: 0.1,
    help: "SGD step decay: factor",
    option: { SGD: "decay" },
  },
  step: {
    kind: "int",
    default: 10,
    help: "SGD step decay: steps between decays",
    option: { SGD: "step" },
  },
  verbose: {
    kind: "int",
    default: 0,
    min: 0,
    max: 1,
    help: "0: no progress; 1: progress (epoch, step, loss, accuracy, ETA)",
    seedKey: { SGN: "PRINT_LEVEL" },
  },
  path: { kind: "string", default: "./", help: "directory in which the results folder is made" },
  f: {
    kind: "string",
    default: "results",
    help: "name of the results folder (a plain name inside --path)",
  },
  report: {
    kind: "bool",
    default: false,
    help: "write report.html into the run folder: this run against the reference runs of its " +
      "configuration (the main job turns it on)",
  },
  reference: {
    kind: "string",
    default: "",
    help: "folder searched for --report's reference runs (default: sgn's committed runs, its " +
      "results/ folder)",
  },
  backend: {
    kind: "choice",
    choices: ["", ...BACKEND_CHOICES],
    default: "",
    help: `${BACKEND_CHOICES.join(" | ")} (default: SGN_BACKEND, else auto: a hardware GPU, ` +
      "else native BLAS, else what exists)",
  },
  "data-dir": {
    kind: "string",
    default: "",
    help:
      "directory with IDX (mnist, fashion), CIFAR-10 binary files, or the seed's sine JSON files",
  },
  float64: {
    kind: "bool",
    default: false,
    help: "compute in float64 (a CPU backend: native or cpu), as the seed's runs did",
  },
  diagnose: {
    kind: "int",
    default: 0,
    min: 0,
    max: 1e9,
    help: "every N steps, record the curvature of the step's mini-batch in results.json's " +
      "diagnostics: top eigenvalue of the Gauss-Newton matrix G (Lanczos), its trace " +
      "(Hutchinson), condition of G + rho I (rho: the SGN step's damping; " +
      `${SGN_DEFAULTS.dampRho} for SGD/Adam); ` +
      "its time is left out of epoch_time and tot_time (0: off)",
    recordKey: "diagnose",
    recordIf: diagnosing,
  },
  diagnose_lanczos: {
    kind: "int",
    default: 20,
    min: 1,
    max: 10000,
    help: "--diagnose: Lanczos steps (products G v) for the top eigenvalue",
    recordKey: "diagnose_lanczos",
    recordIf: diagnosing,
  },
  diagnose_probes: {
    kind: "int",
    default: 10,
    min: 1,
    max: 10000,
    help: "--diagnose: Hutchinson probes (products G v) for the trace",
    recordKey: "diagnose_probes",
    recordIf: diagnosing,
  },
} as const satisfies Record<string, SettingSpec>;

/** Each solver's option rules: the optimizers' own checks. */
const RULES: Record<Solver, Record<string, OptionRule>> = {
  SGN: SGN_RULES,
  SGD: SGD_RULES,
  Adam: ADAM_RULES,
};

/**
 * Every training setting, by flag name (`--<name>`), with the seed's scripts' defaults; a
 * numeric row that sets options is checked by their rules (the first to object says why).
 */
export const SETTINGS: typeof ROWS = Object.fromEntries(
  Object.entries(ROWS).map(([name, row]: [string, SettingSpec]) => {
    if (!row.option || (row.kind !== "int" && row.kind !== "number")) return [name, row];
    const rules = Object.entries(row.option).map(([sol, key]) => RULES[sol as Solver][key].rule);
    const rule: Rule = (v) => rules.map((r) => r(v)).find((need) => need !== undefined);
    return [name, { ...row, rule }];
  }),
) as typeof ROWS;

/** A setting's flag name. */
export type SettingName = keyof typeof SETTINGS;

type ValueOf<S> = S extends { kind: "int" | "number" } ? number
  : S extends { kind: "bool" } ? boolean
  : S extends { kind: "ints" } ? number[]
  : S extends { kind: "choice"; choices: readonly (infer C)[] } ? C
  : string;

/** Every setting of a run, typed, by flag name. */
export type TrainSettings = { -readonly [K in SettingName]: ValueOf<(typeof SETTINGS)[K]> };

const NAMES = Object.keys(SETTINGS) as SettingName[];
const spec = (name: SettingName): SettingSpec => SETTINGS[name];
/** The option of `solver` that the row `name` sets, if any. */
const optionOf = (name: SettingName, solver: Solver): string | undefined =>
  (spec(name).option as Record<string, string> | undefined)?.[solver];

/** Checks what no single row can: the run folder, float64 on a float32 backend, --reference. */
function checkTogether(s: TrainSettings): TrainSettings {
  const no = s.float64 ? noFloat64(s.backend) : undefined;
  if (no) throw new SgnError(`--${no}`);
  if (s.f === "" || s.f === "." || s.f === ".." || /[\/\\\0]/.test(s.f) || s.f.length > 200) {
    throw new SgnError(
      `--f must be a plain folder name (no slashes, not "." or "..", at most 200 characters), ` +
        `got "${s.f}": the run folder is made inside --path`,
    );
  }
  if (s.path === "") throw new SgnError(`--path must not be empty (default "./")`);
  if (s.reference !== "" && !s.report) {
    throw new SgnError("--reference names the reference runs of the report: add --report");
  }
  return s;
}

/**
 * Settings from values given in code (e.g. `reproduce`'s grids): the defaults, overridden by
 * `given`, every value checked as the command line checks it.
 *
 * @example
 * ```ts
 * import { resolveSettings } from "./settings.ts";
 * const s = resolveSettings({ dataset: "sine_10", layers: [8], epochs: 2 });
 * console.log(s.solver, s.rho, s.epochs); // SGN 0.001 2
 * ```
 */
export function resolveSettings(given: Partial<TrainSettings> = {}): TrainSettings {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(given)) {
    if (!Object.hasOwn(SETTINGS, key)) throw new SgnError(`unknown setting "${key}"`);
  }
  for (const name of NAMES) {
    const v = Object.hasOwn(given, name) ? given[name] : spec(name).default;
    out[name] = checkFlag(name, spec(name), Array.isArray(v) ? [...v] : v);
  }
  return checkTogether(out as TrainSettings);
}

/**
 * Parses `train`'s arguments: `--name value` or `--name=value`, `--layers` taking several
 * numbers, booleans as the seed's str2bool. Unknown flags and bad values are errors that name
 * them.
 *
 * @example
 * ```ts
 * import { parseTrainArgs } from "./settings.ts";
 * const s = parseTrainArgs(["--dataset", "mnist", "--layers", "20", "20", "--TR", "no"]);
 * console.log(s.layers, s.TR); // [20, 20] false
 * ```
 */
export function parseTrainArgs(args: readonly string[]): TrainSettings {
  const { values } = parseFlags(args, SETTINGS, "train");
  return resolveSettings(values as Partial<TrainSettings>);
}

/**
 * The flags that give `settings` (only those that differ from the defaults, in table order):
 * what `reproduce --dry-run` prints, and what parses back to the same settings.
 */
export function settingsToArgs(settings: Partial<TrainSettings>): string[] {
  const out: string[] = [];
  for (const name of NAMES) {
    if (!Object.hasOwn(settings, name)) continue;
    const v = settings[name]!;
    out.push(`--${name}`, ...(Array.isArray(v) ? v.map(String) : [String(v)]));
  }
  return out;
}

/** The help text of `train`: every flag with its meaning and default. */
export function trainHelp(): string {
  return [
    "Usage: deno run -A cli.ts train [flags]",
    "",
    "Trains a network as the seed's mlp.py / conv_net.py do and writes config.json and",
    "results.json (the seed's keys) into <path>/<f>; a finished or live run is never overwritten.",
    "",
    ...flagHelp(SETTINGS, Math.max(...NAMES.map((n) => n.length))),
  ].join("\n");
}

/** Each solver's options type. */
export interface OptionsOf {
  SGN: SgnOptions;
  SGD: SgdOptions;
  Adam: AdamOptions;
}

/** The options of `solver`, from the rows that set one of them. */
export function optionsFor<S extends Solver>(s: TrainSettings, solver: S): OptionsOf[S] {
  const out: Record<string, unknown> = {};
  for (const name of NAMES) {
    const option = optionOf(name, solver);
    if (option) out[option] = s[name];
  }
  return out as OptionsOf[S];
}

/**
 * The settings that give `options` of `solver`: for each option the row that sets it (the
 * inverse of {@link optionsFor}). An option that no row sets is an error naming it.
 *
 * @example
 * ```ts
 * import { settingsFromOptions } from "./settings.ts";
 * console.log(settingsFromOptions("SGN", { dampRho: 1e-4, cgMaxIters: 3 })); // { rho: 0.0001, cg_max_iter: 3 }
 * ```
 */
export function settingsFromOptions<S extends Solver>(
  solver: S,
  options: OptionsOf[S],
): Partial<TrainSettings> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    const name = NAMES.find((n) => optionOf(n, solver) === key);
    if (!name) throw new SgnError(`the ${solver} option ${key} has no training setting`);
    out[name] = value;
  }
  return out as Partial<TrainSettings>;
}

/**
 * The seed's config.json `config` block for the run's solver: every row with a key for it, and
 * the seed's constants of SGN (CG_TOL, MAX_LS_ITERS, RHO_LS, C_LS, ALPHA) from `SGN_DEFAULTS`.
 * As the seed writes them: RHO_DECAY and K only without the trust region, STEP and REDUCTION only
 * with the step schedule.
 */
export function seedConfig(s: TrainSettings): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of NAMES) {
    const key = (spec(name).seedKey as Record<string, string> | undefined)?.[s.solver];
    if (key && !(spec(name).omitDefault && s[name] === spec(name).default)) out[key] = s[name];
  }
  if (s.solver === "SGN") {
    Object.assign(out, {
      CG_TOL: SGN_DEFAULTS.cgTol,
      MAX_LS_ITERS: SGN_DEFAULTS.maxLsIters,
      RHO_LS: SGN_DEFAULTS.rhoLs,
      C_LS: SGN_DEFAULTS.cLs,
      ALPHA: SGN_DEFAULTS.alpha,
      ...(s.TR ? {} : { RHO_DECAY: s.rho_schedule, K: s.K }),
    });
  }
  if (s.solver === "SGD" && s.scheduler === "step") {
    Object.assign(out, { STEP: s.step, REDUCTION: s.r });
  }
  return out;
}

/** config.json's top-level record of the settings (the rows with a `recordKey`). */
export function settingsRecord(s: TrainSettings): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of NAMES) {
    const { recordKey: key, recordIf } = spec(name) as SettingSpec;
    if (key && (recordIf?.(s) ?? true)) out[key] = s[name];
  }
  return out;
}
