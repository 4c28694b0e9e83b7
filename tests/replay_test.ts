/**
 * Record and replay (kernel/record.ts, autodiff/replay.ts): a replayed G v gives what running the
 * function gives, on generated networks (MLPs and conv nets with every activation, layer
 * normalization, pooling and residual blocks) and on every backend; bit for bit in float64. Its
 * fallbacks (inputs laid out otherwise, traced inputs, results that do not depend on the inputs,
 * a function that throws) run the function; its memory goes back when it is disposed.
 */
import assert from "node:assert/strict";
import type { Backend } from "../kernel/backend.ts";
import type { DType } from "../kernel/shape.ts";
import { lazyStats } from "../kernel/record.ts";
import { scope, type Tensor, tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import { ggnLinearize, jvp } from "../autodiff/transforms.ts";
import { replayable } from "../autodiff/replay.ts";
import { activeRecorder } from "../kernel/record.ts";
import { meanSquaredError, oneHot, softmaxCrossEntropy } from "../models/losses.ts";
import { convNet, mlp, type Network } from "../models/networks.ts";
import { splitFlat } from "../sgn/vectors.ts";
import { fc, property } from "./property.ts";
import { assertClose, backendLabel, backends, cpu, Random } from "./harness.ts";

const ACTS = ["sigmoid", "tanh", "relu", "softplus", "gelu"] as const;

/** A generated network and batch: an MLP or a small conv net. */
const caseArb = fc.record({
  conv: fc.boolean(),
  hidden: fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 3 }),
  act: fc.constantFrom(...ACTS),
  layerNorm: fc.boolean(),
  residual: fc.boolean(),
  pool: fc.constantFrom("POOL", "AVGPOOL", "none"),
  n: fc.integer({ min: 1, max: 7 }),
  classes: fc.integer({ min: 1, max: 5 }),
  ce: fc.boolean(),
  seed: fc.integer({ min: 1, max: 1e6 }),
});
type Case = typeof caseArb extends fc.Arbitrary<infer T> ? T : never;

function network(c: Case): { net: Network; inShape: number[] } {
  if (!c.conv) {
    const residual = c.residual && c.hidden.length > 1 && c.hidden.every((h) => h === c.hidden[0]);
    return {
      net: mlp({
        inputs: 5,
        hidden: c.hidden,
        outputs: c.classes,
        activation: c.act,
        layerNorm: c.layerNorm,
        residual,
      }),
      inShape: [5],
    };
  }
  const layers: Record<string, unknown> = {
    layer0: { type: "CONV", num_filters: c.hidden[0], filter_size: 3, padding: 1 },
    layer1: { type: "ACT", activation: c.act },
  };
  if (c.pool !== "none") layers.layer2 = { type: c.pool, pool_size: 2 };
  return {
    net: convNet(
      // deno-lint-ignore no-explicit-any
      { conv_layers: layers as any, mlp_layers: { layer0: { type: "FC", output_size: 4 } } },
      [2, 5, 4],
      c.classes,
    ),
    inShape: [2, 5, 4],
  };
}

/** G v by the plain operator and by a replay of it, for three vectors, on `be`. */
async function products(c: Case, be: Backend, dtype: DType) {
  const rng = new Random(c.seed);
  const { net, inShape } = network(c);
  const inSize = inShape.reduce((a, b) => a * b, 1);
  const opts = { backend: be, dtype };
  const x = tensor(rng.array(c.n * inSize, (r) => r.normal()), [c.n, ...inShape], opts);
  const labels = Array.from({ length: c.n }, () => rng.int(c.classes));
  const y = c.ce
    ? oneHot(labels, c.classes, opts)
    : tensor(rng.array(c.n * c.classes, (r) => r.normal()), [c.n, c.classes], opts);
  const loss = c.ce ? softmaxCrossEntropy(y) : meanSquaredError(y);
  const params = net.init({ seed: c.seed, backend: be, dtype });
  const shapes = net.paramShapes;
  const total = shapes.reduce((s, sh) => s + sh.reduce((a, b) => a * b, 1), 0);
  const G = ggnLinearize((...p) => net.forward(p, x), loss, params);
  // As CG calls it: the parameters' parts are windows of one flat vector.
  const f = replayable((v) => G.apply(...splitFlat(v, shapes)));
  const plain: Float64Array[] = [], replayed: Float64Array[] = [];
  for (let i = 0; i < 3; i++) {
    const { a, b } = scope(() => {
      const v = tensor(rng.array(total, (r) => r.normal()), [total], opts);
      return { a: G.apply(...splitFlat(v, shapes)), b: f(v) };
    });
    for (const t of a) plain.push(Float64Array.from(await t.data()));
    for (const t of b) replayed.push(Float64Array.from(await t.data()));
    for (const t of [...a, ...b]) t.dispose();
  }
  const wasReplaying = f.replaying;
  f.dispose();
  G.dispose();
  for (const t of [x, y, ...params]) t.dispose();
  return { plain, replayed, wasReplaying };
}

