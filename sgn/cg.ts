/**
 * Preconditioned conjugate gradient on the damped Gauss-Newton system (SGN-ALGORITHM.md step 4),
 * in its two forms: on the device (scalars and the stopping tests as device tensors, no
 * readback) and on the host (the seed's control flow, a readback per scalar). Both free each
 * iterate as they make the next, so the buffers alive do not depend on the iteration budget.
 *
 * Both take Martens' (2010) Hessian-free refinements, each off unless asked for: a warm start
 * from a decayed earlier solution, the relative-progress stop, and the iterates kept for CG
 * backtracking ({@link backtrack} chooses among them).
 *
 * Negative curvature: with `stopAtNegative` (an operator A that may be indefinite, such as the
 * damped Hessian H + rho I), both forms stop at the first search direction p with p.A p <= 0, as
 * Nocedal & Wright's Algorithm 7.1 (and Martens 2010, section 4.1) do. They return the iterate so
 * far or, when that happens in the first iteration from d0 = 0 (where the iterate would be no step
 * at all), the first search direction p0 = -M^-1 b (steepest descent, preconditioned when M is
 * given), unscaled as in Algorithm 7.1: the line search chooses its length. r is then b + A p0
 * (A p0 was just computed), so the quadratic model's predicted change stays exact. The iterations
 * counted are the updates of d (1 for the steepest-descent direction). From a warm start the
 * iterate so far (d0) is a step already, and is returned as it is.
 *
 * @module
 */

