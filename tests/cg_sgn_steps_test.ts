/**
 * CG's Hessian-free refinements inside SGN steps: steps with the options equal an independent
 * reference step (tests/hf_reference.ts) value by value, trust region and line search included,
 * along trajectories that together take each option's branches; a failed step leaves the warm
 * start's previous solution as it was; with every option at its default the existing pinned
 * trajectories stay as they are (tests/optimizer_reference_test.ts, tests/sgn_test.ts), and here
 * the records and config.json of a default run say so; bad values are refused naming the option
 * and its range.
 */

import assert from "node:assert/strict";
import { SgnError } from "../errors.ts";
import { tensor } from "../autodiff/tensor.ts";
import { meanSquaredError } from "../models/losses.ts";
import { SGN } from "../sgn/sgn.ts";
import {
  CG_STOP_CHOICES,
  resolveSgnOptions,
  SGN_DEFAULTS,
  type SgnOptions,
} from "../sgn/options.ts";
import {
  optionsFor,
  parseTrainArgs,
  resolveSettings,
  seedConfig,
  SETTINGS,
} from "../train/settings.ts";
import { backendLabel, cpu, Random } from "./harness.ts";
import { fc, property } from "./property.ts";
import { params, problem } from "./reference.ts";
import { assertVector, flatValues, float64 } from "./cg_reference.ts";
import {
  compareRecords,
  handModel,
  HF_DEFAULTS,
  type HfOptions,
  ReferenceHf,
} from "./hf_reference.ts";

/** Trajectories that together take each option's branches (the test checks they were taken). */
const TRAJECTORIES: [string, number, Partial<HfOptions>][] = [
  ["all three, trust region and line search", 10, {
    dampRho: 1e-2,
    dampRhoMin: 1e-3,
    trustRegion: true,
    cgWarmStart: 0.95,
    cgStop: "relative",
    cgBacktrack: true,
  }],
  // A large Armijo constant makes the line search backtrack from the chosen iterate, whose loss
  // at step size 1 is the search's first try.
  ["backtracking and a line search that backtracks (c = 0.9)", 12, {
    dampRho: 3e-2,
    cLs: 0.9,
    cgBacktrack: true,
    cgMaxIters: 20,
    cgMinIters: 20,
  }],
  ["warm start and relative stop, momentum and preconditioner", 8, {
    dampRho: 1e-3,
    trustRegion: true,
    beta: 0.9,
    cgPrec: true,
    alphaExp: 0.5,
    cgWarmStart: 0.5,
    cgStop: "relative",
  }],
  ["backtracking, trust region without line search, step size 4", 8, {
    dampRho: 1e-2,
    trustRegion: true,
    lineSearch: false,
    alpha: 4,
    cgBacktrack: true,
    cgMaxIters: 25,
    cgMinIters: 25,
  }],
];

for (const be of float64) {
  for (const mode of ["host", "device"] as const) {
    Deno.test(`CG options (${backendLabel(be)}, ${mode}): SGN steps equal the reference step with warm start, relative stop and backtracking`, async () => {
      const taken = new Set<string>();
      for (const [what, steps, options] of TRAJECTORIES) {
        const p = problem(21, 40, 9, 3, "sigmoid");
        const rng = new Random(22);
        const theta0 = Float64Array.from({ length: params(p) }, () => rng.normal());
        const o: HfOptions = { ...HF_DEFAULTS, ...options };
        const m = handModel(be, p);
        const ref = new ReferenceHf(m.ref, theta0, o);
        const opt = new SGN(m.params(theta0), { ...o, mode });
        try {
          for (let s = 1; s <= steps; s++) {
            const want = ref.step();
            const got = await opt.step(m.model, m.loss);
            const at = `${what}, step ${s}`;
            assert.ok(want.margin > 1e-7, `${at}: a CG decision too close to call`);
            compareRecords(got, want, at, be === cpu ? 1e-8 : 1e-6);
            const theta = await flatValues(opt.params);
            assertVector(theta, ref.theta, `${at}: theta`, be === cpu ? 1e-8 : 1e-6);
            if (want.cgWarmStart) taken.add("warm start");
            if (want.cgRelativeStop) taken.add("relative stop");
            if (want.cgIterate < want.cgIters) {
              taken.add("backtracked to an earlier iterate");
              if (o.trustRegion) taken.add("the trust region on an earlier iterate");
              if (want.lsLosses.length > 1) taken.add("line search on an earlier iterate");
            }
            if (o.cgBacktrack && want.cgIterate === want.cgIters) taken.add("kept the last");
          }
        } finally {
          opt.dispose();
          m.dispose();
        }
      }
      assert.deepEqual(
        [
          "warm start",
          "relative stop",
          "backtracked to an earlier iterate",
          "the trust region on an earlier iterate",
          "line search on an earlier iterate",
          "kept the last",
        ].filter((b) => !taken.has(b)),
        [],
        "branches no trajectory took",
      );
    });
  }
}

