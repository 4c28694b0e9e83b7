/**
 * SGN hyperparameters under TypeScript names, with the seed's names and defaults
 * (SGN-ALGORITHM.md), validated up front with messages that name the parameter and its range.
 *
 * @module
 */

import { SgnError, showValue } from "../errors.ts";

/** Damping schedules used when the trust region is off. */
export type RhoDecay = "const" | "linear" | "cos";

/** Every {@link RhoDecay}. */
export const RHO_DECAYS: readonly RhoDecay[] = ["const", "linear", "cos"];

/** The values of {@link SgnOptions.armijo}. */
export const ARMIJO_CHOICES: readonly NonNullable<SgnOptions["armijo"]>[] = ["shrinking", "seed"];

/** The values of {@link SgnOptions.mode}. */
export const MODES: readonly NonNullable<SgnOptions["mode"]>[] = ["auto", "device", "host"];

/** The values of {@link SgnOptions.lsSpeculation}. */
export const LS_SPECULATIONS: readonly NonNullable<SgnOptions["lsSpeculation"]>[] = [
  "adaptive",
  "all",
];

/** The curvature matrices CG's products can use (see {@link SgnOptions.curvature}). */
export type Curvature = "ggn" | "hessian" | "fisher";

/** Every {@link Curvature}, in the order the help texts list them. */
export const CURVATURES: readonly Curvature[] = ["ggn", "hessian", "fisher"];

/** Hyperparameters of {@link SGN}; every field is optional. */
export interface SgnOptions {
  /** DAMP_RHO: Levenberg-Marquardt damping rho (initial value with the trust region). 1e-3. */
  dampRho?: number;
  /** DAMP_RHO_MIN: lower bound of rho. 0. */
  dampRhoMin?: number;
  /** BETA: gradient momentum in [0, 1). 0. */
  beta?: number;
  /** CG_PREC: diagonal preconditioner 1 / (m^2 + rho)^alphaExp. false. */
  cgPrec?: boolean;
  /** ALPHA_EXP: exponent of the preconditioner, in [0, 1]. 1. */
  alphaExp?: number;
  /** TR: adapt rho with the trust-region rule (Nocedal & Wright, Algorithm 4.1). false. */
  trustRegion?: boolean;
  /** RHO_DECAY: schedule of rho when the trust region is off. "const". */
  rhoDecay?: RhoDecay;
  /** K: last step of the rho schedule. 10. */
  k?: number;
  /** ALPHA: initial step size. 1. */
  alpha?: number;
  /** CG_TOL: CG stops when max|r| <= cgTol. 1e-6. */
  cgTol?: number;
  /** MAX_CG_ITERS: CG iterations from step kCg on, at most 10,000. 10. */
  cgMaxIters?: number;
  /** MIN_CG_ITERS: CG iterations before step kCg, at most 10,000. 10 (the seed's scripts). */
  cgMinIters?: number;
  /** K_CG: first step that uses cgMaxIters. 10 (the seed's scripts). */
  kCg?: number;
  /** LS: backtracking line search (Armijo; Nocedal & Wright, Algorithm 3.1). true. */
  lineSearch?: boolean;
  /** C_LS: Armijo constant in (0, 1). 1e-4. */
  cLs?: number;
  /** RHO_LS: backtracking factor in (0, 1). 0.5. */
  rhoLs?: number;
  /**
   * MAX_LS_ITERS: most backtracking steps of one line search (so at most MAX_LS_ITERS + 1 loss
   * evaluations, the smallest step ALPHA RHO_LS^MAX_LS_ITERS); at most 100. 10.
   */
  maxLsIters?: number;
  /**
   * Armijo right-hand side: "shrinking" (Algorithm 3.1: L0 + a c g.d with the current a) or
   * "seed" (the seed's quirk: computed once with the initial a). "shrinking".
   */
  armijo?: "shrinking" | "seed";
  /**
   * Where the step's control flow runs. "device": CG scalars, the tolerance test and the
   * line-search candidates stay on the device, one readback per step (for WebGPU, where a
   * readback is the costliest operation). "host": the seed's control flow on the host, reading
   * scalars every CG iteration and evaluating line-search tries one at a time (no speculative
   * forward passes; for CPU backends, where a readback is free). "auto" (default): "host" on
   * backends whose readback is free (`Backend.hostReadback`), else "device".
   */
  mode?: "auto" | "device" | "host";
  /**
   * Line-search candidates evaluated before the single readback (device mode): "adaptive" (as
   * many as the previous step needed; a step needing more reads back once per further batch) or
   * "all" (every one of the maxLsIters + 1 candidates: exactly one readback per step, more forward
   * passes). "adaptive".
   */
  lsSpeculation?: "adaptive" | "all";