import { full, scope, Tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import * as k from "../kernel/graph.ts";
import { realizeTogether } from "../kernel/multi.ts";
import { concatFlat } from "./vectors.ts";

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

/**
 * Martens' (2010, section 4.4) constants of the relative-progress stop: CG stops at iteration i
 * when i > k, phi(x_i) < 0 and (phi(x_i) - phi(x_{i-k})) / phi(x_i) < k eps, with the window
 * k = max(minWindow, ceil(i / windowDivisor)) and eps = 5e-4. Martens writes k = max(10, 0.1 i);
 * dividing by 10 instead of multiplying by 0.1 keeps ceil exact (ceil(0.1 * 110) is 12 in
 * floating point, ceil(110 / 10) is 11).
 */
export const CG_RELATIVE = { minWindow: 10, windowDivisor: 10, eps: 5e-4 } as const;

/**
 * The window k of the relative-progress stop at iteration i: max(10, ceil(i / 10)).
 *
 * @example
 * ```ts
 * import { relativeWindow } from "./cg.ts";
 * console.log(relativeWindow(50), relativeWindow(110), relativeWindow(111)); // 10 11 12
 * ```
 */
export function relativeWindow(i: number): number {
  return Math.max(CG_RELATIVE.minWindow, Math.ceil(i / CG_RELATIVE.windowDivisor));
}

/** The growth of the gaps between the iterates kept for backtracking (Martens 2010, 4.6). */
export const CG_SAVE_GROWTH = 1.3;

/**
 * Whether CG keeps the iterate of iteration i (from 1) for backtracking: i = ceil(1.3^j) for
 * some j >= 0, i.e. 1, 2, 3, 4, 5, 7, 9, 11, 14, 18, 24, ... (1.3^j is never an integer for
 * j >= 1, and its ceiling in floating point is exact up to the largest budget; the tests check
 * both against integer arithmetic).
 *
 * @example
 * ```ts
 * import { isSavePoint } from "./cg.ts";
 * console.log([...Array(15).keys()].filter(isSavePoint)); // [1, 2, 3, 4, 5, 7, 9, 11, 14]
 * ```
 */
export function isSavePoint(i: number): boolean {
  for (let j = 0;; j++) {
    const s = Math.ceil(CG_SAVE_GROWTH ** j);
    if (s >= i) return s === i;
  }
}

/** What a CG solve is given: A d = -b, where it starts, and how it stops. */
export interface CgSpec {
  /** p -> A p (the damped curvature). */
  apply: (p: Tensor) => Tensor;
  /** The right-hand side's b (the caller keeps it). */
  b: Tensor;
  /** r -> M r, the preconditioner; undefined: none. */
  precond?: (r: Tensor) => Tensor;
  /** The most iterations. */
  budget: number;
  /** CG stops once max|r| <= tol. */
  tol: number;
  /**
   * Warm start: CG starts from d0 = decay * from (the caller keeps `from`) with r0 = A d0 + b,
   * one product more; undefined: from d0 = 0, r0 = b.
   */
  warmStart?: { from: Tensor; decay: number };
  /** Also stop by Martens' relative-progress rule ({@link CG_RELATIVE}). */
  relative?: boolean;
  /** Keep the iterates at iterations ceil(1.3^j) ({@link isSavePoint}) for backtracking. */
  save?: boolean;
  /** Stop at negative curvature (see the module's notes), for operators that may be indefinite. */
  stopAtNegative?: boolean;
  /** Called once per readback. */
  countReadback: () => void;
}

/** An iterate CG kept for backtracking: the iterate d after `iter` iterations and its residual. */
export interface SavedIterate {
  /**
   * The iteration after which it was kept. On the host this is exact; on the device, where the
   * loop runs on while a mask freezes the iterate, a kept iterate whose `iter` is not below the
   * iterations run is a copy of the last one (compare with `iters`).
   */
  iter: number;
  d: Tensor;
  r: Tensor;
}

/** The state CG hands back (the caller owns every tensor in it). */
export interface CgResult {
  /** The last iterate d and its residual r = A d + b (CG's recurrence). */
  d: Tensor;
  r: Tensor;
  /** Iterations run and the final max|r| (scalars). */
  iters: Tensor;
  rMax: Tensor;
  /** With `relative`: 1 when the relative-progress rule stopped CG, else 0 (a scalar). */
  relStop?: Tensor;
  /** With `stopAtNegative`: 1 when CG stopped at negative curvature, else 0 (a scalar). */
  negative?: Tensor;
  /** With `save`: the iterates kept before the last, in order; else empty. */
  saved: SavedIterate[];
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
  /** max|r|, and whether the next iteration runs: active and max|r| > tol (both from r's pass). */
  rMax: Tensor;
  go: Tensor;
  relStop?: Tensor;
  /** With `stopAtNegative`: 1 once negative curvature was met. */
  negative?: Tensor;
}

/**
 * Computes tensors with as few kernels as it can (kernel/multi.ts): reductions over one vector
 * and the scalars beside them as one kernel of several outputs, vector updates as another. Each
 * tensor keeps its value (now a view of a computed buffer).
 */
function together(ts: (Tensor | undefined)[]): void {
  realizeTogether(ts.flatMap((t) => (t ? [t.lazy] : [])));
}

/** Disposes the tensors of `state` that are neither in `next` nor in `keep` (not CG's to free). */
function retire(state: CgState, next: Partial<CgState>, keep: ReadonlySet<Tensor>): void {
  const live = new Set<Tensor>([...keep, ...Object.values(next)]);
  for (const t of Object.values(state)) if (!live.has(t)) t.dispose();
}

/**
 * Device-mode CG reads its mask back once every this many iterations (when more remain) and
 * stops once every iteration would be frozen: large budgets do not run thousands of no-op
 * iterations, and the usual budgets (10) need no readback at all.
 */
export const CG_DEVICE_CHECK_EVERY = 64;

/** phi(x) = 0.5 x.A x + b.x of the iterate x with residual r = A x + b: 0.5 x.(r + b). */
function phiT(x: Tensor, r: Tensor, b: Tensor): Tensor {
  return scope(() => o.mul(o.dot(x, o.add(r, b)), 0.5));
}

/**
 * Preconditioned CG on A d = -b (SGN-ALGORITHM.md step 4) on the device: iterations are recorded
 * without readbacks, and a device mask freezes the iterate from the first one that starts with
 * max|r| <= tol (or, with `relative`, after the one that meets the relative-progress rule, tested
 * on the device too), so the result equals the host form's early exit. Every
 * {@link CG_DEVICE_CHECK_EVERY} iterations the mask is read back and CG stops if it is off (the
 * remaining iterations would change nothing). Each iteration frees the previous iterate, so the
 * buffers alive do not depend on the budget (but for the iterates kept with `save`, and with
 * `relative` the phi scalars of the rule's window, about budget / 10 of them).
 */
export async function cgDevice(spec: CgSpec): Promise<CgResult> {
  const { apply, b, precond, budget, tol, warmStart, relative, save, countReadback } = spec;
  const stopAtNegative = spec.stopAtNegative ?? false;
  const zero = full([], 0, { backend: b.backend, dtype: b.dtype });
  let s: CgState | undefined;
  // Tensors that retire() leaves alone: the caller's b and the kept iterates.
  const keep = new Set<Tensor>([b]);
  const saved: SavedIterate[] = [];
  // phi(x_i) by i, for the relative rule: only the window it may still look back to.
  const phis = new Map<number, Tensor>();
  try {
    s = scope(() => {
      const d = warmStart ? o.mul(warmStart.from, warmStart.decay) : o.zerosLike(b);
      const r = warmStart ? o.add(apply(d), b) : b;
      const y = precond ? precond(r) : r;
      const ry = o.dot(r, y);
      const active = o.onesLike(ry);
      const rMax = maxAbsT(r);
      const go = o.mul(active, o.greater(rMax, tol));
      // r's reductions in one pass.
      together([ry, rMax, go]);
      return {
        r,
        y,
        p: o.neg(y),
        d,
        ry,
        active,
        iters: o.zerosLike(ry),
        rMax,
        go,
        ...(relative ? { relStop: o.zerosLike(ry) } : {}),
        ...(stopAtNegative ? { negative: o.zerosLike(ry) } : {}),
      };
    });
    for (let k = 0; k < budget; k++) {
      if (k > 0 && k % CG_DEVICE_CHECK_EVERY === 0) {
        countReadback();
        if ((await s.active.data())[0] === 0) break;
      }
      const cur: CgState = s;
      const i = k + 1;
      const w = relativeWindow(i);
      const before = relative && i > w ? phis.get(i - w) : undefined;
      const { state: next, phi } = scope(() => {
        // Whether this iteration starts: active, and max|r| > tol (computed with r).
        const started = cur.go;
        const q = apply(cur.p);
        const pq = o.dot(cur.p, q);
        // Negative curvature stops CG (0 >= pq is false for NaN, so a non-finite product still
        // reaches the caller's checks); in the first iteration from d0 = 0 the step is p itself.
        const first = k === 0 && !warmStart;
        const neg = stopAtNegative ? o.mul(started, o.greaterEqual(0, pq)) : undefined;
        const running = neg ? o.sub(started, neg) : started;
        const iters = o.add(cur.iters, neg && first ? started : running);
        // Frozen iterations take a = b = 0 through a select, so 0/0 there cannot poison d.
        const a = o.where(running, o.div(cur.ry, pq), neg && first ? neg : zero);
        const d = axpyT(a, cur.p, cur.d);
        const r = axpyT(a, q, cur.r);
        // d and r in one pass (after p.q, which a needs).
        together([d, r]);
        const y = precond ? precond(r) : r;
        const ry = o.dot(r, y);
        const beta = o.where(running, o.div(ry, cur.ry), zero);
        // The relative rule, as the host form tests it: a stop freezes the following iterations.
        let active = running;
        let relStop = cur.relStop;
        const negative = neg ? o.add(cur.negative!, neg) : undefined;
        const phi = relative ? phiT(d, r, b) : undefined;
        if (phi && before) {
          const progress = o.div(o.sub(phi, before), phi);
          const met = o.mul(o.greater(0, phi), o.greater(w * CG_RELATIVE.eps, progress));
          const stop = o.mul(running, met);
          active = o.sub(running, stop);
          relStop = o.add(cur.relStop!, stop);
        }
        const rMax = maxAbsT(r);
        const go = o.mul(active, o.greater(rMax, tol));
        // The reductions over r and the scalars in one pass (those that read phi after it).
        together([ry, beta, rMax, go, iters, active, negative, phi, relStop]);
        const p = axpyT(beta, cur.p, o.neg(y));
        // The last iteration's search direction is never used.
        if (k + 1 < budget) p.realize();
        const state: CgState = {
          r,
          y,
          p,
          d,
          ry,
          active,
          iters,
          rMax,
          go,
          ...(relStop ? { relStop } : {}),
          ...(negative ? { negative } : {}),
        };
        // The iterate is carried to the next iteration computed (above), so that its
        // expressions (and the buffers they read) do not grow with the iteration count.
        return { state, phi };
      });
      retire(cur, next, keep);
      s = next;
      if (phi) {
        phis.set(i, phi);
        // i - k(i) never decreases, so what lies before the next window is never read again.
        const from = i + 1 - relativeWindow(i + 1);
        for (const [j, t] of phis) if (j < from) (t.dispose(), phis.delete(j));
      }
      if (save && isSavePoint(i)) {
        saved.push({ iter: i, d: next.d, r: next.r });
        keep.add(next.d).add(next.r);
      }
    }
    const { d, r, iters, rMax, relStop, negative } = s;
    // The last kept iterate may be the last iterate itself: it is handed back once.
    if (saved.at(-1)?.d === d) saved.pop();
    const result: CgResult = {
      d,
      r: r === b ? copyT(b) : r,
      iters,
      rMax,
      ...(relStop ? { relStop } : {}),
      ...(negative ? { negative } : {}),
      saved,
    };
    retire(s, result, keep);
    s = undefined;
    return result;
  } catch (e) {
    if (s) retire(s, {}, new Set([b]));
    for (const it of saved) (it.d.dispose(), it.r.dispose());
    throw e;
  } finally {
    zero.dispose();
    for (const t of phis.values()) t.dispose();
  }
}

/**
 * The same CG with the seed's host-side control flow: reads max|r| and the scalars each time
 * (and phi with `relative`). Each iteration frees the previous iterate, so the buffers alive do
 * not depend on the budget (but for the iterates kept with `save`).
 */
export async function cgHost(spec: CgSpec): Promise<CgResult> {
  const { apply, b, precond, budget, tol, warmStart, relative, save, countReadback } = spec;
  const stopAtNegative = spec.stopAtNegative ?? false;
  /** Reads a one-element tensor and frees it. */
  const read = async (t: Tensor) => {
    try {
      countReadback();
      return (await t.data())[0];
    } finally {
      t.dispose();
    }
  };
  // The tensors this solve currently owns, freed if it fails; kept iterates are not dropped.
  const held = new Set<Tensor>();
  const kept = new Set<Tensor>();
  const hold = <T extends Tensor>(t: T) => (held.add(t), t);
  const drop = (...ts: Tensor[]) => {
    for (const t of ts) {
      if (kept.has(t)) continue;
      held.delete(t);
      t.dispose();
    }
  };
  const saved: SavedIterate[] = [];
  try {
    const d0 = warmStart
      ? hold(scope(() => o.mul(warmStart.from, warmStart.decay)).realize())
      : undefined;
    let r = d0 ? hold(scope(() => o.add(apply(d0), b)).realize()) : hold(copyT(b)); // the caller keeps b
    let y = precond ? hold(precond(r)) : r;
    let p = hold(o.neg(y));
    let d = d0 ?? hold(o.zerosLike(b));
    let ry = await read(o.dot(r, y));
    if (y !== r) drop(y);
    let k = 0;
    let relStop = false;
    let negative = false;
    // phi(x_i) by i, for the relative rule.
    const phis: number[] = [];
    let rMax = await read(maxAbsT(r));
    while (k < budget && rMax > tol) {
      const q = hold(apply(p));
      const pq = await read(o.dot(p, q));
      if (stopAtNegative && pq <= 0) {
        // Negative curvature (see the module's notes): the iterate so far, or p0 at once.
        negative = true;
        if (k === 0 && !warmStart) {
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
      if (save && isSavePoint(k)) {
        saved.push({ iter: k, d, r });
        kept.add(d).add(r);
      }
      rMax = await read(maxAbsT(r));
      if (relative) {
        const phi = (phis[k] = await read(phiT(d, r, b)));
        const w = relativeWindow(k);
        if (k > w && phi < 0 && (phi - phis[k - w]) / phi < w * CG_RELATIVE.eps) {
          relStop = true;
          break;
        }
      }
    }
    drop(p);
    // The last kept iterate may be the last iterate itself: it is handed back once.
    if (saved.at(-1)?.d === d) saved.pop();
    const scalar = (v: number) => full([], v, { backend: d.backend, dtype: d.dtype });
    const result: CgResult = {
      d,
      r,
      iters: scalar(k),
      rMax: scalar(rMax),
      ...(relative ? { relStop: scalar(relStop ? 1 : 0) } : {}),
      ...(stopAtNegative ? { negative: scalar(negative ? 1 : 0) } : {}),
      saved,
    };
    held.clear();
    return result;
  } catch (e) {
    for (const t of held) t.dispose();
    throw e;
  }
}

/** What {@link backtrack} decided. */
export interface Backtracked<T> {
  /** The index of the chosen candidate. */
  chosen: number;
  /** What `evaluate` gave, from the last candidate backwards, as far as the search went. */
  tries: T[];
}

/**
 * Martens' CG backtracking (2010, section 4.6) over `count` candidates in iteration order (the
 * last being CG's last iterate): evaluates them from the last backwards and stops as soon as one
 * is not better (its loss not lower) than the one after it, choosing that one after it; when
 * every earlier one is better, the first is chosen. A NaN loss is never better.
 *
 * @example
 * ```ts
 * import { backtrack } from "./cg.ts";
 * const losses = [5, 3, 2, 4];
 * const b = await backtrack(4, (i) => Promise.resolve({ loss: losses[i] }));
 * console.log(b.chosen, b.tries.map((t) => t.loss)); // 2 [4, 2, 3]
 * ```
 */
export async function backtrack<T extends { loss: number }>(
  count: number,
  evaluate: (i: number) => Promise<T>,
): Promise<Backtracked<T>> {
  let chosen = count - 1;
  const tries = [await evaluate(chosen)];
  for (let i = count - 2; i >= 0; i--) {
    const t = await evaluate(i);
    tries.push(t);
    if (!(t.loss < tries[tries.length - 2].loss)) break;
    chosen = i;
  }
  return { chosen, tries };
}

/** The iterate a step uses after backtracking, and what backtracking evaluated. */
export interface ChosenIterate {
  d: Tensor;
  r: Tensor;
  /** The CG iteration it comes from. */
  iter: number;
  /** The loss (and metric) at theta + d_i of each candidate evaluated, from the last backwards. */
  tries: { loss: number; metric?: number }[];
  /** The loss (and metric) at theta + d, this iterate's (one of `tries`). */
  at: { loss: number; metric?: number };
}

/**
 * CG backtracking on a CG result kept with `save`: `objective(d, more)` gives the loss (and the
 * metric) at theta + d as one-element tensors, `more` saying whether another candidate is known
 * to be evaluated after this one (the caller may then record this evaluation and replay it for
 * the others). On the host the candidates are evaluated one by one as {@link backtrack} asks (a
 * readback each); on the device every candidate is evaluated in one submission with the
 * iteration count, read back once, and the kept copies of the last iterate (see
 * {@link SavedIterate}) are left out before choosing. The tensors stay the caller's (those of
 * `cg`).
 */
export async function backtrackIterates(
  cg: CgResult,
  objective: (d: Tensor, more: boolean) => Tensor[],
  host: boolean,
  countReadback: () => void,
): Promise<ChosenIterate> {
  /** Reads one-element tensors in one readback; frees those of `own`. */
  const read = async (ts: Tensor[], own: Tensor[]): Promise<number[]> => {
    const flat = concatFlat(ts);
    try {
      countReadback();
      return Array.from(await flat.data());
    } finally {
      flat.dispose();
      for (const t of own) t.dispose();
    }
  };
  const asTry = (v: number[]) => ({ loss: v[0], ...(v.length > 1 ? { metric: v[1] } : {}) });
  const all = [...cg.saved, { iter: -1, d: cg.d, r: cg.r }];
  let candidates: { iter: number; d: Tensor; r: Tensor }[];
  let evaluate: (i: number) => Promise<{ loss: number; metric?: number }>;
  if (host) {
    const [iters] = await read([cg.iters], []);
    candidates = all.map((c) => ({ ...c, iter: c.iter < 0 ? iters : c.iter }));
    evaluate = async (i) => {
      // The first evaluation (of the last candidate) is always followed by the one before it.
      const ts = scope(() => objective(candidates[i].d, i === candidates.length - 1 && i > 0));
      return asTry(await read(ts, ts));
    };
  } else {
    const ts = scope(() => all.map((c, i) => objective(c.d, i < all.length - 1)));
    const [iters, ...values] = await read([cg.iters, ...ts.flat()], ts.flat());
    const tries = ts.map((_, i) => asTry(values.slice(i * ts[0].length, (i + 1) * ts[0].length)));
    // Kept iterates at or past the iterations run are copies of the last one.
    const real = all.map((c, i) => ({ ...c, iter: c.iter < 0 ? iters : c.iter, t: tries[i] }))
      .filter((c, i) => c.iter < iters || i === all.length - 1);
    candidates = real;
    evaluate = (i) => Promise.resolve(real[i].t);
  }
  const { chosen, tries } = await backtrack(candidates.length, evaluate);
  const c = candidates[chosen];
  return { d: c.d, r: c.r, iter: c.iter, tries, at: tries[candidates.length - 1 - chosen] };
}
