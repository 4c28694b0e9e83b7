/**
 * Conformance at the edges, several pinned by hand as well as against the CPU oracle: ties (the
 * first maximum wins in argmax, max and max-pool, forward and backward), non-square shapes
 * everywhere (m, k, n distinct; h != w; kh != kw; strides and paddings that differ per axis),
 * extreme magnitudes (softmax and log-softmax of ±1e4 and ±80, exp up to float32 overflow,
 * sigmoid and tanh at ±1e4 and ±1e38, sums of values near 1e30), and -0 and subnormals, compared
 * bit for bit where IEEE 754 fixes the result. Log-softmax is held to relative accuracy down to
 * 1e-15 (the oracle's float64 floor), so that the loss of a confident prediction keeps its digits.
 *
 * Known and allowed differences, not tested: on llvmpipe exp flushes subnormal results to 0
 * (sigmoid(-100) = 3.8e-44 gives 0; WGSL allows it), and float32 accumulation overflows where
 * a partial sum exceeds 3.4e38 though the total does not (sum of [3e38, 3e38, -3e38, -3e38] is
 * Inf or NaN on WebGPU and in native float32 matmul; the oracle sums in float64 and gives 0).
 */

import * as K from "../kernel/kernels.ts";
import assert from "node:assert/strict";
import {
  type Conv2dSpec,
  type MatmulSpec,
  pool2dOutSize,
  type Pool2dSpec,
} from "../kernel/backend.ts";
import type { BinaryOp, UnaryOp } from "../kernel/ir.ts";
import { sizeOf } from "../kernel/shape.ts";
import { assertClose, cpu, put, Random, take } from "./harness.ts";
import { absScale, assertSumClose, checkConvs, runner, targets } from "./conformance_support.ts";

/** A number as a reader wants it: -0 shown as such. */
function show(x: number): string {
  return Object.is(x, -0) ? "-0" : String(x);
}

/** Asserts element-wise identity, the sign of zero included (NaN matches NaN). */
function assertSame(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string) {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    if (!Object.is(actual[i], expected[i])) {
      throw new Error(
        `${what}: element ${i} is ${show(actual[i])}, expected ${show(expected[i])} ` +
          `(all: [${Array.from(actual, show)}], expected [${Array.from(expected, show)}])`,
      );
    }
  }
}

