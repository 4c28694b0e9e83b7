/**
 * Products run together (wgsl/matmul.ts `matmulGroup`, one dispatch for several products; the
 * lazy graph's grouping of ready products, kernel/lazy.ts): generated groups of products (any
 * transposes, sizes on and off multiples of 4, offsets, the sums row, epilogues with inputs and
 * constants, operands shared between products) give bit for bit what each product gives alone,
 * in one dispatch when the buffers fit one kernel; graphs with independent products give on
 * WebGPU, with fewer dispatches, what the float64 oracle gives.
 */
import assert from "node:assert/strict";
import { matmulShape, type MatmulSpec } from "../kernel/backend.ts";
import { ACC, binary, constant, contiguous, type Expr, load, unary } from "../kernel/ir.ts";
import { matmul, matmulGroup } from "../wgsl/matmul.ts";
import { WebGpuBackend } from "../wgsl/webgpu.ts";
import type { GpuBuffer } from "../wgsl/runtime.ts";
import { Lazy } from "../kernel/lazy.ts";
import * as k from "../kernel/graph.ts";
import { realizeTogether } from "../kernel/multi.ts";
import { cpu, webgpu } from "./harness.ts";
import { scope, type Tensor, tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import { replayable } from "../autodiff/replay.ts";
import { fc, property } from "./property.ts";
import { arbProductSpec } from "./product_specs.ts";

const gpu = await webgpu();

/** One generated product: its spec, whether it takes an epilogue, which operands it shares. */
interface Case {
  spec: MatmulSpec;
  epilogue: "none" | "scale" | "input";
  /** Read product 0's A (or B) buffer as this product's A (or B) when the sizes match. */
  shareA: boolean;
  shareB: boolean;
  value: number;
}

const arbCase: fc.Arbitrary<Case> = fc.record({
  // Batched products (one operand shared or both batched) are not grouped: they run alone.
  spec: arbProductSpec([1, 1, 1, 2, 3], true),
  epilogue: fc.constantFrom("none", "scale", "input") as fc.Arbitrary<Case["epilogue"]>,
  shareA: fc.boolean(),
  shareB: fc.boolean(),
  value: fc.double({ min: -2, max: 2, noNaN: true }),
});

function data(size: number, seed: number): Float32Array {
  return Float32Array.from({ length: size }, (_, i) => Math.sin(seed * 7.1 + i * 1.3) * 1.5);
}

/** The epilogue of a case over its output (of shape `shape`). */
function epilogueOf(c: Case, shape: readonly number[]): Expr | undefined {
  if (c.epilogue === "scale") return unary("tanh", binary("mul", ACC, constant(c.value)));
  if (c.epilogue === "input") {
    const input = load(0, contiguous(shape));
    return binary("add", binary("mul", ACC, input), constant(c.value + shape[0]));
  }
  return undefined;
}

/** The product of stored operands a ([m, k], or [k, m] with transA) and b, as the graph's node. */
function product(a: Lazy, b: Lazy, transA = false, transB = false): Lazy {
  const [m, kk] = transA ? [a.shape[1], a.shape[0]] : [a.shape[0], a.shape[1]];
  const n = transB ? b.shape[0] : b.shape[1];
  return k.routine({ op: "matmul", spec: { m, k: kk, n, transA, transB } }, [a, b], [m, n]);
}

if (gpu) {
  const rt = gpu.rt;
  // Products run together as on a hardware GPU (off by default on a software adapter).
  gpu.hardwareSchedule = true;
  // property() awaits a case that fuzz mode's time limit leaves running, so that its dispatches
  // are not counted by the next property.
  property(
    "products grouped into one dispatch equal each product alone, bit for bit",
    fc.array(arbCase, { minLength: 2, maxLength: 4 }),
    15,
    async (cases) => {
      const owned: GpuBuffer[] = [];
      const up = (x: Float32Array) => {
        const b = rt.upload(x);
        owned.push(b);
        return b;
      };
      const items = cases.map((c, i) => {
        const s = c.spec;
        const [bA, bB] = [s.batchA ? s.batch! : 1, s.batchB ? s.batch! : 1];
        const sizeA = (s.offsetA ?? 0) + bA * s.m * s.k;
        const sizeB = (s.offsetB ?? 0) + bB * s.k * s.n;
        const a = up(data(sizeA, 3 * i + 1));
        const b = up(data(sizeB, 3 * i + 2));
        const shape = matmulShape(s);
        const body = epilogueOf(c, shape);
        const size = shape.reduce((x, y) => x * y, 1);
        const inputs = c.epilogue === "input" ? [up(data(size, 3 * i + 3))] : [];
        return { a, b, spec: s, ...(body ? { epilogue: { body, inputs } } : {}) };
      });
      // Shared operands: a later product reads the first one's buffer when it fits exactly.
      cases.forEach((c, i) => {
        if (i === 0) return;
        if (c.shareA && items[0].a.size === items[i].a.size) items[i].a = items[0].a;
        if (c.shareB && items[0].b.size === items[i].b.size) items[i].b = items[0].b;
      });
      try {
        const alone = items.map((x) => matmul(rt, x.a, x.b, x.spec, undefined, x.epilogue));
        const d0 = rt.stats.dispatches;
        const together = matmulGroup(rt, items);
        const dispatches = rt.stats.dispatches - d0;
        const distinct = new Set(items.flatMap((x) => [x.a, x.b, ...(x.epilogue?.inputs ?? [])]));
        // Every product here runs the product kernel (K > 0, K not split on this software
        // adapter): those of batch 1 take one dispatch when their buffers fit one kernel, a
        // batched one a dispatch of its own.
        const batched = items.filter((x) => (x.spec.batch ?? 1) > 1).length;
        const grouped = items.length - batched;
        if (rt.software && distinct.size + items.length <= 8) {
          assert.equal(dispatches, batched + (grouped ? 1 : 0), "dispatches of the group");
        }
        assert.ok(dispatches <= items.length);
        for (let i = 0; i < items.length; i++) {
          const [x, y] = [await rt.read(alone[i]), await rt.read(together[i])];
          assert.deepEqual(y, x, `product ${i} of ${JSON.stringify(cases)}`);
        }
        for (const b of [...alone, ...together]) rt.release(b);
      } finally {
        for (const b of owned) rt.release(b);
      }
    },
  );

  property(
    "independent ready products in a graph run together on WebGPU, equal to the oracle",
    fc.tuple(
      fc.integer({ min: 2, max: 24 }),
      fc.integer({ min: 2, max: 30 }),
      fc.integer({ min: 1, max: 20 }),
      fc.integer({ min: 1, max: 19 }),
    ),
    12,
    async ([m, kk, n1, n2]) => {
      // A dense layer's backward pass in small: dW = x^T dz, dx = (dz w^T) * mask, both
      // reading dz (pending until the root is realized), with one root over both.
      const run = async (be: typeof cpu | typeof gpu) => {
        const dtype = be === cpu ? Float64Array : Float32Array;
        const mk = (shape: number[], seed: number) =>
          Lazy.of(be, be.upload(dtype.from(data(shape[0] * shape[1], seed))), shape);
        const x = mk([m, kk], 1);
        const dy = mk([m, n1], 2);
        const v = mk([n1, n2], 3);
        const w = mk([kk, n2], 4);
        const mask = mk([m, kk], 5);
        const dz = product(dy, v); // [m, n2], pending
        const dw = product(x, dz, true); // x^T dz: [kk, n2]
        const h = product(dz, w, false, true);
        const dx = k.binary("mul", h, mask); // (dz w^T) * mask: [m, kk]
        h.release();
        // The root: both gradients side by side, as SGN's flat gradient (nothing else
        // holds them).
        const sizes = [kk * n2, m * kk];
        const root = k.routine({ op: "concat", outer: 1, widths: sizes }, [dw, dx], [
          sizes[0] + sizes[1],
        ]);
        for (const l of [x, dy, v, w, mask, dz, dw, dx]) l.release();
        const out = Array.from(await be.read(root.realize()));
        root.release();
        return out;
      };
      const d0 = gpu!.rt.stats.dispatches;
      const got = await run(gpu!);
      const dispatches = gpu!.rt.stats.dispatches - d0;
      const want = await run(cpu);
      got.forEach((g, i) => {
        const w = want[i];
        assert.ok(Math.abs(g - w) <= 1e-4 * (1 + Math.abs(w)), `[${i}]: ${g} vs ${w}`);
      });
      // dz, then dW and dx together, then the concatenation (a copy per part: no dispatch),
      // where products one by one take one more.
      assert.equal(dispatches, 2, `${dispatches} dispatches`);
    },
  );

  Deno.test("grouping: products under different roots of one realization run together", async () => {
    // Two independent products, each the root of its own chain (a gradient computed with its
    // siblings: kernel/multi.ts realizeTogether): the realization knows both roots' products, so
    // the first one computed takes the other as its mate, in one dispatch.
    const mk = (shape: number[], seed: number) =>
      Lazy.of(gpu, gpu.upload(Float32Array.from(data(shape[0] * shape[1], seed))), shape);
    const [a, b, c, d] = [mk([5, 3], 1), mk([3, 4], 2), mk([6, 2], 3), mk([2, 7], 4)];
    const p = product(a, b), q = product(c, d);
    const d0 = rt.stats.dispatches;
    realizeTogether([p, q]);
    const got = [Array.from(await gpu.read(p.realize())), Array.from(await gpu.read(q.realize()))];
    assert.equal(rt.stats.dispatches - d0, 1, "one dispatch for the two roots' products");
    const want = (x: ArrayLike<number>, y: ArrayLike<number>, m: number, kk: number, n: number) =>
      Array.from({ length: m * n }, (_, i) => {
        let s = 0;
        for (let j = 0; j < kk; j++) s += x[Math.floor(i / n) * kk + j] * y[j * n + (i % n)];
        return s;
      });
    const wants = [
      want(data(15, 1), data(12, 2), 5, 3, 4),
      want(data(12, 3), data(14, 4), 6, 2, 7),
    ];
    got.forEach((g, r) =>
      g.forEach((v, i) =>
        assert.ok(Math.abs(v - wants[r][i]) <= 1e-5 * (1 + Math.abs(wants[r][i])), `${r}[${i}]`)
      )
    );
    for (const l of [a, b, c, d, p, q]) l.release();
  });

  Deno.test("grouping: a product whose epilogue reads a pending value over this product waits its turn", async () => {
    // p = a b, pending; q = (c d) * sum(p): q's operands are ready when p runs, its epilogue's
    // input is not (it needs p). Running q with p would compute p inside p's own launch.
    const run = async (be: typeof cpu | typeof gpu) => {
      const dtype = be === cpu ? Float64Array : Float32Array;
      const mk = (shape: number[], seed: number) =>
        Lazy.of(be!, be!.upload(dtype.from(data(shape[0] * shape[1], seed))), shape);
      const live = be!.liveBuffers();
      const [a, b, c, d] = [mk([3, 4], 1), mk([4, 5], 2), mk([3, 2], 3), mk([2, 5], 4)];
      const p = product(a, b);
      const sum = k.reduce("sum", p, [0, 1]);
      const sum11 = k.reshape(sum, [1, 1]);
      const total = k.expand(sum11, [3, 5]);
      const cd = product(c, d);
      const q = k.binary("mul", cd, total);
      const root = k.routine({ op: "concat", outer: 1, widths: [15, 15] }, [p, q], [30]);
      for (const l of [a, b, c, d, p, sum, sum11, total, cd, q]) l.release();
      const out = Array.from(await be!.read(root.realize()));
      root.release();
      assert.equal(be!.liveBuffers(), live, `${be!.name}: every buffer given back`);
      return out;
    };
    const [got, want] = [await run(gpu), await run(cpu)];
    got.forEach((g, i) =>
      assert.ok(
        Math.abs(g - want[i]) <= 1e-4 * (1 + Math.abs(want[i])),
        `[${i}]: ${g} vs ${want[i]}`,
      )
    );
  });

  Deno.test("grouping: a replay runs together the products its recording ran together, bit for bit", async () => {
    const opts = { backend: gpu };
    const w1 = tensor(Array.from(data(6 * 5, 1)), [6, 5], opts);
    const w2 = tensor(Array.from(data(6 * 3, 2)), [6, 3], opts);
    // Two products of v, independent: the recording runs them as one dispatch, and so must
    // every replay (one product, then another, would be two).
    const f = replayable((v) => {
      const t = o.tanh(v);
      return [o.concat([o.reshape(o.matmul(t, w1), [-1]), o.reshape(o.matmul(t, w2), [-1])], 0)];
    });
    try {
      const plain: number[][] = [];
      const replayed: number[][] = [];
      const counts: number[] = [];
      for (let i = 0; i < 3; i++) {
        const v = tensor(Array.from(data(4 * 6, 10 + i)), [4, 6], opts);
        const d0 = gpu.rt.stats.dispatches;
        const [y] = f(v);
        const got = Array.from(await y.data());
        counts.push(gpu.rt.stats.dispatches - d0);
        (i === 0 ? plain : replayed).push(got);
        if (i > 0) {
          // The same products without replay.
          const [z] = scope(() => [
            o.concat([
              o.reshape(o.matmul(o.tanh(v), w1), [-1]),
              o.reshape(o.matmul(o.tanh(v), w2), [-1]),
            ], 0),
          ]);
          plain.push(Array.from(await z.data()));
          z.dispose();
        }
        y.dispose();
        v.dispose();
      }
      assert.ok(f.replaying, "the later calls replayed");
      assert.deepEqual(replayed, plain.slice(1));
      // tanh (one map), then both products in one dispatch (the concatenation is copies).
      assert.deepEqual(counts, [2, 2, 2]);
    } finally {
      f.dispose();
      w1.dispose();
      w2.dispose();
    }
  });

  Deno.test("grouping: two products in either order are one pipeline", () => {
    const a = rt.upload(data(6 * 8, 1));
    const b = rt.upload(data(8 * 4, 2));
    const c = rt.upload(data(8 * 6, 3));
    const x = { a, b, spec: { m: 6, k: 8, n: 4 } };
    const y = { a: c, b: a, spec: { m: 8, k: 6, n: 8, transB: true } };
    try {
      const outs = [...matmulGroup(rt, [x, y])];
      const p0 = rt.stats.pipelines;
      outs.push(...matmulGroup(rt, [y, x]));
      assert.equal(rt.stats.pipelines, p0, "no new pipeline for the same products reversed");
      for (const o of outs) rt.release(o);
    } finally {
      for (const t of [a, b, c]) rt.release(t);
    }
  });

  Deno.test("schedule: the hardware schedule on by default on a hardware GPU, off on a software adapter; settable", () => {
    const fresh = new WebGpuBackend(rt);
    assert.equal(fresh.groupProducts, !rt.software);
    assert.equal(fresh.matmuls === undefined, rt.software);
    // Maps in the products' loads follow the same default, and need the products together.
    assert.equal(fresh.mapsInLoads, !rt.software);
    assert.equal(fresh.prologues, !rt.software);
    fresh.groupProducts = rt.software;
    assert.equal(fresh.matmuls === undefined, !rt.software);
    assert.equal(fresh.prologues, false);
    // The pool backward's one-kernel form and the conv bias fold follow the adapter too.
    assert.equal(fresh.poolArgmaxOnce, rt.software);
    assert.equal(fresh.convBiasFold, !rt.software);
    const switches = () => [
      fresh.groupProducts,
      fresh.mapsInLoads,
      fresh.prologues,
      fresh.poolArgmaxOnce,
      fresh.convBiasFold,
      fresh.hardwareSchedule,
    ];
    fresh.hardwareSchedule = true;
    assert.deepEqual(switches(), [true, true, true, false, true, true]);
    fresh.hardwareSchedule = false;
    assert.deepEqual(switches(), [false, false, false, true, false, false]);
    // A schedule put back is the one taken, switch by switch.
    const mixed = {
      groupProducts: true,
      mapsInLoads: false,
      poolArgmaxOnce: true,
      convBiasFold: true,
    };
    fresh.schedule = mixed;
    assert.deepEqual(fresh.schedule, mixed);
    assert.equal(fresh.hardwareSchedule, false);
  });

  Deno.test("grouping: a replay keeps apart a product and the product that reads it", async () => {
    const opts = { backend: gpu };
    const w1 = tensor(Array.from(data(6 * 5, 1)), [6, 5], opts);
    const w2 = tensor(Array.from(data(5 * 3, 2)), [5, 3], opts);
    const chain = (v: Tensor) => o.matmul(o.matmul(v, w1), w2);
    const f = replayable((v) => [chain(v)]);
    try {
      for (let i = 0; i < 3; i++) {
        const v = tensor(Array.from(data(4 * 6, 20 + i)), [4, 6], opts);
        const [y] = f(v);
        const [z] = scope(() => [chain(v)]);
        assert.deepEqual(await y.data(), await z.data(), `call ${i}`);
        for (const t of [y, z, v]) t.dispose();
      }
      assert.ok(f.replaying, "the later calls replayed");
    } finally {
      f.dispose();
      w1.dispose();
      w2.dispose();
    }
  });
}
