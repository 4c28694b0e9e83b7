/**
 * What the tests of CG's Hessian-free refinements (cgWarmStart, cgStop "relative", cgBacktrack;
 * Martens 2010) share: the backends they run on, a reference CG written from Martens on plain
 * float64 arrays (the same warm start, stopping rule and kept iterates, and his backtracking as he
 * states it), and the vector checks that hold the library's values to it.
 */

import assert from "node:assert/strict";
import type { Tensor } from "../autodiff/tensor.ts";
import { backends } from "./harness.ts";
import { dot, matvec, maxAbs } from "./reference.ts";

export const all = await backends();
export const float64 = all.filter((be) => be.dtypes.includes("float64"));

/** Martens' eps and his window max(10, ceil(0.1 i)), here in integer arithmetic. */
export const EPS = 5e-4;
export const windowOf = (i: number) => Math.max(10, Math.floor((i + 9) / 10));

/** The iterations ceil(1.3^j), j >= 0, up to `upTo`, from integers (13^j / 10^j, rounded up). */
export function savePoints(upTo: number): number[] {
  const out = new Set<number>();
  for (let j = 0n;; j++) {
    const s = Number((13n ** j + 10n ** j - 1n) / 10n ** j);
    if (s > upTo) return [...out];
    out.add(s);
  }
}

interface RefCgOptions {
  budget: number;
  tol: number;
  /** Diagonal preconditioner (y = M r); undefined: none. */
  M?: Float64Array;
  /** Starting point; undefined: 0. */
  d0?: Float64Array;
  relative?: boolean;
}

interface RefCg {
  /** d_0 .. d_iters and their residuals r_i = A d_i + b (by the recurrence). */
  ds: Float64Array[];
  rs: Float64Array[];
  iters: number;
  relStop: boolean;
  /** phi(d_i) at each iteration i >= 1 (with `relative`). */
  phis: number[];
  /**
   * How far the closest stopping decision was from its threshold (relative): under ~1e-7 the
   * library's rounding may decide the other way, and the case is not compared.
   */
  margin: number;
}

/** Preconditioned CG on A d = -b as SGN-ALGORITHM.md states it, with Martens' refinements. */
export function refCg(A: Float64Array[], b: Float64Array, opts: RefCgOptions): RefCg {
  const n = b.length;
  const M = opts.M ?? new Float64Array(n).fill(1);
  let d = opts.d0 ? Float64Array.from(opts.d0) : new Float64Array(n);
  let r = opts.d0 ? matvec(A, d).map((v, u) => v + b[u]) : Float64Array.from(b);
  let y = r.map((v, u) => M[u] * v);
  let p = y.map((v) => -v);
  let ry = dot(r, y);
  const ds = [d];
  const rs = [r];
  const phis: number[] = [];
  let k = 0;
  let relStop = false;
  let margin = Infinity;
  while (k < opts.budget) {
    const rMax = maxAbs(r);
    if (opts.tol > 0) margin = Math.min(margin, Math.abs(rMax - opts.tol) / opts.tol);
    if (!(rMax > opts.tol)) break;
    const q = matvec(A, p);
    const a = ry / dot(p, q);
    d = d.map((v, u) => v + a * p[u]);
    r = r.map((v, u) => v + a * q[u]);
    y = r.map((v, u) => M[u] * v);
    const ryNew = dot(r, y);
    p = p.map((v, u) => -y[u] + (ryNew / ry) * v);
    ry = ryNew;
    k++;
    ds.push(d);
    rs.push(r);
    if (opts.relative) {
      // phi(x) = 0.5 x.A x + b.x, with A x = r - b.
      const phi = 0.5 * dot(d, r) + 0.5 * dot(b, d);
      phis[k] = phi;
      const w = windowOf(k);
      if (k > w && phi < 0) {
        const progress = (phi - phis[k - w]) / phi;
        margin = Math.min(margin, Math.abs(progress - w * EPS) / (w * EPS));
        if (progress < w * EPS) {
          relStop = true;
          break;
        }
      }
    }
  }
  return { ds, rs, iters: k, relStop, phis, margin };
}

/** Martens' backtracking as he states it: from the last kept iterate back, while better. */
export function refBacktrack(losses: number[]): { chosen: number; evaluated: number } {
  // The chosen one is the earliest c such that every step from c to the last is a strict
  // improvement going backwards: L_c < L_{c+1} < ... < L_last.
  const last = losses.length - 1;
  let chosen = last;
  for (let c = 0; c <= last; c++) {
    let chain = true;
    for (let m = c; m < last; m++) if (!(losses[m] < losses[m + 1])) chain = false;
    if (chain) {
      chosen = c;
      break;
    }
  }
  return { chosen, evaluated: last - chosen + 1 + (chosen > 0 ? 1 : 0) };
}

export async function values(t: Tensor): Promise<Float64Array> {
  return Float64Array.from(await t.data());
}

export function assertVector(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  what: string,
  rtol = 1e-9,
): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  const scale = Math.max(1e-300, ...Array.from(expected, Math.abs));
  for (let u = 0; u < expected.length; u++) {
    const e = expected[u];
    const a = actual[u];
    if (Number.isNaN(e) && Number.isNaN(a)) continue;
    assert.ok(
      Math.abs(a - e) <= rtol * scale,
      `${what}[${u}]: ${a}, the reference says ${e} (rtol ${rtol} of max ${scale})`,
    );
  }
}

export function close(actual: number, expected: number, what: string, rtol = 1e-8) {
  if (Number.isNaN(expected) && Number.isNaN(actual)) return;
  assert.ok(
    Math.abs(actual - expected) <= rtol * (1 + Math.abs(expected)),
    `${what}: ${actual}, the reference says ${expected}`,
  );
}

export async function flatValues(ts: readonly Tensor[]): Promise<Float64Array> {
  const parts = await Promise.all(ts.map((t) => t.data()));
  return Float64Array.from(parts.flatMap((a) => Array.from(a)));
}
