/**
 * The SGN optimizer, exactly as ../shared/seed/SGN-ALGORITHM.md restates the seed: momentum on
 * the gradient, optional diagonal preconditioner, damped Gauss-Newton system solved by
 * preconditioned CG with matrix-free products G p = J^T H_L J p, trust-region damping and
 * Armijo backtracking. Beyond the seed, and off unless asked for, Martens' (2010) refinements
 * of CG (sgn/cg.ts): a warm start, the relative-progress stop and CG backtracking.
 *
 * Fast path ("device" mode): one forward pass is recorded per step and CG runs only tangent and
 * cotangent sweeps; CG's scalars live on the device, the tolerance test is a device mask that
 * freezes the iterate once max|r| <= tol, and the line search evaluates its first candidate step
 * sizes speculatively. The step then reads back one small record (losses, CG statistics) and
 * decides on the host (budgets over 64 CG iterations add a readback of CG's mask every 64, so
 * that CG stops once it has converged; cgBacktrack adds one, for the kept iterates' losses).
 * "host" mode follows the seed's control flow on the host (a readback per CG iteration and per
 * line-search try, free on a CPU backend, and no speculative work); it is what CPU backends run,
 * and the tests hold the device path to it.
 *
 * Memory: a step frees every temporary however it ends (a failed step leaves the parameters and
 * the optimizer's state as they were), and CG frees each iterate as it makes the next, so the
 * live-buffer count does not grow with the number of steps nor with CG's budget.
 *
 * @module
 */

