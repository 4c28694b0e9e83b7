/**
 * SGN's options and train's settings: the schedules against their formulas; bad values refused
 * naming the option and its range; the settings table and the optimizers accepting exactly the
 * same values (generated cases: one rule per option, sgn/options.ts and sgn/baselines.ts); the
 * bounds chosen from the seed; and the seed preset (SGN_3) as every command that uses it sees it.
 */
import assert from "node:assert/strict";
import { SgnError } from "../errors.ts";
import {
  resolveSgnOptions,
  scheduledRho,
  SEED_PRESET,
  SGN_DEFAULTS,
  type SgnOptions,
} from "../sgn/options.ts";
import { Adam, resolveAdamOptions, resolveSgdOptions, scheduledLr, SGD } from "../sgn/baselines.ts";
import {
  optionsFor,
  parseTrainArgs,
  resolveSettings,
  SETTINGS,
  settingsFromOptions,
  type SettingSpec,
  type Solver,
  type TrainSettings,
} from "../train/settings.ts";
import { planRuns } from "../train/reproduce.ts";
import { CHECK_RUN } from "../cli.ts";
import { fc, property } from "./property.ts";

Deno.test("schedules: rho and learning-rate schedules match their formulas", () => {
  const o1 = resolveSgnOptions({ dampRho: 1e-2, dampRhoMin: 1e-4, rhoDecay: "linear", k: 5 });
  for (let t = 1; t <= 8; t++) {
    const want = Math.max(1e-2 + (1e-4 - 1e-2) * (t - 1) / 4, 1e-4);
    assert.ok(Math.abs(scheduledRho(o1, t) - want) < 1e-15, `linear t=${t}`);
  }
  const o2 = resolveSgnOptions({ dampRho: 1e-2, dampRhoMin: 1e-4, rhoDecay: "cos", k: 6 });
  for (let t = 1; t <= 8; t++) {
    const c = 1e-2 * Math.cos(Math.PI / 2 * t / 6);
    const want = t > 6 || c < 1e-4 ? 1e-4 : c;
    assert.ok(Math.abs(scheduledRho(o2, t) - want) < 1e-15, `cos t=${t}`);
  }
  assert.equal(scheduledRho(resolveSgnOptions({ dampRho: 3e-3 }), 99), 3e-3);
  const sgd = {
    lr: 1,
    momentum: 0,
    schedule: "step" as const,
    lrFinal: 0.1,
    k: 10,
    decay: 0.5,
    step: 3,
  };
  assert.deepEqual([1, 2, 3, 6, 9, 12].map((t) => scheduledLr(sgd, t)), [
    1,
    1,
    0.5,
    0.25,
    0.125,
    0.1,
  ]);
  assert.equal(scheduledLr({ ...sgd, schedule: "linear" }, 10), 0.1);
  assert.ok(
    Math.abs(scheduledLr({ ...sgd, schedule: "linear" }, 4) - (1 + (0.1 - 1) * 3 / 9)) < 1e-15,
  );
});

