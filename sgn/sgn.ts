/**
 * The SGN optimizer, exactly as ../shared/seed/SGN-ALGORITHM.md restates the seed: momentum on
 * the gradient, optional diagonal preconditioner, damped Gauss-Newton system solved by
 * preconditioned CG with matrix-free products G p = J^T H_L J p, trust-region damping and
 * Armijo backtracking.
 *
 * Fast path ("device" mode): one forward pass is recorded per step and CG runs only tangent and
 * cotangent sweeps; CG's scalars live on the device, the tolerance test is a device mask that
 * freezes the iterate once max|r| <= tol, and the line search evaluates its first candidate step
 * sizes speculatively. The step then reads back one small record (losses, CG statistics) and
 * decides on the host (budgets over 64 CG iterations add a readback of CG's mask every 64, so
 * that CG stops once it has converged). "host" mode follows the seed's control flow on the host
 * (a readback per CG iteration and per line-search try, free on a CPU backend, and no
 * speculative work); it is what CPU backends run, and the tests hold the device path to it.
 *
 * Memory: a step frees every temporary however it ends (a failed step leaves the parameters and
 * the optimizer's state as they were), and CG frees each iterate as it makes the next, so the
 * live-buffer count does not grow with the number of steps nor with CG's budget.
 *
 * @module
 */

import { SgnError } from "../backend.ts";
import { full, scope, Tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import { ggnLinearize, type OutputLoss, valueAndGrad } from "../autodiff/transforms.ts";
import { checkParams, flatten, stepScalar, unflatten } from "./vectors.ts";
import {
  cgBudget,
  type ResolvedSgnOptions,
  resolveSgnOptions,
  scheduledRho,
  type SgnOptions,
} from "./options.ts";

/** A model as a function of its parameters on one mini-batch (its outputs z). */
export type ModelFn = (...params: Tensor[]) => Tensor;

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
  /**
   * The loss's metric (e.g. accuracy) where the seed's step scores its batch: at the parameters
   * of the last loss evaluation (the accepted step) with LS or TR, else before the step.
   * Undefined when the loss has no metric.
   */
  metric?: number;
}

