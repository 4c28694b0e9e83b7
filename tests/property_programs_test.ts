/**
 * Property tests of random programs of primitives against float64 references written here:
 * compositions of the primitives (values reused, operands broadcast, then a reduction, softmax,
 * transposed matmul, slice or concat), and convolutions of any kernel, stride and padding. J v,
 * J^T u, and H v of <u, f> (which runs the derivative rules' own derivatives) are checked; points
 * near a kink of the reference are rejected.
 */

import { type Tensor, tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import { hvp, jvp, linearize, valueAndGrad } from "../autodiff/transforms.ts";
import { fc, property } from "./property.ts";
import { Random } from "./harness.ts";
import {
  absDot,
  dot,
  F64,
  host,
  hostAll,
  matTVec,
  matVec,
  maxAbs,
  near,
  prod,
} from "./autodiff_checks.ts";
import type { Kinks } from "./network_reference.ts";

/**
 * A dense 2-D value of the reference evaluator; `rs`/`cs` are its strides, 0 on a broadcast axis
 * (so one operand can stand for a [1, c], [c] or [r, 1] tensor read as [r, c]).
 */
interface Mat {
  r: number;
  c: number;
  d: number[];
  rs: number;
  cs: number;
}
const mat = (r: number, c: number, d: number[]): Mat => ({ r, c, d, rs: c, cs: 1 });
const at = (m: Mat, i: number, j: number) => m.d[i * m.rs + j * m.cs];
const mapMat = (r: number, c: number, f: (i: number, j: number) => number): Mat =>
  mat(r, c, Array.from({ length: r * c }, (_, k) => f(Math.floor(k / c), k % c)));

const UNARY = ["neg", "exp", "log1p2", "sqrt1p2", "recip1p2", "sigmoid", "tanh", "square", "relu"];
const BINARY = ["add", "sub", "mul", "div1p2", "maximum", "where"];
const FINAL = [
  "none",
  "sum0",
  "sum1",
  "mean",
  "max1",
  "softmax",
  "logSoftmax",
  "transpose",
  "matmulT",
  "matmulTA",
  "slice",
  "concat",
] as const;

interface Program {
  r: number;
  c: number;
  /** How y is shaped: [r, c], [1, c], [c] or [r, 1]. */
  y: "full" | "row" | "vector" | "column";
  steps: { op: string; a: number; b: number }[];
  final: (typeof FINAL)[number];
  seed: number;
}

const programArb: fc.Arbitrary<Program> = fc.record({
  r: fc.integer({ min: 1, max: 3 }),
  c: fc.integer({ min: 1, max: 4 }),
  y: fc.constantFrom("full", "row", "vector", "column"),
  steps: fc.array(
    fc.record({
      op: fc.constantFrom(...UNARY, ...BINARY),
      a: fc.nat(),
      b: fc.nat(),
    }),
    { minLength: 1, maxLength: 5 },
  ),
  final: fc.constantFrom(...FINAL),
  seed: fc.integer({ min: 1, max: 1 << 30 }),
});

const yShape = (p: Program) =>
  p.y === "full" ? [p.r, p.c] : p.y === "row" ? [1, p.c] : p.y === "vector" ? [p.c] : [p.r, 1];

/**
 * The program in the library's ops: each step's first operand is x or an earlier step (so has
 * the full shape), its second any earlier value (y broadcasts); values are reused (fan-out).
 */
function programOps(p: Program) {
  return (x: Tensor, y: Tensor): Tensor => {
    const vals: Tensor[] = [x, y];
    const full = (
      k: number,
    ) => (k % (vals.length - 1) === 0 ? vals[0] : vals[1 + (k % (vals.length - 1))]);
    for (const s of p.steps) {
      const a = full(s.a);
      const b = vals[s.b % vals.length];
      const one = (t: Tensor) => o.add(o.square(t), 1);
      const v: Record<string, () => Tensor> = {
        neg: () => o.neg(a),
        exp: () => o.exp(a),
        log1p2: () => o.log(one(a)),
        sqrt1p2: () => o.sqrt(one(a)),
        recip1p2: () => o.reciprocal(one(a)),
        sigmoid: () => o.sigmoid(a),
        tanh: () => o.tanh(a),
        square: () => o.square(a),
        relu: () => o.relu(a),
        add: () => o.add(a, b),
        sub: () => o.sub(a, b),
        mul: () => o.mul(a, b),
        div1p2: () => o.div(a, one(b)),
        maximum: () => o.maximum(a, b),
        where: () => o.where(o.greater(a, 0), a, o.broadcastTo(b, [p.r, p.c])),
      };
      vals.push(v[s.op]());
    }
    const z = vals[vals.length - 1].rank === 2 && vals.length > 2 ? vals[vals.length - 1] : x;
    switch (p.final) {
      case "none":
        return z;
      case "sum0":
        return o.sum(z, 0, true);
      case "sum1":
        return o.sum(z, 1);
      case "mean":
        return o.mean(z);
      case "max1":
        return o.max(z, 1);
      case "softmax":
        return o.softmax(z);
      case "logSoftmax":
        return o.logSoftmax(z);
      case "transpose":
        return o.transpose(z);
      case "matmulT":
        return o.matmul(z, x, { transB: true });
      case "matmulTA":
        return o.matmul(z, x, { transA: true });
      case "slice":
        return o.slice(z, [p.r > 1 ? 1 : 0, 0], [p.r > 1 ? p.r - 1 : 1, p.c]);
      case "concat":
        return o.concat([z, x], 1);
    }
  };
}

/** The same program in float64 from the definitions, recording kinks (relu, maximum, where, max). */
function programRef(p: Program, xd: number[], yd: number[], kinks?: Kinks): number[] {
  const { r, c } = p;
  const x = mat(r, c, xd);
  const y: Mat = p.y === "full"
    ? mat(r, c, yd)
    : { r, c, d: yd, rs: p.y === "column" ? 1 : 0, cs: p.y === "column" ? 0 : 1 };
  const vals: Mat[] = [x, y];
  const kink = (v: number, choice: number) => {
    if (!kinks) return;
    kinks.pattern.push(choice);
    kinks.margin = Math.min(kinks.margin, Math.abs(v));
  };
  for (const s of p.steps) {
    const a = s.a % (vals.length - 1) === 0 ? vals[0] : vals[1 + (s.a % (vals.length - 1))];
    const b = vals[s.b % vals.length];
    const un = (f: (t: number) => number) => mapMat(r, c, (i, j) => f(at(a, i, j)));
    const bin = (f: (u: number, w: number) => number) =>
      mapMat(r, c, (i, j) => f(at(a, i, j), at(b, i, j)));
    const table: Record<string, () => Mat> = {
      neg: () => un((t) => -t),
      exp: () => un(Math.exp),
      log1p2: () => un((t) => Math.log(1 + t * t)),
      sqrt1p2: () => un((t) => Math.sqrt(1 + t * t)),
      recip1p2: () => un((t) => 1 / (1 + t * t)),
      sigmoid: () => un((t) => 1 / (1 + Math.exp(-t))),
      tanh: () => un(Math.tanh),
      square: () => un((t) => t * t),
      relu: () =>
        un((t) => {
          kink(t, t > 0 ? 1 : 0);
          return t > 0 ? t : 0;
        }),
      add: () => bin((u, w) => u + w),
      sub: () => bin((u, w) => u - w),
      mul: () => bin((u, w) => u * w),
      div1p2: () => bin((u, w) => u / (1 + w * w)),
      maximum: () =>
        bin((u, w) => {
          kink(u - w, u >= w ? 1 : 0);
          return u >= w ? u : w;
        }),
      where: () =>
        bin((u, w) => {
          kink(u, u > 0 ? 1 : 0);
          return u > 0 ? u : w;
        }),
    };
    vals.push(table[s.op]());
  }
  const z = vals.length > 2 ? vals[vals.length - 1] : x;
  const rows = (f: (row: number[]) => number[]) =>
    Array.from({ length: r }, (_, i) => f(Array.from({ length: c }, (_, j) => at(z, i, j)))).flat();
  switch (p.final) {
    case "none":
      return mapMat(r, c, (i, j) => at(z, i, j)).d;
    case "sum0":
      return Array.from({ length: c }, (_, j) => {
        let s = 0;
        for (let i = 0; i < r; i++) s += at(z, i, j);
        return s;
      });
    case "sum1":
      return rows((row) => [row.reduce((a, b) => a + b, 0)]);
    case "mean":
      return [rows((row) => row).reduce((a, b) => a + b, 0) / (r * c)];
    case "max1":
      return rows((row) => {
        const sorted = [...row].sort((a, b) => b - a);
        let best = 0;
        row.forEach((t, j) => t > row[best] && (best = j));
        kink(sorted.length > 1 ? sorted[0] - sorted[1] : Infinity, best);
        return [sorted[0]];
      });
    case "softmax":
    case "logSoftmax":
      return rows((row) => {
        const m = Math.max(...row);
        const e = row.map((t) => Math.exp(t - m));
        const sum = e.reduce((a, b) => a + b, 0);
        return p.final === "softmax"
          ? e.map((t) => t / sum)
          : row.map((t) => t - m - Math.log(sum));
      });
    case "transpose":
      return mapMat(c, r, (j, i) => at(z, i, j)).d;
    case "matmulT":
      // z x^T: [r, r]
      return mapMat(r, r, (i, k) => {
        let s = 0;
        for (let j = 0; j < c; j++) s += at(z, i, j) * at(x, k, j);
        return s;
      }).d;
    case "matmulTA":
      // z^T x: [c, c]
      return mapMat(c, c, (j, l) => {
        let s = 0;
        for (let i = 0; i < r; i++) s += at(z, i, j) * at(x, i, l);
        return s;
      }).d;
    case "slice":
      return mapMat(r > 1 ? r - 1 : 1, c, (i, j) => at(z, i + (r > 1 ? 1 : 0), j)).d;
    case "concat":
      return mapMat(r, 2 * c, (i, j) => (j < c ? at(z, i, j) : at(x, i, j - c))).d;
  }
}

/**
 * A generated program on the float64 backends: forward values, J v and J^T u against the explicit
 * finite-difference Jacobian of the reference, <u, J v> = <J^T u, v>, and the Hessian of <u, f>
 * along v against central differences of its gradient. Points near a kink are rejected as in the
 * network properties (another relu sign, maximum or where choice, or max position at any
 * evaluation than at the base point).
 */
async function checkProgram(p: Program): Promise<boolean> {
  const rng = new Random(p.seed);
  const ys = yShape(p);
  const xd = Array.from({ length: p.r * p.c }, () => rng.range(-1, 1));
  const yd = Array.from({ length: prod(ys) }, () => rng.range(-1, 1));
  const n = xd.length + yd.length;
  const split = (
    w: ArrayLike<number>,
  ) => [Array.from(w).slice(0, xd.length), Array.from(w).slice(xd.length)];
  const refAtW = (w: ArrayLike<number>, kinks?: Kinks) => {
    const [a, b] = split(w);
    return programRef(p, a, b, kinks);
  };
  const w0 = [...xd, ...yd];
  const base: Kinks = { pattern: [], margin: Infinity };
  const f0 = refAtW(w0, base);
  // Overflowed (exp of exp of exp): no difference quotient is meaningful there.
  if (!f0.every((x) => Math.abs(x) < 1e100)) return false;
  const baseP = base.pattern.join(",");
  // Richardson's extrapolation over steps h and 2h (truncation h^4): central differences at
  // 1e-6 carried rounding of ~1e-10, relative to the program's intermediate values rather than to
  // f (seed 1704175137: J^T u 1.3e-10 off where f was 8e-8 and the library right to 1e-14).
  const h = 1e-4;
  const J: number[][] = f0.map(() => new Array(n).fill(0));
  for (let j = 0; j < n; j++) {
    const shift = (s: number) => {
      const k: Kinks = { pattern: [], margin: Infinity };
      const w = [...w0];
      w[j] += s;
      const out = refAtW(w, k);
      return { out, same: k.pattern.join(",") === baseP };
    };
    const [fp, fm, fp2, fm2] = [shift(h), shift(-h), shift(2 * h), shift(-2 * h)];
    if (![fp, fm, fp2, fm2].every((x) => x.same)) return false;
    f0.forEach((_, i) => {
      const d1 = fp.out[i] - fm.out[i], d2 = fp2.out[i] - fm2.out[i];
      J[i][j] = (8 * d1 - d2) / (12 * h);
    });
  }
  const v = Array.from({ length: n }, () => rng.range(-1, 1));
  const u = Array.from({ length: f0.length }, () => rng.range(-1, 1));
  const EPS = 1e-5;
  for (const s of [EPS, -EPS]) {
    const k: Kinks = { pattern: [], margin: Infinity };
    refAtW(w0.map((t, i) => t + s * v[i]), k);
    if (k.pattern.join(",") !== baseP) return false;
  }
  const f = programOps(p);
  for (const be of F64) {
    const tag = `${be.name}: ${JSON.stringify({ ...p, seed: undefined })}`;
    const t = (d: number[], s: number[]) =>
      tensor(Float64Array.from(d), s, { backend: be, dtype: "float64" });
    const [xv, yv] = split(v);
    const [x, y] = [t(xd, [p.r, p.c]), t(yd, ys)];
    const [[out], [jv]] = jvp(f, [x, y], [t(xv, [p.r, p.c]), t(yv, ys)]);
    near(await host(out), f0, 1e-12, 1e-12, `${tag}: forward`, 1);
    const [R, A] = [1e-6, 1e-7];
    near(await host(jv), matVec(J, v), R, A, `${tag}: J v`, 1e-3);
    const lin = linearize(f, [x, y]);
    const jtu = await hostAll(lin.vjp(t(u, [...out.shape])));
    near(jtu, matTVec(J, u), R, A, `${tag}: J^T u`, 1e-3);
    const ljv = await host(lin.jvp(t(xv, [p.r, p.c]), t(yv, ys))[0]);
    const [lhs, rhs] = [dot(u, ljv), dot(jtu, v)];
    // Where J is nearly zero, the products are rounding noise of order-1 terms: |u|_1 max|v|.
    const noise = 1e-12 * (absDot(u, u.map(() => 1)) * maxAbs(v));
    if (!(Math.abs(lhs - rhs) <= 1e-12 * (absDot(u, ljv) + absDot(jtu, v)) + noise)) {
      throw new Error(`${tag}: <u, J v> = ${lhs} but <J^T u, v> = ${rhs}`);
    }
    lin.dispose();
    // Second order: the Hessian of <u, f> along v, against differences of its gradient.
    const uT = t(u, [...out.shape]);
    const g = (a: Tensor, b: Tensor) => o.sum(o.mul(f(a, b), uT));
    const hv = await hostAll(hvp(g, [x, y], [t(xv, [p.r, p.c]), t(yv, ys)]));
    const gradAt = async (s: number) => {
      const [a, b] = split(w0.map((q, i) => q + s * v[i]));
      return await hostAll(valueAndGrad(g)(t(a, [p.r, p.c]), t(b, ys))[1]);
    };
    const [gp, gm] = [await gradAt(EPS), await gradAt(-EPS)];
    near(hv, gp.map((q, i) => (q - gm[i]) / (2 * EPS)), 1e-5, 1e-6, `${tag}: H v`, 1e-3);
  }
  return true;
}

property(
  "programs: random compositions of primitives (fan-out, broadcasting) against a float64 reference",
  programArb,
  100,
  async (p) => {
    fc.pre(await checkProgram(p));
  },
);

/**
 * The same over an axis of one (a column or a row): a softmax, log-softmax or reduction along it
 * is constant or a copy, which the graph builds from views and fused maps whose intermediates
 * are held by nothing but their consumers. `hvp` of softmax(x / (1 + y^2)) over a column let
 * such an intermediate go while the arrays computed together were still being computed ("a
 * released array was used"; found by `deno task fuzz`, seed 1118050777).
 */
property(
  "programs: the same over an axis of one (a column or a row)",
  fc.tuple(
    programArb,
    fc.boolean(),
    fc.constantFrom("softmax", "logSoftmax", "sum0", "sum1", "max1", "mean") as fc.Arbitrary<
      Program["final"]
    >,
  ).map(([p, row, final]) => ({ ...p, final, ...(row ? { r: 1 } : { c: 1 }) })),
  150,
  async (p) => {
    fc.pre(await checkProgram(p));
  },
);

// --- convolutions of any shape ------------------------------------------------------------------

const convArgsArb = fc.record({
  n: fc.integer({ min: 1, max: 2 }),
  c: fc.integer({ min: 1, max: 2 }),
  f: fc.integer({ min: 1, max: 2 }),
  h: fc.integer({ min: 1, max: 5 }),
  w: fc.integer({ min: 1, max: 5 }),
  kh: fc.integer({ min: 1, max: 3 }),
  kw: fc.integer({ min: 1, max: 3 }),
  sh: fc.integer({ min: 1, max: 3 }),
  sw: fc.integer({ min: 1, max: 3 }),
  ph: fc.integer({ min: 0, max: 2 }),
  pw: fc.integer({ min: 0, max: 2 }),
  seed: fc.integer({ min: 1, max: 1 << 30 }),
}).filter((s) => s.h + 2 * s.ph >= s.kh && s.w + 2 * s.pw >= s.kw);

/**
 * tanh(conv2d(x, w)) with any kernel, stride and padding (not only the square ones the networks
 * use): forward against a reference convolution, J v and J^T u in (x, w) against the explicit
 * finite-difference Jacobian, and the Hessian of <u, f> along v against differences of its
 * gradient (which runs the input- and weight-gradient rules' own derivatives).
 */
property(
  "conv2d: any kernel, stride and padding against a float64 reference",
  convArgsArb,
  40,
  async (s) => {
    const ho = Math.floor((s.h + 2 * s.ph - s.kh) / s.sh) + 1;
    const wo = Math.floor((s.w + 2 * s.pw - s.kw) / s.sw) + 1;
    const xs = [s.n, s.c, s.h, s.w];
    const ws = [s.f, s.c, s.kh, s.kw];
    const ref = (x: number[], w: number[]) => {
      const out: number[] = [];
      for (let n = 0; n < s.n; n++) {
        for (let f = 0; f < s.f; f++) {
          for (let oy = 0; oy < ho; oy++) {
            for (let ox = 0; ox < wo; ox++) {
              let acc = 0;
              for (let c = 0; c < s.c; c++) {
                for (let ky = 0; ky < s.kh; ky++) {
                  for (let kx = 0; kx < s.kw; kx++) {
                    const iy = oy * s.sh + ky - s.ph;
                    const ix = ox * s.sw + kx - s.pw;
                    if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) continue;
                    acc += x[((n * s.c + c) * s.h + iy) * s.w + ix] *
                      w[((f * s.c + c) * s.kh + ky) * s.kw + kx];
                  }
                }
              }
              out.push(Math.tanh(acc));
            }
          }
        }
      }
      return out;
    };
    const rng = new Random(s.seed);
    const r = (k: number) => Array.from({ length: k }, () => rng.range(-1, 1));
    const [x0, w0] = [r(prod(xs)), r(prod(ws))];
    const nx = x0.length;
    const all = [...x0, ...w0];
    const refAll = (q: number[]) => ref(q.slice(0, nx), q.slice(nx));
    const f0 = refAll(all);
    // Richardson's extrapolation over steps h and 2h (truncation h^4): central differences at
    // 1e-6 carried rounding of ~1e-10, relative to the program's intermediate values rather than to
    // f (seed 1704175137: J^T u 1.3e-10 off where f was 8e-8 and the library right to 1e-14).
    const h = 1e-4;
    const J: number[][] = f0.map(() => new Array(all.length).fill(0));
    for (let j = 0; j < all.length; j++) {
      const p = [...all];
      p[j] += h;
      const m = [...all];
      m[j] -= h;
      const [fp, fm] = [refAll(p), refAll(m)];
      f0.forEach((_, i) => (J[i][j] = (fp[i] - fm[i]) / (2 * h)));
    }
    const v = r(all.length);
    const u = r(f0.length);
    const model = (x: Tensor, w: Tensor) =>
      o.tanh(o.conv2d(x, w, { stride: [s.sh, s.sw], padding: [s.ph, s.pw] }));
    const EPS = 1e-5;
    for (const be of F64) {
      const tag = `${be.name}: ${JSON.stringify({ ...s, seed: undefined })}`;
      const t = (d: number[], sh: number[]) =>
        tensor(Float64Array.from(d), sh, { backend: be, dtype: "float64" });
      const [x, w] = [t(x0, xs), t(w0, ws)];
      const vT = [t(v.slice(0, nx), xs), t(v.slice(nx), ws)];
      const [[out], [jv]] = jvp(model, [x, w], vT);
      near(await host(out), f0, 1e-12, 1e-12, `${tag}: forward`, 1);
      near(await host(jv), matVec(J, v), 1e-6, 1e-7, `${tag}: J v`, 1e-3);
      const lin = linearize(model, [x, w]);
      const uT = t(u, [...out.shape]);
      near(await hostAll(lin.vjp(uT)), matTVec(J, u), 1e-6, 1e-7, `${tag}: J^T u`, 1e-3);
      lin.dispose();
      const g = (a: Tensor, b: Tensor) => o.sum(o.mul(model(a, b), uT));
      const hv = await hostAll(hvp(g, [x, w], vT));
      const gradAt = async (sg: number) => {
        const q = all.map((a, i) => a + sg * v[i]);
        return await hostAll(valueAndGrad(g)(t(q.slice(0, nx), xs), t(q.slice(nx), ws))[1]);
      };
      const [gp, gm] = [await gradAt(EPS), await gradAt(-EPS)];
      near(hv, gp.map((q, i) => (q - gm[i]) / (2 * EPS)), 1e-5, 1e-6, `${tag}: H v`, 1e-3);
    }
  },
);
