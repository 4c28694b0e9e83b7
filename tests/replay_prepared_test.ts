/**
 * Replays through prepared launches (cpu/native_replay.ts) and what a recording keeps
 * (kernel/record.ts): on the native backend, in float32 and float64, a replayed G v (as CG calls
 * it, by parts or flat as SGN records it) is the plain G v bit for bit, and its products,
 * kernels and softmax ran prepared; so do batched, windowed and multi-output launches; the
 * native backend without its arena replays the plain way; a launch that reads only constants of
 * the recording runs once, at the recording, not at every replay.
 */
import assert from "node:assert/strict";
import type { DType } from "../kernel/shape.ts";
import { lazyStats } from "../kernel/record.ts";
import { realizeTogether } from "../kernel/multi.ts";
import { replayRuns } from "../cpu/native_replay.ts";
import type { NativeBackend } from "../cpu/native.ts";
import { scope, type Tensor, tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import { ggnLinearize } from "../autodiff/transforms.ts";
import { replayable } from "../autodiff/replay.ts";
import { meanSquaredError, oneHot, softmaxCrossEntropy } from "../models/losses.ts";
import { mlp } from "../models/networks.ts";
import { concatFlat, splitFlat } from "../sgn/vectors.ts";
import { fc, property } from "./property.ts";
import { cpu, nativeVariants, Random, skipped } from "./harness.ts";

const natives = await nativeVariants();
if (natives.length === 0) skipped("replay_prepared_test", "no native backend (BLAS) here");

/** Arrays read back as float64 copies (both sides the same way, so equality is bit for bit). */
async function values(ts: readonly Tensor[]): Promise<Float64Array[]> {
  const out: Float64Array[] = [];
  for (const t of ts) out.push(Float64Array.from(await t.data()));
  for (const t of ts) t.dispose();
  return out;
}

/**
 * `f` called on three vectors made by `make`, plainly and through a replayable of it, on `be`:
 * asserts the replays give the plain results bit for bit; returns the launches the replays ran
 * prepared and the plain way.
 */
async function samePlainAndReplayed(
  be: NativeBackend,
  label: string,
  make: (i: number) => Tensor,
  f: (v: Tensor) => Tensor[],
): Promise<{ prepared: number; plain: number }> {
  // A first plain call computes what the function's closure keeps (G's outputs, say).
  await values(scope(() => f(make(-1))));
  const live = be.liveBuffers();
  const r = replayable(f);
  const before = { ...replayRuns };
  const replayed0 = lazyStats.replayed;
  for (let i = 0; i < 3; i++) {
    const v = make(i);
    // The replay first: the plain call's freed blocks, which the pool hands out again, hold
    // its results, and a replay that skipped a store could pass for right after it.
    const replayed = await values(scope(() => r(v)));
    const plain = await values(scope(() => f(v)));
    v.dispose();
    assert.equal(replayed.length, plain.length);
    plain.forEach((p, j) => assert.deepEqual(replayed[j], p, `${label}: call ${i}, output ${j}`));
  }
  assert.ok(r.replaying, `${label}: the function was recorded`);
  r.dispose();
  assert.equal(be.liveBuffers(), live, `${label}: no buffer left behind`);
  const ran = {
    prepared: replayRuns.prepared - before.prepared,
    plain: replayRuns.plain - before.plain,
  };
  assert.equal(
    ran.prepared + ran.plain,
    be.arena ? lazyStats.replayed - replayed0 : 0,
    `${label}: every replayed launch ran prepared or plainly on the arena backend, none else`,
  );
  return ran;
}

const mlpArb = fc.record({
  hidden: fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 3 }),
  act: fc.constantFrom("sigmoid", "tanh", "relu", "softplus"),
  n: fc.integer({ min: 1, max: 7 }),
  classes: fc.integer({ min: 1, max: 5 }),
  ce: fc.boolean(),
  flat: fc.boolean(),
  seed: fc.integer({ min: 1, max: 1e6 }),
});

