/**
 * Convolutions read their weights in place from a window of a larger buffer (kernel/routines.ts
 * `ROUTINES`, `Conv2dSpec.offsetW`): a layer's weights in a flat parameter vector or in CG's
 * direction are not copied out first. On every backend and dtype: no kernel runs besides the
 * convolution, two windows of one buffer give each its own result (WebGPU keeps each one's
 * transposed copy apart), and a spec whose window does not fit its buffer is refused with a
 * clear error. The values against the oracle, for generated specs and offsets, are in
 * tests/property_routines_test.ts.
 */
import assert from "node:assert/strict";
import { lazyStats } from "../kernel/record.ts";
import type { Conv2dSpec } from "../kernel/backend.ts";
import * as ops from "../autodiff/ops.ts";
import { tensor } from "../autodiff/tensor.ts";
import { backendTargets, cpu } from "./harness.ts";

const targets = await backendTargets();

/** Small dyadic values (exact sums in float32). */
const data = (n: number, k: number) => Array.from({ length: n }, (_, i) => ((i * 7 + k) % 9) - 4);

Deno.test("conv windows: weights read in place from a flat vector, each window its own, on every backend", async () => {
  const [f, c, kh, kw] = [3, 2, 2, 2];
  const size = f * c * kh * kw;
  const xd = data(2 * c * 5 * 5, 1);
  // Two layers' weights of one shape side by side, after 5 other values.
  const flatD = data(5 + 2 * size + 1, 2);
  // The input gradient's spec, called on the backends directly.
  const s: Conv2dSpec = {
    ...{ n: 2, c, h: 5, w: 5, f, kh, kw },
    ...{ strideH: 1, strideW: 1, padH: 1, padW: 1 },
  };
  for (const { label, be, dtype } of targets) {
    const opts = { backend: be, dtype };
    const x = tensor(xd, [2, c, 5, 5], opts);
    const flat = tensor(flatD, [flatD.length], opts);
    const xBig = tensor([...data(7, 5), ...xd, 1], [xd.length + 8], opts);
    const leaf = tensor(flatD, [flatD.length], { backend: cpu, dtype: "float64" });
    const xo = tensor(xd, [2, c, 5, 5], { backend: cpu, dtype: "float64" });
    await flat.data();
    await x.data();
    for (const at of [5, 5 + size]) {
      const window = (v: typeof flat) => ops.reshape(ops.slice(v, [at], [size]), [f, c, kh, kw]);
      const k0 = lazyStats.kernels, r0 = lazyStats.routines;
      const y = ops.conv2d(x, window(flat), { padding: 1 });
      y.realize();
      assert.equal(lazyStats.kernels - k0, 0, `${label}: no copy of the weights`);
      assert.equal(lazyStats.routines - r0, 1, `${label}: the convolution alone`);
      const want = await ops.conv2d(xo, window(leaf), { padding: 1 }).data();
      assert.deepEqual(Array.from(await y.data()), Array.from(want), `${label} at ${at}`);
      // An input that is itself a window of a larger array is read whole: copied, not offset.
      const xs = ops.reshape(ops.slice(xBig, [7], [xd.length]), [2, c, 5, 5]);
      const y2 = ops.conv2d(xs, window(flat), { padding: 1 });
      assert.deepEqual(Array.from(await y2.data()), Array.from(want), `${label}: input window`);
      y2.dispose();
      // The input gradient reads the same window in place.
      const dy = tensor(data(y.size, 3), y.shape, opts);
      const dyo = tensor(data(y.size, 3), y.shape, { backend: cpu, dtype: "float64" });
      const dxb = be.conv2dInputGrad(dy.lazy.realize(), flat.lazy.realize(), { ...s, offsetW: at });
      const dx = await be.read(dxb);
      be.release(dxb);
      const dxo = cpu.conv2dInputGrad(dyo.lazy.realize(), window(leaf).lazy.realize(), s);
      const dxWant = await cpu.read(dxo);
      cpu.release(dxo);
      assert.deepEqual(Array.from(dx), Array.from(dxWant), `${label} input gradient at ${at}`);
      for (const t of [y, dy, dyo]) t.dispose();
    }
    for (const t of [x, xBig, flat, leaf, xo]) t.dispose();
  }
});

Deno.test("conv windows: a window that does not fit its buffer is refused, saying where", () => {
  const s: Conv2dSpec = {
    n: 1,
    c: 1,
    h: 3,
    w: 3,
    f: 1,
    kh: 2,
    kw: 2,
    strideH: 1,
    strideW: 1,
    padH: 0,
    padW: 0,
  };
  for (const { label, be, dtype } of targets) {
    const put = (n: number) => tensor(data(n, 0), [n], { backend: be, dtype }).lazy.realize();
    const x = put(9), w = put(6);
    assert.throws(
      () => be.conv2d(x, w, { ...s, offsetW: 3 }),
      /w must hold \[1, 1, 2, 2\] \(4 elements\) from offset 3, its buffer has 6/,
      label,
    );
    assert.throws(() => be.conv2d(x, w, s), /its buffer has 6/, `${label}: no offset, 6 != 4`);
    assert.throws(() => be.conv2d(x, w, { ...s, offsetW: -1 }), /offsetW must be a non-negative/);
    // The window that fits: offset 2 holds 4 of the 6.
    be.release(be.conv2d(x, w, { ...s, offsetW: 2 }));
    be.release(x);
    be.release(w);
  }
});
