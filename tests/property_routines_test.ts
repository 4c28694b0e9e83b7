/**
 * Property tests of the routines and their caches on every backend: convolution, max-pool and
 * matmul specs interleaved in one process, each followed by a variant that differs in one field
 * on the same input buffer, so that a cache keyed on an incomplete spec (im2col columns and index
 * maps, pooling argmax, compiled kernels, pipelines) gives numbers the check sees; forward values
 * and gradients (vjp) against direct loops, within the propagated bounds of
 * tests/kernel_reference.ts. Also max pooling over NaN, infinities and ties, which every backend
 * must give exactly as the oracle does.
 */

import assert from "node:assert/strict";
import type { DType } from "../kernel/shape.ts";
import { cpu, put, take } from "./harness.ts";
import { fc, property } from "./property.ts";
import { ops, type Tensor, tensor } from "../mod.ts";
import { vjp } from "../autodiff/transforms.ts";
import {
  check,
  leafData,
  ND,
  refMatmul,
  refReduce,
  refTranspose,
  type Target,
  TARGETS,
} from "./kernel_reference.ts";

interface ConvCase {
  kind: "conv";
  n: number;
  c: number;
  h: number;
  w: number;
  f: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  ph: number;
  pw: number;
  bias: boolean;
  act: "none" | "relu" | "tanh";
  /** Elements of a larger leaf before the weights (a window at an offset), or -1 for a leaf. */
  offW: number;
}

interface PoolCase {
  kind: "pool";
  n: number;
  c: number;
  h: number;
  w: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
}

interface MatmulCase {
  kind: "matmul";
  m: number;
  k: number;
  n: number;
  /** 0: [m, k] [k, n]; 1: both batched; 2: batched A, shared B; 3: shared A, batched B. */
  batch: number;
  transA: boolean;
  transB: boolean;
  /** Rows of a larger leaf before each operand (a window at an offset), 0 for none. */
  offA: number;
  offB: number;
}

const convOut = (s: ConvCase) => [
  Math.floor((s.h + 2 * s.ph - s.kh) / s.sh) + 1,
  Math.floor((s.w + 2 * s.pw - s.kw) / s.sw) + 1,
];

/** The forward conv (pre-activation, with bias) by direct loops, and the sum of |terms|. */
function refConvPre(s: ConvCase, x: Float64Array, w: Float64Array, b: Float64Array) {
  const [ho, wo] = convOut(s);
  const y = new Float64Array(s.n * s.f * ho * wo);
  const abs = new Float64Array(y.length);
  for (let i = 0; i < s.n; i++) {
    for (let f = 0; f < s.f; f++) {
      for (let oy = 0; oy < ho; oy++) {
        for (let ox = 0; ox < wo; ox++) {
          let acc = s.bias ? b[f] : 0;
          let a = Math.abs(acc);
          for (let c = 0; c < s.c; c++) {
            for (let ky = 0; ky < s.kh; ky++) {
              for (let kx = 0; kx < s.kw; kx++) {
                const iy = oy * s.sh - s.ph + ky, ix = ox * s.sw - s.pw + kx;
                if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) continue;
                const t = x[((i * s.c + c) * s.h + iy) * s.w + ix] *
                  w[((f * s.c + c) * s.kh + ky) * s.kw + kx];
                acc += t;
                a += Math.abs(t);
              }
            }
          }
          const o = ((i * s.f + f) * ho + oy) * wo + ox;
          y[o] = acc;
          abs[o] = a;
        }
      }
    }
  }
  return { y, abs };
}

