/**
 * Operands computed in a product's loads (kernel/backend.ts `Prologue`): on WebGPU with products
 * run together, an element-wise map that only products read is not computed on its own; each
 * product computes the elements it loads (the softmax cross-entropy's gradient, read by a dense
 * layer's two backward products).
 *
 * - The kernel: generated products (any transposes, sizes on and off multiples of 4, the sums
 *   row, batches, epilogues with inputs and constants) with either operand or both given as a
 *   prologue, alone or beside another product, against float64 loops; in one dispatch where
 *   the kernel can take them, else with the map computed first; no buffer left behind.
 * - The graph: generated maps read by one or two products, held or not by someone else, on
 *   WebGPU against the float64 oracle; a map held only by the products runs no kernel of its
 *   own, one held elsewhere is computed once and read.
 * - A replay runs the products with their prologues as the recording did; a backend that takes
 *   no prologue refuses a launch made with one.
 */
import assert from "node:assert/strict";
import { matmulShape, type MatmulSpec } from "../kernel/backend.ts";
import { ACC, binary, constant, contiguous, type Expr, load, unary } from "../kernel/ir.ts";
import { matmulGroup } from "../wgsl/matmul.ts";
import { PRODUCT_CONSTS } from "../wgsl/matmul_source.ts";
import type { GpuBuffer } from "../wgsl/runtime.ts";
import { Lazy } from "../kernel/lazy.ts";
import * as k from "../kernel/graph.ts";
import { lazyStats, runLaunch } from "../kernel/record.ts";
import { cpu, webgpu } from "./harness.ts";
import { scope, tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import { replayable } from "../autodiff/replay.ts";
import { fc, property } from "./property.ts";
import { arbProductSpec } from "./product_specs.ts";

const gpu = await webgpu();

function data(size: number, seed: number): Float32Array {
  return Float32Array.from({ length: size }, (_, i) => Math.sin(seed * 5.3 + i * 0.7) * 1.5);
}

/** A generated product with prologues. */
interface Case {
  spec: MatmulSpec;
  /** Which operands are prologues. */
  pro: "A" | "B" | "both";
  /** Constants in each prologue: few, or more than a product's parameter block holds. */
  consts: "few" | "many";
  c1: number;
  epilogue: "none" | "scale" | "input";
  /** Another product (plain) in the same group. */
  beside: boolean;
}

const arbCase: fc.Arbitrary<Case> = fc.record({
  spec: arbProductSpec([1, 1, 1, 2], false),
  pro: fc.constantFrom("A", "B", "both") as fc.Arbitrary<Case["pro"]>,
  consts: fc.constantFrom("few", "few", "few", "many") as fc.Arbitrary<Case["consts"]>,
  c1: fc.double({ min: -2, max: 2, noNaN: true }),
  epilogue: fc.constantFrom("none", "scale", "input") as fc.Arbitrary<Case["epilogue"]>,
  beside: fc.boolean(),
});

/** Constants in a "many" prologue: past what a product's parameter block holds. */
const MANY = PRODUCT_CONSTS + 2;

/**
 * A's (or B's) prologue expression over two inputs of its shape, and the same in float64: each
 * operand's with constants of its own.
 */
function prologueOf(
  c: Case,
  which: "A" | "B",
  shape: readonly number[],
): { body: Expr; f: (x: number, y: number) => number } {
  const at = (i: number) => load(i, contiguous(shape));
  const f32 = Math.fround;
  const [scale, half] = which === "A" ? [f32(c.c1), 0.5] : [f32(0.7 - c.c1 / 2), -0.25];
  // tanh(x scale) + y half, then (many) + 0.01 (j mod 3) for j < MANY - 2, one constant each.
  let body = binary(
    "add",
    unary("tanh", binary("mul", at(0), constant(scale))),
    binary("mul", at(1), constant(half)),
  );
  const extra = c.consts === "many" ? MANY - 2 : 0;
  for (let j = 0; j < extra; j++) body = binary("add", body, constant(0.01 * (j % 3)));
  const f = (x: number, y: number) => {
    let v = Math.tanh(x * scale) + y * half;
    for (let j = 0; j < extra; j++) v += f32(0.01 * (j % 3));
    return v;
  };
  return { body, f };
}

/**
 * Element (r, c) of entry z of a batch of logical [rows, cols] matrices, stored as they are or
 * (trans) transposed.
 */
function at(
  v: Float64Array,
  z: number,
  rows: number,
  cols: number,
  trans: boolean,
  r: number,
  c: number,
): number {
  return v[z * rows * cols + (trans ? c * rows + r : r * cols + c)];
}

if (gpu) {
  const rt = gpu.rt;
  gpu.hardwareSchedule = true;

  property(
    "a product computes its operands given as prologues, as the maps they are",
    arbCase,
    40,
    async (c) => {
      const live = rt.liveBuffers();
      const owned: GpuBuffer[] = [];
      const up = (x: Float32Array) => {
        const b = rt.upload(x);
        owned.push(b);
        return b;
      };
      const s = c.spec;
      const batch = s.batch ?? 1;
      const [bA, bB] = [s.batchA ?? true, s.batchB ?? true].map((
        x,
      ) => (batch > 1 && x ? batch : 1));
      const shapeA = [...(bA > 1 ? [bA] : []), ...(s.transA ? [s.k, s.m] : [s.m, s.k])];
      const shapeB = [...(bB > 1 ? [bB] : []), ...(s.transB ? [s.n, s.k] : [s.k, s.n])];
      const sizeA = bA * s.m * s.k, sizeB = bB * s.k * s.n;
      // Operand values in float64, as the product should see them.
      const operand = (which: "A" | "B", size: number, shape: number[], seed: number) => {
        const x = data(size, seed), y = data(size, seed + 1);
        if (c.pro !== which && c.pro !== "both") {
          return { arg: up(x), values: Float64Array.from(x) };
        }
        const { body, f } = prologueOf(c, which, shape);
        const values = Float64Array.from(x, (v, i) => f(v, y[i]));
        return { arg: { shape, body, inputs: [up(x), up(y)] }, values };
      };
      const A = operand("A", sizeA, shapeA, 1), B = operand("B", sizeB, shapeB, 3);
      const outShape = matmulShape(s);
      const outSize = outShape.reduce((x, y) => x * y, 1);
      const extra = c.epilogue === "input" ? data(outSize, 9) : undefined;
      const epilogue = c.epilogue === "scale"
        ? { body: binary("mul", ACC, constant(c.c1)), inputs: [] }
        : extra
        ? { body: binary("add", ACC, load(0, contiguous(outShape))), inputs: [up(extra)] }
        : undefined;
      const items = [{ a: A.arg, b: B.arg, spec: s, ...(epilogue ? { epilogue } : {}) }];
      if (c.beside) {
        items.push({ a: up(data(12, 20)), b: up(data(15, 21)), spec: { m: 4, k: 3, n: 5 } });
      }
      const d0 = rt.stats.dispatches;
      const outs = matmulGroup(rt, items);
      const dispatches = rt.stats.dispatches - d0;
      try {
        const got = await rt.read(outs[0]);
        const rows = s.m + (s.sums ? 1 : 0);
        for (let z = 0; z < batch; z++) {
          for (let i = 0; i < rows; i++) {
            for (let j = 0; j < s.n; j++) {
              let sum = 0, scale = 0;
              for (let kk = 0; kk < s.k; kk++) {
                const a = i === s.m ? 1 : at(A.values, bA > 1 ? z : 0, s.m, s.k, !!s.transA, i, kk);
                const b = at(B.values, bB > 1 ? z : 0, s.k, s.n, !!s.transB, kk, j);
                sum += a * b;
                scale += Math.abs(a * b);
              }
              const o = (z * rows + i) * s.n + j;
              const want = c.epilogue === "scale"
                ? sum * Math.fround(c.c1)
                : extra
                ? sum + extra[o]
                : sum;
              assert.ok(
                Math.abs(got[o] - want) <= 1e-5 * (1 + scale),
                `${JSON.stringify(c)}: [${z}, ${i}, ${j}] ${got[o]} vs ${want}`,
              );
            }
          }
        }
        // One dispatch for the group where its kernel can take the prologues; a batched product
        // or one whose constants overflow its parameter block computes them first.
        const pros = c.pro === "both" ? 2 : 1;
        const first = batch > 1 || c.consts === "many" ? pros : 0;
        const own = batch > 1 && c.beside ? 1 : 0;
        assert.equal(dispatches, first + 1 + own, `${JSON.stringify(c)}: dispatches`);
      } finally {
        for (const b of [...outs, ...owned]) rt.release(b);
      }
      assert.equal(rt.liveBuffers(), live, `${JSON.stringify(c)}: buffers left behind`);
    },
  );

  /** A map read by products: rows, columns, the products' widths, its readers, mapsInLoads. */
  type MapsCase = [number, number, number, number, "one" | "two" | "held" | "wide", boolean];

  const checkMaps = async ([r, cols, n1, n2, readers, inLoads]: MapsCase) => {
    // g = tanh(x) * y + x, [r, cols]: p = g w ([r, n1]) and, with two readers, q = g^T h
    // ([cols, n2]): a dense layer's input and weight gradients from dz. "held": the caller
    // reads g too. "wide": g reads five more arrays (seven in all), more than a product kernel
    // binds beside its own buffers, so it is computed on its own.
    const run = async (be: typeof cpu | typeof gpu) => {
      const dtype = be === cpu ? Float64Array : Float32Array;
      const mk = (shape: number[], seed: number) =>
        Lazy.of(be!, be!.upload(dtype.from(data(shape[0] * shape[1], seed))), shape);
      const live = be!.liveBuffers();
      const [x, y, w, h] = [
        mk([r, cols], 1),
        mk([r, cols], 2),
        mk([cols, n1], 3),
        mk([r, n2], 4),
      ];
      const t = k.unary("tanh", x);
      const ty = k.binary("mul", t, y);
      const more = readers === "wide"
        ? Array.from({ length: 5 }, (_, i) => mk([r, cols], 10 + i))
        : [];
      const sums = [k.binary("add", ty, x)];
      for (const z of more) sums.push(k.binary("add", sums[sums.length - 1], z));
      const g = sums.pop()!;
      const p = k.routine({ op: "matmul", spec: { m: r, k: cols, n: n1 } }, [g, w], [r, n1]);
      const parts = [p];
      if (readers !== "one") {
        parts.push(
          k.routine({ op: "matmul", spec: { m: cols, k: r, n: n2, transA: true } }, [g, h], [
            cols,
            n2,
          ]),
        );
      }
      const widths = parts.map((l) => l.size);
      const root = k.routine({ op: "concat", outer: 1, widths }, parts, [
        widths.reduce((a, b) => a + b),
      ]);
      for (const l of [x, y, w, h, t, ty, ...more, ...sums, ...parts]) l.release();
      if (readers !== "held") g.release();
      const k0 = lazyStats.kernels, d0 = be === gpu ? gpu.rt.stats.dispatches : 0;
      const out = Array.from(await be!.read(root.realize()));
      const kernels = lazyStats.kernels - k0;
      const dispatches = be === gpu ? gpu.rt.stats.dispatches - d0 : 0;
      root.release();
      const gv = readers === "held" ? Array.from(await be!.read(g.realize())) : [];
      if (readers === "held") g.release();
      assert.equal(be!.liveBuffers(), live, `${be!.name}: every buffer given back`);
      return { out: [...out, ...gv], kernels, dispatches };
    };
    gpu.mapsInLoads = inLoads;
    const got = await run(gpu).finally(() => (gpu.mapsInLoads = true));
    const want = await run(cpu);
    assert.equal(got.out.length, want.out.length);
    got.out.forEach((v, i) =>
      assert.ok(
        Math.abs(v - want.out[i]) <= 1e-4 * (1 + Math.abs(want.out[i])),
        `[${i}]: ${v} vs ${want.out[i]}`,
      )
    );
    // The map runs as its own kernel only when someone else holds it, it reads too many arrays
    // or mapsInLoads is off; the products (and the copies of the concatenation) then take one
    // dispatch.
    const own = readers === "held" || readers === "wide" || !inLoads;
    assert.equal(got.kernels, own ? 1 : 0, `${readers}: kernels`);
    assert.equal(got.dispatches, own ? 2 : 1, `${readers}: dispatches`);
    assert.equal(want.kernels, 1, "the oracle computes the map");
  };

  property(
    "a map only products read is computed in their loads, on WebGPU as in the oracle",
    fc.tuple(
      fc.integer({ min: 1, max: 23 }),
      fc.integer({ min: 1, max: 19 }),
      fc.integer({ min: 1, max: 9 }),
      fc.integer({ min: 1, max: 9 }),
      fc.constantFrom("one", "two", "held", "wide") as fc.Arbitrary<
        "one" | "two" | "held" | "wide"
      >,
      // WebGpuBackend.mapsInLoads: off, every map is computed on its own.
      fc.constantFrom(true, true, true, false),
    ),
    25,
    checkMaps,
  );

  Deno.test("prologues: with mapsInLoads off, a map only products read is computed on its own", () =>
    checkMaps([7, 5, 3, 4, "two", false]));

  Deno.test("prologues: a replay runs the products with their prologues, as the recording did", async () => {
    const opts = { backend: gpu };
    const w1 = tensor(Array.from(data(6 * 5, 1)), [6, 5], opts);
    const w2 = tensor(Array.from(data(6 * 3, 2)), [6, 3], opts);
    // tanh(v) is read by the two products only: each computes it in its loads, in one dispatch.
    const body = (v: Parameters<typeof o.tanh>[0]) => {
      const t = o.tanh(v);
      return o.concat([o.reshape(o.matmul(t, w1), [-1]), o.reshape(o.matmul(t, w2), [-1])], 0);
    };
    // In a scope, as SGN's G v is: only the result outlives the call, so the products alone hold t.
    const f = replayable((v) => scope(() => [body(v)]));
    try {
      for (let i = 0; i < 3; i++) {
        const v = tensor(Array.from(data(4 * 6, 10 + i)), [4, 6], opts);
        const d0: number = rt.stats.dispatches;
        const [y] = f(v);
        const got = Array.from(await y.data());
        assert.equal(rt.stats.dispatches - d0, 1, `call ${i}: one dispatch`);
        // The same in float64 on the oracle.
        const cpuOpts = { backend: cpu };
        const [want] = scope(() => {
          const v64 = tensor(Array.from(data(4 * 6, 10 + i)), [4, 6], cpuOpts);
          const t = o.tanh(v64);
          const ws = [[1, 5], [2, 3]].map(([seed, n]) =>
            tensor(Array.from(data(6 * n, seed)), [6, n], cpuOpts)
          );
          return [o.concat(ws.map((w) => o.reshape(o.matmul(t, w), [-1])), 0)];
        });
        const wantV = Array.from(await want.data());
        want.dispose();
        got.forEach((g, j) =>
          assert.ok(
            Math.abs(g - wantV[j]) <= 1e-5 * (1 + Math.abs(wantV[j])),
            `call ${i} [${j}]: ${g} vs ${wantV[j]}`,
          )
        );
        for (const t of [y, v]) t.dispose();
      }
      assert.ok(f.replaying, "the later calls replayed");
    } finally {
      f.dispose();
      w1.dispose();
      w2.dispose();
    }
  });
}

Deno.test("prologues: a backend that takes none refuses a launch made with one, saying why", () => {
  const x = cpu.upload(new Float64Array(6));
  const b = cpu.upload(new Float64Array(6));
  try {
    assert.throws(
      () =>
        runLaunch(cpu, {
          kind: "routine",
          routine: { op: "matmul", spec: { m: 2, k: 3, n: 2 } },
          args: 2,
          prologues: [{ shape: [2, 3], body: load(0, [3, 1]), inputs: 1 }, undefined],
        }, [x, b]),
      /computes no product operand in its loads/,
    );
  } finally {
    cpu.release(x);
    cpu.release(b);
  }
});