/** The interface SGN, SGD and Adam share, so that a training loop can swap them. */
export interface Optimizer {
  /** The current parameters (owned by the optimizer; replaced by each step). */
  readonly params: readonly Tensor[];
  /**
   * One step on the mini-batch whose model and loss are given: the loss before the step and,
   * when the loss has a metric, that metric on outputs the step evaluated anyway.
   */
  step(model: ModelFn, loss: OutputLoss): Promise<{ loss: number; metric?: number }>;
  /** Frees the parameters and the optimizer's state. */
  dispose(): void;
}

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
 * import { init, meanSquaredError, mlp, SGN, tensor } from "./mod.ts";
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
  readonly options: ResolvedSgnOptions;
  #params: Tensor[];
  #shapes: number[][];
  #momentum: Tensor | undefined;
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
  }

  /** One SGN step on a mini-batch: `model(...params)` gives its outputs, `loss` scores them. */
  async step(model: ModelFn, loss: OutputLoss): Promise<SgnStepRecord> {
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

    // One recorded forward pass serves the gradient (J^T dL/dz) and every G p of CG.
    const G = ggnLinearize(model, loss, [...this.#params]);
    // Every tensor of this step that outlives a scope, freed however the step ends (the new
    // momentum is taken out when the step commits).
    const temps: Tensor[] = [];
    try {
      const solved = scope(() => {
        const [l0, [gz]] = valueAndGrad((z: Tensor) => loss.value(z))(G.outputs);
        const g = flatten(G.vjp(gz));
        let mHat = g;
        let momentum: Tensor | undefined;
        if (opt.beta > 0) {
          momentum = this.#momentum
            ? o.add(o.mul(this.#momentum, opt.beta), o.mul(g, 1 - opt.beta))
            : o.mul(g, 1 - opt.beta);
          mHat = o.div(momentum, stepScalar(1 - opt.beta ** t, momentum));
        }
        const theta = flatten(this.#params);
        return { l0, g, mHat, momentum, theta };
      });
      temps.push(solved.l0, solved.g, solved.mHat, solved.theta);
      if (solved.momentum) temps.push(solved.momentum);
      const apply = (p: Tensor) =>
        scope(() => {
          const gp = flatten(G.apply(...unflatten(p, this.#shapes)));
          return new Tensor(
            be,
            be.axpy(rho, p.buffer, gp.buffer),
            p.shape,
            p.dtype,
          );
        });
      const precond = opt.cgPrec
        ? (r: Tensor) =>
          new Tensor(
            be,
            // From the base damping, never the scheduled rho (SGN-ALGORITHM.md step 2).
            be.precond(
              r.buffer,
              solved.mHat.buffer,
              opt.trustRegion ? rho : opt.dampRho,
              opt.alphaExp,
            ),
            r.shape,
            r.dtype,
          )
        : undefined;
      const budget = cgBudget(opt, t);
      const cg = host
        ? await cgHost(apply, solved.mHat, precond, budget, opt.cgTol, () => readbacks++)
        : await cgDevice(apply, solved.mHat, precond, budget, opt.cgTol, () => readbacks++);
      temps.push(cg.d, cg.r, cg.iters, cg.rMax);

      // Candidates a_i = alpha * rhoLs^i, evaluated speculatively (device mode) or one by one.
      const stepAt = (a: number) => unflatten(axpyT(a, cg.d, solved.theta), this.#shapes);
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
        const pred = o.mul(o.dot(o.add(cg.r, solved.g), cg.d), 0.5);
        const md = o.dot(solved.mHat, cg.d);
        const dMax = maxAbsT(cg.d);
        const before = metricBefore ? [loss.metric!(G.outputs)] : [];
        const evaluated = Array.from(
          { length: firstBatch },
          (_, i) => lossAt(opt.alpha * opt.rhoLs ** i),
        ).flat();
        return [solved.l0, cg.iters, cg.rMax, pred, md, dMax, ...before, ...evaluated];
      });
      temps.push(...head);
      const values = await readScalars(head);
      readbacks++;
      head.forEach((h) => h !== solved.l0 && h.dispose());
      const [l0, cgIters, cgResidual, predicted, md, dMax] = values;
      const perTry = loss.metric ? 2 : 1;
      const rest = values.slice(6 + metricBefore);
      // Loss (and metric) of each candidate evaluated so far.
      const tried = Array.from({ length: rest.length / perTry }, (_, i) => ({
        loss: rest[i * perTry],
        metric: loss.metric ? rest[i * perTry + 1] : undefined,
      }));

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

      // Line search (Armijo) and trust-region ratio, decided on the host.
      let a = opt.alpha;
      let tries = 0;
      let l1 = l0;
      let metric = metricBefore ? values[6] : undefined;
      if (evaluates) {
        const rhs = (ai: number) => l0 + (opt.armijo === "seed" ? opt.alpha : ai) * opt.cLs * md;
        const evaluate = async (i: number) => {
          if (i < tried.length) return tried[i];
          const more = lossAt(opt.alpha * opt.rhoLs ** i);
          try {
            const [v, m] = await readScalars(more);
            readbacks++;
            return { loss: v, metric: m };
          } finally {
            more.forEach((t) => t.dispose());
          }
        };
        // The first try at alpha, then up to maxLsIters backtracks (SGN-ALGORITHM.md step 5).
        for (let i = 0; i < (opt.lineSearch ? opt.maxLsIters + 1 : 1); i++) {
          a = opt.alpha * opt.rhoLs ** i;
          const at = await evaluate(i);
          l1 = at.loss;
          metric = at.metric;
          tries = i + 1;
          if (!opt.lineSearch || l1 <= rhs(a)) break;
        }
        if (!Number.isFinite(l1)) {
          throw new SgnError(
            `SGN step ${t}: the loss after the step is ${l1} at step size ${a} ` +
              `(after ${tries} line-search tries); the parameters were left unchanged`,
          );
        }
      }
      const largest = solved.theta.dtype === "float32" ? 3.4e38 : Number.MAX_VALUE;
      if (!(a * dMax < largest)) {
        throw new SgnError(
          `SGN step ${t}: the step a * max|d| = ${a * dMax} overflows ${solved.theta.dtype}; ` +
            "the parameters were left unchanged (use a smaller alpha, or the line search)",
        );
      }
      const l1First = evaluates ? tried[0]?.loss ?? l1 : NaN;
      const ratio = opt.trustRegion ? (l1First - l0) / predicted : NaN;

      // Commit: new parameters, momentum, rho for the next step.
      const next = scope(() => stepAt(a));
      for (const p of this.#params) p.dispose();
      this.#params = next;
      if (solved.momentum) {
        this.#momentum?.dispose();
        this.#momentum = solved.momentum;
        temps.splice(temps.indexOf(solved.momentum), 1);
      }
      if (opt.trustRegion) {
        if (ratio < 0.25) this.rho = 1.5 * rho;
        else if (ratio > 0.75) this.rho = Math.max((2 / 3) * rho, opt.dampRhoMin);
      }
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
        ...(metric === undefined ? {} : { metric }),
      };
    } finally {
      G.dispose();
      for (const k of temps) k.dispose();
    }
  }
}

/** alpha * x + y on flat vectors, as a Tensor. */
function axpyT(alpha: number | Tensor, x: Tensor, y: Tensor): Tensor {
  const be = x.backend;
  const a = typeof alpha === "number" ? alpha : alpha.buffer;
  return new Tensor(be, be.axpy(a, x.buffer, y.buffer), x.shape, x.dtype);
}

/**
 * A copy of x. Made in a scope: the constant 1 is a temporary when the constant cache is full,
 * and outside every scope it would never be freed.
 */
function copyT(x: Tensor): Tensor {
  return scope(() => o.mul(x, 1));
}

/** max_i |x_i| as a scalar tensor (NaN if any element is NaN). */
function maxAbsT(x: Tensor): Tensor {
  return new Tensor(x.backend, x.backend.maxAbs(x.buffer), [], x.dtype);
}

/** The state CG hands back: direction, residual, iterations run and final max|r| (tensors). */
interface CgResult {
  d: Tensor;
  r: Tensor;
  iters: Tensor;
  rMax: Tensor;
}

/** The iterate of device-mode CG; every field is a tensor (r and y are one when unpreconditioned). */
interface CgState {
  r: Tensor;
  y: Tensor;
  p: Tensor;
  d: Tensor;
  ry: Tensor;
  active: Tensor;
  iters: Tensor;
}

/** Disposes the tensors of `state` that are neither in `next` nor `b` (the caller's). */
function retire(state: CgState, next: Partial<CgState>, b: Tensor): void {
  const live = new Set<Tensor>([b, ...Object.values(next)]);
  for (const t of Object.values(state)) if (!live.has(t)) t.dispose();
}

/**
 * Device-mode CG reads its mask back once every this many iterations (when more remain) and
 * stops once every iteration would be frozen: large budgets do not run thousands of no-op
 * iterations, and the usual budgets (10) need no readback at all.
 */
export const CG_DEVICE_CHECK_EVERY = 64;

/**
 * Preconditioned CG on A d = -b from d = 0 (SGN-ALGORITHM.md step 4) on the device: iterations
 * are recorded without readbacks, and a device mask freezes the iterate from the first one that
 * starts with max|r| <= tol, so the result equals the seed's early exit. Every
 * {@link CG_DEVICE_CHECK_EVERY} iterations the mask is read back and CG stops if it is off (the
 * remaining iterations would change nothing). Each iteration frees the previous iterate, so the
 * buffers alive do not depend on the budget.
 */
async function cgDevice(
  apply: (p: Tensor) => Tensor,
  b: Tensor,
  precond: ((r: Tensor) => Tensor) | undefined,
  budget: number,
  tol: number,
  countReadback: () => void,
): Promise<CgResult> {
  const zero = full([], 0, { backend: b.backend, dtype: b.dtype });
  let s: CgState | undefined;
  try {
    s = scope(() => {
      const y = precond ? precond(b) : b;
      const ry = o.dot(b, y);
      return {
        r: b,
        y,
        p: o.neg(y),
        d: o.zerosLike(b),
        ry,
        active: o.onesLike(ry),
        iters: o.zerosLike(ry),
      };
    });
    for (let k = 0; k < budget; k++) {
      if (k > 0 && k % CG_DEVICE_CHECK_EVERY === 0) {
        countReadback();
        if ((await s.active.data())[0] === 0) break;
      }
      const cur: CgState = s;
      const next = scope(() => {
        const active = o.mul(cur.active, o.greater(maxAbsT(cur.r), tol));
        const iters = o.add(cur.iters, active);
        const q = apply(cur.p);
        // Frozen iterations take a = b = 0 through a select, so 0/0 there cannot poison d.
        const a = o.where(active, o.div(cur.ry, o.dot(cur.p, q)), zero);
        const d = axpyT(a, cur.p, cur.d);
        const r = axpyT(a, q, cur.r);
        const y = precond ? precond(r) : r;
        const ry = o.dot(r, y);
        const beta = o.where(active, o.div(ry, cur.ry), zero);
        const p = axpyT(beta, cur.p, o.neg(y));
        return { r, y, p, d, ry, active, iters };
      });
      retire(cur, next, b);
      s = next;
    }
    const { d, r, iters } = s;
    const result = { d, r: r === b ? copyT(b) : r, iters, rMax: maxAbsT(r) };
    retire(s, result, b);
    s = undefined;
    return result;
  } catch (e) {
    if (s) retire(s, {}, b);
    throw e;
  } finally {
    zero.dispose();
  }
}

/**
 * The same CG with the seed's host-side control flow: reads max|r| and the scalars each time.
 * Each iteration frees the previous iterate, so the buffers alive do not depend on the budget.
 */
async function cgHost(
  apply: (p: Tensor) => Tensor,
  b: Tensor,
  precond: ((r: Tensor) => Tensor) | undefined,
  budget: number,
  tol: number,
  countReadback: () => void,
): Promise<CgResult> {
  /** Reads a one-element tensor and frees it. */
  const read = async (t: Tensor) => {
    try {
      countReadback();
      return (await t.data())[0];
    } finally {
      t.dispose();
    }
  };
  // The tensors this solve currently owns, freed if it fails.
  const held = new Set<Tensor>();
  const hold = <T extends Tensor>(t: T) => (held.add(t), t);
  const drop = (...ts: Tensor[]) => {
    for (const t of ts) {
      held.delete(t);
      t.dispose();
    }
  };
  try {
    let r = hold(copyT(b)); // the caller keeps b
    let y = precond ? hold(precond(r)) : r;
    let p = hold(o.neg(y));
    let d = hold(o.zerosLike(b));
    let ry = await read(o.dot(r, y));
    if (y !== r) drop(y);
    let k = 0;
    let rMax = await read(maxAbsT(r));
    while (k < budget && rMax > tol) {
      const q = hold(apply(p));
      const a = ry / (await read(o.dot(p, q)));
      const dNext = hold(axpyT(a, p, d));
      drop(d);
      d = dNext;
      const rNext = hold(axpyT(a, q, r));
      drop(q, r);
      r = rNext;
      y = precond ? hold(precond(r)) : r;
      const ryNew = await read(o.dot(r, y));
      const minusY = hold(o.neg(y));
      if (y !== r) drop(y);
      const pNext = hold(axpyT(ryNew / ry, p, minusY));
      drop(minusY, p);
      p = pNext;
      ry = ryNew;
      k++;
      rMax = await read(maxAbsT(r));
    }
    drop(p);
    const scalar = (v: number) => full([], v, { backend: d.backend, dtype: d.dtype });
    const result = { d, r, iters: scalar(k), rMax: scalar(rMax) };
    held.clear();
    return result;
  } catch (e) {
    for (const t of held) t.dispose();
    throw e;
  }
}