property(
  "replay: on native, a replayed G v is the plain G v bit for bit (float32, float64), its launches prepared",
  mlpArb,
  10,
  async (c) => {
    for (const { label, be } of natives) {
      for (const dtype of ["float32", "float64"] as DType[]) {
        const rng = new Random(c.seed);
        const opts = { backend: be, dtype };
        const net = mlp({ inputs: 5, hidden: c.hidden, outputs: c.classes, activation: c.act });
        const x = tensor(rng.array(c.n * 5, (r) => r.normal()), [c.n, 5], opts);
        const y = c.ce
          ? oneHot(Array.from({ length: c.n }, () => rng.int(c.classes)), c.classes, opts)
          : tensor(rng.array(c.n * c.classes, (r) => r.normal()), [c.n, c.classes], opts);
        const loss = c.ce ? softmaxCrossEntropy(y) : meanSquaredError(y);
        const params = net.init({ seed: c.seed, backend: be, dtype });
        const shapes = net.paramShapes;
        const total = params.reduce((s, p) => s + p.size, 0);
        const G = ggnLinearize((...p) => net.forward(p, x), loss, params);
        const ran = await samePlainAndReplayed(
          be,
          `${label} ${dtype} ${JSON.stringify(c)}`,
          () => tensor(rng.array(total, (r) => r.normal()), [total], opts),
          // By parts, as the products benchmark calls it, or flat, as SGN records C p.
          (v) => {
            const gv = G.apply(...splitFlat(v, shapes));
            return c.flat ? [concatFlat(gv)] : gv;
          },
        );
        if (be.arena) {
          assert.ok(ran.prepared > 0, `${label} ${dtype}: launches ran prepared`);
          // Flat, the parts' concatenation is the one routine not prepared (two replays).
          assert.ok(ran.plain <= (c.flat ? 2 : 0), `${label} ${dtype}: ${ran.plain} plain`);
        }
        G.dispose();
        for (const t of [x, y, ...params]) t.dispose();
      }
    }
  },
);

Deno.test("replay: on native, batched and windowed products, multi-output kernels and softmax run prepared, bit for bit", async () => {
  for (const { label, be } of natives) {
    for (const dtype of ["float32", "float64"] as DType[]) {
      const rng = new Random(7);
      const opts = { backend: be, dtype };
      const a = tensor(rng.array(2 * 3 * 4, (r) => r.normal()), [2, 3, 4], opts);
      const w = tensor(rng.array(12, (r) => r.normal()), [4, 3], opts);
      const ran = await samePlainAndReplayed(
        be,
        `${label} ${dtype}`,
        () => tensor(rng.array(40, (r) => r.normal()), [40], opts),
        (v) => {
          // Windows of v: a batch of two [4, 5] matrices, and a [3, 4] one.
          const b = o.reshape(o.slice(v, [0], [40]), [2, 4, 5]);
          const m = o.reshape(o.slice(v, [4], [12]), [3, 4]);
          const batched = o.tanh(o.matmul(a, b));
          const p = o.softmax(o.matmul(m, w));
          const s1 = o.sum(o.mul(p, p));
          const s2 = o.sum(o.exp(p));
          realizeTogether([s1.lazy, s2.lazy]);
          return [o.mul(batched, 2), o.add(p, o.mul(s1, s2))];
        },
      );
      if (be.arena) {
        assert.ok(ran.prepared >= 5, `${label} ${dtype}: ${ran.prepared} prepared`);
        // Float64 softmax has no WebAssembly form: it alone runs the plain way (two replays).
        assert.equal(ran.plain, dtype === "float64" ? 2 : 0, `${label} ${dtype}: plain launches`);
      }
      a.dispose();
      w.dispose();
    }
  }
});

Deno.test("replay: a launch that reads only the recording's constants runs once, when recorded", async () => {
  const opts = { backend: cpu, dtype: "float64" as const };
  const h = tensor([[1, 2, 3], [0, -1, 4]], undefined, opts);
  const f = replayable((v) => {
    // mul reads h (a constant of the recording from then on); softmax(h) reads only h.
    const a = o.mul(h, v).realize();
    return [o.add(a, o.softmax(h))];
  });
  const col = (k: number) => tensor([[k, 1, 2], [3, k, 5]], undefined, opts);
  const expected = async (v: Tensor) => Array.from(await o.add(o.mul(h, v), o.softmax(h)).data());
  const [y1] = f(col(1));
  const r0 = lazyStats.replayed;
  const v2 = col(-2);
  const [y2] = f(v2);
  assert.equal(lazyStats.replayed - r0, 2, "the replay runs mul and add, not softmax");
  assert.deepEqual(Array.from(await y2.data()), await expected(v2));
  assert.deepEqual(Array.from(await y1.data()), await expected(col(1)));
  f.dispose();
  h.dispose();
});