  // --- Hessian-free refinements of CG (Martens 2010, sections 4.5-4.6) -------------------------
  /**
   * CG_WARM_START: decay zeta in [0, 1] of the warm start: CG starts from zeta d_prev, the previous
   * step's last CG iterate, instead of 0 (Martens uses 0.95); 0 turns it off. Costs one more
   * product (r0 = A d0 + b) and one parameter vector of state; the first step starts from 0. 0.
   */
  cgWarmStart?: number;
  /**
   * CG_STOP: "fixed" (the seed: the budget and the max|r| <= cgTol test) or "relative": also
   * Martens' relative-progress rule on the quadratic model phi(x) = 0.5 x.A x + b.x, stopping at
   * iteration i when i > k, phi(x_i) < 0 and (phi(x_i) - phi(x_{i-k})) / phi(x_i) < k eps with
   * k = max(10, ceil(i / 10)) and eps = 5e-4 (`CG_RELATIVE` in sgn/cg.ts); the budget stays the hard cap
   * (so the rule needs budgets above 10). Costs one dot product per iteration and no readback:
   * the device form tests it on the device, as it tests the tolerance. "fixed".
   */
  cgStop?: CgStop;
  /**
   * CG_BACKTRACK: CG backtracking (Martens 2010, section 4.6): CG keeps its iterates at iterations
   * ceil(1.3^j) and the last; the step evaluates the mini-batch loss at theta + d_i from the last
   * backwards, stops as soon as one is not better than the one after it, and uses that one for
   * the rest of the step. Costs a pair of vectors (d_i, r_i) per kept iterate (about
   * log(iterations) / log(1.3) + 1 of them) and a forward pass per loss evaluated; with ALPHA 1
   * the chosen one's loss is the line search's first try. Host form: a readback per evaluation
   * (free on a CPU backend); device form: every kept iterate evaluated in one submission and one
   * extra readback per step. false.
   */
  cgBacktrack?: boolean;

  // --- curvature (issue 22): which matrix CG multiplies by, and on how many rows ---------------
  /**
   * CURVATURE: the matrix C of CG's damped system (C + rho I) d = -m. "ggn" (default, the
   * seed's): the generalized Gauss-Newton G = J^T H_L J. "hessian": the Hessian of the
   * mini-batch loss (H v forward over reverse, the gradient linearized once per step); it is
   * indefinite away from a minimum, so CG stops at negative curvature (p.(H + rho I) p <= 0:
   * the iterate so far, or the first search direction when that happens at once; Nocedal &
   * Wright, Algorithm 7.1). "fisher": the empirical Fisher F = (1/N) J_l^T J_l, J_l the Jacobian
   * of the per-example losses (the loss needs `perExample`).
   */
  curvature?: Curvature;
  /**
   * CURVATURE_BATCH: the rows of the mini-batch CG's products use (Martens 2010; Byrd et al.
   * 2011), the gradient always using the whole batch. A fraction of the batch in (0, 1]
   * (f N rows, rounded, at least 1) or a number of rows, an integer > 1 (at most the batch); 1, the default, is
   * the whole batch. Anything else needs the step's third argument, the model and loss of the
   * batch's first rows (`train` passes it; its batches are shuffled, so those rows are a random
   * subset).
   */
  curvatureBatch?: number;
}

/**
 * Why `v` cannot be {@link SgnOptions.curvatureBatch} (what it must be), or undefined when it
 * can: the {@link Rule} of that option.
 */
export function curvatureBatchProblem(v: unknown): string | undefined {
  const ok = typeof v === "number" && Number.isFinite(v) && v > 0 && v <= MAX_CURVATURE_ROWS &&
    (v <= 1 || Number.isInteger(v));
  return ok ? undefined : CURVATURE_BATCH_RANGE;
}

