/**
 * The float64 oracle of the curvature tests (issue 22): a one-hidden-layer tanh network written out
 * in float64 JavaScript, with its gradient by hand (backpropagation written out) and nothing of
 * the library's autodiff; the Gauss-Newton matrix G = J^T H_L J, J by central differences of the
 * outputs, H_L in closed form (2 I / (m D) for squared error; (diag(s_i) - s_i s_i^T) / m row by
 * row for softmax cross-entropy); the Hessian by central differences of the gradient; the
 * empirical Fisher (1/m) sum_i g_i g_i^T from per-example gradients, one example at a time; and
 * conjugate gradient on the dense damped matrix, stopping at negative curvature as Nocedal &
 * Wright's Algorithm 7.1 says (the iterate so far; steepest descent at the first iteration).
 */

import type { Curvature } from "../sgn/options.ts";
import { Random } from "./harness.ts";

/** A batch for a one-hidden-layer tanh network, its parameters flat in the library's order. */
export interface Problem {
  n: number;
  inp: number;
  hid: number;
  out: number;
  loss: "mse" | "ce";
  /** Inputs [n, inp] row-major. */
  X: Float64Array;
  /** Targets [n, out]: values (mse) or one-hot rows (ce). */
  T: Float64Array;
  /** W1 [inp, hid], b1 [hid], W2 [hid, out], b2 [out], flat. */
  theta: Float64Array;
}

export const shapesOf = (p: Problem) => [[p.inp, p.hid], [p.hid], [p.hid, p.out], [p.out]];
export const sizeOfParams = (p: Problem) => p.inp * p.hid + p.hid + p.hid * p.out + p.out;

export function makeProblem(
  seed: number,
  shape: { n: number; inp: number; hid: number; out: number; loss: "mse" | "ce" },
  scale = 1,
): Problem {
  const rng = new Random(seed);
  const { n, inp, hid, out, loss } = shape;
  const X = rng.array(n * inp, (r) => r.normal());
  const T = new Float64Array(n * out);
  if (loss === "ce") { for (let i = 0; i < n; i++) T[i * out + rng.int(out)] = 1; }
  else for (let i = 0; i < n * out; i++) T[i] = 2 * rng.normal();
  const P = inp * hid + hid + hid * out + out;
  const theta = rng.array(P, (r) => scale * r.normal());
  return { ...shape, X, T, theta };
}

/** The first m rows of a problem's batch. */
export function firstRows(p: Problem, m: number): Problem {
  return { ...p, n: m, X: p.X.slice(0, m * p.inp), T: p.T.slice(0, m * p.out) };
}

/** Hidden activations and outputs of the rows `rows`. */
function forward(p: Problem, th: Float64Array, rows: readonly number[]) {
  const { inp, hid, out } = p;
  const b1 = inp * hid, w2 = b1 + hid, b2 = w2 + hid * out;
  const H = new Float64Array(rows.length * hid);
  const Z = new Float64Array(rows.length * out);
  rows.forEach((row, i) => {
    for (let h = 0; h < hid; h++) {
      let a = th[b1 + h];
      for (let k = 0; k < inp; k++) a += p.X[row * inp + k] * th[k * hid + h];
      H[i * hid + h] = Math.tanh(a);
    }
    for (let c = 0; c < out; c++) {
      let z = th[b2 + c];
      for (let h = 0; h < hid; h++) z += H[i * hid + h] * th[w2 + h * out + c];
      Z[i * out + c] = z;
    }
  });
  return { H, Z };
}

export const range = (n: number) => Array.from({ length: n }, (_, i) => i);