property(
  "replay: a replayed G v is the plain G v, on generated networks and every backend",
  caseArb,
  12,
  async (c) => {
    for (const be of await backends()) {
      const dtype: DType = be.dtypes.includes("float64") ? "float64" : "float32";
      const live = be.liveBuffers();
      const r0 = lazyStats.replayed;
      const { plain, replayed, wasReplaying } = await products(c, be, dtype);
      assert.ok(wasReplaying, `${backendLabel(be)}: the G v was recorded`);
      assert.ok(lazyStats.replayed > r0, `${backendLabel(be)}: the later calls replayed launches`);
      assert.equal(replayed.length, plain.length);
      plain.forEach((p, i) => {
        if (dtype === "float64") assert.deepEqual(replayed[i], p, `${backendLabel(be)} part ${i}`);
        else assertClose(replayed[i], p, { rtol: 1e-4, atol: 1e-5, what: `${be.name} part ${i}` });
      });
      assert.equal(be.liveBuffers(), live, `${backendLabel(be)}: no buffer left behind`);
    }
  },
);

Deno.test("replay: other layouts, traced inputs and results that do not depend on the inputs run the function", async () => {
  const w = tensor([[1, 2], [3, -4]], undefined, { backend: cpu, dtype: "float64" });
  let calls = 0;
  const f = replayable((v) => (calls++, [o.tanh(o.matmul(w, v))]));
  const col = (a: number, b: number) =>
    tensor([[a], [b]], undefined, { backend: cpu, dtype: "float64" });
  const expect = async (v: Tensor) => Array.from(await o.tanh(o.matmul(w, v)).data());
  {
    const [y1] = f(col(1, 2));
    assert.equal(calls, 1);
    assert.ok(f.replaying);
    const v2 = col(-1, 0.5);
    const [y2] = f(v2);
    assert.equal(calls, 1, "the second call replays");
    assert.deepEqual(Array.from(await y2.data()), await expect(v2));
    assert.deepEqual(Array.from(await y1.data()), await expect(col(1, 2)));
    // A window of a larger buffer at another offset than recorded: the function runs.
    const big = tensor([9, 3, 7], [3], { backend: cpu, dtype: "float64" });
    const v3 = o.reshape(o.slice(big, [1], [2]), [2, 1]);
    const [y3] = f(v3);
    assert.equal(calls, 2);
    assert.deepEqual(Array.from(await y3.data()), await expect(col(3, 7)));
    // A window at another offset of a buffer of the same size: the function runs.
    const f2 = replayable((v) => [o.exp(v)]);
    const four = (xs: number[]) => tensor(xs, [4], { backend: cpu, dtype: "float64" });
    f2(o.slice(four([1, 2, 3, 4]), [0], [2]));
    const [e2] = f2(o.slice(four([5, 6, 7, 8]), [2], [2]));
    assert.deepEqual(Array.from(await e2.data()), [Math.exp(7), Math.exp(8)]);
    const [e3] = f2(o.slice(four([5, 6, 7, 8]), [0], [2]));
    assert.deepEqual(Array.from(await e3.data()), [Math.exp(5), Math.exp(6)], "replayed");
    assert.ok(f2.replaying);
    f2.dispose();
    // Traced (inside jvp): the function runs, and its derivative is right.
    const [[_], [t]] = jvp((v) => f(v)[0], [col(0.5, 0.25)], [col(1, 0)]);
    assert.equal(calls, 3);
    const h = 1e-6;
    const [d1, d0] = [await expect(col(0.5 + h, 0.25)), await expect(col(0.5 - h, 0.25))];
    assertClose(await t.data(), d1.map((v, i) => (v - d0[i]) / (2 * h)), { rtol: 1e-6 });
  }
  f.dispose();
  assert.throws(() => f(col(1, 1)), /called after dispose/);
  // A result that does not depend on the inputs: no recording, every call runs.
  let calls2 = 0;
  const g = replayable((v) => (calls2++, [o.add(v, 1), o.exp(w)]));
  g(col(1, 2));
  g(col(3, 4));
  assert.equal(calls2, 2);
  assert.ok(!g.replaying);
  g.dispose();
});

Deno.test("replay: a function that throws while recording leaves no recording on", () => {
  const v = tensor([1, 2], [2], { backend: cpu, dtype: "float64" });
  const f = replayable((x) => {
    o.exp(x).realize();
    throw new Error("boom");
  });
  assert.throws(() => f(v), /boom/);
  assert.equal(activeRecorder(), undefined);
  const g = replayable((x) => [o.exp(x)]);
  g(v);
  assert.ok(g.replaying, "the next function records");
  g.dispose();
  v.dispose();
});
