/**
 * The first mutants: the optimizers, derivative rules and losses, kernels, the training loop,
 * readers and the report. Each list in tools/mutants/ is read by tools/mutate.ts.
 *
 * @module
 */
import type { Mutant } from "../mutate.ts";

const REF = ["tests/optimizer_reference_test.ts"];
const AD = ["tests/autodiff_test.ts", "tests/autodiff_networks_test.ts"];
const CONF = ["tests/conformance_test.ts", "tests/conformance_edges_test.ts"];

/** The mutants, across kernels, rules, optimizers, the loop, readers and the report. */
export const MUTANTS: Mutant[] = [
  // --- SGN ---------------------------------------------------------------------------------
  {
    file: "sgn/sgn.ts",
    find: "o.add(o.mul(p, rho), gp(p)[0])",
    replace: "o.add(o.mul(p, 0), gp(p)[0])",
    what: "CG's operator loses its damping (G p + rho p becomes G p)",
    tests: REF,
  },
  {
    file: "sgn/sgn.ts",
    find: "1 - opt.beta ** s.t",
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
    find: "o.mul(o.dot(o.add(dir.r, grad.g), dir.d), 0.5)",
    replace: "o.mul(o.dot(o.add(dir.r, grad.g), dir.d), 1)",
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
  // --- one rule per option, the readback by name, demo's flag (issue 23: "[i23-sgn]") --------
  {
    file: "sgn/options.ts",
    find: "(maxOpen ? v < max : v <= max)",
    replace: "v <= max",
    what: "[i23-sgn] open upper bounds are closed (beta 1 divides by 1 - 1^t)",
    tests: ["tests/sgn_options_test.ts"],
  },
  {
    file: "sgn/options.ts",
    find: "export const STEP_NUMBER: Interval = { int: true, min: 1, max: 1e9 };",
    replace: "export const STEP_NUMBER: Interval = { int: true, min: 0, max: 1e9 };",
    what: "[i23-sgn] step numbers (K_CG, K) from 0, though steps count from 1",
    tests: ["tests/sgn_options_test.ts"],
  },
  {
    file: "sgn/readback.ts",
    find: "? Array.from({ length: v.length }, () => values[at++])",
    replace: "? Array.from({ length: v.length }, () => values[at++]).reverse()",
    what: "[i23-sgn] a list read back in reverse (the speculative line-search tries)",
    tests: ["tests/sgn_test.ts"],
  },
  {
    file: "cli.ts",
    find: 'if (args.some((a) => a === "--f" || a.startsWith("--f="))) {',
    replace: "if (false) {",
    what: "[i23-sgn] demo's old --f is an unknown flag, not a pointer to --frequency",
    tests: ["tests/sgn_train_test.ts"],
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
    file: "autodiff/derivatives.ts",
    find: "o.mul(s, o.sub(1, s))",
    replace: "o.mul(s, o.sub(1, o.mul(s, 0.5)))",
    what: "a wrong sigmoid derivative (used by both JVP and VJP)",
    tests: AD,
  },
  {
    file: "autodiff/derivatives.ts",
    find: "o.sub(1, o.square(t))",
    replace: "o.sub(1, t)",
    what: "a wrong tanh derivative",
    tests: AD,
  },
  {
    file: "models/losses.ts",
    find: "o.mul(o.mul(s, o.sub(u, o.sum(o.mul(s, u), -1, true))), 1 / z.shape[0])",
    replace: "o.mul(o.mul(s, o.sub(u, o.sum(o.mul(s, u), -1, true))), 1)",
    what: "softmax cross-entropy's Hessian product not averaged over the batch",
    tests: [...AD, "tests/models_test.ts"],
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
    file: "kernel/op_table.ts",
    find: "Math.exp(x) / (1 + Math.exp(x)))",
    replace: "1 / (1 + Math.exp(x)))",
    what: "sigmoid wrong for negative inputs in the JavaScript lowering (oracle and native)",
    tests: CONF,
  },
  {
    file: "kernel/op_table.ts",
    find: 'max: { js: "(a !== a || b !== b ? NaN : a > b ? a : b)"',
    replace: 'max: { js: "(a > b ? a : b)"',
    what: "element-wise max drops NaN in the JavaScript lowering",
    tests: CONF,
  },
  {
    file: "cpu/blas.ts",
    find: "const lda = transA ? m : k;",
    replace: "const lda = transA ? k : m;",
    what: "native matmul with the wrong leading dimension",
    tests: CONF,
  },
  {
    file: "cpu/compile.ts",
    find: "? `${a} += ${vs[j]};`",
    replace: "? `${a} = ${vs[j]};`",
    what: "native compiled sum keeps only the last term",
    tests: CONF,
  },
  {
    file: "cpu/native_pool.ts",
    find: "if (v > bv || (v !== v && bv === bv)) {",
    replace: "if (v >= bv || (v !== v && bv === bv)) {",
    what: "native max-pool takes the last of tied maxima",
    tests: CONF,
  },
  {
    file: "cpu/native_conv.ts",
    find: "const ix = ox * s.strideW - s.padW + kx;",
    replace: "const ix = ox * s.strideW + s.padW + kx;",
    what: "native im2col shifts the padding the wrong way",
    tests: CONF,
  },
  {
    file: "kernel/interpret.ts",
    find: 'if (op === "sum") acc += v;',
    replace: 'if (op === "sum") acc = v;',
    what: "the oracle interpreter's sum keeps only the last term",
    tests: [...CONF, ...AD],
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
    tests: ["tests/datasets_idx_test.ts", "tests/datasets_test.ts"],
  },
  {
    file: "datasets/idx.ts",
    find: "const [count, height, width] = images.dims;",
    replace: "const [count, width, height] = images.dims;",
    what: "IDX image height and width swapped",
    tests: ["tests/bad_input_test.ts", "tests/datasets_idx_test.ts", "tests/datasets_test.ts"],
  },
  {
    file: "random.ts",
    find: "const j = this.randbelow(i + 1);",
    replace: "const j = this.randbelow(i);",
    what: "Python's shuffle off by one",
    tests: ["tests/models_test.ts"],
  },
  {
    file: "report/stats.ts",
    find: "const mean = xs.reduce((a, b) => a + b, 0) / xs.length;",
    replace: "const mean = xs.reduce((a, b) => a + b, 0) / (xs.length + 1);",
    what: "the report's mean over seeds divided by one too many",
    tests: ["tests/report_runs_test.ts"],
  },
  {
    file: "train/run_folder.ts",
    find: "if (alive === false) {",
    replace: "if (alive === true) {",
    what: "a live run taken for a dead one",
    tests: ["tests/bad_input_test.ts"],
  },
  {
    file: "sgn/options.ts",
    find: "export const MAX_CG_ITERS_LIMIT = 10_000;",
    replace: "export const MAX_CG_ITERS_LIMIT = 1e12;",
    what: "no bound on CG iterations",
    tests: ["tests/bad_input_test.ts"],
  },
];
