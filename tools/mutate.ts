/**
 * Mutation testing: small realistic bugs (a sign, a constant, a branch, a swapped argument) put
 * into the source one at a time, in a temporary copy of the repository, each followed by the
 * tests that should catch it. A mutant the tests catch is "killed"; one they miss "survived",
 * which points at a missing test. Every mutant of this list must be killed.
 *
 * Run: `deno run -A tools/mutate.ts [--only TEXT] [--list]` (about 10 minutes for the whole
 * list on 2 cores; not part of CI). Exits 1 when a mutant survives or no longer applies.
 *
 * @module
 */

import { parseArgs } from "node:util";

/** One mutation: in `file`, the one occurrence of `find` becomes `replace`. */
export interface Mutant {
  file: string;
  find: string;
  replace: string;
  /** What the bug is, in words. */
  what: string;
  /** The test files that should catch it. */
  tests: string[];
}

const REF = ["tests/optimizer_reference_test.ts"];
const CONF = ["tests/conformance_test.ts"];

/** The mutants, across kernels, rules, optimizers, the loop, readers and the report. */
export const MUTANTS: Mutant[] = [
  // --- SGN ---------------------------------------------------------------------------------
  {
    file: "sgn/sgn.ts",
    find: "be.axpy(rho, p.buffer, gp.buffer)",
    replace: "be.axpy(0, p.buffer, gp.buffer)",
    what: "CG's operator loses its damping (G p + rho p becomes G p)",
    tests: REF,
  },
  {
    file: "sgn/sgn.ts",
    find: "1 - opt.beta ** t",
    replace: "1 - opt.beta",
    what: "momentum bias correction 1 - beta instead of 1 - beta^t",
    tests: REF,
  },
  {
    file: "sgn/rules.ts",
    find: "if (ratio < 0.25) return 1.5 * rho;",
    replace: "if (ratio < 0.25) return 1.25 * rho;",
    what: "trust region grows rho by 1.25 instead of 1.5",
    tests: REF,
  },
  {
    file: "sgn/rules.ts",
    find: "if (ratio < 0.25) return",
    replace: "if (ratio < 0.3) return",
    what: "trust-region threshold 0.3 instead of 1/4",
    tests: REF,
  },
  {
    file: "sgn/rules.ts",
    find: "return Math.max((2 / 3) * rho, dampRhoMin);",
    replace: "return (2 / 3) * rho;",
    what: "the trust region ignores DAMP_RHO_MIN",
    tests: REF,
  },
  {
    file: "sgn/sgn.ts",
    find: "o.mul(o.dot(o.add(cg.r, solved.g), cg.d), 0.5)",
    replace: "o.mul(o.dot(o.add(cg.r, solved.g), cg.d), 1)",
    what: "predicted decrease without its 1/2",
    tests: REF,
  },
  {
    file: "sgn/rules.ts",
    find: '(opts.armijo === "seed" ? opts.alpha : a) * opts.cLs * md',
    replace: '(opts.armijo === "seed" ? a : opts.alpha) * opts.cLs * md',
    what: "the two Armijo right-hand sides swapped",
    tests: REF,
  },
  {
    file: "sgn/rules.ts",
    find: "opts.maxLsIters + 1 : 1",
    replace: "opts.maxLsIters : 1",
    what: "the line search evaluates MAX_LS_ITERS times instead of MAX_LS_ITERS + 1",
    tests: REF,
  },
  {
    file: "sgn/sgn.ts",
    find: "opt.trustRegion ? rho : opt.dampRho",
    replace: "rho",
    what: "the preconditioner uses the scheduled rho",
    tests: REF,
  },
  {
    file: "sgn/options.ts",
    find: "return t >= opts.kCg ? opts.cgMaxIters : opts.cgMinIters;",
    replace: "return t > opts.kCg ? opts.cgMaxIters : opts.cgMinIters;",
    what: "the CG budget switches one step late",
    tests: REF,
  },
  {
    file: "sgn/options.ts",
    find: "(opts.dampRhoMin - opts.dampRho) * (t - 1) / (opts.k - 1)",
    replace: "(opts.dampRhoMin - opts.dampRho) * t / (opts.k - 1)",
    what: "the linear rho schedule starts one step in",
    tests: REF,
  },
  {
    file: "sgn/options.ts",
    find: "return t > opts.k || rho < opts.dampRhoMin ? opts.dampRhoMin : rho;",
    replace: "return rho < opts.dampRhoMin ? opts.dampRhoMin : rho;",
    what: "the cos schedule goes on after K",
    tests: REF,
  },
  // --- baselines ---------------------------------------------------------------------------
  {
    file: "sgn/baselines.ts",
    find: "o.sub(theta, v)",
    replace: "o.add(theta, v)",
    what: "SGD climbs the gradient",
    tests: REF,
  },
  {
    file: "sgn/baselines.ts",
    find: "1 - beta1 ** t",
    replace: "1 - beta1",
    what: "Adam's bias correction without the power",
    tests: REF,
  },
  {
    file: "sgn/baselines.ts",
    find: "opts.decay ** Math.floor(t / opts.step)",
    replace: "opts.decay ** Math.floor((t - 1) / opts.step)",
    what: "the step-decay schedule decays one step late",
    tests: REF,
  },
  // --- autodiff and losses -----------------------------------------------------------------
  {
    file: "autodiff/primitives.ts",
    find: "o.mul(s, o.sub(1, s))",
    replace: "o.mul(s, o.sub(1, o.mul(s, 0.5)))",
    what: "a wrong sigmoid derivative (used by both JVP and VJP)",
    tests: ["tests/autodiff_test.ts"],
  },
  {
    file: "autodiff/primitives.ts",
    find: "o.sub(1, o.square(t))",
    replace: "o.sub(1, t)",
    what: "a wrong tanh derivative",
    tests: ["tests/autodiff_test.ts"],
  },
  {
    file: "models/losses.ts",
    find: "o.mul(o.mul(s, o.sub(u, o.sum(o.mul(s, u), -1, true))), 1 / z.shape[0])",
    replace: "o.mul(o.mul(s, o.sub(u, o.sum(o.mul(s, u), -1, true))), 1)",
    what: "softmax cross-entropy's Hessian product not averaged over the batch",
    tests: ["tests/autodiff_test.ts", "tests/models_test.ts"],
  },
  {
    file: "models/losses.ts",
    find: "return o.mul(u, 2 / z.size);",
    replace: "return o.mul(u, 1 / z.size);",
    what: "squared error's Hessian product without its 2",
    tests: REF,
  },
  // --- kernels -----------------------------------------------------------------------------
  {
    file: "cpu/native.ts",
    find: "y = x >= 0 ? 1 / (1 + e) : e / (1 + e);",
    replace: "y = x >= 0 ? 1 / (1 + e) : 1 / (1 + e);",
    what: "native sigmoid wrong for negative inputs",
    tests: CONF,
  },
  {
    file: "cpu/native.ts",
    find: 'max: "(x !== x || y !== y) ? NaN : x > y ? x : y",',
    replace: 'max: "x > y ? x : y",',
    what: "native max drops NaN",
    tests: CONF,
  },
  {
    file: "cpu/native.ts",
    find: "const lda = transA ? m : k;",
    replace: "const lda = transA ? k : m;",
    what: "native matmul with the wrong leading dimension",
    tests: CONF,
  },
  {
    file: "cpu/native.ts",
    find: "for (let i = 0; i < inner; i++) acc[i] += ad[base + i];",
    replace: "for (let i = 0; i < inner; i++) acc[i] = ad[base + i];",
    what: "native sum keeps only the last row",
    tests: CONF,
  },
  {
    file: "cpu/native.ts",
    find: "if (v > bv || (v !== v && bv === bv)) {",
    replace: "if (v >= bv || (v !== v && bv === bv)) {",
    what: "native max-pool takes the last of tied maxima",
    tests: CONF,
  },
  {
    file: "cpu/native.ts",
    find: "const ix = ox * s.strideW - s.padW + kx;",
    replace: "const ix = ox * s.strideW + s.padW + kx;",
    what: "native im2col shifts the padding the wrong way",
    tests: CONF,
  },
  {
    file: "cpu/backend.ts",
    find: "  return e / (1 + e);",
    replace: "  return 1 / (1 + e);",
    what: "the oracle's sigmoid wrong for negative inputs",
    tests: [...CONF, "tests/autodiff_test.ts"],
  },
  // --- training loop, data, report, runs ---------------------------------------------------
  {
    file: "train/loop.ts",
    find: "const avgLoss = lossSum / stepsPerEpoch;",
    replace: "const avgLoss = lossSum / n;",
    what: "the mean loss divided by the sample count",
    tests: ["tests/train_values_test.ts"],
  },
  {
    file: "train/loop.ts",
    find: "if (classification) record.test_acc!.push(test.acc);",
    replace: "if (classification) record.test_acc!.push(accSum / stepsPerEpoch);",
    what: "test accuracy replaced by training accuracy",
    tests: ["tests/train_values_test.ts"],
  },
  {
    file: "train/loop.ts",
    find: "record.rho!.push(r.rho);",
    replace: "record.rho!.push(r.alpha);",
    what: "results.json's rho list filled with the step sizes",
    tests: ["tests/train_values_test.ts"],
  },
  {
    file: "datasets/sets.ts",
    find: "out[i] = pixels[i] / 255;",
    replace: "out[i] = pixels[i] / 256;",
    what: "pixels scaled by 1/256",
    tests: ["tests/datasets_test.ts"],
  },
  {
    file: "datasets/idx.ts",
    find: "const [count, height, width] = images.dims;",
    replace: "const [count, width, height] = images.dims;",
    what: "IDX image height and width swapped",
    tests: ["tests/bad_input_test.ts", "tests/datasets_test.ts"],
  },
  {
    file: "random.ts",
    find: "const j = this.randbelow(i + 1);",
    replace: "const j = this.randbelow(i);",
    what: "Python's shuffle off by one",
    tests: ["tests/models_test.ts"],
  },
  {
    file: "report/collect.ts",
    find: "const mean = xs.reduce((a, b) => a + b, 0) / xs.length;",
    replace: "const mean = xs.reduce((a, b) => a + b, 0) / (xs.length + 1);",
    what: "the report's mean over seeds divided by one too many",
    tests: ["tests/report_test.ts"],
  },
  {
    file: "train/run_folder.ts",
    find: "if (alive === false) {",
    replace: "if (alive === true) {",
    what: "a live run taken for a dead one",
    tests: ["tests/bad_input_test.ts"],
  },
  {
    file: "train/settings.ts",
    find: '    max: 10000,\n    help: "SGN: CG iterations from step K_cg on (MAX_CG_ITERS)",',
    replace: '    max: 1e12,\n    help: "SGN: CG iterations from step K_cg on (MAX_CG_ITERS)",',
    what: "no bound on CG iterations",
    tests: ["tests/bad_input_test.ts"],
  },
];