/** The most rows {@link SgnOptions.curvatureBatch} may name (the settings' largest batch). */
export const MAX_CURVATURE_ROWS = 10_000_000;

const CURVATURE_BATCH_RANGE = "a fraction of the batch in (0, 1] or a number of rows (an " +
  `integer from 2 up to ${MAX_CURVATURE_ROWS})`;

/**
 * The rows of an N-row batch that CG's products use under {@link SgnOptions.curvatureBatch}:
 * f N rounded for a fraction f (at least 1), else the number given (at most N).
 *
 * @example
 * ```ts
 * import { curvatureRows } from "./options.ts";
 * console.log(curvatureRows(0.25, 1000), curvatureRows(300, 1000), curvatureRows(300, 200)); // 250 300 200
 * ```
 */
export function curvatureRows(curvatureBatch: number, n: number): number {
  // Rounded, not ceil: f N carries rounding errors (0.1 * 30 = 3.0000000000000004).
  const rows = curvatureBatch <= 1 ? Math.round(curvatureBatch * n) : curvatureBatch;
  return Math.max(1, Math.min(n, rows));
}

/** How CG stops: the seed's budget and tolerance, or Martens' relative-progress rule as well. */
export type CgStop = "fixed" | "relative";
/** The values of {@link SgnOptions.cgStop}. */
export const CG_STOP_CHOICES: readonly CgStop[] = ["fixed", "relative"];

/**
 * Rejects option names that `who` does not take (a typo would otherwise be ignored silently),
 * naming the first and listing the known ones.
 */