// --- state, defaults and bad values ----------------------------------------------------------

Deno.test("CG options: a failed step leaves the warm start's previous solution as it was", async () => {
  const p = problem(41, 30, 5, 2, "sigmoid");
  const rng = new Random(42);
  const theta0 = Float64Array.from({ length: params(p) }, () => rng.normal());
  const o: HfOptions = { ...HF_DEFAULTS, cgWarmStart: 0.8, cgMaxIters: 4, cgMinIters: 4 };
  const m = handModel(cpu, p);
  const ref = new ReferenceHf(m.ref, theta0, o);
  const opt = new SGN(m.params(theta0), { ...o, mode: "host" });
  const nan = meanSquaredError(tensor(new Float64Array(p.n * p.d).fill(NaN), [p.n, p.d], {
    backend: cpu,
    dtype: "float64",
  }));
  try {
    compareRecords(await opt.step(m.model, m.loss), ref.step(), "step 1");
    // CG runs on a NaN gradient here, and the step fails: its CG solution must not be kept.
    await assert.rejects(() => opt.step(m.model, nan), SgnError);
    const want = ref.step();
    const got = await opt.step(m.model, m.loss);
    compareRecords(got, want, "step 2, after the failed step");
    assert.ok(got.cgWarmStart && Number.isFinite(got.lossAfter));
    assertVector(await flatValues(opt.params), ref.theta, "theta", 1e-8);
  } finally {
    opt.dispose();
    m.dispose();
  }
});

Deno.test("CG options: with the defaults a step records that none ran, and config.json is unchanged", async () => {
  const p = problem(51, 20, 3, 2, "sigmoid");
  const theta0 = new Float64Array(params(p)).fill(0.1);
  const m = handModel(cpu, p);
  for (const mode of ["host", "device"] as const) {
    const opt = new SGN(m.params(theta0), { mode });
    for (let s = 0; s < 2; s++) {
      const rec = await opt.step(m.model, m.loss);
      assert.equal(rec.cgWarmStart, false);
      assert.equal(rec.cgRelativeStop, false);
      assert.equal(rec.cgIterate, rec.cgIters);
      assert.deepEqual(rec.cgBacktrackLosses, []);
      // The seed's readbacks: one a step on the device; host: 2 + 3 per CG iteration + 1.
      assert.equal(
        rec.readbacks,
        mode === "device" ? 1 : 2 + 3 * rec.cgIters + 1 + rec.lsTries - 1,
      );
    }
    opt.dispose();
  }
  m.dispose();
  // config.json: the rows are written only when they are not the default.
  const keys = ["CG_WARM_START", "CG_STOP", "CG_BACKTRACK"];
  const plain = seedConfig(resolveSettings({ solver: "SGN" }));
  for (const k of keys) assert.ok(!(k in plain), `${k} in a default run's config.json`);
  const given = parseTrainArgs([
    "--cg_warm_start",
    "0.95",
    "--cg_stop",
    "relative",
    "--cg_backtrack",
  ]);
  const written = seedConfig(given);
  assert.deepEqual(keys.map((k) => written[k]), [0.95, "relative", true]);
  assert.deepEqual(
    (({ cgWarmStart, cgStop, cgBacktrack }) => ({ cgWarmStart, cgStop, cgBacktrack }))(
      optionsFor(given, "SGN"),
    ),
    { cgWarmStart: 0.95, cgStop: "relative", cgBacktrack: true },
  );
  assert.deepEqual(
    [SGN_DEFAULTS.cgWarmStart, SGN_DEFAULTS.cgStop, SGN_DEFAULTS.cgBacktrack],
    [0, "fixed", false],
  );
});