Deno.test("bad hyperparameters are rejected naming the parameter and the allowed range", () => {
  const bad: [SgnOptions, RegExp][] = [
    [{ dampRho: -1 }, /dampRho \(DAMP_RHO\) must be a number >= 0, got -1/],
    [{ beta: 1 }, /beta \(BETA\) must be in \[0, 1\)/],
    [{ alphaExp: 2 }, /alphaExp \(ALPHA_EXP\) must be in \[0, 1\]/],
    [
      { cgMaxIters: 2.5 },
      /cgMaxIters \(MAX_CG_ITERS\) must be an integer in \[1, 10000\], got 2.5/,
    ],
    [
      { cgMaxIters: 1_000_000_000 },
      /cgMaxIters \(MAX_CG_ITERS\) must be an integer in \[1, 10000\], got 1000000000$/,
    ],
    [{ cgMaxIters: Infinity }, /cgMaxIters \(MAX_CG_ITERS\) .*, got Infinity$/],
    [{ cgMinIters: 0 }, /cgMinIters \(MIN_CG_ITERS\)/],
    [{ cgMinIters: 10_001 }, /cgMinIters \(MIN_CG_ITERS\) must be an integer in \[1, 10000\]/],
    [{ maxLsIters: 101 }, /maxLsIters \(MAX_LS_ITERS\) must be an integer in \[1, 100\], got 101/],
    [{ dampRho: NaN }, /dampRho \(DAMP_RHO\) must be a number >= 0, got NaN$/],
    [{ dampRhoMin: Infinity }, /dampRhoMin \(DAMP_RHO_MIN\) must be a number >= 0, got Infinity$/],
    [{ alpha: -Infinity }, /alpha \(ALPHA\) must be a number > 0, got -Infinity$/],
    [{ beta: "0.5" as never }, /beta \(BETA\) must be in \[0, 1\), got "0.5"$/],
    [{ rhoDecay: "exp" as never }, /rhoDecay \(RHO_DECAY\) must be "const", "linear" or "cos"/],
    [{ cLs: 1 }, /cLs \(C_LS\) must be in \(0, 1\)/],
    [{ kCg: 0 }, /kCg \(K_CG\) must be an integer in \[1, 1000000000\], got 0$/],
    [{ k: 1, rhoDecay: "linear" }, /k \(K\) must be an integer >= 2 with the linear schedule/],
    [{ armijo: "wolfe" as never }, /SGN option armijo must be "shrinking" or "seed", got "wolfe"/],
    [{ rhoLs: 0 }, /rhoLs \(RHO_LS\)/],
    [{ maxLsIters: 0 }, /maxLsIters \(MAX_LS_ITERS\)/],
    [{ alpha: 0 }, /alpha \(ALPHA\) must be a number > 0/],
    [{ cgTol: NaN }, /cgTol \(CG_TOL\)/],
    [{ dampRHO: 1 } as never, /unknown SGN option "dampRHO"/],
  ];
  for (const [options, msg] of bad) assert.throws(() => resolveSgnOptions(options), msg);
  assert.throws(() => new SGD([], { lr: -1 }), /SGD lr must be a number > 0/);
  assert.throws(() => new SGD([], { lr: NaN }), /SGD lr must be a number > 0, got NaN$/);
  assert.throws(
    () => new SGD([], { lrFinal: Infinity }),
    /SGD lrFinal must be a number >= 0, got Infinity$/,
  );
  assert.throws(() => new SGD([], { momentum: NaN }), /SGD momentum must be in \[0, 1\), got NaN$/);
  assert.throws(
    () => new Adam([], { eps: Infinity }),
    /Adam eps must be a number > 0, got Infinity$/,
  );
  assert.throws(() => new Adam([], { beta2: NaN }), /Adam beta2 must be in \[0, 1\), got NaN$/);
  assert.throws(() => new SGD([], { step: 0 }), /SGD step must be an integer in \[1, 1000000000\]/);
  assert.throws(() => new SGD([], { lr: 1, mu: 0.5 } as never), /unknown SGD option "mu"/);
  // The largest allowed budgets are accepted.
  resolveSgnOptions({ cgMaxIters: 10_000, cgMinIters: 10_000, maxLsIters: 100 });
});

// --- one rule per option: the settings table and the optimizers agree ------------------------

/** Each solver's check of its options, as the optimizer's constructor runs it. */
const RESOLVE: Record<Solver, (options: Record<string, unknown>) => unknown> = {
  SGN: resolveSgnOptions,
  SGD: resolveSgdOptions,
  Adam: resolveAdamOptions,
};

/** The SgnError message `f` throws, or undefined when it returns (any other error fails). */
function refusal(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    if (e instanceof SgnError) return e.message;
    throw e;
  }
  return undefined;
}

/** Every (row, solver, option) of the table: the rows that set an optimizer's option. */
const OPTION_ROWS = (Object.entries(SETTINGS) as [keyof TrainSettings, SettingSpec][]).flatMap((
  [name, row],
) =>
  Object.entries(row.option ?? {}).map(([solver, key]) => ({
    name,
    kind: row.kind,
    solver: solver as Solver,
    key: key as string,
  }))
);

