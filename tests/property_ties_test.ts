/**
 * Property tests of the derivative rules at tied and non-smooth points, on every backend, with
 * generated tie-heavy inputs (small integers): relu and step at 0, maximum with equal operands
 * (also broadcast), max reductions and argmax with ties, max pooling (overlapping windows too)
 * with ties, softmax with equal logits. J v and J^T u equal the documented rules computed here with
 * explicit index arithmetic (first maximum for pooling and argmax, shared among ties for max, the
 * first operand for maximum, 0 for relu at 0), lie between the one-sided differences of the
 * reference, and are transposes of each other. Why: a tie broken the other way in one rule is a
 * realistic bug that hand-picked cases missed.
 */

import { type Tensor, tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import { jvp, linearize } from "../autodiff/transforms.ts";
import { fc, property } from "./property.ts";
import { absDot, ALL, dot, dtypeOf, host, near, prod } from "./autodiff_checks.ts";

/**
 * An op at tied or non-smooth points with its reference: forward values, the documented
 * derivative rule as J v and J^T u, written with explicit index arithmetic.
 */
interface TieCase {
  name: string;
  shapes: number[][];
  f: (...xs: Tensor[]) => Tensor;
  forward: (xs: number[][]) => number[];
  jv: (xs: number[][], vs: number[][]) => number[];
  jtu: (xs: number[][], u: number[]) => number[][];
  /** Smooth at every point (softmax): central differences must match J v. */
  smooth?: boolean;
  /** The rule takes one of the one-sided derivatives (relu, maximum), not just a value between. */
  oneSided?: boolean;
  /** Not differentiable at all (argmax): zero derivatives, the forward value is what counts. */
  constant?: boolean;
  xs: number[][];
  vs: number[][];
  u: number[];
}

/** Row-major strides of a shape. */
const stridesOf = (s: readonly number[]) => s.map((_, i) => prod(s.slice(i + 1)));
/** The multi-index of flat index i in shape s. */
const unravel = (i: number, s: readonly number[]) =>
  s.map((d, k) => Math.floor(i / stridesOf(s)[k]) % d);

const small = (n: number, lo: number, hi: number) =>
  fc.array(fc.integer({ min: lo, max: hi }), { minLength: n, maxLength: n });

/** Inputs from {-2..2} (ties everywhere), tangents and cotangents from {-3..3}. */
function withData<T extends { shapes: number[][]; outSize: number }>(
  spec: fc.Arbitrary<T>,
): fc.Arbitrary<T & { xs: number[][]; vs: number[][]; u: number[] }> {
  return spec.chain((s) =>
    fc.record({
      xs: fc.tuple(...s.shapes.map((sh) => small(prod(sh), -2, 2))),
      vs: fc.tuple(...s.shapes.map((sh) => small(prod(sh), -3, 3))),
      u: small(s.outSize, -3, 3),
    }).map((d) => ({ ...s, ...d }))
  );
}

const dims = (maxRank: number, maxDim: number) =>
  fc.array(fc.integer({ min: 1, max: maxDim }), { minLength: 1, maxLength: maxRank });

const reluCase = withData(
  fc.record({ shape: dims(2, 5), which: fc.constantFrom("relu", "step") }).map((s) => ({
    ...s,
    shapes: [s.shape],
    outSize: prod(s.shape),
  })),
).map((s): TieCase => {
  const relu = s.which === "relu";
  return {
    name: s.which,
    ...s,
    f: relu ? o.relu : o.step,
    forward: ([x]) => x.map((t) => (relu ? Math.max(t, 0) : t > 0 ? 1 : 0)),
    // The documented rule: relu'(0) = 0; step has derivative 0 everywhere.
    jv: ([x], [v]) => x.map((t, i) => (relu && t > 0 ? v[i] : 0)),
    jtu: ([x], u) => [x.map((t, i) => (relu && t > 0 ? u[i] : 0))],
    oneSided: true,
  };
});

const maximumCase = withData(
  fc.record({
    rows: fc.integer({ min: 1, max: 3 }),
    cols: fc.integer({ min: 1, max: 4 }),
    bShape: fc.constantFrom("same", "row", "vector"),
  }).map((s) => {
    const b = s.bShape === "same" ? [s.rows, s.cols] : s.bShape === "row" ? [1, s.cols] : [s.cols];
    return { ...s, shapes: [[s.rows, s.cols], b], outSize: s.rows * s.cols };
  }),
).map((s): TieCase => {
  const bAt = (i: number) => (s.shapes[1].length === 2 && s.shapes[1][0] > 1 ? i : i % s.cols);
  return {
    name: `maximum [${s.shapes[0]}] with [${s.shapes[1]}]`,
    ...s,
    f: (a, b) => o.maximum(a, b),
    forward: ([a, b]) => a.map((t, i) => Math.max(t, b[bAt(i)])),
    // Ties go to the first operand (a >= b).
    jv: ([a, b], [va, vb]) => a.map((t, i) => (t >= b[bAt(i)] ? va[i] : vb[bAt(i)])),
    jtu: ([a, b], u) => {
      const gb = new Array(b.length).fill(0);
      a.forEach((t, i) => {
        if (!(t >= b[bAt(i)])) gb[bAt(i)] += u[i];
      });
      return [a.map((t, i) => (t >= b[bAt(i)] ? u[i] : 0)), gb];
    },
    oneSided: true,
  };
});

/** Max over `axes` shares the derivative equally among the tied maxima (documented in ops.ts). */
const maxCase = withData(
  dims(3, 4).chain((shape) =>
    fc.record({
      shape: fc.constant(shape),
      axes: fc.subarray(shape.map((_, i) => i), { minLength: 1 }),
      keepdims: fc.boolean(),
    })
  ).map((s) => ({
    ...s,
    shapes: [s.shape],
    outSize: prod(s.shape.filter((_, i) => !s.axes.includes(i))),
  })),
).map((s): TieCase => {
  const outShape = s.shape.map((d, i) => (s.axes.includes(i) ? 1 : d));
  const outIndex = (i: number) => {
    const idx = unravel(i, s.shape).map((v, k) => (s.axes.includes(k) ? 0 : v));
    return dot(idx, stridesOf(outShape));
  };
  const groups = (x: number[]) => {
    const best = new Array(prod(outShape)).fill(-Infinity);
    x.forEach((t, i) => (best[outIndex(i)] = Math.max(best[outIndex(i)], t)));
    const count = new Array(best.length).fill(0);
    x.forEach((t, i) => t === best[outIndex(i)] && count[outIndex(i)]++);
    return { best, count };
  };
  return {
    name: `max over [${s.axes}] of [${s.shape}]${s.keepdims ? " keepdims" : ""}`,
    ...s,
    f: (x) => o.max(x, s.axes, s.keepdims),
    forward: ([x]) => groups(x).best,
    jv: ([x], [v]) => {
      const { best, count } = groups(x);
      const out = new Array(best.length).fill(0);
      x.forEach((t, i) => {
        if (t === best[outIndex(i)]) out[outIndex(i)] += v[i] / count[outIndex(i)];
      });
      return out;
    },
    jtu: ([x], u) => {
      const { best, count } = groups(x);
      return [x.map((t, i) => (t === best[outIndex(i)] ? u[outIndex(i)] / count[outIndex(i)] : 0))];
    },
  };
});

/** argmax: the index of the first maximum; no derivative. */
const argmaxCase = withData(
  fc.record({
    rows: fc.integer({ min: 1, max: 3 }),
    cols: fc.integer({ min: 1, max: 5 }),
    axis: fc.constantFrom(0, 1),
  })
    .map((s) => ({ ...s, shapes: [[s.rows, s.cols]], outSize: s.axis === 0 ? s.cols : s.rows })),
).map((s): TieCase => ({
  name: `argmax axis ${s.axis} of [${s.rows}, ${s.cols}]`,
  ...s,
  // Added to a smooth function of x so that the output has a tangent at all.
  f: (x) => o.add(o.argmax(x, s.axis), o.sum(o.mul(x, 0), s.axis)),
  forward: ([x]) => {
    const [n, m] = s.axis === 0 ? [s.cols, s.rows] : [s.rows, s.cols];
    const at = (j: number, k: number) => (s.axis === 0 ? x[k * s.cols + j] : x[j * s.cols + k]);
    return Array.from({ length: n }, (_, j) => {
      let best = 0;
      for (let k = 1; k < m; k++) if (at(j, k) > at(j, best)) best = k;
      return best;
    });
  },
  jv: () => new Array(s.outSize).fill(0),
  jtu: ([x]) => [x.map(() => 0)],
  constant: true,
}));

/** Max pooling: the derivative goes to the first maximum of each window (row-major). */
const poolCase = withData(
  fc.record({
    n: fc.integer({ min: 1, max: 2 }),
    c: fc.integer({ min: 1, max: 2 }),
    h: fc.integer({ min: 1, max: 5 }),
    w: fc.integer({ min: 1, max: 5 }),
    kh: fc.integer({ min: 1, max: 3 }),
    kw: fc.integer({ min: 1, max: 3 }),
    sh: fc.integer({ min: 1, max: 3 }),
    sw: fc.integer({ min: 1, max: 3 }),
  }).filter((s) => s.kh <= s.h && s.kw <= s.w).map((s) => {
    const ho = Math.floor((s.h - s.kh) / s.sh) + 1;
    const wo = Math.floor((s.w - s.kw) / s.sw) + 1;
    return { ...s, ho, wo, shapes: [[s.n, s.c, s.h, s.w]], outSize: s.n * s.c * ho * wo };
  }),
).map((s): TieCase => {
  const argmaxes = (x: number[]) => {
    const out: number[] = [];
    for (let p = 0; p < s.n * s.c; p++) {
      for (let oy = 0; oy < s.ho; oy++) {
        for (let ox = 0; ox < s.wo; ox++) {
          let best = -1;
          for (let ky = 0; ky < s.kh; ky++) {
            for (let kx = 0; kx < s.kw; kx++) {
              const i = (p * s.h + oy * s.sh + ky) * s.w + ox * s.sw + kx;
              if (best < 0 || x[i] > x[best]) best = i;
            }
          }
          out.push(best);
        }
      }
    }
    return out;
  };
  return {
    name: `maxPool2d ${s.kh}x${s.kw} stride ${s.sh}x${s.sw} of [${s.shapes[0]}]`,
    ...s,
    f: (x) => o.maxPool2d(x, [s.kh, s.kw], [s.sh, s.sw]),
    forward: ([x]) => argmaxes(x).map((i) => x[i]),
    jv: ([x], [v]) => argmaxes(x).map((i) => v[i]),
    jtu: ([x], u) => {
      const g = new Array(x.length).fill(0);
      argmaxes(x).forEach((i, k) => (g[i] += u[k]));
      return [g];
    },
  };
});

/** softmax and log-softmax of rows with equal logits: smooth, J = diag(s) - s s^T per row. */
const softmaxCase = withData(
  fc.record({
    rows: fc.integer({ min: 1, max: 3 }),
    cols: fc.integer({ min: 1, max: 4 }),
    log: fc.boolean(),
  })
    .map((s) => ({ ...s, shapes: [[s.rows, s.cols]], outSize: s.rows * s.cols })),
).map((s): TieCase => {
  const probs = (x: number[]) =>
    Array.from({ length: s.rows }, (_, r) => {
      const row = x.slice(r * s.cols, (r + 1) * s.cols);
      const e = row.map((t) => Math.exp(t));
      const z = e.reduce((a, b) => a + b, 0);
      return e.map((t) => t / z);
    }).flat();
  const rowDot = (p: number[], v: number[], r: number) =>
    dot(p.slice(r * s.cols, (r + 1) * s.cols), v.slice(r * s.cols, (r + 1) * s.cols));
  const rowSum = (v: number[], r: number) =>
    v.slice(r * s.cols, (r + 1) * s.cols).reduce((a, b) => a + b, 0);
  const row = (i: number) => Math.floor(i / s.cols);
  return {
    name: `${s.log ? "logSoftmax" : "softmax"} of [${s.rows}, ${s.cols}]`,
    ...s,
    f: s.log ? o.logSoftmax : o.softmax,
    forward: ([x]) => (s.log ? probs(x).map(Math.log) : probs(x)),
    jv: ([x], [v]) => {
      const p = probs(x);
      return s.log
        ? v.map((t, i) => t - rowDot(p, v, row(i)))
        : p.map((pi, i) => pi * (v[i] - rowDot(p, v, row(i))));
    },
    jtu: ([x], u) => {
      const p = probs(x);
      return [
        s.log
          ? u.map((t, i) => t - p[i] * rowSum(u, row(i)))
          : p.map((pi, i) => pi * (u[i] - rowDot(p, u, row(i)))),
      ];
    },
    smooth: true,
  };
});

/**
 * One tie case on every backend: the forward value, J v and J^T u equal the reference rule (so
 * every backend gives the same subgradient), <u, J v> = <J^T u, v>, and J v agrees with the
 * one-sided differences of the reference function: between them, or equal to one of them where
 * the rule says so, or equal to the central difference where the function is smooth.
 */
async function checkTie(c: TieCase): Promise<void> {
  const h = c.smooth ? 1e-6 : 1e-3;
  const shifted = (s: number) => c.forward(c.xs.map((x, k) => x.map((t, i) => t + s * c.vs[k][i])));
  const f0 = c.forward(c.xs);
  const [fp, fm] = [shifted(h), shifted(-h)];
  const want = c.jv(c.xs, c.vs);
  if (!c.constant) {
    want.forEach((j, i) => {
      const [dp, dm] = [(fp[i] - f0[i]) / h, (f0[i] - fm[i]) / h];
      const ok = c.smooth
        ? Math.abs(j - (fp[i] - fm[i]) / (2 * h)) <= 1e-7
        : c.oneSided
        ? Math.abs(j - dp) <= 1e-9 || Math.abs(j - dm) <= 1e-9
        : j >= Math.min(dp, dm) - 1e-9 && j <= Math.max(dp, dm) + 1e-9;
      if (!ok) {
        throw new Error(
          `${c.name}: the reference rule's J v[${i}] = ${j} but one-sided ${dp}, ${dm}`,
        );
      }
    });
  }
  const wantT = c.jtu(c.xs, c.u);
  for (const be of ALL) {
    const dtype = dtypeOf(be);
    // Integers are exact in float32; only softmax's exp and the shared maxima's 1/count round.
    const tol = dtype === "float64" ? 1e-12 : 1e-6;
    const t = (d: number[], s: number[]) => tensor(Float64Array.from(d), s, { backend: be, dtype });
    const xs = c.xs.map((x, k) => t(x, c.shapes[k]));
    const vs = c.vs.map((v, k) => t(v, c.shapes[k]));
    const tag = `${be.name}: ${c.name}, x ${JSON.stringify(c.xs)}, v ${JSON.stringify(c.vs)}`;
    const [[y], [jv]] = jvp(c.f, xs, vs);
    near(await host(y), f0, tol, tol, `${tag}: forward`, 1);
    near(await host(jv), want, tol, tol, `${tag}: J v`, 1);
    const lin = linearize(c.f, xs);
    const cts = lin.vjp(t(c.u, [...lin.outputs[0].shape]));
    const got = await Promise.all(cts.map(host));
    got.forEach((g, k) => near(g, wantT[k], tol, tol, `${tag}: J^T u (operand ${k})`, 1));
    const [linJv] = lin.jvp(...vs);
    const ljv = await host(linJv);
    near(ljv, want, tol, tol, `${tag}: linearized J v`, 1);
    const lhs = dot(c.u, ljv);
    const rhs = got.reduce((acc, g, k) => acc + dot(g, c.vs[k]), 0);
    const scale = absDot(c.u, ljv) + got.reduce((acc, g, k) => acc + absDot(g, c.vs[k]), 0);
    if (!(Math.abs(lhs - rhs) <= tol * (scale + 1))) {
      throw new Error(`${tag}: <u, J v> = ${lhs} but <J^T u, v> = ${rhs}`);
    }
    lin.dispose();
  }
}

const TIES = "ties: J v and J^T u at tied points equal the documented rule on every backend";
property(`${TIES} (relu and step at 0)`, reluCase, 20, checkTie);
property(`${TIES} (maximum with equal operands, broadcast)`, maximumCase, 20, checkTie);
property(`${TIES} (max reductions shared among tied maxima)`, maxCase, 20, checkTie);
property(`${TIES} (argmax picks the first maximum)`, argmaxCase, 15, checkTie);
property(
  `${TIES} (max pooling routes to the first maximum, overlapping windows)`,
  poolCase,
  25,
  checkTie,
);
property(`${TIES} (softmax and log-softmax with equal logits)`, softmaxCase, 15, checkTie);