export function checkKnownOptions(options: object, known: readonly string[], who: string): void {
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new SgnError(`${who}: the options must be an object, got ${showValue(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new SgnError(`unknown ${who} option "${key}" (known: ${known.join(", ")})`);
    }
  }
}

/** Every option resolved to its value. */
export type ResolvedSgnOptions = Required<SgnOptions>;

/** The seed's defaults. */
export const SGN_DEFAULTS: ResolvedSgnOptions = {
  dampRho: 1e-3,
  dampRhoMin: 0,
  beta: 0,
  cgPrec: false,
  alphaExp: 1,
  trustRegion: false,
  rhoDecay: "const",
  k: 10,
  alpha: 1,
  cgTol: 1e-6,
  cgMaxIters: 10,
  cgMinIters: 10,
  kCg: 10,
  lineSearch: true,
  cLs: 1e-4,
  rhoLs: 0.5,
  maxLsIters: 10,
  armijo: "shrinking",
  mode: "auto",
  lsSpeculation: "adaptive",
  cgWarmStart: 0,
  cgStop: "fixed",
  cgBacktrack: false,
  curvature: "ggn",
  curvatureBatch: 1,
};

/**
 * SGN as the seed's published experiments configure it (their config.json files,
 * REFERENCE-RESULTS.md): damping 1e-4 adapted by the trust region, not below 1e-6, the line
 * search, 10 CG iterations for the steps before K_CG = 10 and 3 from then on. That is "SGN_3",
 * the seed's README check run and its best MNIST curves; `reproduce`'s grids vary cgMaxIters
 * (SGN_1, SGN_2, ...) and add the seed's own Armijo test. Everything that trains "as the seed
 * configures it" starts from here (the main job, `demo`, the browser demo, `reproduce`).
 *
 * @example
 * ```ts
 * import { init, mlp, SGN } from "../mod.ts";
 * import { SEED_PRESET } from "./options.ts";
 * await init({ backend: "cpu" });
 * const opt = new SGN(mlp({ inputs: 1, hidden: [4], outputs: 1 }).init(), SEED_PRESET);
 * console.log(opt.options.dampRho, opt.options.cgMaxIters); // 0.0001 3
 * opt.dispose();
 * ```
 */
export const SEED_PRESET = {
  dampRho: 1e-4,
  dampRhoMin: 1e-6,
  trustRegion: true,
  lineSearch: true,
  cgMinIters: 10,
  kCg: 10,
  cgMaxIters: 3,
} as const satisfies SgnOptions;

/** The most CG iterations one step may run (cgMaxIters, cgMinIters). */
export const MAX_CG_ITERS_LIMIT = 10_000;
/** The most loss evaluations one line search may make (maxLsIters). */
export const MAX_LS_ITERS_LIMIT = 100;

/**
 * The values an option takes, as a check: what a value must be (e.g. "in [0, 1)") when `v` is
 * not one of them, else undefined. Each option's rule is defined once, here or beside its
 * optimizer, and both the optimizer and train's settings table (train/settings.ts) use it.
 */
export type Rule = (v: unknown) => string | undefined;

/** An interval of numbers (or of integers): the values of a numeric option. */
export interface Interval {
  /** Integers only. */
  int?: boolean;
  /** The lower end, itself excluded when `minOpen`. */
  min: number;
  minOpen?: boolean;
  /** The upper end (none: any finite number), itself excluded when `maxOpen`. */
  max?: number;
  maxOpen?: boolean;
  /** What the value is, when the message says more than "a number" ("a decay"). */
  noun?: string;
  /** A remark after the range ("0: off"). */
  note?: string;
}

/**
 * The {@link Rule} of an interval; it says the range as "a number >= 0", "in [0, 1)" or "an
 * integer in [1, 100]".
 *
 * @example
 * ```ts
 * import { interval } from "./options.ts";
 * const beta = interval({ min: 0, max: 1, maxOpen: true });
 * console.log(beta(0.5), beta(1)); // undefined "in [0, 1)"
 * ```
 */
export function interval(iv: Interval): Rule {
  const { int = false, min, minOpen = false, max = Infinity, maxOpen = false } = iv;
  const what = iv.noun ?? (int ? "an integer" : max === Infinity ? "a number" : "");
  const where = max === Infinity
    ? `${minOpen ? ">" : ">="} ${min}`
    : `in ${minOpen ? "(" : "["}${min}, ${max}${maxOpen ? ")" : "]"}`;
  const says = (what ? `${what} ${where}` : where) + (iv.note ? ` (${iv.note})` : "");
  return (v) =>
    typeof v === "number" && (int ? Number.isInteger(v) : Number.isFinite(v)) &&
      (minOpen ? v > min : v >= min) && (maxOpen ? v < max : v <= max)
      ? undefined
      : says;
}

/** The {@link Rule} of a choice among `choices` ('"a", "b" or "c"'). */
export function oneOf(choices: readonly string[]): Rule {
  const quoted = choices.map((c) => `"${c}"`);
  const says = quoted.length < 2
    ? quoted.join("")
    : `${quoted.slice(0, -1).join(", ")} or ${quoted.at(-1)}`;
  return (v) => (typeof v === "string" && choices.includes(v) ? undefined : says);
}

/** The {@link Rule} of a boolean option. */
export const isBoolean: Rule = (v) => (typeof v === "boolean" ? undefined : "true or false");

/** A step number: from 1 (steps count from 1) up to 1e9, more steps than any run takes. */
export const STEP_NUMBER: Interval = { int: true, min: 1, max: 1e9 };

/** How one option is checked: its rule, and its name in the seed (in messages). */
export interface OptionRule {
  rule: Rule;
  seed?: string;
}

/** Every SGN option's rule: the one check of each, for the SGN class and for train's settings. */
export const SGN_RULES: { readonly [K in keyof SgnOptions]-?: OptionRule } = {
  dampRho: { seed: "DAMP_RHO", rule: interval({ min: 0 }) },
  dampRhoMin: { seed: "DAMP_RHO_MIN", rule: interval({ min: 0 }) },
  // m_hat = m / (1 - BETA^t) (SGN-ALGORITHM.md step 1): BETA = 1 would divide by zero.
  beta: { seed: "BETA", rule: interval({ min: 0, max: 1, maxOpen: true }) },
  cgPrec: { seed: "CG_PREC", rule: isBoolean },
  alphaExp: { seed: "ALPHA_EXP", rule: interval({ min: 0, max: 1 }) },
  trustRegion: { seed: "TR", rule: isBoolean },
  rhoDecay: { seed: "RHO_DECAY", rule: oneOf(RHO_DECAYS) },
  k: { seed: "K", rule: interval(STEP_NUMBER) },
  alpha: { seed: "ALPHA", rule: interval({ min: 0, minOpen: true }) },
  cgTol: { seed: "CG_TOL", rule: interval({ min: 0 }) },
  cgMaxIters: {
    seed: "MAX_CG_ITERS",
    rule: interval({ int: true, min: 1, max: MAX_CG_ITERS_LIMIT }),
  },
  cgMinIters: {
    seed: "MIN_CG_ITERS",
    rule: interval({ int: true, min: 1, max: MAX_CG_ITERS_LIMIT }),
  },
  // A step number: the budget is MAX_CG_ITERS from step K_CG on, steps counting from 1.
  kCg: { seed: "K_CG", rule: interval(STEP_NUMBER) },
  lineSearch: { seed: "LS", rule: isBoolean },
  cLs: { seed: "C_LS", rule: interval({ min: 0, minOpen: true, max: 1, maxOpen: true }) },
  rhoLs: { seed: "RHO_LS", rule: interval({ min: 0, minOpen: true, max: 1, maxOpen: true }) },
  maxLsIters: {
    seed: "MAX_LS_ITERS",
    rule: interval({ int: true, min: 1, max: MAX_LS_ITERS_LIMIT }),
  },
  armijo: { rule: oneOf(ARMIJO_CHOICES) },
  mode: { rule: oneOf(MODES) },
  lsSpeculation: { rule: oneOf(LS_SPECULATIONS) },
  cgWarmStart: {
    seed: "CG_WARM_START",
    rule: interval({ min: 0, max: 1, noun: "a decay", note: "0: off" }),
  },
  cgStop: { seed: "CG_STOP", rule: oneOf(CG_STOP_CHOICES) },
  cgBacktrack: { seed: "CG_BACKTRACK", rule: isBoolean },
  curvature: { seed: "CURVATURE", rule: oneOf(CURVATURES) },
  curvatureBatch: { seed: "CURVATURE_BATCH", rule: curvatureBatchProblem },
};

/**
 * Checks every option of `opts` by its rule in `rules`, in the rules' order; throws an SgnError
 * naming the first bad one (`who`, e.g. "SGN option", its name, its seed name) and its range.
 */
export function checkOptions<T extends object>(
  who: string,
  rules: { readonly [K in keyof T]-?: OptionRule },
  opts: T,
): void {
  for (const [name, { rule, seed }] of Object.entries(rules) as [keyof T & string, OptionRule][]) {
    const need = rule(opts[name]);
    if (need !== undefined) {
      throw new SgnError(
        `${who} ${name}${seed ? ` (${seed})` : ""} must be ${need}, got ${showValue(opts[name])}`,
      );
    }
  }
}

/** Fills in defaults and validates; throws an SgnError naming the first bad option. */
export function resolveSgnOptions(options: SgnOptions = {}): ResolvedSgnOptions {
  checkKnownOptions(options, Object.keys(SGN_DEFAULTS), "SGN");
  const opts = { ...SGN_DEFAULTS, ...options } as ResolvedSgnOptions;
  checkOptions("SGN option", SGN_RULES, opts);
  // The linear schedule divides by K - 1 (SGN-ALGORITHM.md step 3).
  if (opts.rhoDecay === "linear" && opts.k < 2) {
    throw new SgnError(
      `SGN option k (K) must be an integer >= 2 with the linear schedule, got ${showValue(opts.k)}`,
    );
  }
  return opts;
}

/** rho at step t (from 1) by the schedule (SGN-ALGORITHM.md step 3), used when TR is off. */
export function scheduledRho(opts: ResolvedSgnOptions, t: number): number {
  switch (opts.rhoDecay) {
    case "const":
      return opts.dampRho;
    case "linear": {
      const rho = opts.dampRho + (opts.dampRhoMin - opts.dampRho) * (t - 1) / (opts.k - 1);
      return Math.max(rho, opts.dampRhoMin);
    }
    case "cos": {
      const rho = opts.dampRho * Math.cos((Math.PI / 2) * t / opts.k);
      return t > opts.k || rho < opts.dampRhoMin ? opts.dampRhoMin : rho;
    }
  }
}

/** The CG iteration budget at step t (SGN-ALGORITHM.md step 4). */
export function cgBudget(opts: ResolvedSgnOptions, t: number): number {
  return t >= opts.kCg ? opts.cgMaxIters : opts.cgMinIters;
}