for (const t of targets) {
  const both = runner(t);
  const eps = t.dtype === "float64" ? 1e-12 : 1e-5;
  /** A value as the target holds it (float32 rounding unless the target runs float64). */
  const held = (x: number) => (t.dtype === "float64" ? x : Math.fround(x));

  Deno.test({
    name: `conformance (${t.label}): argmax, max and max-pool with ties take the first maximum`,
    fn: async () => {
      // Rows with their first maximum's index worked out by hand: the oracle is pinned too.
      const rows: [number[], number][] = [
        [[3, 1, 3], 0],
        [[1, 3, 3, 3], 1],
        [[2, 2, 2, 2, 2], 0],
        [[-Infinity, -Infinity], 0],
        [[-1, -Infinity, -1], 0],
        [[-5, -3, -3], 1],
        [[0, -0], 0],
        [[-0, 0], 0],
        [[Infinity, 5, Infinity], 0],
        [[1, NaN, 5, NaN], 1],
        [[7], 0],
      ];
      for (const [row, want] of rows) {
        for (const be of [cpu, t.be]) {
          const got = await take(
            be,
            K.reduce(be, "argmax", put(be, row, t.dtype), 1, row.length, 1),
          );
          assert.equal(got[0], want, `${be.name}: argmax of [${row.map(show)}]`);
          // The same row as a column (inner > 1): [row.length, 2] with the row twice.
          const col = row.flatMap((v) => [v, v]);
          const g2 = await take(
            be,
            K.reduce(be, "argmax", put(be, col, t.dtype), 1, row.length, 2),
          );
          assertSame(g2, [want, want], `${be.name}: argmax of [${row.map(show)}] along axis 0`);
        }
      }
      // Long rows of few distinct values (ties everywhere), the maximum only past the first
      // 4096 elements in some, all equal in others, along each axis.
      const rng = new Random(11);
      const shapes = [[2, 17], [5, 33, 3], [1, 5000], [3, 4099], [257, 2], [4, 5, 6]];
      for (const shape of shapes) {
        for (const kind of ["ties", "constant", "late"] as const) {
          const x = rng.array(sizeOf(shape), (r) => Math.round(r.range(-2, 2)));
          if (kind === "constant") x.fill(1.5);
          if (kind === "late") x.forEach((_, i) => (x[i] = i >= 4100 && i % 3 === 0 ? 9 : x[i]));
          for (let axis = 0; axis < shape.length; axis++) {
            const outer = sizeOf(shape.slice(0, axis));
            const inner = sizeOf(shape.slice(axis + 1));
            for (const op of ["argmax", "max"] as const) {
              const [g, c] = await both(
                [x],
                (be, [b]) => K.reduce(be, op, b, outer, shape[axis], inner),
              );
              assertSame(g, c, `${op} [${shape}] axis ${axis} (${kind})`);
            }
          }
        }
      }
      // Max pooling: non-square planes and windows, overlapping or not, with ties.
      const pools: Pool2dSpec[] = [
        { n: 1, c: 2, h: 5, w: 11, kh: 2, kw: 3, strideH: 2, strideW: 3 },
        { n: 2, c: 1, h: 12, w: 7, kh: 3, kw: 2, strideH: 1, strideW: 2 },
        { n: 1, c: 3, h: 7, w: 12, kh: 1, kw: 4, strideH: 1, strideW: 4 },
        { n: 1, c: 1, h: 11, w: 5, kh: 3, kw: 1, strideH: 2, strideW: 1 },
        { n: 1, c: 2, h: 6, w: 9, kh: 2, kw: 3, strideH: 3, strideW: 2 },
        { n: 1, c: 1, h: 5, w: 11, kh: 4, kw: 2, strideH: 4, strideW: 5 },
      ];
      for (const s of pools) {
        const [ho, wo] = pool2dOutSize(s);
        const what = JSON.stringify(s);
        const size = s.n * s.c * s.h * s.w;
        const v = rng.array(size);
        const dy = rng.array(s.n * s.c * ho * wo, (r) => Math.round(r.range(1, 9)));
        // A constant plane: every window's first element (its top-left corner) wins, by hand.
        const first: number[] = [];
        for (let p = 0; p < s.n * s.c; p++) {
          for (let oy = 0; oy < ho; oy++) {
            for (let ox = 0; ox < wo; ox++) {
              first.push((p * s.h + oy * s.strideH) * s.w + ox * s.strideW);
            }
          }
        }
        const constant = new Array(size).fill(2);
        const dx = new Array(size).fill(0);
        first.forEach((i, k) => (dx[i] += dy[k]));
        for (const be of [cpu, t.be]) {
          const out = await take(
            be,
            be.maxPool2d(put(be, constant, t.dtype), s, put(be, v, t.dtype)),
          );
          assertSame(out, first.map((i) => held(v[i])), `${be.name} maxPool2d ${what} (constant)`);
          const back = await take(
            be,
            be.maxPool2dBackward(put(be, constant, t.dtype), put(be, dy, t.dtype), s),
          );
          assertSame(back, dx.map(held), `${be.name} maxPool2dBackward ${what} (constant)`);
        }
        for (const draw of [(r: Random) => Math.round(r.range(0, 1)), () => -Infinity]) {
          const x = rng.array(size, draw);
          const [g, c] = await both([x, v], (be, [a, b]) => be.maxPool2d(a, s, b));
          assertSame(g, c, `maxPool2d ${what} (ties)`);
          const [gb, cb] = await both([x, dy], (be, [a, b]) => be.maxPool2dBackward(a, b, s));
          assertSame(gb, cb, `maxPool2dBackward ${what} (ties)`);
        }
      }
    },
  });

  Deno.test({
    name: `conformance (${t.label}): non-square shapes (m, k, n distinct; h != w; kh != kw)`,
    fn: async () => {
      // By hand first: [[1, 2, 3], [4, 5, 6]] times [1, 10, 100]^T, and the same with A stored
      // transposed; a 2 x 3 image under a 1 x 2 and a 2 x 1 kernel.
      for (const be of [cpu, t.be]) {
        const a = [1, 2, 3, 4, 5, 6];
        const at = [1, 4, 2, 5, 3, 6];
        const b = [1, 10, 100];
        const spec = { m: 2, k: 3, n: 1 };
        const ab = await take(be, be.matmul(put(be, a, t.dtype), put(be, b, t.dtype), spec));
        assertSame(ab, [321, 654], `${be.name} matmul 2x3 by 3x1`);
        const atb = await take(
          be,
          be.matmul(put(be, at, t.dtype), put(be, b, t.dtype), { ...spec, transA: true }),
        );
        assertSame(atb, [321, 654], `${be.name} matmul 2x3 (stored 3x2) by 3x1`);
        const conv = { n: 1, c: 1, h: 2, w: 3, f: 1, strideH: 1, strideW: 1, padH: 0, padW: 0 };
        const wide = await take(
          be,
          be.conv2d(put(be, a, t.dtype), put(be, [1, 10], t.dtype), { ...conv, kh: 1, kw: 2 }),
        );
        assertSame(wide, [21, 32, 54, 65], `${be.name} conv2d 2x3 image, 1x2 kernel`);
        const tall = await take(
          be,
          be.conv2d(put(be, a, t.dtype), put(be, [1, 10], t.dtype), { ...conv, kh: 2, kw: 1 }),
        );
        assertSame(tall, [41, 52, 63], `${be.name} conv2d 2x3 image, 2x1 kernel`);
      }
      const rng = new Random(12);
      const dims = [[5, 11, 2], [2, 5, 11], [11, 2, 5], [1, 64, 3], [65, 1, 67], [3, 2, 1]];
      for (const [m, k, n] of dims) {
        for (const transA of [false, true]) {
          for (const transB of [false, true]) {
            const spec: MatmulSpec = { m, k, n, transA, transB, batch: 2 };
            const a = rng.array(2 * m * k);
            const b = rng.array(2 * k * n);
            const [g, c] = await both([a, b], (be, [x, y]) => be.matmul(x, y, spec));
            const [sg] = await both(
              [absScale(a), absScale(b)],
              (be, [x, y]) => be.matmul(x, y, spec),
            );
            assertSumClose(g, c, sg, `matmul ${JSON.stringify(spec)}`, eps);
          }
        }
      }
      const specs: Conv2dSpec[] = [
        { n: 2, c: 3, h: 5, w: 11, f: 4, kh: 2, kw: 3, strideH: 1, strideW: 2, padH: 0, padW: 1 },
        { n: 1, c: 2, h: 12, w: 7, f: 3, kh: 3, kw: 5, strideH: 2, strideW: 1, padH: 1, padW: 2 },
        { n: 2, c: 1, h: 5, w: 11, f: 2, kh: 5, kw: 1, strideH: 1, strideW: 1, padH: 2, padW: 0 },
        { n: 1, c: 4, h: 12, w: 7, f: 5, kh: 1, kw: 4, strideH: 3, strideW: 1, padH: 0, padW: 3 },
        { n: 1, c: 2, h: 7, w: 12, f: 6, kh: 4, kw: 2, strideH: 1, strideW: 3, padH: 3, padW: 0 },
        { n: 3, c: 2, h: 11, w: 5, f: 3, kh: 3, kw: 2, strideH: 1, strideW: 1, padH: 0, padW: 0 },
        // Padding as large as the kernel or larger: whole rows and columns of padding.
        { n: 1, c: 2, h: 5, w: 11, f: 3, kh: 1, kw: 3, strideH: 1, strideW: 1, padH: 1, padW: 3 },
        { n: 2, c: 1, h: 12, w: 7, f: 2, kh: 2, kw: 1, strideH: 2, strideW: 3, padH: 2, padW: 1 },
      ];
      await checkConvs(both, eps, specs, rng);
    },
  });

  Deno.test({
    name: `conformance (${t.label}): extreme magnitudes (softmax of ±1e4 and ±80, exp near ` +
      `overflow, sigmoid and tanh at ±1e4, sums near 1e30)`,
    fn: async () => {
      const ln2 = Math.log(2);
      // Relative accuracy down to tiny outputs: a log-softmax output near 0 (the loss of a
      // confident prediction) must keep its digits. The one absolute floor is the oracle's own:
      // it forms s = 1 + (the others' exp) in float64, so its log(s) is 0 below about 1e-16.
      const atol = (log: boolean) => (log ? 1e-15 : 1e-30);
      // Softmax rows with their values by hand: [row, softmax, log-softmax].
      const rows: [number[], number[], number[]][] = [
        [[1e4, -1e4, 0, 1e4], [0.5, 0, 0, 0.5], [-ln2, -2e4 - ln2, -1e4 - ln2, -ln2]],
        [[-1e4, -1e4, -1e4], [1 / 3, 1 / 3, 1 / 3], [-Math.log(3), -Math.log(3), -Math.log(3)]],
        [[80, -80], [1, 0], [0, -160]],
        [[-80, -80], [0.5, 0.5], [-ln2, -ln2]],
        [[88, 88, 88], [1 / 3, 1 / 3, 1 / 3], [-Math.log(3), -Math.log(3), -Math.log(3)]],
        [[1e4], [1], [0]],
        [[-1e4], [1], [0]],
        // Non-finite logits: an infinite maximum or a NaN makes the row NaN; -inf is exp's 0.
        [[Infinity, 1, -Infinity], [NaN, NaN, NaN], [NaN, NaN, NaN]],
        [[-Infinity, 1, -Infinity], [0, 1, 0], [-Infinity, 0, -Infinity]],
        [[-Infinity, -Infinity], [NaN, NaN], [NaN, NaN]],
        [[1, NaN, 2], [NaN, NaN, NaN], [NaN, NaN, NaN]],
        [[80, 79, -80], [1 / (1 + Math.exp(-1)), 1 / (1 + Math.exp(1)), 0], [
          -Math.log1p(Math.exp(-1)),
          -1 - Math.log1p(Math.exp(-1)),
          -160 - Math.log1p(Math.exp(-1)),
        ]],
      ];
      for (const [row, soft, logSoft] of rows) {
        for (const be of [cpu, t.be]) {
          for (const log of [false, true]) {
            const got = await take(be, be.softmax(put(be, row, t.dtype), 1, row.length, log));
            assertClose(got, log ? logSoft : soft, {
              rtol: eps,
              atol: atol(log),
              what: `${be.name} softmax(log=${log}) of [${row}]`,
            });
          }
        }
      }
      const rng = new Random(13);
      for (const [r, c] of [[7, 10], [3, 257], [1000, 3]]) {
        for (const scale of [1e4, 80, 88.5]) {
          const x = rng.array(r * c, (g) => (g.uniform() < 0.5 ? -scale : scale) * g.range(0.9, 1));
          for (const log of [false, true]) {
            const [g, cc] = await both([x], (be, [b]) => be.softmax(b, r, c, log));
            assertClose(g, cc, {
              rtol: eps,
              atol: atol(log),
              what: `softmax(log=${log}) ${r}x${c} of ±${scale}`,
            });
          }
        }
      }
      // exp up to overflow (float32: ln(3.4028e38) = 88.7228), and down to 0.
      const xs = [88, 88.5, 88.7, 88.72, 88.7228, 89, 100, 1e4, -80, -87, -1e4, 709, 709.7, 710];
      const [eg, ec] = await both([xs], (be, [b]) => K.unary(be, "exp", b));
      assertClose(eg, ec, { rtol: eps, what: `exp of [${xs}]` });
      // sigmoid and tanh saturate to exactly 1, 0 and ±1. (Not -100: sigmoid(-100) = 3.8e-44 is
      // subnormal in float32, and exp flushes subnormal results to 0 on llvmpipe, as WGSL allows.)
      const big = [1e4, -1e4, 1e38, -1e38, 80, -80, 50, -50];
      const sig = await both([big], (be, [b]) => K.unary(be, "sigmoid", b));
      const tnh = await both([big], (be, [b]) => K.unary(be, "tanh", b));
      for (const [i, [g, c]] of [sig, tnh].entries()) {
        const op = i === 0 ? "sigmoid" : "tanh";
        assertClose(g, c, { rtol: 2e-6, what: `${op} of [${big}]` });
        assertSame(
          g.subarray(0, 4),
          i === 0 ? [1, 0, 1, 0] : [1, -1, 1, -1],
          `${t.label}: ${op} of ±1e4 and ±1e38`,
        );
      }
      // Sums of values near 1e30 (float32 holds them: the sums stay below 3.4e38).
      for (const shape of [[4099], [5000], [33, 7], [3, 257, 5], [100000]]) {
        for (const signs of ["positive", "mixed"] as const) {
          const x = rng.array(
            sizeOf(shape),
            (r) => (signs === "mixed" && r.uniform() < 0.5 ? -1 : 1) * r.range(0.5e30, 1.5e30),
          );
          for (let axis = 0; axis < shape.length; axis++) {
            const outer = sizeOf(shape.slice(0, axis));
            const inner = sizeOf(shape.slice(axis + 1));
            const [g, c] = await both(
              [x],
              (be, [b]) => K.reduce(be, "sum", b, outer, shape[axis], inner),
            );
            const scale = new Float64Array(outer * inner);
            for (let o = 0; o < outer; o++) {
              for (let k = 0; k < shape[axis]; k++) {
                for (let i = 0; i < inner; i++) {
                  scale[o * inner + i] += Math.abs(x[(o * shape[axis] + k) * inner + i]);
                }
              }
            }
            assertSumClose(g, c, scale, `sum [${shape}] axis ${axis} of ±1e30 (${signs})`, eps);
          }
          const y = rng.array(x.length, (r) => r.range(-2, 2));
          const [dg, dc] = await both([x, y], (be, [a, b]) => K.dot(be, a, b));
          const ds = x.reduce((s, v, i) => s + Math.abs(v * y[i]), 0);
          assertSumClose(dg, dc, [ds], `dot n=${x.length} of ±1e30 (${signs})`, eps);
          const [mg, mc] = await both([x], (be, [a]) => K.maxAbs(be, a));
          assertSame(mg, mc, `maxAbs of ±1e30 (${signs})`);
        }
      }
    },
  });

  Deno.test({
    name: `conformance (${t.label}): -0 and subnormals keep IEEE semantics, as the oracle does`,
    fn: async () => {
      // The sign of zero, by hand, where IEEE 754 fixes it.
      const unary: [UnaryOp, number[], number[]][] = [
        ["neg", [0, -0], [-0, 0]],
        ["abs", [-0, 0], [0, 0]],
        ["relu", [-0, 0], [0, 0]],
        ["square", [-0], [0]],
        ["sqrt", [-0, 0], [-0, 0]],
        ["reciprocal", [-0, 0], [-Infinity, Infinity]],
        ["exp", [-0], [1]],
        ["log", [-0, 0], [-Infinity, -Infinity]],
        ["sign", [-0, 0], [-0, 0]],
        ["tanh", [-0, 0], [-0, 0]],
        ["sigmoid", [-0], [0.5]],
        ["step", [-0, 0], [0, 0]],
        ["erf", [-0, 0], [-0, 0]],
      ];
      for (const [op, x, want] of unary) {
        for (const be of [cpu, t.be]) {
          const got = await take(be, K.unary(be, op, put(be, x, t.dtype)));
          assertSame(got, want, `${be.name} ${op} of [${x.map(show)}]`);
        }
      }
      const binary: [BinaryOp, number[], number[], number[]][] = [
        ["mul", [-0, -0, 0, 3], [5, -5, -5, -0], [-0, 0, -0, -0]],
        ["div", [1, -1, -0, 0, -0], [-0, -0, 3, -3, -Infinity], [
          -Infinity,
          Infinity,
          -0,
          -0,
          0,
        ]],
        ["add", [-0, -0, 0], [-0, 0, -0], [-0, 0, 0]],
        ["sub", [-0, 0, -0], [0, 0, -0], [-0, 0, 0]],
        ["eq", [-0, 0], [0, -0], [1, 1]],
        ["lt", [-0, 0], [0, -0], [0, 0]],
        ["le", [-0, 0], [0, -0], [1, 1]],
        // pow at zero and infinite bases (C's and JavaScript's rules).
        ["pow", [-0, -0, 0, -0, -0, -0, 0, 0], [3, 2, 3, 0.5, -1, -2, -1, -0.5], [
          -0,
          0,
          0,
          0,
          -Infinity,
          Infinity,
          Infinity,
          Infinity,
        ]],
        ["pow", [-Infinity, -Infinity, -Infinity, -Infinity, Infinity, Infinity], [
          3,
          2,
          -3,
          0.5,
          -1,
          2.5,
        ], [-Infinity, Infinity, -0, Infinity, 0, Infinity]],
      ];
      for (const [op, a, b, want] of binary) {
        for (const be of [cpu, t.be]) {
          const n = a.length;
          const got = await take(
            be,
            K.binary(be, op, put(be, a, t.dtype), [n], put(be, b, t.dtype), [n]),
          );
          assertSame(got, want, `${be.name} ${op} of [${a.map(show)}] and [${b.map(show)}]`);
        }
      }
      // Moving data keeps -0 and subnormals bit for bit: views, concat, where, max-pool.
      const tiny = t.dtype === "float64" ? 5e-324 : 1.4e-45;
      const sub = t.dtype === "float64" ? 1e-310 : 1e-40;
      const x = [-0, tiny, -tiny, sub, -sub, 0, 1, -0];
      const hx = x.map(held);
      assert.ok(hx[1] > 0 && hx[3] > 0, "the values are subnormal, not flushed, on the host");
      for (const be of [cpu, t.be]) {
        const b = put(be, x, t.dtype);
        assertSame(await take(be, K.strided(be, b, [8], [1], 0)), hx, `${be.name} strided copy`);
        assertSame(
          await take(be, K.strided(be, b, [2, 4], [1, 2], 0)),
          [hx[0], hx[2], hx[4], hx[6], hx[1], hx[3], hx[5], hx[7]],
          `${be.name} strided transpose`,
        );
        assertSame(await take(be, be.concat([b, b], 2, [4, 4])), [
          ...hx.slice(0, 4),
          ...hx.slice(0, 4),
          ...hx.slice(4),
          ...hx.slice(4),
        ], `${be.name} concat`);
        const cond = put(be, [1, 1, 1, 1, 0, 0, 0, 0], t.dtype);
        const other = put(be, [...x].reverse(), t.dtype);
        assertSame(
          await take(be, K.where(be, cond, b, other)),
          [...hx.slice(0, 4), ...[...hx].reverse().slice(4)],
          `${be.name} where`,
        );
        be.release(cond);
        be.release(other);
        assertSame(await take(be, K.unary(be, "neg", b)), hx.map((v) => -v), `${be.name} neg`);
        assertSame(
          await take(be, K.unary(be, "abs", b)),
          hx.map((v) => Math.abs(v)),
          `${be.name} abs`,
        );
        assertSame(
          await take(be, K.unary(be, "relu", b)),
          hx.map((v) => (v > 0 ? v : 0)),
          `${be.name} relu`,
        );
        assertSame(
          await take(be, K.unary(be, "step", b)),
          hx.map((v) => (v > 0 ? 1 : 0)),
          `${be.name} step`,
        );
        assertSame(
          await take(be, K.unary(be, "sign", b)),
          hx.map((v) => Math.sign(v)),
          `${be.name} sign`,
        );
        const ones = put(be, new Array(8).fill(1), t.dtype);
        assertSame(
          await take(be, K.binary(be, "mul", b, [8], ones, [8])),
          hx.map((v) => v * 1),
          `${be.name} mul by 1`,
        );
        const zero = put(be, [0], t.dtype);
        assertSame(
          await take(be, K.binary(be, "gt", b, [8], zero, [1])),
          hx.map((v) => (v > 0 ? 1 : 0)),
          `${be.name} gt 0`,
        );
        be.release(zero);
        be.release(ones);
        const pool = { n: 1, c: 1, h: 2, w: 4, kh: 1, kw: 1, strideH: 1, strideW: 1 };
        assertSame(await take(be, be.maxPool2d(b, pool)), hx, `${be.name} maxPool2d 1x1`);
        // The pool's backward sums dy into zeros: a dy of -0 lands as +0, with windows that do
        // not overlap (1 x 2, stride 2) and with windows that do (2 x 2, stride 1).
        const x8 = put(be, [1, 2, 3, 4, 5, 6, 7, 8], t.dtype);
        const apart = { n: 1, c: 1, h: 2, w: 4, kh: 1, kw: 2, strideH: 1, strideW: 2 };
        assertSame(
          await take(be, be.maxPool2dBackward(x8, put(be, [-0, 5, NaN, -0], t.dtype), apart)),
          [0, 0, 0, 5, 0, NaN, 0, 0],
          `${be.name} maxPool2dBackward of -0 (windows apart)`,
        );
        const overlap = { n: 1, c: 1, h: 2, w: 4, kh: 2, kw: 2, strideH: 1, strideW: 1 };
        assertSame(
          await take(be, be.maxPool2dBackward(x8, put(be, [-0, -0, 4], t.dtype), overlap)),
          [0, 0, 0, 0, 0, 0, 0, 4],
          `${be.name} maxPool2dBackward of -0 (windows overlapping)`,
        );
        // Every window holds its maximum at the centre, each with a dy of -0: four -0 summed
        // into a zero.
        const peak = put(be, [0, 0, 0, 0, 9, 0, 0, 0, 0], t.dtype);
        const around = { n: 1, c: 1, h: 3, w: 3, kh: 2, kw: 2, strideH: 1, strideW: 1 };
        assertSame(
          await take(be, be.maxPool2dBackward(peak, put(be, [-0, -0, -0, -0], t.dtype), around)),
          [0, 0, 0, 0, 0, 0, 0, 0, 0],
          `${be.name} maxPool2dBackward of -0 (windows sharing their maximum)`,
        );
        be.release(peak);
        be.release(x8);
        // Sums of subnormals: 1000 of them make a normal number.
        const many = put(be, new Array(1000).fill(sub), t.dtype);
        const s = await take(be, K.reduce(be, "sum", many, 1, 1000, 1));
        assertClose(s, [held(1000 * held(sub))], {
          rtol: 1e-5,
          what: `${be.name} sum of subnormals`,
        });
        be.release(many);
        be.release(b);
      }
    },
  });
}
