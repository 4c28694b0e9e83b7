/**
 * The max-pool backward as a kernel of the graph (kernel/pool.ts, `Backend.poolBackwardInIr`:
 * WebGPU's default) where the windows tile the plane: dy's element-wise work (the relu after the
 * pool, a scaling) is inlined into the kernel's loads through its broadcast view
 * (kernel/lazy.ts inlinePendingMaps), and consumers fuse into its epilogue.
 *
 * Generated pools (sizes, strides, ties, batch and channels) on every backend: the gradient with
 * the node equals the gradient through the routine (the CPU backends' own loops, WebGPU's
 * template or IR routine), bit for bit in float64 (the CPU backends, made to take the node for
 * the test), and within float32 rounding against the float64 oracle on WebGPU, where the node
 * also takes no more dispatches than the routine.
 */

import assert from "node:assert/strict";
import { type Tensor, tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import { valueAndGrad } from "../autodiff/transforms.ts";
import type { Backend } from "../kernel/backend.ts";
import type { WebGpuBackend } from "../wgsl/webgpu.ts";
import { fc, property } from "./property.ts";
import { backendLabel, cpu } from "./harness.ts";
import { ALL, dtypeOf, near } from "./autodiff_checks.ts";

/** Runs `fn` with the backend's pool backward as a node of the graph (`on`) or as the routine. */
async function withNode<T>(be: Backend, on: boolean, fn: () => Promise<T>): Promise<T> {
  const had = Object.getOwnPropertyDescriptor(be, "poolBackwardInIr");
  Object.defineProperty(be, "poolBackwardInIr", { value: on, configurable: true, writable: true });
  try {
    return await fn();
  } finally {
    if (had) Object.defineProperty(be, "poolBackwardInIr", had);
    else delete (be as { poolBackwardInIr?: boolean }).poolBackwardInIr;
  }
}

const caseArb = fc.record({
  n: fc.integer({ min: 1, max: 2 }),
  c: fc.integer({ min: 1, max: 3 }),
  ho: fc.integer({ min: 1, max: 4 }),
  wo: fc.integer({ min: 1, max: 4 }),
  k: fc.integer({ min: 1, max: 3 }),
  extra: fc.integer({ min: 0, max: 1 }),
  // Few distinct values: ties within windows.
  values: fc.array(fc.integer({ min: -3, max: 3 }), { minLength: 3, maxLength: 8 }),
  seed: fc.nat(1000),
  scale: fc.constantFrom(1, 0.5, -2),
});
type Case = typeof caseArb extends fc.Arbitrary<infer T> ? T : never;

/**
 * The gradient of sum(g * relu(maxPool2d(x)) * scale) (the relu after the pool, as the seed's
 * nets have it) in x, times a mask (a consumer of the pool's gradient), and the dispatches on
 * WebGPU.
 */
async function gradient(be: Backend, c: Case): Promise<{ dx: number[]; dispatches: number }> {
  const s = c.k + c.extra; // stride >= size: the windows tile the plane
  const [h, w] = [c.ho * s, c.wo * s];
  const dtype = dtypeOf(be);
  const at = (i: number) => c.values[(i * 7 + c.seed) % c.values.length];
  const x = tensor(Array.from({ length: c.n * c.c * h * w }, (_, i) => at(i)), [c.n, c.c, h, w], {
    backend: be,
    dtype,
  });
  const g = tensor(
    Array.from({ length: c.n * c.c * c.ho * c.wo }, (_, i) => at(i * 3 + 1) / 4),
    [c.n, c.c, c.ho, c.wo],
    { backend: be, dtype },
  );
  const mask = tensor(
    Array.from({ length: c.n * c.c * h * w }, (_, i) => (i % 3) - 1),
    [c.n, c.c, h, w],
    { backend: be, dtype },
  );
  const gpu = be.name === "webgpu" ? (be as WebGpuBackend) : undefined;
  const d0 = gpu?.rt.stats.dispatches ?? 0;
  const f = (t: Tensor) => o.sum(o.mul(o.mul(o.relu(o.maxPool2d(t, c.k, s)), g), c.scale));
  const [l, [gx]] = valueAndGrad(f)(x);
  const masked = o.mul(gx, mask);
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
      const node = await withNode(be, true, () => gradient(be, c));
      const routine = await withNode(be, false, () => gradient(be, c));
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

Deno.test("pool node: WebGPU takes it by default, and it saves the dispatch of dy's map", async () => {
  const gpu = ALL.find((b) => b.name === "webgpu") as WebGpuBackend | undefined;
  if (!gpu) return;
  assert.equal(gpu.poolBackwardInIr, true);
  const c: Case = {
    n: 2,
    c: 2,
    ho: 3,
    wo: 3,
    k: 2,
    extra: 0,
    values: [1, 2, 3, -1],
    seed: 5,
    scale: 1,
  };
  const node = await withNode(gpu, true, () => gradient(gpu, c));
  const routine = await withNode(gpu, false, () => gradient(gpu, c));
  assert.ok(
    node.dispatches < routine.dispatches,
    `${node.dispatches} against ${routine.dispatches}`,
  );
});