export function softmaxRow(z: ArrayLike<number>): number[] {
  const mx = Math.max(...Array.from(z));
  const e = Array.from(z, (v) => Math.exp(v - mx));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

/** The mean loss of the rows `rows` and dL/dz (each row's derivative divided by the count). */
function lossAndDz(p: Problem, Z: Float64Array, rows: readonly number[]) {
  const m = rows.length;
  const { out } = p;
  let value = 0;
  const dz = new Float64Array(m * out);
  rows.forEach((row, i) => {
    const z = Z.subarray(i * out, i * out + out);
    const t = p.T.subarray(row * out, row * out + out);
    if (p.loss === "mse") {
      for (let c = 0; c < out; c++) {
        value += (z[c] - t[c]) ** 2 / (m * out);
        dz[i * out + c] = 2 * (z[c] - t[c]) / (m * out);
      }
    } else {
      const s = softmaxRow(z);
      for (let c = 0; c < out; c++) {
        value -= t[c] * Math.log(s[c]) / m;
        dz[i * out + c] = (s[c] - t[c]) / m;
      }
    }
  });
  return { value, dz };
}

/** The gradient of the mean loss of the rows `rows`, by backpropagation written out. */
export function gradient(p: Problem, th: Float64Array, rows: readonly number[]): Float64Array {
  const { inp, hid, out } = p;
  const b1 = inp * hid, w2 = b1 + hid, b2 = w2 + hid * out;
  const { H, Z } = forward(p, th, rows);
  const { dz } = lossAndDz(p, Z, rows);
  const g = new Float64Array(th.length);
  rows.forEach((row, i) => {
    for (let c = 0; c < out; c++) {
      g[b2 + c] += dz[i * out + c];
      for (let h = 0; h < hid; h++) g[w2 + h * out + c] += H[i * hid + h] * dz[i * out + c];
    }
    for (let h = 0; h < hid; h++) {
      let dh = 0;
      for (let c = 0; c < out; c++) dh += dz[i * out + c] * th[w2 + h * out + c];
      const da = dh * (1 - H[i * hid + h] ** 2);
      g[b1 + h] += da;
      for (let k = 0; k < inp; k++) g[k * hid + h] += p.X[row * inp + k] * da;
    }
  });
  return g;
}

export type Dense = Float64Array[];

/** G = J^T H_L J of the first m rows: J by central differences, H_L in closed form. */
export function denseGgn(p: Problem, m: number): Dense {
  const P = p.theta.length, rows = range(m), D = m * p.out;
  const h = 1e-6;
  const J = Array.from({ length: D }, () => new Float64Array(P));
  for (let j = 0; j < P; j++) {
    const plus = p.theta.slice(), minus = p.theta.slice();
    plus[j] += h;
    minus[j] -= h;
    const zp = forward(p, plus, rows).Z, zm = forward(p, minus, rows).Z;
    for (let r = 0; r < D; r++) J[r][j] = (zp[r] - zm[r]) / (2 * h);
  }
  const { Z } = forward(p, p.theta, rows);
  const HL = Array.from({ length: D }, () => new Float64Array(D));
  for (let i = 0; i < m; i++) {
    const s = softmaxRow(Z.subarray(i * p.out, i * p.out + p.out));
    for (let a = 0; a < p.out; a++) {
      for (let b = 0; b < p.out; b++) {
        HL[i * p.out + a][i * p.out + b] = p.loss === "mse"
          ? (a === b ? 2 / (m * p.out) : 0)
          : ((a === b ? s[a] : 0) - s[a] * s[b]) / m;
      }
    }
  }
  const G = Array.from({ length: P }, () => new Float64Array(P));
  for (let a = 0; a < P; a++) {
    for (let b = 0; b < P; b++) {
      let v = 0;
      for (let r = 0; r < D; r++) {
        for (let s = 0; s < D; s++) v += J[r][a] * HL[r][s] * J[s][b];
      }
      G[a][b] = v;
    }
  }
  return G;
}

/**
 * The Hessian of the mean loss of the first m rows, by central differences of the gradient at
 * steps h and 2h combined by Richardson's extrapolation (truncation h^4: a step's d on a nearly
 * singular C + rho I amplifies the Hessian's error, and h^2 left 2e-4 in d), then symmetrized.
 */
export function denseHessian(p: Problem, m: number): Dense {
  const P = p.theta.length, rows = range(m), h = 1e-5;
  const H = Array.from({ length: P }, () => new Float64Array(P));
  const diff = (j: number, step: number) => {
    const plus = p.theta.slice(), minus = p.theta.slice();
    plus[j] += step;
    minus[j] -= step;
    const gp = gradient(p, plus, rows), gm = gradient(p, minus, rows);
    return gp.map((v, i) => (v - gm[i]) / (2 * step));
  };
  for (let j = 0; j < P; j++) {
    const [d1, d2] = [diff(j, h), diff(j, 2 * h)];
    for (let i = 0; i < P; i++) H[i][j] = (4 * d1[i] - d2[i]) / 3;
  }
  for (let i = 0; i < P; i++) {
    for (let j = 0; j < i; j++) H[i][j] = H[j][i] = (H[i][j] + H[j][i]) / 2;
  }
  return H;
}

/** The empirical Fisher of the first m rows: (1/m) sum_i g_i g_i^T, one example at a time. */
export function denseFisher(p: Problem, m: number): Dense {
  const P = p.theta.length;
  const F = Array.from({ length: P }, () => new Float64Array(P));
  for (let i = 0; i < m; i++) {
    const g = gradient(p, p.theta, [i]);
    for (let a = 0; a < P; a++) for (let b = 0; b < P; b++) F[a][b] += g[a] * g[b] / m;
  }
  return F;
}

export const DENSE: Record<Curvature, (p: Problem, m: number) => Dense> = {
  ggn: denseGgn,
  hessian: denseHessian,
  fisher: denseFisher,
};

const matVec = (A: Dense, v: ArrayLike<number>) =>
  A.map((row) => row.reduce((s, a, j) => s + a * v[j], 0));
export const dotJs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};
export const maxAbs = (a: ArrayLike<number>) => Math.max(0, ...Array.from(a, Math.abs));

