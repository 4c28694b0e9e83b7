/**
 * The results of one transformation computed together (kernel/multi.ts `computeTogether`,
 * autodiff/linearize.ts `together`): the first time a reader needs one of a loss's gradients on
 * its own, the others still pending are computed in the same pass, a dense layer's weight and
 * bias gradients as one product (kernel/matmul.ts `sumsPairs`).
 *
 * Generated networks (tests/network_cases.ts: MLPs and conv nets, both losses), on every backend:
 * the gradients read one by one in a random order, some disposed first, some read through a
 * kernel that consumes them (which must not set the others off), equal the gradient read as one
 * flat vector (SGN's path, tested against the float64 references elsewhere), the loss too; and
 * every buffer comes back once the tensors are disposed. Also the same for jvp's outputs, and,
 * by hand: a read computes the siblings, a consumer's read does not, and a dense layer's two
 * gradients are views of one buffer.
 */

import assert from "node:assert/strict";
import { type Tensor, tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import { jvp, valueAndGrad } from "../autodiff/transforms.ts";
import type { Backend } from "../kernel/backend.ts";
import type { WebGpuBackend } from "../wgsl/webgpu.ts";
import { concatFlat } from "../sgn/vectors.ts";
import { mlp } from "../models/networks.ts";
import { meanSquaredError } from "../models/losses.ts";
import { fc, property } from "./property.ts";
import { backendLabel, productsTogether, Random, withSwitches } from "./harness.ts";
import { ALL, dtypeOf, maxAbs, near } from "./autodiff_checks.ts";
import {
  build,
  caseArb,
  convArb,
  mlpArb,
  type NetCase,
  newConvArb,
  onBackend,
} from "./network_cases.ts";

/** Whether a tensor's value is computed: a buffer of its own, or a window of a computed one. */
function ready(t: Tensor): boolean {
  const l = t.lazy;
  return l.computed || l.window()?.src.computed === true;
}

/** How one result is read: on its own, flushed first, or through a kernel that consumes it. */
type Read = "data" | "realize" | "consumed";

/** Reads `t` as `how` says; a consumed result is read as (2 t) / 2, exact in binary. */
async function readAs(t: Tensor, how: Read): Promise<number[]> {
  if (how === "realize") t.realize();
  if (how !== "consumed") return Array.from(await t.data());
  const twice = o.mul(t, 2);
  const out = Array.from(await twice.data(), (v) => v / 2);
  twice.dispose();
  return out;
}

/**
 * Reads `results` in a random order, disposing some first (never all), and returns the values
 * of those read by index; every result is disposed at the end.
 */
async function readScattered(
  results: Tensor[],
  rng: Random | undefined,
): Promise<Map<number, number[]>> {
  // Without `rng`: each read with data(), in the order given, none disposed.
  if (!rng) {
    const out = new Map<number, number[]>();
    for (const [i, t] of results.entries()) out.set(i, Array.from(await t.data()));
    for (const t of results) t.dispose();
    return out;
  }
  const order = Array.from(rng.permutation(results.length));
  const dropped = new Set(order.slice(1).filter(() => rng.uniform() < 0.25));
  for (const i of dropped) results[i].dispose();
  const reads: Read[] = ["data", "realize", "consumed"];
  const out = new Map<number, number[]>();
  for (const i of order) {
    if (!dropped.has(i)) out.set(i, await readAs(results[i], reads[rng.int(reads.length)]));
  }
  for (const t of results) if (!t.disposed) t.dispose();
  return out;
}

/** The parts of a flat vector read back, by the sizes of `like`. */
async function split(flat: Tensor, like: readonly Tensor[]): Promise<number[][]> {
  const all = Array.from(await flat.data());
  let at = 0;
  return like.map((t) => all.slice(at, at += t.size));
}

const tol = (be: Backend) => (dtypeOf(be) === "float64" ? [1e-12, 1e-12] : [2e-5, 2e-6]);

/**
 * Loss and gradients read one by one against them read as one flat vector, on `be`; with `fold`,
 * read one by one with a conv layer's bias gradient in its weight gradient's routine
 * (Backend.convBiasFold) against the flat vector without it.
 */
async function checkGradients(
  c: NetCase,
  be: Backend,
  inOrder = false,
  fold = false,
): Promise<void> {
  const b = build(c);
  const lib = onBackend(b, be);
  const live = be.liveBuffers();
  const what = `${backendLabel(be)} ${JSON.stringify(c.net)}${fold ? ", folded" : ""}`;
  const switched = <T>(on: boolean, fn: () => Promise<T>) =>
    fold ? withSwitches(be, { convBiasFold: on }, fn) : fn();
  try {
    const [want, wantLoss] = await switched(false, async () => {
      const [l0, g0] = valueAndGrad(lib.objective)(...lib.params);
      const flat = concatFlat(g0);
      const parts = await split(flat, g0);
      const loss = Array.from(await l0.data());
      for (const t of [l0, ...g0, flat]) t.dispose();
      return [parts, loss] as const;
    });
    const got = await switched(true, () => {
      const [l, g] = valueAndGrad(lib.objective)(...lib.params);
      return readScattered([l, ...g], inOrder ? undefined : new Random(c.seed ^ 0x2545f491));
    });
    const [rtol, atol] = tol(be);
    // Folded on WebGPU, a bias gradient is summed in another order (the weight-gradient template,
    // not the reduction kernel): where its terms cancel, float32 rounding is relative to the
    // gradients' scale, not to the sum's own (a filter's few positions summing to 3e-7 differed by
    // 6e-8). The CPU backends sum by the reduction kernel itself and keep the plain tolerance.
    const floor = fold && be.name === "webgpu" ? Math.max(...want.map(maxAbs)) : 0;
    for (const [i, v] of got) {
      const expected = i === 0 ? wantLoss : want[i - 1];
      const part = i === 0 ? "loss" : `gradient ${i - 1}`;
      near(v, expected, rtol, atol, `${what}: ${part}`, floor);
    }
    assert.equal(be.liveBuffers(), live, `${what}: buffers left behind`);
  } finally {
    for (const t of [lib.x, ...lib.params]) t.dispose();
  }
}

/** jvp's outputs and tangents read one by one against them read as one flat vector. */
async function checkJvp(c: NetCase, be: Backend): Promise<void> {
  const b = build(c);
  const lib = onBackend(b, be);
  const rng = new Random(c.seed ^ 0x68e31da4);
  const v = lib.params.map((p) => lib.t(rng.array(p.size), [...p.shape]));
  const what = `${backendLabel(be)} jvp ${JSON.stringify(c.net)}`;
  try {
    const f = (...p: Tensor[]) => [lib.model(...p), lib.objective(...p)];
    const [ys0, ts0] = jvp(f, lib.params, v);
    const flat = concatFlat([...ys0, ...ts0]);
    const want = await split(flat, [...ys0, ...ts0]);
    for (const t of [...ys0, ...ts0, flat]) t.dispose();
    const [ys, ts] = jvp(f, lib.params, v);
    const got = await readScattered([...ys, ...ts], rng);
    const [rtol, atol] = tol(be);
    for (const [i, x] of got) near(x, want[i], rtol, atol, `${what}: result ${i}`);
  } finally {
    for (const t of [lib.x, ...lib.params, ...v]) t.dispose();
  }
}

/** Runs `check` on WebGPU with products run together (a hardware GPU's default). */
const grouped = (be: Backend, check: () => Promise<void>) =>
  productsTogether(be as WebGpuBackend, true, check);

for (const be of ALL) {
  const label = backendLabel(be);
  const nets = fc.oneof(mlpArb, convArb, newConvArb);
  property(
    `together (${label}): gradients read one by one, in any order, equal the flat gradient`,
    caseArb(nets),
    be.name === "webgpu" ? 12 : 30,
    (c) => checkGradients(c, be),
  );
  if (be.name === "webgpu") {
    property(
      `together (${label}, products together): gradients read one by one equal the flat gradient`,
      caseArb(nets),
      12,
      (c) => grouped(be, () => checkGradients(c, be)),
    );
  }
  property(
    `together (${label}, conv bias folded): gradients read one by one equal the flat gradient without the fold`,
    caseArb(fc.oneof(convArb, newConvArb)),
    be.name === "webgpu" ? 6 : 15,
    (c) => checkGradients(c, be, false, true),
  );
  property(
    `together (${label}): jvp's results read one by one equal them read as one vector`,
    caseArb(mlpArb),
    be.name === "webgpu" ? 8 : 20,
    (c) => checkJvp(c, be),
  );

  Deno.test(`together (${label}): a conv net whose layer norm's gradients fuse (a freed input)`, async () => {
    // Computing the last layer's weight and bias gradients first computed a host that a fused
    // consumer had absorbed; its rebuild dropped the last holder of an array being computed
    // ("a released array was used"). Found by tests/property_networks_test.ts.
    const c: NetCase = {
      net: {
        kind: "conv",
        input: [1, 3, 3],
        conv: [{ type: "AVGPOOL" }, { type: "RES", layers: { layer0: { type: "LN" } } }],
        fc: [],
      },
      classes: 2,
      batch: 2,
      loss: "sce",
      seed: 1,
    };
    await checkGradients(c, be);
  });

  Deno.test(`together (${label}): a product is not run beside one whose work it fused`, async () => {
    // With products run together, the lazy graph ran a product beside another whose work the
    // first had fused into its own kernel; the second's completion then rebuilt the first while
    // its launch was under way ("an array was released twice"). Found by `deno task fuzz`.
    const c: NetCase = {
      net: {
        kind: "conv",
        input: [1, 3, 4],
        conv: [{ type: "LN" }, { type: "GAP" }, { type: "LN" }],
        fc: [
          { type: "LN" },
          { type: "FC", output_size: 2, activation: "gelu" },
          { type: "ACT", activation: "tanh" },
        ],
      },
      classes: 1,
      batch: 3,
      loss: "sce",
      seed: 373926436,
    };
    if (be.name === "webgpu") await grouped(be, () => checkGradients(c, be, true));
    await checkGradients(c, be, true);
    await checkGradients(c, be);
  });

  Deno.test(`together (${label}): a product waiting for its inputs is not run beside one of them`, async () => {
    // A product with an epilogue (a residual block's layer norm) waited for an input of its
    // epilogue to be computed; that input, a product run with mates, looked at the waiting one as
    // a mate and rewrote its recipe (its windows read in place) under the loop computing its
    // inputs, whose list then held an array the rewrite had let go ("a released array was
    // used"). Found by `deno task fuzz` on this file.
    const c: NetCase = {
      net: {
        kind: "conv",
        input: [1, 3, 3],
        conv: [{ type: "GAP" }, { type: "LN" }],
        fc: [{ type: "RES", layers: { layer0: { type: "LN" }, layer1: { type: "LN" } } }],
      },
      classes: 1,
      batch: 1,
      loss: "sce",
      seed: 373084932,
    };
    if (be.name === "webgpu") await grouped(be, () => checkGradients(c, be));
    await checkGradients(c, be);
  });

  Deno.test(`together (${label}): a consumer rebuilt while it is computed keeps what it became`, async () => {
    // Rebuilding a fused consumer (Lazy.#unfuse) computed an operand, and with it the
    // transformation's results that consumer is one of (kernel/multi.ts): the rebuild then put
    // its plain recipe over the computed array, lost the buffer and dropped an undefined recipe
    // ("Cannot read properties of undefined"). Found by `deno task fuzz` on this file (seed
    // 297314041); it failed before this session too.
    const c: NetCase = {
      net: {
        kind: "conv",
        input: [1, 3, 3],
        conv: [{ type: "AVGPOOL" }],
        fc: [
          { type: "FC", output_size: 2 },
          { type: "RES", layers: { layer0: { type: "ACT", activation: "sigmoid" } } },
          { type: "LN" },
        ],
      },
      classes: 1,
      batch: 1,
      loss: "sce",
      seed: 700592704,
    };
    if (be.name === "webgpu") await grouped(be, () => checkGradients(c, be));
    await checkGradients(c, be);
  });

  Deno.test(`together (${label}): a read computes the siblings; a consumer's read does not`, async () => {
    const net = mlp({ inputs: 3, hidden: [4], outputs: 2, activation: "tanh" });
    const params = net.init({ seed: 3, backend: be });
    const x = tensor([[0.5, -1, 2], [1, 0.25, -0.5]], undefined, { backend: be });
    const y = tensor([[1, 0], [0, 1]], undefined, { backend: be });
    const loss = meanSquaredError(y);
    const f = (...p: Tensor[]) => loss.value(net.forward(p, x));
    try {
      // Read through kernels that consume it (an update fused into its product, a norm that
      // reads it): the others stay pending.
      const [l1, g1] = valueAndGrad(f)(...params);
      const step = o.sub(params[0], o.mul(g1[0], 0.1));
      const norm = o.sum(o.square(g1[0]));
      await step.data();
      await norm.data();
      assert.ok(!ready(l1) && g1.slice(1).every((g) => !ready(g)), "a consumer set them off");
      for (const t of [step, norm, l1, ...g1]) t.dispose();
      // Read on its own: all are computed, in one pass.
      const [l2, g2] = valueAndGrad(f)(...params);
      g2[2].realize();
      assert.ok(ready(l2) && g2.every(ready), "reading one gradient left others pending");
      // A dense layer's weight and bias gradients are rows of one product.
      for (const [w, bias] of [[g2[0], g2[1]], [g2[2], g2[3]]]) {
        const src = w.lazy.window()?.src ?? w.lazy;
        assert.equal(bias.lazy.window()?.src, src, "a bias gradient not folded into its product");
      }
      for (const t of [l2, ...g2]) t.dispose();
    } finally {
      for (const t of [...params, x, y]) t.dispose();
    }
  });
}