Deno.test("CG options: bad values are refused naming the option and its range (API and command line)", () => {
  const api: [SgnOptions, RegExp][] = [
    [{ cgWarmStart: 1.5 }, /cgWarmStart \(CG_WARM_START\) must be a decay in \[0, 1\].*got 1\.5/],
    [{ cgWarmStart: -0.1 }, /cgWarmStart .* must be a decay in \[0, 1\]/],
    [{ cgWarmStart: NaN }, /cgWarmStart .* got NaN/],
    [{ cgWarmStart: "0.9" as unknown as number }, /cgWarmStart .* got "0.9"/],
    [
      { cgStop: "martens" as "fixed" },
      /cgStop \(CG_STOP\) must be "fixed" or "relative", got "martens"/,
    ],
    [
      { cgBacktrack: 1 as unknown as boolean },
      /cgBacktrack \(CG_BACKTRACK\) must be true or false, got 1/,
    ],
  ];
  for (const [options, message] of api) {
    assert.throws(
      () => resolveSgnOptions(options),
      (e) => e instanceof SgnError && message.test(e.message),
    );
    assert.throws(() => new SGN([tensor([1], [1], { backend: cpu })], options), message);
  }
  const cli: [string[], RegExp][] = [
    [["--cg_warm_start", "1.01"], /--cg_warm_start must be a decay in \[0, 1\].*, got "1.01"/],
    [["--cg_warm_start", "-1"], /--cg_warm_start must be a decay in \[0, 1\]/],
    [["--cg_stop", "martens"], /--cg_stop must be one of fixed, relative, got "martens"/],
    [["--cg_backtrack", "sometimes"], /--cg_backtrack must be a boolean/],
  ];
  for (const [args, message] of cli) {
    assert.throws(
      () => parseTrainArgs(args),
      (e) => e instanceof SgnError && message.test(e.message),
    );
  }
});

property(
  "CG options: the settings table accepts exactly the values the optimizer accepts",
  fc.record({
    warm: fc.oneof(
      fc.double({ min: -2, max: 3, noNaN: true }),
      fc.constantFrom(0, 1, -0, 1 + 2 ** -52, -Number.MIN_VALUE, 0.95, NaN, Infinity),
    ),
    stop: fc.oneof(fc.constantFrom(...CG_STOP_CHOICES), fc.string({ maxLength: 9 })),
  }),
  300,
  ({ warm, stop }) => {
    const accepts = (f: () => unknown) => {
      try {
        f();
        return true;
      } catch (e) {
        if (!(e instanceof SgnError)) throw e;
        return false;
      }
    };
    assert.equal(
      accepts(() => resolveSettings({ cg_warm_start: warm })),
      accepts(() => resolveSgnOptions({ cgWarmStart: warm })),
      `cg_warm_start ${warm}`,
    );
    assert.equal(
      accepts(() => resolveSettings({ cg_stop: stop as "fixed" })),
      accepts(() => resolveSgnOptions({ cgStop: stop as "fixed" })),
      `cg_stop "${stop}"`,
    );
    // And the row's choices are the optimizer's (one definition).
    assert.equal(SETTINGS.cg_stop.choices, CG_STOP_CHOICES);
  },
);