/** Copies the repository's tracked files (as they are in the working tree) to a new folder. */
async function copyRepo(root: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "sgn-mutate-" });
  const list = await new Deno.Command("git", { args: ["ls-files", "-z"], cwd: root }).output();
  const files = new TextDecoder().decode(list.stdout).split("\0").filter(Boolean);
  for (const f of files) {
    const to = `${dir}/${f}`;
    await Deno.mkdir(to.slice(0, to.lastIndexOf("/")), { recursive: true });
    await Deno.copyFile(`${root}/${f}`, to);
  }
  return dir;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { only: { type: "string", default: "" }, list: { type: "boolean", default: false } },
  });
  const chosen = MUTANTS.filter((m) => `${m.file} ${m.what}`.includes(values.only));
  if (values.list) {
    chosen.forEach((m, i) => console.log(`${i + 1}. ${m.file}: ${m.what}`));
    Deno.exit(0);
  }
  const root = new URL("..", import.meta.url).pathname;
  const dir = await copyRepo(root);
  let killed = 0;
  const bad: string[] = [];
  const runTests = (tests: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: ["test", "-A", "--fail-fast", "--no-check", ...tests],
      cwd: dir,
      stdout: "null",
      stderr: "null",
      env: { NO_COLOR: "1" },
    }).output();
  try {
    // The unmutated copy must pass, or a "kill" would mean nothing.
    const all = [...new Set(chosen.flatMap((m) => m.tests))];
    if ((await runTests(all)).code !== 0) {
      console.error(`the tests fail without any mutant: fix them first (${all.join(" ")})`);
      Deno.exit(2);
    }
    for (const [i, m] of chosen.entries()) {
      const path = `${dir}/${m.file}`;
      const original = await Deno.readTextFile(path);
      const at = original.indexOf(m.find);
      const label = `${i + 1}/${chosen.length} ${m.file}: ${m.what}`;
      if (at < 0 || original.indexOf(m.find, at + 1) >= 0) {
        console.log(`NOT APPLIED ${label} (the text to mutate is missing or not unique)`);
        bad.push(label);
        continue;
      }
      await Deno.writeTextFile(path, original.replace(m.find, m.replace));
      const t0 = performance.now();
      const run = await runTests(m.tests);
      await Deno.writeTextFile(path, original);
      const secs = ((performance.now() - t0) / 1000).toFixed(0);
      if (run.code !== 0) {
        killed++;
        console.log(`killed    ${label} (${secs} s)`);
      } else {
        console.log(`SURVIVED  ${label} (${secs} s)`);
        bad.push(label);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  console.log(`\nmutation score: ${killed} of ${chosen.length} killed`);
  if (bad.length > 0) Deno.exit(1);
}