import { SgnError, showValue } from "../errors.ts";
import { scope, type Tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import {
  type CurvatureOperator,
  fisherLinearize,
  fisherOf,
  ggnLinearize,
  hessianLinearize,
  type OutputLoss,
  valueAndGrad,
} from "../autodiff/transforms.ts";
import { checkParams, flatten, precondT, unflatten } from "./vectors.ts";
import { type Replayable, replayable } from "../autodiff/replay.ts";
import {
  axpyT,
  backtrackIterates,
  cgDevice,
  cgHost,
  type CgSpec,
  type ChosenIterate,
  maxAbsT,
} from "./cg.ts";
import { lineSearch, nextTrustRegionRho, type Try } from "./rules.ts";
import { type CurvatureBatch, type ModelFn, type Optimizer, StepGuard } from "./optimizer.ts";

export type { CurvatureBatch, ModelFn, Optimizer } from "./optimizer.ts";
import {
  cgBudget,
  type Curvature,
  curvatureRows,
  type ResolvedSgnOptions,
  resolveSgnOptions,
  scheduledRho,
  type SgnOptions,
} from "./options.ts";

/** What one SGN step did (SGN-ALGORITHM.md step 6). */
export interface SgnStepRecord {
  /** L0: the mini-batch loss before the step. */
  loss: number;
  /** L1: the loss after the step (equal to loss when neither LS nor TR evaluated it). */
  lossAfter: number;
  /** The damping rho used in this step. */
  rho: number;
  /** The final step size a. */
  alpha: number;
  /** CG iterations run. */
  cgIters: number;
  /** max|r| after CG. */
  cgResidual: number;
  /** Loss evaluations of the line search (0 without LS and TR). */
  lsTries: number;
  /** Trust-region ratio (actual / predicted decrease), NaN when TR is off. */
  ratio: number;
  /** Device readbacks this step needed. */
  readbacks: number;
  /** The quadratic model's predicted change of the loss, 0.5 (r + g).d (SGN-ALGORITHM.md 5). */
  predicted: number;
  /** The Armijo threshold the accepted (or last) try was held to; NaN without line search. */
  armijoThreshold: number;
  /** The loss at each line-search try, in order (the first at ALPHA); empty without LS and TR. */
  lsLosses: number[];
  /** The damping the next step will use with the trust region (this step's rho without it). */
  nextRho: number;
  /**
   * The loss's metric (e.g. accuracy) where the seed's step scores its batch: at the parameters
   * of the last loss evaluation (the accepted step) with LS or TR, else before the step.
   * Undefined when the loss has no metric.
   */
  metric?: number;
  /** Whether CG started from cgWarmStart * the previous step's last CG iterate (not 0). */
  cgWarmStart: boolean;
  /** Whether Martens' relative-progress rule stopped CG (cgStop "relative"). */
  cgRelativeStop: boolean;
  /**
   * The CG iteration whose iterate d the step used: cgIters, or with cgBacktrack the iterate
   * backtracking chose.
   */
  cgIterate: number;
  /**
   * With cgBacktrack, the mini-batch loss at theta + d_i of each kept iterate backtracking
   * evaluated, from the last backwards; empty without.
   */
  cgBacktrackLosses: number[];
  /** The curvature CG multiplied by (the option `curvature`). */
  curvature: Curvature;
  /** The rows of the batch CG's products used (the option `curvatureBatch`). */
  curvatureRows: number;
  /** Whether CG stopped at negative curvature (only the "hessian" curvature can meet it). */
  negativeCurvature: boolean;
}

/** Each curvature's operator on a batch of its own (sgn/options.ts, `curvature`). */
const LINEARIZE = {
  ggn: ggnLinearize,
  hessian: hessianLinearize,
  fisher: fisherLinearize,
} as const satisfies Record<Curvature, unknown>;

/** Reads one-element tensors and a few more scalars in a single readback. */
async function readScalars(scalars: Tensor[]): Promise<number[]> {
  const flat = flatten(scalars);
  try {
    return Array.from(await flat.data());
  } finally {
    flat.dispose();
  }
}

/**
 * Stochastic Generalized Gauss-Newton.
 *
 * @example
 * ```ts
 * import { init, meanSquaredError, mlp, SGN, tensor } from "../mod.ts";
 * await init({ backend: "cpu" });
 * const net = mlp({ inputs: 1, hidden: [8], outputs: 1 });
 * const x = tensor([[0], [0.5], [1]]);
 * const y = tensor([[0], [0.25], [1]]);
 * const opt = new SGN(net.init({ seed: 1 }), { dampRho: 1e-3, trustRegion: true });
 * const record = await opt.step((...p) => net.forward(p, x), meanSquaredError(y));
 * console.log(record.loss, record.lossAfter, record.cgIters);
 * opt.dispose();
 * ```
 */
export class SGN implements Optimizer {
  readonly #guard = new StepGuard("SGN", true);
  /** The options in force: those given, checked, with the seed's defaults for the rest. */
  readonly options: ResolvedSgnOptions;
  #params: Tensor[];
  #shapes: number[][];
  #momentum: Tensor | undefined;
  /** The previous step's last CG iterate, kept for the warm start (cgWarmStart > 0). */
  #lastD: Tensor | undefined;
  /** Steps taken (t in SGN-ALGORITHM.md counts from 1). */
  t = 0;
  /** The trust-region damping carried to the next step. */
  rho: number;
  /**
   * Line-search tries of the previous step: how many candidates to evaluate speculatively (an
   * extra forward pass costs about as much as the readback a second batch would need).
   */
  #lastTries = 1;

  /** Takes ownership of `params` (a list of tensors on one backend). */
  constructor(params: Tensor[], options: SgnOptions = {}) {
    this.options = resolveSgnOptions(options);
    this.#params = checkParams(params, "SGN");
    this.#shapes = params.map((p) => [...p.shape]);
    this.rho = this.options.dampRho;
  }

  get params(): readonly Tensor[] {
    return this.#params;
  }

  dispose(): void {
    for (const p of this.#params) p.dispose();
    this.#momentum?.dispose();
    this.#lastD?.dispose();
  }

  /**
   * One SGN step on a mini-batch: `model(...params)` gives its outputs, `loss` scores them. A
   * second call before this one's promise settles is refused. `curvatureBatch(rows)` gives the
   * model and loss of the batch's first `rows` rows, for the option `curvatureBatch` (needed
   * only when that option is set; its tensors stay the caller's).
   */
  step(
    model: ModelFn,
    loss: OutputLoss,
    curvatureBatch?: CurvatureBatch,
  ): Promise<SgnStepRecord> {
    return this.#guard.run(() => this.#step(model, loss, curvatureBatch), model, loss);
  }

  /**
   * The curvature operator of this step: `G` itself (the seed's), or built on `G` (the Fisher
   * of the whole batch), or on the first `rows` rows of the batch, or the Hessian.
   */
  #curvature(
    G: CurvatureOperator,
    model: ModelFn,
    loss: OutputLoss,
    sub: CurvatureBatch | undefined,
  ): { op: CurvatureOperator; own: boolean; rows: number } {
    const opt = this.options;
    const n = G.outputs.shape[0];
    if (opt.curvatureBatch !== 1 && typeof sub !== "function") {
      throw new SgnError(
        `SGN.step: the option curvatureBatch (${opt.curvatureBatch}) needs the step's third ` +
          "argument, (rows) => ({ model, loss }) on the batch's first rows (train() passes " +
          `it), got ${showValue(sub)}; or leave curvatureBatch at 1 (the whole batch)`,
      );
    }
    const rows = curvatureRows(opt.curvatureBatch, n);
    let part = { model, loss };
    if (rows < n) {
      part = sub!(rows);
      if (typeof part?.model !== "function" || typeof part?.loss?.value !== "function") {
        throw new SgnError(
          `SGN.step: the curvature batch (${rows} rows) must be { model, loss } as the step's ` +
            `own, got ${showValue(part)}`,
        );
      }
    }
    if (opt.curvature === "fisher" && typeof part.loss.perExample !== "function") {
      throw new SgnError(
        'SGN.step: the curvature "fisher" needs the loss\'s perExample(z), the per-example ' +
          "losses whose mean is its value (softmaxCrossEntropy and meanSquaredError have it); " +
          'this loss has none: give it one, or use the curvature "ggn" or "hessian"',
      );
    }
    // The whole batch: the Gauss-Newton matrix and the Fisher live on the step's own record.
    if (rows === n && opt.curvature !== "hessian") {
      return opt.curvature === "ggn"
        ? { op: G, own: false, rows }
        : { op: fisherOf(G, loss), own: true, rows };
    }
    const linearize = LINEARIZE[opt.curvature];
    const op = linearize(part.model, part.loss, [...this.#params]);
    const got = op.outputs.shape[0];
    if (got !== rows) {
      op.dispose();
      throw new SgnError(
        `SGN.step: the curvature batch's model gives ${got} rows; ${rows} were asked for ` +
          `(curvatureBatch ${opt.curvatureBatch} of a batch of ${n})`,
      );
    }
    return { op, own: true, rows };
  }

  async #step(
    model: ModelFn,
    loss: OutputLoss,
    sub: CurvatureBatch | undefined,
  ): Promise<SgnStepRecord> {
    const opt = this.options;
    const t = this.t + 1;
    const be = this.#params[0].backend;
    const rho = opt.trustRegion ? this.rho : scheduledRho(opt, t);
    // The loss at candidate parameters, and the metric there when the loss has one.
    const objective = (...p: Tensor[]) => {
      const z = model(...p);
      return loss.metric ? [loss.value(z), loss.metric(z)] : [loss.value(z)];
    };
    const evaluates = opt.lineSearch || opt.trustRegion;
    const host = opt.mode === "host" || (opt.mode === "auto" && be.hostReadback);
    let readbacks = 0;

    // One recorded forward pass serves the gradient (J^T dL/dz) and every G p of CG (with the
    // default curvature; the others linearize what they need beside it).
    const G = ggnLinearize(model, loss, [...this.#params]);
    // Every tensor of this step that outlives a scope, freed however the step ends (the new
    // momentum is taken out when the step commits).
    const temps: Tensor[] = [];
    let C: { op: CurvatureOperator; own: boolean; rows: number } | undefined;
    let gp: Replayable | undefined;
    try {
      C = this.#curvature(G, model, loss, sub);
      const curvature = C.op;
      const solved = scope(() => {
        const [l0, [gz]] = valueAndGrad((z: Tensor) => loss.value(z))(G.outputs);
        const g = flatten(G.vjp(gz));
        let mHat = g;
        let momentum: Tensor | undefined;
        if (opt.beta > 0) {
          momentum = this.#momentum
            ? o.add(o.mul(this.#momentum, opt.beta), o.mul(g, 1 - opt.beta))
            : o.mul(g, 1 - opt.beta);
          mHat = o.div(momentum, 1 - opt.beta ** t);
        }
        const theta = flatten(this.#params);
        return { l0, g, mHat, momentum, theta };
      });
      temps.push(solved.l0, solved.g, solved.mHat, solved.theta);
      if (solved.momentum) temps.push(solved.momentum);
      // C p, recorded at CG's first iteration and replayed at the others (autodiff/replay.ts).
      gp = replayable((p: Tensor) => [flatten(curvature.apply(...unflatten(p, this.#shapes)))]);
      const curv = gp;
      const apply = (p: Tensor) => scope(() => o.add(o.mul(p, rho), curv(p)[0]));
      const precond = opt.cgPrec
        // From the base damping, never the scheduled rho (SGN-ALGORITHM.md step 2).
        ? (r: Tensor) => precondT(r, solved.mHat, opt.trustRegion ? rho : opt.dampRho, opt.alphaExp)
        : undefined;
      const warm = opt.cgWarmStart > 0 && this.#lastD !== undefined;
      const spec: CgSpec = {
        apply,
        b: solved.mHat,
        precond,
        budget: cgBudget(opt, t),
        tol: opt.cgTol,
        ...(warm ? { warmStart: { from: this.#lastD!, decay: opt.cgWarmStart } } : {}),
        relative: opt.cgStop === "relative",
        save: opt.cgBacktrack,
        // Only the Hessian can have negative curvature.
        stopAtNegative: opt.curvature === "hessian",
        countReadback: () => readbacks++,
      };
      const cg = host ? await cgHost(spec) : await cgDevice(spec);
      temps.push(cg.d, cg.r, cg.iters, cg.rMax, ...(cg.relStop ? [cg.relStop] : []));
      if (cg.negative) temps.push(cg.negative);
      const negativeAt = cg.negative ? 1 : 0;
      for (const it of cg.saved) temps.push(it.d, it.r);
      // CG backtracking: the iterate the rest of the step uses (by default CG's last).
      const chosen: ChosenIterate | undefined = opt.cgBacktrack
        ? await backtrackIterates(
          cg,
          (d) => objective(...unflatten(axpyT(1, d, solved.theta), this.#shapes)),
          host,
          () => readbacks++,
        )
        : undefined;
      const dir = chosen ?? cg;
      // The chosen iterate's loss is the line search's first try when that is at step size 1.
      const known: Try[] = chosen && evaluates && opt.alpha === 1 ? [chosen.at] : [];

      // Candidates a_i = alpha * rhoLs^i, evaluated speculatively (device mode) or one by one.
      const stepAt = (a: number) => unflatten(axpyT(a, dir.d, solved.theta), this.#shapes);
      const lossAt = (a: number) => scope(() => objective(...stepAt(a)));
      // Without LS and TR the seed scores the batch before the step, on the recorded outputs.
      const metricBefore = !evaluates && loss.metric ? 1 : 0;
      const firstBatch = !evaluates
        ? 0
        : host || !opt.lineSearch
        ? 1
        : opt.lsSpeculation === "all"
        ? opt.maxLsIters + 1
        : Math.min(opt.maxLsIters + 1, this.#lastTries);
      const head = scope(() => {
        const pred = o.mul(o.dot(o.add(dir.r, solved.g), dir.d), 0.5);
        const md = o.dot(solved.mHat, dir.d);
        const dMax = maxAbsT(dir.d);
        const before = metricBefore ? [loss.metric!(G.outputs)] : [];
        const evaluated = Array.from(
          { length: Math.max(0, firstBatch - known.length) },
          (_, i) => lossAt(opt.alpha * opt.rhoLs ** (i + known.length)),
        ).flat();
        return [
          solved.l0,
          cg.iters,
          cg.rMax,
          pred,
          md,
          dMax,
          ...(cg.negative ? [cg.negative] : []),
          ...before,
          ...evaluated,
        ];
      });
      temps.push(...head);
      const values = await readScalars([...head, ...(cg.relStop ? [cg.relStop] : [])]);
      readbacks++;
      head.forEach((h) => h !== solved.l0 && h.dispose());
      const [l0, cgIters, cgResidual, predicted, md, dMax] = values;
      const negativeCurvature = negativeAt ? values[6] > 0 : false;
      const perTry = loss.metric ? 2 : 1;
      const rest = values.slice(6 + negativeAt + metricBefore, head.length);
      // Loss (and metric) of each candidate evaluated so far.
      const tried = [
        ...known,
        ...Array.from({ length: rest.length / perTry }, (_, i) => ({
          loss: rest[i * perTry],
          metric: loss.metric ? rest[i * perTry + 1] : undefined,
        })),
      ];

      if (!Number.isFinite(l0)) {
        throw new SgnError(
          `SGN step ${t}: the loss before the step is ${l0}; check the inputs and parameters ` +
            "(the parameters were left unchanged)",
        );
      }
      if (!Number.isFinite(dMax) || !Number.isFinite(cgResidual)) {
        throw new SgnError(
          `SGN step ${t}: conjugate gradient went non-finite (max|d| = ${dMax}, ` +
            `max|r| = ${cgResidual}); the parameters were left unchanged. ` +
            (rho < 1e6
              ? "Try a larger dampRho."
              : `The damping (${rho}) is already huge: look for overflow in the data, the ` +
                "network's outputs or the loss instead."),
        );
      }

      // Line search (Armijo) and trust-region ratio, decided on the host (sgn/rules.ts).
      const searched = evaluates
        ? await lineSearch(opt, l0, md, async (i): Promise<Try> => {
          if (i < tried.length) return tried[i];
          const more = lossAt(opt.alpha * opt.rhoLs ** i);
          try {
            const [v, m] = await readScalars(more);
            readbacks++;
            return { loss: v, metric: m };
          } finally {
            more.forEach((t) => t.dispose());
          }
        })
        : undefined;
      const a = searched?.alpha ?? opt.alpha;
      const l1 = searched?.loss ?? l0;
      const tries = searched?.losses.length ?? 0;
      const metric = searched ? searched.metric : metricBefore ? values[6 + negativeAt] : undefined;
      if (!Number.isFinite(l1)) {
        throw new SgnError(
          `SGN step ${t}: the loss after the step is ${l1} at step size ${a} ` +
            `(after ${tries} line-search tries); the parameters were left unchanged`,
        );
      }
      const largest = solved.theta.dtype === "float32" ? 3.4e38 : Number.MAX_VALUE;
      if (!(a * dMax < largest)) {
        throw new SgnError(
          `SGN step ${t}: the step a * max|d| = ${a * dMax} overflows ${solved.theta.dtype}; ` +
            "the parameters were left unchanged (use a smaller alpha, or the line search)",
        );
      }
      const l1First = searched ? searched.losses[0] : NaN;
      const ratio = opt.trustRegion ? (l1First - l0) / predicted : NaN;

      // Commit: new parameters, momentum, rho for the next step.
      const next = scope(() => stepAt(a));
      for (const p of this.#params) p.dispose();
      this.#params = next;
      if (solved.momentum) {
        this.#momentum?.dispose();
        this.#momentum = solved.momentum.realize();
        temps.splice(temps.indexOf(solved.momentum), 1);
      }
      if (opt.cgWarmStart > 0) {
        this.#lastD?.dispose();
        this.#lastD = cg.d.realize();
        temps.splice(temps.indexOf(cg.d), 1);
      }
      if (opt.trustRegion) this.rho = nextTrustRegionRho(ratio, rho, opt.dampRhoMin);
      this.t = t;
      this.#lastTries = Math.max(1, tries);
      return {
        loss: l0,
        lossAfter: evaluates ? l1 : l0,
        rho,
        alpha: a,
        cgIters,
        cgResidual,
        lsTries: tries,
        ratio,
        readbacks,
        predicted,
        armijoThreshold: searched?.threshold ?? NaN,
        lsLosses: searched?.losses ?? [],
        nextRho: opt.trustRegion ? this.rho : scheduledRho(opt, t + 1),
        ...(metric === undefined ? {} : { metric }),
        cgWarmStart: warm,
        cgRelativeStop: cg.relStop ? values[head.length] === 1 : false,
        cgIterate: chosen?.iter ?? cgIters,
        cgBacktrackLosses: chosen?.tries.map((t) => t.loss) ?? [],
        curvature: opt.curvature,
        curvatureRows: C.rows,
        negativeCurvature,
      };
    } finally {
      gp?.dispose();
      if (C?.own) C.op.dispose();
      G.dispose();
      for (const k of temps) k.dispose();
    }
  }
}
