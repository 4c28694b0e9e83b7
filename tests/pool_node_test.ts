/**
 * Max pooling as kernels of the graph (kernel/pool.ts, `Backend.poolInIr`: WebGPU's default):
 * the forward pass and its JVP for any windows (up to PICK_MAX positions for the JVP), and the
 * backward (the windows' argmax first where they overlap, a slice where the cells reach past the
 * plane). Element-wise work on their operands (dy's relu mask
 * and scaling, x's scaling) is inlined into their loads (kernel/lazy.ts inlinePendingMaps), and
 * consumers (the relu after the pool, a mask) fuse into their epilogues.
 *
 * Generated pools (sizes, strides, overlapping windows, borders, ties, batch and channels) on
 * every backend: values, tangents and gradients with the nodes equal those through the routines
 * (the CPU backends' own loops, WebGPU's routines over the same kernels), bit for bit in float64 (the
 * CPU backends, made to take the nodes for the test), and within float32 rounding against the
 * float64 oracle on WebGPU, where the nodes also take no more dispatches than the routines.
 */

import assert from "node:assert/strict";
import { type Tensor, tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import { jvp, valueAndGrad } from "../autodiff/transforms.ts";
import type { Backend } from "../kernel/backend.ts";
import type { WebGpuBackend } from "../wgsl/webgpu.ts";
import { fc, property } from "./property.ts";
import { backendLabel, cpu, withSwitches } from "./harness.ts";
import { ALL, dtypeOf, near } from "./autodiff_checks.ts";

/**
 * Runs `fn` with the backend's pooling as nodes of the graph (`on`) or as the routines, and the
 * max-pool backward's argmax found once, in a kernel of its own (`once`, Backend.poolArgmaxOnce),
 * or at every position of a window's cell.
 */
function withNode<T>(be: Backend, on: boolean, fn: () => Promise<T>, once = false): Promise<T> {
  return withSwitches(be, { poolInIr: on, poolArgmaxOnce: once }, fn);
}

/** Any pool: windows that tile the plane, leave a border, overlap, or reach past the cells. */
const caseArb = fc.record({
  n: fc.integer({ min: 1, max: 2 }),
  c: fc.integer({ min: 1, max: 3 }),
  h: fc.integer({ min: 1, max: 9 }),
  w: fc.integer({ min: 1, max: 9 }),
  kh: fc.integer({ min: 1, max: 5 }),
  kw: fc.integer({ min: 1, max: 5 }),
  sh: fc.integer({ min: 1, max: 3 }),
  sw: fc.integer({ min: 1, max: 3 }),
  // Few distinct values: ties within windows.
  values: fc.array(fc.integer({ min: -3, max: 3 }), { minLength: 3, maxLength: 8 }),
  seed: fc.nat(1000),
  scale: fc.constantFrom(1, 0.5, -2),
  once: fc.boolean(),
});
type Case = typeof caseArb extends fc.Arbitrary<infer T> ? T : never;

/** The case's windows (clipped to the plane) and output size. */
function windowsOf(c: Case): { kh: number; kw: number; ho: number; wo: number } {
  const [kh, kw] = [Math.min(c.kh, c.h), Math.min(c.kw, c.w)];
  return { kh, kw, ho: Math.floor((c.h - kh) / c.sh) + 1, wo: Math.floor((c.w - kw) / c.sw) + 1 };
}

/**
 * The gradient of sum(flatten(relu(maxPool2d(x))) g) * scale (the relu after the pool and a dense
 * layer after it, as the seed's nets have them) in x, times a mask (a consumer of the pool's
 * gradient), and the dispatches on WebGPU. The loss is read first, as training reads it: the
 * pool's output is computed in the forward pass (the product needs it), and dy (the relu's mask
 * times the gradient, read through the flatten's view) becomes a map the pool's gradient inlines.
 */
async function gradient(be: Backend, c: Case): Promise<{ dx: number[]; dispatches: number }> {
  const { kh, kw, ho, wo } = windowsOf(c);
  const [h, w] = [c.h, c.w];
  const dtype = dtypeOf(be);
  const at = (i: number) => c.values[(i * 7 + c.seed) % c.values.length];
  const x = tensor(Array.from({ length: c.n * c.c * h * w }, (_, i) => at(i)), [c.n, c.c, h, w], {
    backend: be,
    dtype,
  });
  const features = c.c * ho * wo;
  const g = tensor(
    Array.from({ length: features * 2 }, (_, i) => at(i * 3 + 1) / 4),
    [features, 2],
    { backend: be, dtype },
  );
  const mask = tensor(
    Array.from({ length: c.n * c.c * h * w }, (_, i) => (i % 3) - 1),
    [c.n, c.c, h, w],
    { backend: be, dtype },
  );
  const gpu = be.name === "webgpu" ? (be as WebGpuBackend) : undefined;
  const d0 = gpu?.rt.stats.dispatches ?? 0;
  const f = (t: Tensor) =>
    o.mul(
      o.sum(
        o.matmul(o.reshape(o.relu(o.maxPool2d(t, [kh, kw], [c.sh, c.sw])), [c.n, features]), g),
      ),
      c.scale,
    );
  const [l, [gx]] = valueAndGrad(f)(x);
  const masked = o.mul(gx, mask);
  await l.data();
  const dx = Array.from(await masked.data());
  const dispatches = (gpu?.rt.stats.dispatches ?? 0) - d0;
  for (const t of [x, g, mask, l, gx, masked]) t.dispose();
  return { dx, dispatches };
}

for (const be of ALL) {
  const label = backendLabel(be);
  property(
    `pool node (${label}): the max-pool gradient as a kernel of the graph equals the routine's`,
    caseArb,
    be.name === "webgpu" ? 15 : 40,
    async (c) => {
      const node = await withNode(be, true, () => gradient(be, c), c.once);
      const routine = await withNode(be, false, () => gradient(be, c), c.once);
      const what = `${label} ${JSON.stringify(c)}`;
      if (dtypeOf(be) === "float64") {
        assert.deepEqual(node.dx, routine.dx, what);
        return;
      }
      const oracle = await withNode(cpu, false, () => gradient(cpu, c));
      near(node.dx, oracle.dx, 1e-6, 1e-6, `${what}: node`);
      near(routine.dx, oracle.dx, 1e-6, 1e-6, `${what}: routine`);
      assert.ok(
        node.dispatches <= routine.dispatches,
        `${what}: ${node.dispatches} dispatches, the routine ${routine.dispatches}`,
      );
    },
  );
}

/**
 * relu(maxPool2d(x scale)) times a mask (x's scaling fuses into the pool's loads, the relu and
 * the mask into its epilogue) and its JVP in x along t (the argmax picking t's values), with the
 * dispatches on WebGPU.
 */
async function forward(
  be: Backend,
  c: Case,
): Promise<{ y: number[]; ty: number[]; dispatches: number }> {
  const { kh, kw, ho, wo } = windowsOf(c);
  const dtype = dtypeOf(be);
  const size = c.n * c.c * c.h * c.w;
  const at = (i: number) => c.values[(i * 7 + c.seed) % c.values.length];
  const opts = { backend: be, dtype } as const;
  const x = tensor(Array.from({ length: size }, (_, i) => at(i)), [c.n, c.c, c.h, c.w], opts);
  const t = tensor(Array.from({ length: size }, (_, i) => (i % 5) - 2), [c.n, c.c, c.h, c.w], opts);
  const outs = c.n * c.c * ho * wo;
  const mask = tensor(
    Array.from({ length: outs }, (_, i) => (i % 3) - 1),
    [c.n, c.c, ho, wo],
    opts,
  );
  const gpu = be.name === "webgpu" ? (be as WebGpuBackend) : undefined;
  const d0 = gpu?.rt.stats.dispatches ?? 0;
  const f = (v: Tensor) =>
    o.mul(o.relu(o.maxPool2d(o.mul(v, c.scale), [kh, kw], [c.sh, c.sw])), mask);
  const [[y], [ty]] = jvp(f, [x], [t]);
  const out = { y: Array.from(await y.data()), ty: Array.from(await ty.data()) };
  const dispatches = (gpu?.rt.stats.dispatches ?? 0) - d0;
  for (const v of [x, t, mask, y, ty]) v.dispose();
  return { ...out, dispatches };
}

for (const be of ALL) {
  const label = backendLabel(be);
  property(
    `pool node (${label}): max pooling and its JVP as kernels of the graph equal the routine's`,
    caseArb,
    be.name === "webgpu" ? 15 : 40,
    async (c) => {
      const node = await withNode(be, true, () => forward(be, c));
      const routine = await withNode(be, false, () => forward(be, c));
      const what = `${label} ${JSON.stringify(c)}`;
      if (dtypeOf(be) === "float64") {
        assert.deepEqual(node, { ...routine, dispatches: node.dispatches }, what);
        return;
      }
      const oracle = await withNode(cpu, false, () => forward(cpu, c));
      for (const [name, got] of [["node", node], ["routine", routine]] as const) {
        near(got.y, oracle.y, 1e-6, 1e-6, `${what}: ${name} value`);
        near(got.ty, oracle.ty, 1e-6, 1e-6, `${what}: ${name} tangent`);
      }
      assert.ok(
        node.dispatches <= routine.dispatches,
        `${what}: ${node.dispatches} dispatches, the routine ${routine.dispatches}`,
      );
    },
  );
}

Deno.test("pool node: WebGPU takes it by default, and it saves the dispatch of dy's map", async () => {
  const gpu = ALL.find((b) => b.name === "webgpu") as WebGpuBackend | undefined;
  if (!gpu) return;
  assert.equal(gpu.poolInIr, true);
  const c: Case = {
    ...{ n: 2, c: 2, h: 6, w: 6, kh: 2, kw: 2, sh: 2, sw: 2 },
    ...{ values: [1, 2, 3, -1], seed: 5, scale: 1, once: false },
  };
  const node = await withNode(gpu, true, () => gradient(gpu, c));
  const routine = await withNode(gpu, false, () => gradient(gpu, c));
  assert.ok(
    node.dispatches < routine.dispatches,
    `${node.dispatches} against ${routine.dispatches}`,
  );
});

Deno.test("pool node: the JVP over a window of 64 positions (longer than a select chain may be) is right", async () => {
  const c: Case = {
    n: 1,
    c: 2,
    h: 9,
    w: 8,
    kh: 8,
    kw: 8,
    sh: 1,
    sw: 1,
    values: [1, 2, 3, -1, 0, 5, 4],
    seed: 3,
    scale: -2,
    once: false,
  };
  const oracle = await withNode(cpu, false, () => forward(cpu, c));
  for (const be of ALL) {
    const got = await forward(be, c);
    near(got.y, oracle.y, 1e-6, 1e-6, `${backendLabel(be)}: value`);
    near(got.ty, oracle.ty, 1e-6, 1e-6, `${backendLabel(be)}: tangent`);
  }
});