function checkSum(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  abs: ArrayLike<number>,
  terms: number,
  slack: number,
  t: Target,
  what: string,
): void {
  assert.equal(got.length, want.length, `${t.label} ${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const tol = t.u * (4 * (terms + 2) * abs[i] + slack) + 1e-30;
    if (!(Math.abs(got[i] - want[i]) <= tol)) {
      throw new Error(
        `${t.label} ${what}: element ${i} is ${got[i]}, expected ${want[i]} (tolerance ${tol})`,
      );
    }
  }
}

async function runConv(t: Target, s: ConvCase, x: Tensor, seed: number): Promise<void> {
  const [ho, wo] = convOut(s);
  const what = `conv2d ${JSON.stringify(s)}`;
  const xd = Float64Array.from(await x.data());
  const wd = leafData(s.f * s.c * s.kh * s.kw, seed);
  const bd = leafData(s.f, seed + 1);
  const dyd = leafData(s.n * s.f * ho * wo, seed + 2);
  const opts = { backend: t.be, dtype: t.dtype };
  // The weights as a leaf, or as a window of a larger one (a layer's part of a flat vector).
  const wShape = [s.f, s.c, s.kh, s.kw];
  const wBig = s.offW < 0 ? undefined : leafData(s.offW + wd.length + 3, seed + 3);
  wBig?.set(wd, s.offW);
  const big = wBig && tensor(wBig, [wBig.length], opts);
  const w = big
    ? ops.reshape(ops.slice(big, [s.offW], [wd.length]), wShape)
    : tensor(wd, wShape, opts);
  const b = tensor(bd, [s.f], opts);
  const dy = tensor(dyd, [s.n, s.f, ho, wo], opts);
  const fwd = (xx: Tensor, ww: Tensor, bb: Tensor) => {
    let y = ops.conv2d(xx, ww, { stride: [s.sh, s.sw], padding: [s.ph, s.pw] });
    if (s.bias) y = ops.add(y, ops.reshape(bb, [1, s.f, 1, 1]));
    return s.act === "relu" ? ops.relu(y) : s.act === "tanh" ? ops.tanh(y) : y;
  };
  const [[y], pullback] = vjp((xx, ww, bb) => [fwd(xx, ww, bb)], [x, w, b]);
  const [dx, dw, db] = pullback(dy);
  try {
    const { y: pre, abs } = refConvPre(s, xd, wd, bd);
    const act = s.act === "relu"
      ? (v: number) => (v <= 0 ? 0 : v)
      : s.act === "tanh"
      ? Math.tanh
      : (v: number) => v;
    // The derivative of relu at 0 is 0; pre-activations are exact here (dyadic data).
    const dact = s.act === "relu"
      ? (v: number) => (v > 0 ? 1 : 0)
      : s.act === "tanh"
      ? (v: number) => 1 - Math.tanh(v) ** 2
      : () => 1;
    const K = s.c * s.kh * s.kw + 1;
    const slack = s.act === "tanh" ? 64 : 0;
    checkSum(await y.data(), pre.map(act), abs, K, slack, t, `${what} forward`);
    // The gradient at the pre-activation; tanh's derivative carries the forward's error.
    const g = dyd.map((v, i) => v * dact(pre[i]));
    const gAbs = dyd.map((v, i) => Math.abs(v) * (s.act === "tanh" ? 2 * (abs[i] + 1) : 1));
    const dxW = new Float64Array(xd.length), dxA = new Float64Array(xd.length);
    const dwW = new Float64Array(wd.length), dwA = new Float64Array(wd.length);
    const dbW = new Float64Array(s.f), dbA = new Float64Array(s.f);
    for (let i = 0; i < s.n; i++) {
      for (let f = 0; f < s.f; f++) {
        for (let oy = 0; oy < ho; oy++) {
          for (let ox = 0; ox < wo; ox++) {
            const o = ((i * s.f + f) * ho + oy) * wo + ox;
            if (s.bias) {
              dbW[f] += g[o];
              dbA[f] += gAbs[o];
            }
            for (let c = 0; c < s.c; c++) {
              for (let ky = 0; ky < s.kh; ky++) {
                for (let kx = 0; kx < s.kw; kx++) {
                  const iy = oy * s.sh - s.ph + ky, ix = ox * s.sw - s.pw + kx;
                  if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) continue;
                  const xi = ((i * s.c + c) * s.h + iy) * s.w + ix;
                  const wi = ((f * s.c + c) * s.kh + ky) * s.kw + kx;
                  dxW[xi] += g[o] * wd[wi];
                  dxA[xi] += Math.abs(gAbs[o] * wd[wi]);
                  dwW[wi] += g[o] * xd[xi];
                  dwA[wi] += Math.abs(gAbs[o] * xd[xi]);
                }
              }
            }
          }
        }
      }
    }
    const terms = s.n * s.f * ho * wo + 2;
    checkSum(await dx.data(), dxW, dxA, s.f * s.kh * s.kw, slack, t, `${what} input gradient`);
    checkSum(await dw.data(), dwW, dwA, terms, slack, t, `${what} weight gradient`);
    checkSum(await db.data(), dbW, dbA, terms, slack, t, `${what} bias gradient`);
  } finally {
    for (const v of [w, b, dy, y, dx, dw, db, ...(big ? [big] : [])]) v.dispose();
    pullback.dispose?.();
  }
}

async function runPool(t: Target, s: PoolCase, x: Tensor, seed: number): Promise<void> {
  const ho = Math.floor((s.h - s.kh) / s.sh) + 1, wo = Math.floor((s.w - s.kw) / s.sw) + 1;
  const what = `maxPool2d ${JSON.stringify(s)}`;
  const xd = await x.data();
  const dyd = leafData(s.n * s.c * ho * wo, seed);
  const dy = tensor(dyd, [s.n, s.c, ho, wo], { backend: t.be, dtype: t.dtype });
  const [[y], pullback] = vjp((xx) => [ops.maxPool2d(xx, [s.kh, s.kw], [s.sh, s.sw])], [x]);
  const [dx] = pullback(dy);
  try {
    const yW = new Float64Array(dyd.length);
    const dxW = new Float64Array(xd.length);
    for (let p = 0; p < s.n * s.c; p++) {
      for (let oy = 0; oy < ho; oy++) {
        for (let ox = 0; ox < wo; ox++) {
          // The first maximum in row-major order takes the gradient.
          let best = -1;
          for (let ky = 0; ky < s.kh; ky++) {
            for (let kx = 0; kx < s.kw; kx++) {
              const at = (p * s.h + oy * s.sh + ky) * s.w + ox * s.sw + kx;
              if (best < 0 || xd[at] > xd[best]) best = at;
            }
          }
          const o = (p * ho + oy) * wo + ox;
          yW[o] = xd[best];
          dxW[best] += dyd[o];
        }
      }
    }
    // Values are dyadic and few: forward and backward are exact on every backend.
    const exact = new Float64Array(dxW.length);
    checkSum(await y.data(), yW, exact, 0, 0, t, `${what} forward`);
    checkSum(await dx.data(), dxW, exact, 0, 0, t, `${what} backward`);
  } finally {
    for (const v of [dy, y, dx]) v.dispose();
    pullback.dispose?.();
  }
}

async function runMatmul(t: Target, s: MatmulCase, seed: number): Promise<void> {
  const what = `matmul ${JSON.stringify(s)}`;
  const bt = s.batch ? 2 : 0;
  const batchA = s.batch === 1 || s.batch === 2, batchB = s.batch === 1 || s.batch === 3;
  const aLogical = [...(batchA ? [bt] : []), s.m, s.k];
  const bLogical = [...(batchB ? [bt] : []), s.k, s.n];
  const stored = (shape: number[], trans: boolean) =>
    trans ? [...shape.slice(0, -2), shape.at(-1)!, shape.at(-2)!] : shape;
  const opts = { backend: t.be, dtype: t.dtype };
  /** An operand: a leaf, or the rows [off, off + rows) of a larger leaf (a window). */
  const operand = (shape: number[], off: number, sd: number) => {
    const rows = shape.length === 2 ? shape[0] : shape[0] * shape[1];
    const cols = shape.at(-1)!;
    const data = leafData((rows + off) * cols, sd);
    const big = tensor(data, [rows + off, cols], opts);
    const v = off
      ? ops.reshape(ops.slice(big, [off, 0], [rows, cols]), shape)
      : ops.reshape(big, shape);
    return { v, big, data: data.subarray(off * cols, (off + rows) * cols) };
  };
  const aStored = stored(aLogical, s.transA), bStored = stored(bLogical, s.transB);
  const A = operand(aStored, s.offA, seed);
  const B = operand(bStored, s.offB, seed + 1);
  const aRef = s.transA
    ? refTranspose(new ND(aStored, A.data), batchA ? [0, 2, 1] : [1, 0])
    : new ND(aLogical, A.data);
  const bRef = s.transB
    ? refTranspose(new ND(bStored, B.data), batchB ? [0, 2, 1] : [1, 0])
    : new ND(bLogical, B.data);
  const want = refMatmul(aRef, bRef);
  const dyd = leafData(want.size, seed + 2);
  const dy = tensor(dyd, want.shape, opts);
  const mm = (a: Tensor, b: Tensor) => [ops.matmul(a, b, { transA: s.transA, transB: s.transB })];
  const [[y], pullback] = vjp(mm, [A.v, B.v]);
  const [da, db] = pullback(dy);
  try {
    check(await y.data(), want, t, `${what} forward`);
    // dA = dY B^T and dB = A^T dY (summed over the batch when B is shared), in stored layout.
    const dyRef = new ND(want.shape, dyd);
    const tr = (x: ND) => refTranspose(x, x.shape.length === 3 ? [0, 2, 1] : [1, 0]);
    let daRef = refMatmul(dyRef, tr(bRef));
    let dbRef = refMatmul(tr(aRef), dyRef);
    if (s.batch === 2) dbRef = refReduce(dbRef, [0], "sum", false);
    if (s.batch === 3) daRef = refReduce(daRef, [0], "sum", false);
    if (s.transA) daRef = tr(daRef);
    if (s.transB) dbRef = tr(dbRef);
    check(await da.data(), daRef, t, `${what} gradient of A`);
    check(await db.data(), dbRef, t, `${what} gradient of B`);
  } finally {
    for (const v of [A.v, A.big, B.v, B.big, dy, y, da, db]) v.dispose();
    pullback.dispose?.();
  }
}

const convArb: fc.Arbitrary<ConvCase> = fc.record({
  kind: fc.constant("conv" as const),
  n: fc.integer({ min: 1, max: 2 }),
  c: fc.integer({ min: 1, max: 3 }),
  h: fc.integer({ min: 1, max: 7 }),
  w: fc.integer({ min: 1, max: 7 }),
  f: fc.integer({ min: 1, max: 5 }),
  kh: fc.integer({ min: 1, max: 3 }),
  kw: fc.integer({ min: 1, max: 3 }),
  sh: fc.integer({ min: 1, max: 3 }),
  sw: fc.integer({ min: 1, max: 3 }),
  ph: fc.integer({ min: 0, max: 2 }),
  pw: fc.integer({ min: 0, max: 2 }),
  bias: fc.boolean(),
  act: fc.constantFrom("none" as const, "relu" as const, "tanh" as const),
  offW: fc.integer({ min: -1, max: 5 }),
});
const poolArb: fc.Arbitrary<PoolCase> = fc.record({
  kind: fc.constant("pool" as const),
  n: fc.integer({ min: 1, max: 2 }),
  c: fc.integer({ min: 1, max: 3 }),
  h: fc.integer({ min: 1, max: 9 }),
  w: fc.integer({ min: 1, max: 9 }),
  kh: fc.integer({ min: 1, max: 3 }),
  kw: fc.integer({ min: 1, max: 3 }),
  sh: fc.integer({ min: 1, max: 3 }),
  sw: fc.integer({ min: 1, max: 3 }),
});
const matmulArb: fc.Arbitrary<MatmulCase> = fc.record({
  kind: fc.constant("matmul" as const),
  m: fc.integer({ min: 1, max: 6 }),
  k: fc.integer({ min: 1, max: 6 }),
  n: fc.integer({ min: 1, max: 6 }),
  batch: fc.integer({ min: 0, max: 3 }),
  transA: fc.boolean(),
  transB: fc.boolean(),
  offA: fc.integer({ min: 0, max: 2 }),
  offB: fc.integer({ min: 0, max: 2 }),
});

/** Fields a variant may change (the input's shape stays, so the same buffer is reused). */
const CONV_FIELDS = ["kh", "kw", "sh", "sw", "ph", "pw", "f"] as const;
const POOL_FIELDS = ["kh", "kw", "sh", "sw"] as const;

/** A case made valid: kernels that fit the (padded) input. */
function fitConv(s: ConvCase): ConvCase {
  return { ...s, kh: Math.min(s.kh, s.h + 2 * s.ph), kw: Math.min(s.kw, s.w + 2 * s.pw) };
}
const poolOut = (s: PoolCase) => [
  Math.floor((s.h - s.kh) / s.sh) + 1,
  Math.floor((s.w - s.kw) / s.sw) + 1,
];
function fitPool(s: PoolCase): PoolCase {
  return { ...s, kh: Math.min(s.kh, s.h), kw: Math.min(s.kw, s.w) };
}

/**
 * The case and a variant that differs in one field. With `aligned`, the case is first moved
 * (stride 3 and a fitting size) so that the variant can keep the output size: a cache keyed on
 * the sizes of its buffers alone would then mix the two up. A variant with the same output size
 * is preferred when the field is a size or a padding; one whose outputs along the axis are both
 * larger than 1 when it is a stride (a single window does not depend on the stride).
 */
function variants<T extends ConvCase | PoolCase>(
  s: T,
  fields: readonly string[],
  field: number,
  delta: number,
  aligned: boolean,
  fit: (s: T) => T,
  out: (s: T) => number[],
): T[] {
  const key = fields[field % fields.length] as keyof T & string;
  const vertical = key === "kh" || key === "sh" || key === "ph";
  let start = s;
  if (aligned) {
    const [size, k, st, pad] = vertical ? ["h", "kh", "sh", "ph"] : ["w", "kw", "sw", "pw"];
    const c = { ...s } as unknown as Record<string, number>;
    if (key === "ph" || key === "pw") {
      // (size + 2 pad - k) a multiple of 3 with stride 3: pad + 1 gives the same output size.
      c[st] = 3;
      c[pad] = Math.min(c[pad] ?? 0, 1);
      while ((c[size] + 2 * c[pad] - c[k]) % 3 !== 0 || c[size] + 2 * c[pad] < c[k]) c[size]++;
    } else c[size] = Math.max(c[size], c[k] + 6);
    start = c as unknown as T;
  }
  const base = fit(start);
  const lo = key === "ph" || key === "pw" ? 0 : 1;
  const all = [0, 1, 2].map((i) => fit({ ...base, [key]: lo + i }))
    .filter((v) => JSON.stringify(v) !== JSON.stringify(base));
  if (!all.length) return [base];
  const axis = vertical ? 0 : 1;
  const preferred = key === "sh" || key === "sw"
    ? all.filter((v) => out(v)[axis] > 1 && out(base)[axis] > 1)
    : all.filter((v) => String(out(v)) === String(out(base)));
  const pool = preferred.length ? preferred : all;
  return [base, pool[delta % pool.length]];
}

const specArb = fc.record({
  items: fc.array(
    fc.record({
      spec: fc.oneof(convArb, poolArb, matmulArb),
      field: fc.nat(6),
      delta: fc.integer({ min: 1, max: 2 }),
      aligned: fc.boolean(),
      seed: fc.nat(1000),
    }),
    { minLength: 1, maxLength: 4 },
  ),
});

property(
  "conv2d, maxPool2d and matmul specs interleaved with one-field variants, forward and gradients",
  specArb,
  24,
  async ({ items }) => {
    for (const t of TARGETS) {
      for (const { spec, field, delta, aligned, seed } of items) {
        if (spec.kind === "matmul") {
          await runMatmul(t, spec, seed);
          const flip = field % 3;
          const v = flip === 0
            ? { ...spec, transA: !spec.transA }
            : flip === 1
            ? { ...spec, transB: !spec.transB }
            : { ...spec, offA: (spec.offA + delta) % 3 };
          await runMatmul(t, v, seed);
          continue;
        }
        // The variant runs on the same input tensor: caches keyed on its buffer are shared.
        const pair = spec.kind === "conv"
          ? variants(spec, CONV_FIELDS, field, delta, aligned, fitConv, convOut)
          : variants(spec, POOL_FIELDS, field, delta, aligned, fitPool, poolOut);
        const { n, c, h, w } = pair[0];
        const x = tensor(leafData(n * c * h * w, seed + 5), [n, c, h, w], {
          backend: t.be,
          dtype: t.dtype,
        });
        try {
          for (const s of pair) {
            if (s.kind === "conv") await runConv(t, s, x, seed);
            else await runPool(t, s, x, seed);
          }
        } finally {
          x.dispose();
        }
      }
    }
  },
);

// --- 2b. max pooling over NaN, infinities and ties, at the kernel level --------------------
// oneDNN's max skips NaN and returns the largest number; ours returns the window's first NaN,
// and sends the gradient there. Every backend must give exactly the oracle's values.

const poolNaNArb = fc.record({
  spec: poolArb,
  values: fc.array(
    fc.constantFrom(NaN, Infinity, -Infinity, 0, -0, 1, 2, -1, 0.5),
    { minLength: 1, maxLength: 64 },
  ),
  nanAt: fc.array(fc.nat(1000), { minLength: 0, maxLength: 3 }),
});

property(
  "max pooling with NaN, infinities and ties: forward and backward equal the oracle exactly",
  poolNaNArb,
  40,
  async ({ spec, values, nanAt }) => {
    const p = fitPool(spec);
    const s = {
      n: p.n,
      c: p.c,
      h: p.h,
      w: p.w,
      kh: p.kh,
      kw: p.kw,
      strideH: p.sh,
      strideW: p.sw,
    };
    const size = s.n * s.c * s.h * s.w;
    const x = Array.from({ length: size }, (_, i) => values[i % values.length]);
    for (const i of nanAt) x[i % size] = NaN;
    const [ho, wo] = poolOut(p);
    const dy = Array.from({ length: s.n * s.c * ho * wo }, (_, i) => (i % 7) - 3);
    const want = async (dtype: DType) => {
      const xb = put(cpu, x, dtype), db = put(cpu, dy, dtype);
      const r = [
        await take(cpu, cpu.maxPool2d(xb, s)),
        await take(cpu, cpu.maxPool2dBackward(xb, db, s)),
      ];
      return r;
    };
    for (const t of TARGETS) {
      if (t.be === cpu) continue;
      const [yW, dxW] = await want(t.dtype);
      const xb = put(t.be, x, t.dtype), db = put(t.be, dy, t.dtype);
      try {
        // The backward pass first (the pool's workspace made for it), then the forward.
        const dx = await take(t.be, t.be.maxPool2dBackward(xb, db, s));
        const y = await take(t.be, t.be.maxPool2d(xb, s));
        const what = `${t.label} ${JSON.stringify(s)} x=${JSON.stringify(x.map(String))}`;
        assert.deepEqual([...y].map(String), [...yW].map(String), `${what} forward`);
        assert.deepEqual([...dx].map(String), [...dxW].map(String), `${what} backward`);
      } finally {
        t.be.release(xb);
        t.be.release(db);
      }
    }
  },
);
