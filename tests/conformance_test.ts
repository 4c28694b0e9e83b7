/**
 * Conformance: every kernel runs on every backend under test with random inputs over awkward
 * shapes and is compared with the CPU reference backend (tests/conformance_support.ts).
 * Tolerances (relative to the CPU result, float32's unless the target runs float64):
 * - element-wise maps: |gpu - cpu| <= 1e-5 |cpu| + 1e-6 (the 1e-6 covers results near zero, e.g.
 *   log near 1, whose relative error is not meaningful);
 * - sums over K terms (reductions, dot, matmul, convolutions): |gpu - cpu| <= 1e-5 * sum|terms|
 *   (float32 summation error grows with K and the size of the terms, not of the result).
 * The matmul and convolution kernels are also checked against nested-loop definitions in
 * matmul_test.ts and conv_test.ts. The edge cases are in tests/conformance_edges_test.ts.
 */

import * as K from "../kernel/kernels.ts";
import assert from "node:assert/strict";
import {
  type Conv2dSpec,
  type MatmulSpec,
  pool2dOutSize,
  type Pool2dSpec,
} from "../kernel/backend.ts";
import { BINARY_OPS, UNARY_OPS, type UnaryOp } from "../kernel/ir.ts";
import { sizeOf } from "../kernel/shape.ts";
import { assertClose, cpu, put, Random, take, webgpu } from "./harness.ts";
import {
  absScale,
  assertSumClose,
  checkConvs,
  domain,
  runner,
  SIZES,
  targets,
} from "./conformance_support.ts";

const gpu = await webgpu();

