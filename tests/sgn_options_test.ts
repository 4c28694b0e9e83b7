/**
 * SGN's options: the schedules against their formulas, and bad values refused naming the option
 * and its range.
 */
import assert from "node:assert/strict";
import { resolveSgnOptions, scheduledRho, type SgnOptions } from "../sgn/options.ts";
import { Adam, scheduledLr, SGD } from "../sgn/baselines.ts";

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
  // The largest allowed budgets are accepted.
  resolveSgnOptions({ cgMaxIters: 10_000, cgMinIters: 10_000, maxLsIters: 100 });
});
