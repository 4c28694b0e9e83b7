/**
 * Mutants of the curvature options (issue 22): the empirical Fisher and Hessian operators, the
 * losses' per-example values, the curvature mini-batch (its rows, its scaling, the loop's first
 * rows), and CG's stop at negative curvature in both forms. `what` starts with "[i22-curv]", so
 * `deno run -A tools/mutate.ts --only "[i22-curv]"` runs exactly this list.
 *
 * @module
 */
import type { Mutant } from "../mutate.ts";

const CURV = [
  "tests/curvature_test.ts",
  "tests/curvature_steps_test.ts",
  "tests/curvature_train_test.ts",
];

/** The mutants of the curvatures that tests/curvature_*_test.ts must kill. */
export const MUTANTS: Mutant[] = [
  // --- the operators -----------------------------------------------------------------------
  {
    file: "autodiff/curvature.ts",
    find: "const [u] = dl.vjp(o.mul(dlJv, 1 / n));",
    replace: "const [u] = dl.vjp(dlJv);",
    what: "[i22-curv] the empirical Fisher without its 1/N (a sum of outer products, not a mean)",
    tests: CURV,
  },
  {
    file: "autodiff/curvature.ts",
    find: "const [dlJv] = dl.jvp(base.jvp(...v));",
    replace: "const dlJv = o.sum(base.jvp(...v), -1);",
    what:
      "[i22-curv] the Fisher's J_l v taken as the sum of J v's outputs (the loss's D l dropped)",
    tests: CURV,
  },
  {
    file: "autodiff/curvature.ts",
    find: "const [gz] = grad((y) => loss.value(y))(z);",
    replace: "const [gz] = grad((y) => o.mul(loss.value(y), 2))(z);",
    what: "[i22-curv] the Hessian of twice the loss",
    tests: CURV,
  },
  {
    file: "autodiff/curvature.ts",
    find: "trace.forward(v, nodes.slice(1)).map((t, i) => t ?? o.zerosLike(params[i]))",
    replace: "trace.forward(v, nodes.slice(1)).map((t, i) => o.zerosLike(params[i]))",
    what: "[i22-curv] the Hessian's products are zero",
    tests: CURV,
  },
  {
    file: "models/losses.ts",
    find: "return o.mean(o.square(o.sub(z, targets)), -1);",
    replace: "return o.sum(o.square(o.sub(z, targets)), -1);",
    what: "[i22-curv] squared error's per-example losses summed over the outputs, not averaged",
    tests: CURV,
  },
  {
    file: "models/losses.ts",
    find: "return o.neg(o.sum(o.mul(targets, o.logSoftmax(z)), -1));",
    replace: "return o.neg(o.sum(o.mul(targets, o.softmax(z)), -1));",
    what: "[i22-curv] cross-entropy's per-example losses from softmax instead of log-softmax",
    tests: CURV,
  },
  // --- the curvature mini-batch ------------------------------------------------------------
  {
    file: "sgn/sgn.ts",
    find: "[concatFlat(C.op.apply(...splitFlat(p, this.#shapes)))]",
    replace: "[o.mul(concatFlat(C.op.apply(...splitFlat(p, this.#shapes))), C.rows / C.batch)]",
    what: "[i22-curv] the curvature mini-batch's matrix scaled by m / N (averaged over the batch)",
    tests: CURV,
  },
  {
    file: "sgn/curvature.ts",
    find: "const op = linearize(part.model, part.loss, [...params]);",
    replace: "const op = linearize(model, loss, [...this.#params]);",
    what: "[i22-curv] the curvature mini-batch ignored: CG's products on the whole batch",
    tests: CURV,
  },
  {
    file: "sgn/curvature.ts",
    find: 'if (opt.curvatureBatch !== 1 && typeof sub !== "function") {',
    replace: "if (false) {",
    what: "[i22-curv] a missing curvature-batch argument is not reported (a TypeError instead)",
    tests: CURV,
  },
  {
    file: "sgn/options.ts",
    find: "const rows = curvatureBatch <= 1 ? Math.round(curvatureBatch * n) : curvatureBatch;",
    replace: "const rows = curvatureBatch <= 1 ? Math.ceil(curvatureBatch * n) : curvatureBatch;",
    what: "[i22-curv] a fraction's rows by ceil (0.1 of 30 gives 4 rows)",
    tests: CURV,
  },
  {
    file: "sgn/options.ts",
    find: "(v <= 1 || Number.isInteger(v));",
    replace: "(v <= 1 || v > 1);",
    what: "[i22-curv] a fractional number of rows above 1 (2.5) is accepted",
    tests: CURV,
  },
  {
    file: "train/loop.ts",
    find: "batch.subarray(0, m),",
    replace: "batch.subarray(batch.length - m),",
    what: "[i22-curv] the loop's curvature batch is the batch's last rows, not its first",
    tests: CURV,
  },
  // --- negative curvature ------------------------------------------------------------------
  {
    file: "sgn/sgn.ts",
    find: 'stopAtNegative: opt.curvature === "hessian",',
    replace: "stopAtNegative: false,",
    what: "[i22-curv] CG does not stop at negative curvature with the Hessian",
    tests: CURV,
  },
  {
    file: "sgn/cg.ts",
    find: "      if (stopAtNegative && pq <= 0) {",
    replace: "      if (stopAtNegative && pq < -1) {",
    what: "[i22-curv] host CG stops only at strongly negative curvature (p.A p < -1)",
    tests: CURV,
  },
  {
    file: "sgn/cg.ts",
    find: "        if (k === 0 && !warmStart) {\n          drop(d);",
    replace: "        if (k < 0 && !warmStart) {\n          drop(d);",
    what: "[i22-curv] host CG returns d = 0 at negative curvature in its first iteration",
    tests: CURV,
  },
  {
    file: "sgn/cg.ts",
    find: "o.mul(started, o.greaterEqual(0, pq))",
    replace: "o.mul(started, o.greater(0, pq))",
    what: "[i22-curv] device CG does not stop at zero curvature (p.A p = 0 divides by zero)",
    tests: CURV,
  },
  {
    file: "sgn/cg.ts",
    find: "const a = o.where(running, o.div(cur.ry, pq), neg && first ? neg : zero);",
    replace: "const a = o.where(running, o.div(cur.ry, pq), zero);",
    what: "[i22-curv] device CG returns d = 0 at negative curvature in its first iteration",
    tests: CURV,
  },
  {
    file: "sgn/cg.ts",
    find: "const iters = o.add(cur.iters, neg && first ? started : running);",
    replace: "const iters = o.add(cur.iters, started);",
    what: "[i22-curv] device CG counts the iteration that met negative curvature",
    tests: CURV,
  },
  {
    file: "sgn/sgn.ts",
    find: "negativeCurvature: v.negative !== undefined && v.negative > 0,",
    replace: "negativeCurvature: false,",
    what: "[i22-curv] the step record never says that negative curvature was met",
    tests: CURV,
  },
];
