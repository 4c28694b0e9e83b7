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
 * A step runs in named phases, each a method below: the curvature operator (sgn/curvature.ts),
 * the gradient and momentum (`#gradient`), CG (`#solve`), CG backtracking (`#direction`), one
 * readback of every scalar the host needs, by name (`#readback`: L0, CG's statistics, the
 * predicted change, the first line-search tries), the checks for non-finite values, the line
 * search and the trust region's ratio (`#lineSearch`), the commit (new parameters, momentum, rho
 * for the next step) and the record (`#record`). The objective at candidate parameters (the
 * line search's tries, backtracking's iterates) is recorded once a second evaluation is in view
 * and replayed at the others (sgn/objective.ts).
 *
 * Memory: a step frees every temporary however it ends (a failed step leaves the parameters and
 * the optimizer's state as they were), and CG frees each iterate as it makes the next, so the
 * live-buffer count does not grow with the number of steps nor with CG's budget.
 *
 * @module
 */

import { SgnError } from "../errors.ts";
import { scope, type Tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import {
  type CurvatureOperator,
  ggnLinearize,
  type OutputLoss,
  valueAndGrad,
} from "../autodiff/transforms.ts";
import { checkParams, concatFlat, precondT, splitFlat } from "./vectors.ts";
import { replayable } from "../autodiff/replay.ts";
import {
  axpyT,
  backtrackIterates,
  cgDevice,
  cgHost,
  type CgResult,
  type CgSpec,
  type ChosenIterate,
  maxAbsT,
} from "./cg.ts";
import { lineSearch, type LineSearchResult, nextTrustRegionRho, type Try } from "./rules.ts";
import { type CurvatureBatch, type ModelFn, type Optimizer, StepGuard } from "./optimizer.ts";
import {
  cgBudget,
  type ResolvedSgnOptions,
  resolveSgnOptions,
  scheduledRho,
  type SgnOptions,
} from "./options.ts";
import { type StepCurvature, stepCurvature } from "./curvature.ts";
import { readScalars, scalarTensors } from "./readback.ts";
import { StepObjective } from "./objective.ts";
import type { SgnStepRecord } from "./record.ts";

export type { CurvatureBatch, ModelFn, Optimizer } from "./optimizer.ts";
export type { SgnStepRecord } from "./record.ts";

/** The loss (and metric) tensors of one evaluation of the objective, by name. */
function tryOf(ts: Tensor[]): { loss: Tensor; metric: Tensor | undefined } {
  return { loss: ts[0], metric: ts[1] };
}

/** The state of one step that its phases share. */
interface StepState {
  /** The step's number (from 1). */
  t: number;
  /** The damping of this step: the trust region's, or the schedule's. */
  rho: number;
  /** The seed's control flow on the host (a readback per decision), not on the device. */
  host: boolean;
  /** Whether the loss is evaluated after the step (line search or trust region). */
  evaluates: boolean;
  /** The loss (and metric) at candidate parameters, recorded once and replayed. */
  objective: StepObjective;
  /**
   * Every tensor of this step that outlives a scope, freed however the step ends (the new
   * momentum and the kept CG iterate are taken out when the step commits).
   */
  temps: Tensor[];
  /** Device readbacks so far. */
  readbacks: number;
}

/** The gradient phase's vectors (SGN-ALGORITHM.md step 1). */
interface Gradient {
  /** L0, the loss before the step. */
  l0: Tensor;
  g: Tensor;
  /** The bias-corrected momentum m_hat (g itself without momentum). */
  mHat: Tensor;
  /** The new momentum m, kept when the step commits (none without momentum). */
  momentum: Tensor | undefined;
  /** The parameters as one vector. */
  theta: Tensor;
}

/** The direction the rest of the step uses: CG's last iterate, or the one backtracking chose. */
interface Direction {
  d: Tensor;
  r: Tensor;
  /** With CG backtracking, what it chose (and evaluated). */
  chosen?: ChosenIterate;
  /** Line-search tries already evaluated: the chosen iterate's loss when that is at ALPHA = 1. */
  known: Try[];
}

/** What a step reads back from the device in one go (in device mode, its only readback). */
interface StepReadback {
  /** L0. */
  loss: number;
  cgIters: number;
  /** max|r| after CG. */
  cgResidual: number;
  /** The quadratic model's predicted change 0.5 (r + g).d. */
  predicted: number;
  /** m_hat.d, the slope in Armijo's condition. */
  md: number;
  /** max|d|. */
  dMax: number;
  negativeCurvature: boolean;
  cgRelativeStop: boolean;
  /** The metric on the recorded outputs (without LS and TR, when the loss has one). */
  metricBefore: number | undefined;
  /** The line-search tries evaluated speculatively, after the known ones. */
  tries: Try[];
}

/** What the line search and the trust region made of the step (SGN-ALGORITHM.md step 5). */
interface Update {
  /** The step size a. */
  alpha: number;
  /** L1 (L0 when nothing evaluated it). */
  loss: number;
  tries: number;
  searched: LineSearchResult | undefined;
  /** The trust region's ratio of actual to predicted change (NaN without it). */
  ratio: number;
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

  async #step(
    model: ModelFn,
    loss: OutputLoss,
    sub: CurvatureBatch | undefined,
  ): Promise<SgnStepRecord> {
    const opt = this.options;
    const t = this.t + 1;
    const be = this.#params[0].backend;
    const s: StepState = {
      t,
      rho: opt.trustRegion ? this.rho : scheduledRho(opt, t),
      host: opt.mode === "host" || (opt.mode === "auto" && be.hostReadback),
      evaluates: opt.lineSearch || opt.trustRegion,
      objective: new StepObjective((...p: Tensor[]) => {
        const z = model(...p);
        return loss.metric ? [loss.value(z), loss.metric(z)] : [loss.value(z)];
      }, this.#shapes),
      temps: [],
      readbacks: 0,
    };
    // One recorded forward pass serves the gradient (J^T dL/dz) and every G p of CG (with the
    // default curvature; the others linearize what they need beside it).
    const G = ggnLinearize(model, loss, [...this.#params]);
    let C: StepCurvature | undefined;
    try {
      C = stepCurvature(opt, this.#params, G, model, loss, sub);
      const grad = this.#gradient(G, loss, s);
      const { cg, warm } = await this.#solve(C, grad, s);
      const dir = await this.#direction(cg, grad, s);
      const read = await this.#readback(G, loss, grad, cg, dir, s);
      this.#checkSolve(read, s);
      const update = await this.#lineSearch(read, grad, dir, s);
      this.#checkUpdate(update, read, grad, s);
      this.#commit(update, grad, dir, cg, s);
      return this.#record(s, read, update, dir, warm, C.rows);
    } finally {
      if (C?.own) C.op.dispose();
      G.dispose();
      s.objective.dispose();
      for (const k of s.temps) k.dispose();
    }
  }

  /** Loss, gradient and momentum at the current parameters (SGN-ALGORITHM.md step 1). */
  #gradient(G: CurvatureOperator, loss: OutputLoss, s: StepState): Gradient {
    const opt = this.options;
    const grad = scope((): Gradient => {
      const [l0, [gz]] = valueAndGrad((z: Tensor) => loss.value(z))(G.outputs);
      const g = concatFlat(G.vjp(gz));
      let mHat = g;
      let momentum: Tensor | undefined;
      if (opt.beta > 0) {
        momentum = this.#momentum
          ? o.add(o.mul(this.#momentum, opt.beta), o.mul(g, 1 - opt.beta))
          : o.mul(g, 1 - opt.beta);
        mHat = o.div(momentum, 1 - opt.beta ** s.t);
      }
      const theta = concatFlat(this.#params);
      return { l0, g, mHat, momentum, theta };
    });
    s.temps.push(grad.l0, grad.g, grad.mHat, grad.theta);
    if (grad.momentum) s.temps.push(grad.momentum);
    return grad;
  }

  /**
   * Preconditioned CG on (C + rho I) d = -m_hat (SGN-ALGORITHM.md steps 2 and 4), C the step's
   * curvature; `warm`: whether it started from the previous step's iterate.
   */
  async #solve(
    C: StepCurvature,
    grad: Gradient,
    s: StepState,
  ): Promise<{ cg: CgResult; warm: boolean }> {
    const opt = this.options;
    const rho = s.rho;
    // C p, recorded at CG's first iteration and replayed at the others (autodiff/replay.ts).
    const gp = replayable((p: Tensor) => [concatFlat(C.op.apply(...splitFlat(p, this.#shapes)))]);
    const apply = (p: Tensor) => scope(() => o.add(o.mul(p, rho), gp(p)[0]));
    const precond = opt.cgPrec
      // From the base damping, never the scheduled rho (SGN-ALGORITHM.md step 2).
      ? (r: Tensor) => precondT(r, grad.mHat, opt.trustRegion ? rho : opt.dampRho, opt.alphaExp)
      : undefined;
    const warm = opt.cgWarmStart > 0 && this.#lastD !== undefined;
    const spec: CgSpec = {
      apply,
      b: grad.mHat,
      precond,
      budget: cgBudget(opt, s.t),
      tol: opt.cgTol,
      ...(warm ? { warmStart: { from: this.#lastD!, decay: opt.cgWarmStart } } : {}),
      relative: opt.cgStop === "relative",
      save: opt.cgBacktrack,
      // Only the Hessian can have negative curvature.
      stopAtNegative: opt.curvature === "hessian",
      countReadback: () => s.readbacks++,
    };
    let cg: CgResult;
    try {
      cg = s.host ? await cgHost(spec) : await cgDevice(spec);
    } finally {
      gp.dispose();
    }
    s.temps.push(cg.d, cg.r, cg.iters, cg.rMax, ...(cg.relStop ? [cg.relStop] : []));
    if (cg.negative) s.temps.push(cg.negative);
    for (const it of cg.saved) s.temps.push(it.d, it.r);
    return { cg, warm };
  }

  /** CG backtracking (Martens 2010, 4.6) when asked for: the iterate the rest of the step uses. */
  async #direction(cg: CgResult, grad: Gradient, s: StepState): Promise<Direction> {
    const opt = this.options;
    if (!opt.cgBacktrack) return { d: cg.d, r: cg.r, known: [] };
    const chosen = await backtrackIterates(
      cg,
      (d, more) => s.objective.at(axpyT(1, d, grad.theta), more),
      s.host,
      () => s.readbacks++,
    );
    // The chosen iterate's loss is the line search's first try when that is at step size 1.
    const known = s.evaluates && opt.alpha === 1 ? [chosen.at] : [];
    return { d: chosen.d, r: chosen.r, chosen, known };
  }

  /** The parameters theta + a d, as the model takes them. */
  #stepAt(a: number, grad: Gradient, dir: Direction): Tensor[] {
    return splitFlat(axpyT(a, dir.d, grad.theta), this.#shapes);
  }

  /** The loss (and metric) at theta + a d; `more`: another evaluation follows in this step. */
  #lossAt(a: number, grad: Gradient, dir: Direction, s: StepState, more: boolean): Tensor[] {
    return scope(() => s.objective.at(axpyT(a, dir.d, grad.theta), more));
  }

  /**
   * The step's scalars, read back at once: L0, CG's statistics, the predicted change, and the
   * line search's first candidates a_i = alpha rhoLs^i, evaluated speculatively on the device
   * (as many as the previous step needed, or all) and one at a time on the host.
   */
  async #readback(
    G: CurvatureOperator,
    loss: OutputLoss,
    grad: Gradient,
    cg: CgResult,
    dir: Direction,
    s: StepState,
  ): Promise<StepReadback> {
    const opt = this.options;
    // Without LS and TR the seed scores the batch before the step, on the recorded outputs.
    const metricBefore = !s.evaluates && loss.metric !== undefined;
    const firstBatch = !s.evaluates
      ? 0
      : s.host || !opt.lineSearch
      ? 1
      : opt.lsSpeculation === "all"
      ? opt.maxLsIters + 1
      : Math.min(opt.maxLsIters + 1, this.#lastTries);
    const known = dir.known.length;
    const named = scope(() => {
      // Made in this order: the step's scalars, then its candidates.
      const predicted = o.mul(o.dot(o.add(dir.r, grad.g), dir.d), 0.5);
      const md = o.dot(grad.mHat, dir.d);
      const dMax = maxAbsT(dir.d);
      const before = metricBefore ? loss.metric!(G.outputs) : undefined;
      const n = Math.max(0, firstBatch - known);
      const tries = Array.from(
        { length: n },
        (_, i) => this.#lossAt(opt.alpha * opt.rhoLs ** (i + known), grad, dir, s, i < n - 1),
      );
      return {
        loss: grad.l0,
        cgIters: cg.iters,
        cgResidual: cg.rMax,
        predicted,
        md,
        dMax,
        negative: cg.negative,
        metricBefore: before,
        tryLosses: tries.map((t) => t[0]),
        tryMetrics: loss.metric ? tries.map((t) => t[1]) : undefined,
        relStop: cg.relStop,
      };
    });
    const tensors = scalarTensors(named);
    s.temps.push(...tensors);
    const v = await readScalars(named);
    s.readbacks++;
    for (const k of tensors) if (k !== grad.l0) k.dispose();
    return {
      loss: v.loss,
      cgIters: v.cgIters,
      cgResidual: v.cgResidual,
      predicted: v.predicted,
      md: v.md,
      dMax: v.dMax,
      negativeCurvature: v.negative !== undefined && v.negative > 0,
      cgRelativeStop: v.relStop === 1,
      metricBefore: v.metricBefore,
      tries: v.tryLosses.map((l, i) => ({ loss: l, metric: v.tryMetrics?.[i] })),
    };
  }

  /** Stops the step, parameters unchanged, when the loss or CG's result is not finite. */
  #checkSolve(read: StepReadback, s: StepState): void {
    if (!Number.isFinite(read.loss)) {
      throw new SgnError(
        `SGN step ${s.t}: the loss before the step is ${read.loss}; check the inputs and ` +
          "parameters (the parameters were left unchanged)",
      );
    }
    if (!Number.isFinite(read.dMax) || !Number.isFinite(read.cgResidual)) {
      throw new SgnError(
        `SGN step ${s.t}: conjugate gradient went non-finite (max|d| = ${read.dMax}, ` +
          `max|r| = ${read.cgResidual}); the parameters were left unchanged. ` +
          (s.rho < 1e6
            ? "Try a larger dampRho."
            : `The damping (${s.rho}) is already huge: look for overflow in the data, the ` +
              "network's outputs or the loss instead."),
      );
    }
  }

  /**
   * Armijo backtracking and the trust region's ratio, decided on the host (sgn/rules.ts), from
   * the tries read back so far and more, one readback each, when the search needs them.
   */
  async #lineSearch(
    read: StepReadback,
    grad: Gradient,
    dir: Direction,
    s: StepState,
  ): Promise<Update> {
    const opt = this.options;
    const tried = [...dir.known, ...read.tries];
    const searched = s.evaluates
      ? await lineSearch(opt, read.loss, read.md, async (i): Promise<Try> => {
        if (i < tried.length) return tried[i];
        const more = this.#lossAt(opt.alpha * opt.rhoLs ** i, grad, dir, s, false);
        try {
          const v = await readScalars(tryOf(more));
          s.readbacks++;
          return v;
        } finally {
          more.forEach((t) => t.dispose());
        }
      })
      : undefined;
    const l1First = searched ? searched.losses[0] : NaN;
    return {
      alpha: searched?.alpha ?? opt.alpha,
      loss: searched?.loss ?? read.loss,
      tries: searched?.losses.length ?? 0,
      searched,
      ratio: opt.trustRegion ? (l1First - read.loss) / read.predicted : NaN,
    };
  }

  /** Stops the step, parameters unchanged, when the loss after it or the step overflows. */
  #checkUpdate(update: Update, read: StepReadback, grad: Gradient, s: StepState): void {
    const a = update.alpha;
    if (!Number.isFinite(update.loss)) {
      throw new SgnError(
        `SGN step ${s.t}: the loss after the step is ${update.loss} at step size ${a} ` +
          `(after ${update.tries} line-search tries); the parameters were left unchanged`,
      );
    }
    const largest = grad.theta.dtype === "float32" ? 3.4e38 : Number.MAX_VALUE;
    if (!(a * read.dMax < largest)) {
      throw new SgnError(
        `SGN step ${s.t}: the step a * max|d| = ${a * read.dMax} overflows ` +
          `${grad.theta.dtype}; the parameters were left unchanged (use a smaller alpha, or ` +
          "the line search)",
      );
    }
  }

  /** New parameters, momentum, warm-start iterate and rho for the next step. */
  #commit(update: Update, grad: Gradient, dir: Direction, cg: CgResult, s: StepState): void {
    const opt = this.options;
    const next = scope(() => this.#stepAt(update.alpha, grad, dir));
    for (const p of this.#params) p.dispose();
    this.#params = next;
    if (grad.momentum) {
      this.#momentum?.dispose();
      this.#momentum = grad.momentum.realize();
      s.temps.splice(s.temps.indexOf(grad.momentum), 1);
    }
    if (opt.cgWarmStart > 0) {
      this.#lastD?.dispose();
      this.#lastD = cg.d.realize();
      s.temps.splice(s.temps.indexOf(cg.d), 1);
    }
    if (opt.trustRegion) this.rho = nextTrustRegionRho(update.ratio, s.rho, opt.dampRhoMin);
    this.t = s.t;
    this.#lastTries = Math.max(1, update.tries);
  }

  /** The step's record (SGN-ALGORITHM.md step 6), once it has committed. */
  #record(
    s: StepState,
    read: StepReadback,
    update: Update,
    dir: Direction,
    warm: boolean,
    rows: number,
  ): SgnStepRecord {
    const opt = this.options;
    // Where the seed's step scores its batch: at the parameters of the last loss evaluation with
    // LS or TR, else before the step.
    const metric = update.searched ? update.searched.metric : read.metricBefore;
    return {
      loss: read.loss,
      lossAfter: s.evaluates ? update.loss : read.loss,
      rho: s.rho,
      alpha: update.alpha,
      cgIters: read.cgIters,
      cgResidual: read.cgResidual,
      lsTries: update.tries,
      ratio: update.ratio,
      readbacks: s.readbacks,
      predicted: read.predicted,
      armijoThreshold: update.searched?.threshold ?? NaN,
      lsLosses: update.searched?.losses ?? [],
      nextRho: opt.trustRegion ? this.rho : scheduledRho(opt, s.t + 1),
      ...(metric === undefined ? {} : { metric }),
      cgWarmStart: warm,
      cgRelativeStop: read.cgRelativeStop,
      cgIterate: dir.chosen?.iter ?? read.cgIters,
      cgBacktrackLosses: dir.chosen?.tries.map((t) => t.loss) ?? [],
      curvature: opt.curvature,
      curvatureRows: rows,
      negativeCurvature: read.negativeCurvature,
    };
  }
}