/** Numbers at and around every bound a setting has had or has, and some that are no numbers. */
const EDGES = [
  0,
  -0,
  -1,
  0.5,
  1,
  2,
  2.5,
  1e-300,
  Number.MIN_VALUE,
  0.999999,
  0.9999995,
  1 - 2 ** -53,
  1 + 2 ** -52,
  10,
  100,
  101,
  10_000,
  10_001,
  1e6,
  1e6 + 1,
  1e9,
  1e9 + 1,
  1e12,
  1e13,
  Number.MAX_VALUE,
  NaN,
  Infinity,
  -Infinity,
];
const WORDS = ["const", "linear", "cos", "step", "shrinking", "seed", "fixed", "relative", "ggn"];

/** Values of every kind a row may be given (from code, as `reproduce`'s grids give them). */
const anyValue = fc.oneof(
  fc.constantFrom(...EDGES),
  fc.double(),
  fc.double({ min: -2, max: 2 }),
  fc.integer({ min: -3, max: 12_000 }),
  fc.constantFrom(...WORDS, "hessian", "fisher", "exp", "", "1", true, false, null, undefined),
  fc.string({ maxLength: 8 }),
);

property(
  "options: every setting that sets an optimizer's option accepts exactly what the optimizer accepts",
  fc.record({ row: fc.constantFrom(...OPTION_ROWS), value: anyValue }),
  2000,
  ({ row, value }) => {
    const bySettings = refusal(() => resolveSettings({ [row.name]: value }));
    const byOptimizer = refusal(() => RESOLVE[row.solver]({ [row.key]: value }));
    assert.equal(
      bySettings === undefined,
      byOptimizer === undefined,
      `--${row.name} = ${String(value)}: settings ${bySettings ?? "accept"}; ${row.solver} ` +
        `${row.key}: ${byOptimizer ?? "accepts"}`,
    );
    // Both say the same range.
    if (bySettings !== undefined && (row.kind === "int" || row.kind === "number")) {
      assert.equal(
        bySettings.replace(/^--\S+ must be (.*), got .*$/, "$1"),
        byOptimizer!.replace(/^.* must be (.*), got .*$/, "$1"),
      );
    }
  },
);

Deno.test("options: the table's option rows are compared, solver by solver", () => {
  const solvers = new Set(OPTION_ROWS.map((r) => r.solver));
  assert.deepEqual([...solvers].sort(), ["Adam", "SGD", "SGN"]);
  assert.ok(OPTION_ROWS.length >= 25, `${OPTION_ROWS.length} rows`);
  // --K sets the decay's last step of both SGN and SGD: one bound serves both.
  assert.equal(OPTION_ROWS.filter((r) => r.name === "K").length, 2);
});

Deno.test("options: the bounds chosen from the seed, the same in code and on the command line", () => {
  // [setting, option, value, accepted]: where the table and the optimizer used to differ.
  const cases: [keyof TrainSettings, Solver, string, unknown, boolean][] = [
    // BETA: m_hat = m / (1 - BETA^t), so any BETA below 1 (the table stopped at 0.999999).
    ["beta", "SGN", "beta", 0.9999995, true],
    ["beta", "SGN", "beta", 1, false],
    // K_CG: a step number, and steps count from 1 (the optimizer took 0, a second name for 1).
    ["K_cg", "SGN", "kCg", 0, false],
    ["K_cg", "SGN", "kCg", 1, true],
    ["K_cg", "SGN", "kCg", 1e9, true],
    ["K_cg", "SGN", "kCg", 1e9 + 1, false],
    // DAMP_RHO: negative damping is refused, any other is the seed's (the table stopped at 1e12).
    ["rho", "SGN", "dampRho", 1e13, true],
    ["rho_min", "SGN", "dampRhoMin", -1e-9, false],
    // SGD: a learning rate of 0 never moves (the table took it, the optimizer did not).
    ["lr", "SGD", "lr", 0, false],
    ["lr", "Adam", "lr", 1e7, true],
    ["mom", "SGD", "momentum", 0.9999995, true],
    ["r", "SGD", "decay", 0, false],
    ["r", "SGD", "decay", 1, true],
    ["step", "SGD", "step", 1e9, true],
  ];
  for (const [name, solver, key, value, ok] of cases) {
    const what = `--${name} ${String(value)}`;
    assert.equal(refusal(() => resolveSettings({ [name]: value })) === undefined, ok, what);
    assert.equal(refusal(() => RESOLVE[solver]({ [key]: value })) === undefined, ok, what);
  }
  assert.throws(() => parseTrainArgs(["--beta", "1"]), /--beta must be in \[0, 1\), got "1"$/);
  assert.throws(
    () => parseTrainArgs(["--K_cg", "0"]),
    /--K_cg must be an integer in \[1, 1000000000\], got "0"$/,
  );
  assert.throws(() => parseTrainArgs(["--K_cg", "1e3"]), /--K_cg must be an integer/);
  assert.throws(() => parseTrainArgs(["--lr", "0"]), /--lr must be a number > 0, got "0"$/);
});