for (const t of targets) {
  const both = runner(t);
  /** Relative tolerance of a sum or a map: float32's, or float64's when the target runs it. */
  const eps = t.dtype === "float64" ? 1e-12 : 1e-5;

  Deno.test({
    name: `conformance (${t.label}): unary ops, every size`,
    fn: async () => {
      const rng = new Random(1);
      for (const op of UNARY_OPS) {
        for (const n of SIZES) {
          const x = rng.array(n, (r) => domain(op, r));
          const [g, c] = await both([x], (be, [b]) => K.unary(be, op, b));
          assertClose(g, c, { rtol: eps, atol: eps / 10, what: `${op} n=${n}` });
        }
      }
    },
  });

  Deno.test({
    name:
      `conformance (${t.label}): tanh and sigmoid near zero and in the tails keep relative accuracy`,
    fn: async () => {
      // Down to -80: sigmoid(-88) ~ 6e-39 is subnormal in float32, which GPUs may flush to 0.
      const x = [1e-6, -1e-4, 0.01, 0.124, 0.126, 0.5, -3, 9, 15, 30, -30, 80, -80];
      for (const op of ["tanh", "sigmoid"] as const) {
        const [g, c] = await both([x], (be, [b]) => K.unary(be, op, b));
        assertClose(g, c, { rtol: 2e-6, what: op });
      }
    },
  });

  Deno.test({
    name: `conformance (${t.label}): binary ops on equal shapes`,
    fn: async () => {
      const rng = new Random(2);
      for (const op of BINARY_OPS) {
        for (const n of SIZES) {
          const a = rng.array(n, (r) => domain(op, r));
          // Comparisons need ties: draw b partly from a.
          const b = rng.array(n, (r) => domain(op, r)).map((v, i) => (i % 5 === 0 ? a[i] : v));
          const shape = [n];
          const [g, c] = await both([a, b], (be, [x, y]) => K.binary(be, op, x, shape, y, shape));
          assertClose(g, c, { rtol: eps, atol: eps / 10, what: `${op} n=${n}` });
        }
      }
    },
  });

  Deno.test({
    name: `conformance (${t.label}): pow with negative bases and integer exponents`,
    fn: async () => {
      const a = [-2, -2, -3, -0.5, 2, 0, 0, -2];
      const b = [2, 3, -1, 2, 0.5, 0, 2, 0.5];
      const [g, c] = await both([a, b], (be, [x, y]) => K.binary(be, "pow", x, [8], y, [8]));
      assertClose(g, c, { rtol: 1e-6, what: "pow" });
      assert.ok(Number.isNaN(g[7]), "(-2)^0.5 is NaN");
    },
  });

  Deno.test({
    name: `conformance (${t.label}): broadcasting of each kind`,
    fn: async () => {
      const rng = new Random(3);
      const cases: [number[], number[]][] = [
        [[7, 33], [33]], // row vector
        [[7, 33], [7, 1]], // column vector
        [[257, 3], []], // scalar right
        [[], [3, 257]], // scalar left
        [[1], [1000]],
        [[7, 1], [1, 33]], // outer product shape
        [[3, 1, 7], [4, 1]], // rank promotion and both sides broadcast
        [[2, 3, 1, 5], [3, 4, 1]],
        [[1000, 10], [1000, 10]],
        [[5, 1, 1, 3], [1, 4, 2, 1]],
        // Innermost dimension a multiple of 4: the vec4 path, with the second operand contiguous,
        // broadcast along the inner dimension, or both.
        [[6, 32], [32]],
        [[6, 32], [6, 1]],
        [[2, 3, 16], [3, 16]],
        [[4, 1], [1, 8]],
        [[1, 12], [5, 12]],
      ];
      for (const [as, bs] of cases) {
        for (const op of ["add", "sub", "mul", "div", "max", "lt"] as const) {
          const a = rng.array(sizeOf(as), (r) => domain(op, r));
          const b = rng.array(sizeOf(bs), (r) => domain(op, r));
          const [g, c] = await both([a, b], (be, [x, y]) => K.binary(be, op, x, as, y, bs));
          assertClose(g, c, { rtol: eps, atol: eps / 10, what: `${op} [${as}] vs [${bs}]` });
        }
      }
    },
  });

  Deno.test({
    name: `conformance (${t.label}): where, strided views, concat`,
    fn: async () => {
      const rng = new Random(4);
      for (const n of SIZES) {
        const cond = rng.array(n, (r) => (r.uniform() < 0.5 ? 0 : 1));
        const a = rng.array(n);
        const b = rng.array(n);
        const [g, c] = await both([cond, a, b], (be, [x, y, z]) => K.where(be, x, y, z));
        assertClose(g, c, { rtol: 0, what: `where n=${n}` });
      }
      // Transposes of a [3, 7, 33] tensor, a slice with steps, and a broadcast view.
      const x = rng.array(3 * 7 * 33);
      const views: [number[], number[], number][] = [
        [[33, 7, 3], [1, 33, 231], 0],
        [[7, 3, 33], [33, 231, 1], 0],
        [[2, 4, 11], [231, 66, 3], 34],
        [[5, 3, 7, 33], [0, 231, 33, 1], 0],
        [[1], [1], 692],
      ];
      for (const [shape, strides, offset] of views) {
        const [g, c] = await both([x], (be, [b]) => K.strided(be, b, shape, strides, offset));
        assertClose(g, c, { rtol: 0, what: `strided [${shape}]` });
      }
      const parts = [rng.array(7 * 3), rng.array(7 * 1), rng.array(7 * 33)];
      const [g, c] = await both(parts, (be, bufs) => be.concat(bufs, 7, [3, 1, 33]));
      assertClose(g, c, { rtol: 0, what: "concat" });
    },
  });

  Deno.test({
    name: `conformance (${t.label}): reductions along every axis`,
    fn: async () => {
      const rng = new Random(5);
      const shapes = [[1000], [4099], [100000], [7, 33], [33, 7], [3, 257, 5], [1000, 10], [1, 1]];
      for (const shape of shapes) {
        const x = rng.array(sizeOf(shape));
        for (let axis = 0; axis < shape.length; axis++) {
          const outer = sizeOf(shape.slice(0, axis));
          const inner = sizeOf(shape.slice(axis + 1));
          for (const op of ["sum", "max", "argmax"] as const) {
            const [g, c] = await both(
              [x],
              (be, [b]) => K.reduce(be, op, b, outer, shape[axis], inner),
            );
            if (op === "sum") {
              const [sg, sc] = await both(
                [absScale(x)],
                (be, [b]) => K.reduce(be, "sum", b, outer, shape[axis], inner),
              );
              assertClose(sg, sc, { rtol: eps, what: "abs sum" });
              assertSumClose(g, c, sc, `sum [${shape}] axis ${axis}`, eps);
            } else {
              assertClose(g, c, { rtol: 0, what: `${op} [${shape}] axis ${axis}` });
            }
          }
        }
      }
    },
  });

  Deno.test({
    name: `conformance (${t.label}): softmax and log-softmax`,
    fn: async () => {
      const rng = new Random(6);
      for (const [rows, cols] of [[1000, 10], [7, 33], [1, 1], [3, 257], [2, 4099]]) {
        const x = rng.array(rows * cols, (r) => r.range(-30, 30));
        for (const log of [false, true]) {
          const [g, c] = await both([x], (be, [b]) => be.softmax(b, rows, cols, log));
          assertClose(g, c, {
            rtol: eps,
            atol: eps / 10,
            what: `softmax(log=${log}) ${rows}x${cols}`,
          });
        }
      }
    },
  });

  Deno.test({
    name: `conformance (${t.label}): fused vector kernels (dot, axpy, scale, maxAbs, precond)`,
    fn: async () => {
      const rng = new Random(7);
      for (const n of [...SIZES, 16750, 300000]) {
        const x = rng.array(n);
        const y = rng.array(n);
        const [g, c] = await both([x, y], (be, [a, b]) => K.dot(be, a, b));
        const scale = x.reduce((s, v, i) => s + Math.abs(v * y[i]), 0);
        assertSumClose(g, c, [scale], `dot n=${n}`, eps);
        const [ma, mc] = await both([x], (be, [a]) => K.maxAbs(be, a));
        assertClose(ma, mc, { rtol: 0, what: `maxAbs n=${n}` });
        for (const alpha of [0.37, "device"] as const) {
          const [ag, ac] = await both(
            [x, y, [-1.25]],
            (be, [a, b, s]) => K.axpy(be, alpha === "device" ? s : alpha, a, b),
          );
          assertClose(ag, ac, { rtol: eps, atol: eps / 10, what: `axpy(${alpha}) n=${n}` });
          const [sg, sc] = await both(
            [x, [-1.25]],
            (be, [a, s]) => K.scale(be, alpha === "device" ? s : alpha, a),
          );
          assertClose(sg, sc, { rtol: 1e-6, what: `scale(${alpha}) n=${n}` });
        }
        for (const p of [1, 0.5, 0.75]) {
          const [pg, pc] = await both([x, y, [1e-3]], (be, [a, b, s]) => K.precond(be, a, b, s, p));
          assertClose(pg, pc, { rtol: eps, atol: eps / 10, what: `precond p=${p} n=${n}` });
        }
      }
    },
  });

  Deno.test({
    name: `conformance (${t.label}): matmul, every transpose combination and batching`,
    fn: async () => {
      const rng = new Random(8);
      const dims = [[1, 1, 1], [3, 7, 33], [33, 257, 7], [257, 3, 1], [1000, 33, 10], [7, 1000, 3]];
      for (const [m, k, n] of dims) {
        for (const transA of [false, true]) {
          for (const transB of [false, true]) {
            for (
              const [batch, batchA, batchB] of [
                [1, true, true],
                [3, true, true],
                [3, false, true],
                [
                  3,
                  true,
                  false,
                ],
              ] as const
            ) {
              const spec: MatmulSpec = { m, k, n, transA, transB, batch, batchA, batchB };
              const a = rng.array((batchA ? batch : 1) * m * k);
              const b = rng.array((batchB ? batch : 1) * k * n);
              const [g, c] = await both([a, b], (be, [x, y]) => be.matmul(x, y, spec));
              const [sg] = await both(
                [absScale(a), absScale(b)],
                (be, [x, y]) => be.matmul(x, y, spec),
              );
              assertSumClose(g, c, sg, `matmul ${JSON.stringify(spec)}`, eps);
            }
          }
        }
      }
    },
  });

  Deno.test({
    name:
      `conformance (${t.label}): conv2d and its two gradient products, max-pool forward and backward`,
    fn: async () => {
      const rng = new Random(9);
      const specs: Conv2dSpec[] = [
        { n: 2, c: 3, h: 9, w: 7, f: 5, kh: 3, kw: 3, strideH: 1, strideW: 1, padH: 0, padW: 0 },
        { n: 1, c: 1, h: 5, w: 5, f: 1, kh: 1, kw: 1, strideH: 1, strideW: 1, padH: 0, padW: 0 },
        { n: 3, c: 7, h: 13, w: 13, f: 3, kh: 2, kw: 3, strideH: 2, strideW: 3, padH: 1, padW: 2 },
        {
          n: 2,
          c: 32,
          h: 15,
          w: 15,
          f: 64,
          kh: 3,
          kw: 3,
          strideH: 1,
          strideW: 1,
          padH: 0,
          padW: 0,
        },
        // The Fashion-MNIST architecture_1 layers (few channels, 5x5 kernels).
        { n: 3, c: 1, h: 28, w: 28, f: 6, kh: 5, kw: 5, strideH: 1, strideW: 1, padH: 0, padW: 0 },
        { n: 2, c: 6, h: 12, w: 12, f: 16, kh: 5, kw: 5, strideH: 1, strideW: 1, padH: 0, padW: 0 },
        // Zero padding with stride 1 (the input gradient is then a padded direct convolution).
        { n: 2, c: 4, h: 10, w: 11, f: 9, kh: 3, kw: 3, strideH: 1, strideW: 1, padH: 1, padW: 2 },
        // Stride 2 with a 5x5 kernel (the gather path of the input gradient), and a wide kernel.
        { n: 2, c: 5, h: 17, w: 16, f: 7, kh: 5, kw: 5, strideH: 2, strideW: 2, padH: 2, padW: 1 },
        { n: 1, c: 2, h: 20, w: 20, f: 40, kh: 7, kw: 7, strideH: 1, strideW: 1, padH: 3, padW: 3 },
      ];
      await checkConvs(both, eps, specs, rng);
      const pools: Pool2dSpec[] = [
        { n: 2, c: 3, h: 8, w: 8, kh: 2, kw: 2, strideH: 2, strideW: 2 },
        { n: 1, c: 5, h: 7, w: 9, kh: 2, kw: 2, strideH: 2, strideW: 2 },
        { n: 2, c: 2, h: 9, w: 9, kh: 3, kw: 3, strideH: 2, strideW: 2 },
        // Windows that do not overlap and do not touch: stride larger than the window.
        { n: 1, c: 3, h: 11, w: 10, kh: 2, kw: 2, strideH: 3, strideW: 3 },
      ];
      for (const s of pools) {
        const [ho, wo] = pool2dOutSize(s);
        // Rounded values make ties, which must resolve to the same (first) position.
        const x = rng.array(s.n * s.c * s.h * s.w, (r) => Math.round(r.range(-3, 3)));
        const v = rng.array(x.length);
        const dy = rng.array(s.n * s.c * ho * wo);
        const [g, c] = await both([x], (be, [a]) => be.maxPool2d(a, s));
        assertClose(g, c, { rtol: 0, what: `maxPool2d ${JSON.stringify(s)}` });
        const [gv, cv] = await both([x, v], (be, [a, b]) => be.maxPool2d(a, s, b));
        assertClose(gv, cv, { rtol: 0, what: `maxPool2d values ${JSON.stringify(s)}` });
        const [gb, cb] = await both([x, dy], (be, [a, b]) => be.maxPool2dBackward(a, b, s));
        assertClose(gb, cb, {
          rtol: 1e-6,
          atol: 1e-7,
          what: `maxPool2dBackward ${JSON.stringify(s)}`,
        });
      }
    },
  });

  Deno.test({
    name: `conformance (${t.label}): non-finite values pass through as IEEE says, on both backends`,
    fn: async () => {
      const x = [NaN, Infinity, -Infinity, 0, -0.5, 2];
      const expect: Record<string, number[]> = {
        relu: [NaN, Infinity, 0, 0, 0, 2],
        exp: [NaN, Infinity, 0, 1, Math.fround(Math.exp(-0.5)), Math.fround(Math.exp(2))],
        log: [NaN, Infinity, NaN, -Infinity, NaN, Math.fround(Math.log(2))],
        sigmoid: [
          NaN,
          1,
          0,
          0.5,
          Math.fround(1 / (1 + Math.exp(0.5))),
          Math.fround(1 / (1 + Math.exp(-2))),
        ],
        tanh: [NaN, 1, -1, 0, Math.fround(Math.tanh(-0.5)), Math.fround(Math.tanh(2))],
        abs: [NaN, Infinity, Infinity, 0, 0.5, 2],
        step: [0, 1, 0, 0, 0, 1],
        softplus: [
          NaN,
          Infinity,
          0,
          Math.LN2,
          Math.log1p(Math.exp(-0.5)),
          2 + Math.log1p(Math.exp(-2)),
        ],
        // erf(-0.5) and erf(2) to 20 digits (Abramowitz and Stegun, table 7.1).
        erf: [NaN, 1, -1, 0, -0.52049987781304653768, 0.99532226501895273416],
      };
      for (const be of [cpu, t.be]) {
        for (const [op, want] of Object.entries(expect)) {
          const out = await take(be, K.unary(be, op as UnaryOp, put(be, x, t.dtype)));
          assertClose(out, want, { rtol: 1e-6, what: `${be.name} ${op}` });
        }
        const mx = await take(
          be,
          K.binary(be, "max", put(be, x), [6], put(be, [1, 1, 1, 1, 1, 1]), [6]),
        );
        assertClose(mx, [NaN, Infinity, 1, 1, 1, 2], { rtol: 0, what: `${be.name} max` });
        const s = await take(be, K.reduce(be, "sum", put(be, x), 1, 6, 1));
        assert.ok(Number.isNaN(s[0]), `${be.name}: a sum with NaN is NaN`);
        const m = await take(be, K.maxAbs(be, put(be, [1, NaN, 3])));
        assert.ok(Number.isNaN(m[0]), `${be.name}: maxAbs with NaN is NaN`);
        const d = await take(
          be,
          K.binary(be, "div", put(be, [1, -1, 0]), [3], put(be, [0, 0, 0]), [3]),
        );
        assertClose(d, [Infinity, -Infinity, NaN], { rtol: 0, what: `${be.name} div by 0` });
      }
    },
  });

  Deno.test({
    name: `errors (${t.label}): shapes, sizes, dtypes and released buffers give clear messages`,
    fn: () => {
      for (const be of [cpu, t.be]) {
        const a = put(be, [1, 2, 3, 4, 5, 6]);
        const b = put(be, [1, 2, 3, 4]);
        assert.throws(
          () => K.binary(be, "add", a, [2, 3], b, [4]),
          /add: shapes \[2,3\] and \[4\]/,
        );
        assert.throws(() => K.reduce(be, "sum", a, 2, 2, 2), /sum.*6 elements/);
        be.release(b);
        assert.throws(() => K.unary(be, "exp", b), /already released/);
        be.release(a);
      }
      if (t.be === gpu) assert.throws(() => gpu.upload(new Float64Array(2)), /float32 only/);
    },
  });

  Deno.test({
    name:
      `conformance (${t.label}): split and single-row concat move pieces in one pass (more parts than bindings)`,
    fn: async () => {
      const rng = new Random(10);
      for (
        const sizes of [
          [3],
          [1, 7, 33],
          Array.from({ length: 40 }, (_, i) => (i * 7) % 13 + 1),
        ]
      ) {
        const total = sizes.reduce((a, b) => a + b, 0);
        const x = rng.array(total);
        for (const be of [t.be, cpu]) {
          const parts = be.split(put(be, x, t.dtype), sizes);
          let offset = 0;
          for (const [i, part] of parts.entries()) {
            const got = await take(be, part);
            const want = x.subarray(offset, offset + sizes[i]);
            assertClose(got, t.dtype === "float64" ? want : Float32Array.from(want), {
              rtol: 0,
              what: `${be.name} split ${i}`,
            });
            offset += sizes[i];
          }
        }
        const partsData = sizes.map((n) => rng.array(n));
        const [g, c] = await both(partsData, (be, bufs) => be.concat(bufs, 1, sizes));
        assertClose(g, c, { rtol: 0, what: `concat of ${sizes.length} parts` });
      }
    },
  });
}
