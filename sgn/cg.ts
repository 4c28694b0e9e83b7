/**
 * Preconditioned conjugate gradient on the damped Gauss-Newton system (SGN-ALGORITHM.md step 4),
 * in its two forms: on the device (scalars and the tolerance test as device tensors, no
 * readback) and on the host (the seed's control flow, a readback per scalar). Both free each
 * iterate as they make the next, so the buffers alive do not depend on the iteration budget.
 *
 * Negative curvature: with `stopAtNegative` (an operator A that may be indefinite, such as the
 * damped Hessian H + rho I), both forms stop at the first search direction p with p.A p <= 0, as
 * Nocedal & Wright's Algorithm 7.1 (and Martens 2010, section 4.1) do. They return the iterate so
 * far or, when that happens in the first iteration (where d = 0 would be no step at all), the
 * first search direction p0 = -M^-1 b (steepest descent, preconditioned when M is given),
 * unscaled as in Algorithm 7.1: the line search chooses its length. r is then b + A p0 (A p0 was
 * just computed), so the quadratic model's predicted change stays exact. The iterations counted
 * are the updates of d (1 for the steepest-descent direction).
 *
 * @module
 */

import { full, scope, Tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import * as k from "../kernel/lazy.ts";

/** alpha * x + y on flat vectors (one fused kernel, or part of one). */
export function axpyT(alpha: number | Tensor, x: Tensor, y: Tensor): Tensor {
  return scope(() => o.add(o.mul(alpha, x), y));
}

/**
 * A copy of x (x * 1 as a kernel of its own), made in a scope so that the constant is freed.
 */
function copyT(x: Tensor): Tensor {
  return scope(() => o.mul(x, 1));
}

/** max_i |x_i| as a scalar tensor (NaN if any element is NaN): one reduction kernel. */
export function maxAbsT(x: Tensor): Tensor {
  const a = k.unary("abs", x.lazy);
  const m = k.reduce("max", a, x.shape.map((_, i) => i));
  a.release();
  return new Tensor(x.backend, m, [], x.dtype);
}

/** The state CG hands back: direction, residual, iterations run and final max|r| (tensors). */
export interface CgResult {
  d: Tensor;
  r: Tensor;
  iters: Tensor;
  rMax: Tensor;
  /** With `stopAtNegative`: 1 when CG stopped at negative curvature, else 0. */
  negative?: Tensor;
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
  /** With `stopAtNegative`: 1 once negative curvature was met. */
  negative?: Tensor;
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
 * starts with max|r| <= tol, so the result equals the seed's early exit. With `stopAtNegative`
 * the mask also freezes it at negative curvature (see the module's notes). Every
 * {@link CG_DEVICE_CHECK_EVERY} iterations the mask is read back and CG stops if it is off (the
 * remaining iterations would change nothing). Each iteration frees the previous iterate, so the
 * buffers alive do not depend on the budget.
 */
export async function cgDevice(
  apply: (p: Tensor) => Tensor,
  b: Tensor,
  precond: ((r: Tensor) => Tensor) | undefined,
  budget: number,
  tol: number,
  countReadback: () => void,
  stopAtNegative = false,
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
        ...(stopAtNegative ? { negative: o.zerosLike(ry) } : {}),
      };
    });
    for (let k = 0; k < budget; k++) {
      if (k > 0 && k % CG_DEVICE_CHECK_EVERY === 0) {
        countReadback();
        if ((await s.active.data())[0] === 0) break;
      }
      const cur: CgState = s;
      if (stopAtNegative) {
        s = scope(() => negativeStep(cur, apply, precond, tol, zero, k === 0));
        retire(cur, s, b);
        continue;
      }
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
        // The iterate is carried to the next iteration: computed now, so that its expressions
        // (and the buffers they read) do not grow with the iteration count.
        for (const t of [r, y, p, d, ry, active, iters]) t.realize();
        return { r, y, p, d, ry, active, iters };
      });
      retire(cur, next, b);
      s = next;
    }
    const { d, r, iters, negative } = s;
    const result = {
      d,
      r: r === b ? copyT(b) : r,
      iters,
      rMax: maxAbsT(r),
      ...(negative ? { negative } : {}),
    };
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
 * One device-mode CG iteration that also stops at negative curvature (see the module's notes):
 * an iteration with p.A p <= 0 freezes the iterate for good,
 * taking the step a = 1 along p0 when it is the first (`first`), else no step.
 */
function negativeStep(
  cur: CgState,
  apply: (p: Tensor) => Tensor,
  precond: ((r: Tensor) => Tensor) | undefined,
  tol: number,
  zero: Tensor,
  first: boolean,
): CgState {
  const active = o.mul(cur.active, o.greater(maxAbsT(cur.r), tol));
  const q = apply(cur.p);
  const pq = o.dot(cur.p, q);
  // 0 >= pq is false for NaN, so a non-finite product still reaches the caller's check.
  const neg = o.mul(active, o.greaterEqual(0, pq));
  const go = o.sub(active, neg);
  const a = o.where(go, o.div(cur.ry, pq), first ? neg : zero);
  const iters = o.add(cur.iters, first ? active : go);
  const d = axpyT(a, cur.p, cur.d);
  const r = axpyT(a, q, cur.r);
  const y = precond ? precond(r) : r;
  const ry = o.dot(r, y);
  const beta = o.where(go, o.div(ry, cur.ry), zero);
  const p = axpyT(beta, cur.p, o.neg(y));
  const negative = o.add(cur.negative!, neg);
  for (const t of [r, y, p, d, ry, go, iters, negative]) t.realize();
  return { r, y, p, d, ry, active: go, iters, negative };
}

/**
 * The same CG with the seed's host-side control flow: reads max|r| and the scalars each time.
 * Each iteration frees the previous iterate, so the buffers alive do not depend on the budget.
 */
export async function cgHost(
  apply: (p: Tensor) => Tensor,
  b: Tensor,
  precond: ((r: Tensor) => Tensor) | undefined,
  budget: number,
  tol: number,
  countReadback: () => void,
  stopAtNegative = false,
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
    let negative = false;
    while (k < budget && rMax > tol) {
      const q = hold(apply(p));
      const pq = await read(o.dot(p, q));
      if (stopAtNegative && pq <= 0) {
        // Negative curvature (see the module's notes): the iterate so far, or p0 at once.
        negative = true;
        if (k === 0) {
          drop(d);
          d = hold(copyT(p).realize());
          const rNext = hold(axpyT(1, q, r).realize());
          drop(r);
          r = rNext;
          k = 1;
          rMax = await read(maxAbsT(r));
        }
        drop(q);
        break;
      }
      const a = ry / pq;
      const dNext = hold(axpyT(a, p, d).realize());
      drop(d);
      d = dNext;
      const rNext = hold(axpyT(a, q, r).realize());
      drop(q, r);
      r = rNext;
      y = precond ? hold(precond(r)) : r;
      const ryNew = await read(o.dot(r, y));
      const minusY = hold(o.neg(y));
      if (y !== r) drop(y);
      const pNext = hold(axpyT(ryNew / ry, p, minusY).realize());
      drop(minusY, p);
      p = pNext;
      ry = ryNew;
      k++;
      rMax = await read(maxAbsT(r));
    }
    drop(p);
    const scalar = (v: number) => full([], v, { backend: d.backend, dtype: d.dtype });
    const result = {
      d,
      r,
      iters: scalar(k),
      rMax: scalar(rMax),
      ...(stopAtNegative ? { negative: scalar(negative ? 1 : 0) } : {}),
    };
    held.clear();
    return result;
  } catch (e) {
    for (const t of held) t.dispose();
    throw e;
  }
}