// --- the seed preset --------------------------------------------------------------------------

/** Some valid values of the SGN options that have a setting. */
const sgnOptions = fc.record(
  {
    dampRho: fc.constantFrom(0, 1e-4, 2.5),
    dampRhoMin: fc.constantFrom(0, 1e-6),
    beta: fc.constantFrom(0, 0.9),
    cgPrec: fc.boolean(),
    trustRegion: fc.boolean(),
    lineSearch: fc.boolean(),
    rhoDecay: fc.constantFrom("const" as const, "linear" as const, "cos" as const),
    k: fc.integer({ min: 2, max: 5000 }),
    cgMaxIters: fc.integer({ min: 1, max: 10_000 }),
    cgMinIters: fc.integer({ min: 1, max: 10_000 }),
    kCg: fc.integer({ min: 1, max: 1e9 }),
    alphaExp: fc.constantFrom(0, 0.5, 1),
    armijo: fc.constantFrom("shrinking" as const, "seed" as const),
    cgWarmStart: fc.constantFrom(0, 0.95, 1),
    curvature: fc.constantFrom("ggn" as const, "hessian" as const, "fisher" as const),
    curvatureBatch: fc.constantFrom(1, 0.25, 300),
  },
  { requiredKeys: [] },
);

property(
  "options: settingsFromOptions gives the settings whose options are the ones given",
  sgnOptions,
  300,
  (options) => {
    const settings = resolveSettings(settingsFromOptions("SGN", options));
    const back = optionsFor(settings, "SGN") as Record<string, unknown>;
    for (const [key, value] of Object.entries(options)) assert.equal(back[key], value, key);
  },
);

Deno.test("preset: options without a setting are refused by settingsFromOptions", () => {
  for (const key of ["alpha", "cgTol", "cLs", "rhoLs", "maxLsIters", "mode"] as const) {
    assert.throws(
      () => settingsFromOptions("SGN", { [key]: SGN_DEFAULTS[key] }),
      new RegExp(`the SGN option ${key} has no training setting`),
    );
  }
});

Deno.test("preset: the check run and reproduce's SGN_3 train with the seed preset", () => {
  const preset = (o: SgnOptions) =>
    Object.fromEntries(Object.keys(SEED_PRESET).map((k) => [k, o[k as keyof SgnOptions]]));
  // reproduce: SGN_3 is the preset, with the seed's own Armijo test; the other SGN_<n> differ
  // only in their CG iterations.
  for (const experiment of ["mnist", "fashion", "ablation_mnist"]) {
    const [run] = planRuns(experiment, { runs: ["SGN_3"], seeds: [1] });
    const options = optionsFor(run.settings, "SGN");
    assert.deepEqual(preset(options), SEED_PRESET, experiment);
    assert.equal(options.armijo, "seed");
  }
  const [sgn10] = planRuns("sine_10", { runs: ["SGN_10"], seeds: [1] });
  assert.deepEqual(preset(optionsFor(sgn10.settings, "SGN")), { ...SEED_PRESET, cgMaxIters: 10 });
  // The main job: the seed README's command, the preset's 3 CG iterations from the first step.
  const check = optionsFor(parseTrainArgs(CHECK_RUN), "SGN");
  assert.deepEqual(preset(check), {
    ...SEED_PRESET,
    cgMinIters: SEED_PRESET.cgMaxIters,
  });
  assert.equal(check.armijo, "shrinking");
});