/**
 * CG on (C + rho I) d = -b from d = 0 with SGN's stopping rules (max|r| <= tol, the budget) and,
 * with `stopAtNegative`, Nocedal & Wright's Algorithm 7.1: at p.A p <= 0 the iterate so far, or
 * p0 = -b when it is the first iteration. `margin` is the smallest |p.A p| / (|p|^2 max|A|) and
 * `tolMargin` the smallest |log(max|r| / tol)| met, so callers can skip decisions that rounding
 * could flip.
 */
export function referenceCg(
  C: Dense,
  rho: number,
  b: ArrayLike<number>,
  budget: number,
  tol: number,
  stopAtNegative: boolean,
) {
  const n = b.length;
  const A = C.map((row, i) => row.map((v, j) => v + (i === j ? rho : 0)));
  const scale = Math.max(1e-300, ...A.map(maxAbs));
  let d = new Float64Array(n);
  let r = Float64Array.from(b);
  let p = r.map((v) => -v);
  let ry = dotJs(r, r);
  let k = 0;
  let negative = false;
  let margin = Infinity;
  let tolMargin = Infinity;
  const above = () => {
    const rMax = maxAbs(r);
    if (tol > 0 && rMax > 0) tolMargin = Math.min(tolMargin, Math.abs(Math.log(rMax / tol)));
    return rMax > tol;
  };
  while (k < budget && above()) {
    const q = matVec(A, p);
    const pq = dotJs(p, q);
    margin = Math.min(margin, Math.abs(pq) / (dotJs(p, p) * scale));
    if (stopAtNegative && pq <= 0) {
      negative = true;
      if (k === 0) {
        d = p.slice();
        r = r.map((v, i) => v + q[i]);
        k = 1;
      }
      break;
    }
    const a = ry / pq;
    d = d.map((v, i) => v + a * p[i]);
    r = r.map((v, i) => v + a * q[i]);
    const ryNew = dotJs(r, r);
    p = p.map((v, i) => -r[i] + (ryNew / ry) * v);
    ry = ryNew;
    k++;
  }
  return { d, r, iters: k, negative, margin, tolMargin };
}
