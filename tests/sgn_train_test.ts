/**
 * SGN in training: end-to-end fits (the seed's sine regression against SGD, a classifier), the
 * metric a step records (after the step with LS or TR, before it without), the mini-batch order
 * of the seed, and the sine demo's flags.
 */
import assert from "node:assert/strict";
import type { Backend } from "../kernel/backend.ts";
import { type Tensor, tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import { accuracy, meanSquaredError, oneHot, softmaxCrossEntropy } from "../models/losses.ts";
import { PythonRandom } from "../random.ts";
import { mlp } from "../models/networks.ts";
import { SGN } from "../sgn/sgn.ts";
import { SEED_PRESET } from "../sgn/options.ts";
import { SGD } from "../sgn/baselines.ts";
import { train } from "../train/loop.ts";
import { cli } from "./data_files.ts";
import { backends, cpu, Random, webgpu } from "./harness.ts";

const all = await backends();
const gpu = await webgpu();

/** The seed's sine data: x ~ U(-1, 1), y = sin(f x) + N(0, 0.01^2), the first 30% as test set. */
function sine(n: number, f: number, seed: number) {
  const rng = new Random(seed);
  const x = new Float32Array(n);
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    x[i] = rng.range(-1, 1);
    y[i] = Math.sin(f * x[i]) + 0.01 * rng.normal();
  }
  const cut = Math.floor(0.3 * n);
  return {
    test: { inputs: x.slice(0, cut), targets: y.slice(0, cut) },
    train: { inputs: x.slice(cut), targets: y.slice(cut) },
  };
}

Deno.test({
  // In float64 (as the seed ran) SGN gets below 0.01 by epoch 5 (see results notes); float32 slows
  // the trust region down, and seed 1 needs about 8 epochs on WebGPU. 10 epochs leave room.
  name: "end to end: SGN fits the seed's sine regression (f = 10) below 0.01 and beats SGD",
  fn: async () => {
    const be = gpu ?? cpu;
    const data = sine(10000, 10, 1);
    const net = mlp({ inputs: 1, hidden: [20, 20, 20], outputs: 1 });
    const run = (optimizer: SGN | SGD) =>
      train({
        network: net,
        optimizer,
        task: "regression",
        backend: be,
        ...data,
        epochs: 10,
        batchSize: 1000,
        seed: 1,
      });
    // The seed's configuration of its sine runs: its preset with 10 CG iterations (SGN_10).
    const sgn = new SGN(net.init({ seed: 1, backend: be }), { ...SEED_PRESET, cgMaxIters: 10 });
    const rs = await run(sgn);
    const sgd = new SGD(net.init({ seed: 1, backend: be }), { lr: 0.1 });
    const rd = await run(sgd);
    const last = rs.test_loss!.at(-1)!;
    assert.ok(last < 0.01, `SGN test loss after 10 epochs: ${rs.test_loss}`);
    assert.ok(last < rd.test_loss!.at(-1)!, `SGN ${rs.test_loss} vs SGD ${rd.test_loss}`);
    assert.equal(rs.epoch_time.length, 10);
    assert.equal(rs.tot_iterations, 70);
    assert.equal(rs.rho!.length, 70);
    sgn.dispose();
    sgd.dispose();
  },
});

Deno.test("end to end: an MLP classifier on two Gaussian blobs reaches high accuracy", async () => {
  const be = gpu ?? cpu;
  const rng = new Random(9);
  const n = 600;
  const inputs = new Float32Array(n * 2);
  const targets = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    targets[i] = i % 2;
    inputs[2 * i] = rng.normal() + (i % 2 ? 2 : -2);
    inputs[2 * i + 1] = rng.normal();
  }
  const net = mlp({ inputs: 2, hidden: [8], outputs: 2, activation: "tanh" });
  const opt = new SGN(net.init({ seed: 2, backend: be }), {
    dampRho: 1e-3,
    trustRegion: true,
    cgMaxIters: 5,
  });
  const r = await train({
    network: net,
    optimizer: opt,
    task: "classification",
    backend: be,
    train: { inputs: inputs.slice(0, 800), targets: targets.slice(0, 400) },
    test: { inputs: inputs.slice(800), targets: targets.slice(400) },
    epochs: 3,
    batchSize: 100,
  });
  assert.ok(r.test_acc!.at(-1)! > 0.95, `test accuracy ${r.test_acc}`);
  opt.dispose();
});

/** A two-class problem on `be` whose batch accuracy moves when the parameters move. */
function blobs(be: Backend, n: number, seed: number) {
  const rng = new Random(seed);
  const labels = Array.from({ length: n }, (_, i) => i % 2);
  const x = tensor(
    labels.flatMap((c) => [rng.normal() + (c ? 0.7 : -0.7), rng.normal()]),
    [n, 2],
    { backend: be },
  );
  return { x, y: oneHot(labels, 2, { backend: be }) };
}

async function accuracyAt(
  net: ReturnType<typeof mlp>,
  params: readonly Tensor[],
  x: Tensor,
  y: Tensor,
) {
  const acc = accuracy(net.forward(params, x), y);
  const [v] = await acc.data();
  acc.dispose();
  return v;
}

for (const be of all) {
  Deno.test(`metric (${be.name}): SGN scores the batch after the step with LS/TR, before it without; SGD before`, async () => {
    const { x, y } = blobs(be, 64, 4);
    const net = mlp({ inputs: 2, hidden: [6], outputs: 2 });
    const loss = softmaxCrossEntropy(y);
    const model = (...p: Tensor[]) => net.forward(p, x);
    let moved = 0;
    for (
      const [options, after] of [[{ trustRegion: true, lineSearch: true }, true], [
        { trustRegion: false, lineSearch: false },
        false,
      ]] as const
    ) {
      const opt = new SGN(net.init({ seed: 3, backend: be }), { dampRho: 1e-3, ...options });
      for (let step = 0; step < 3; step++) {
        const before = await accuracyAt(net, opt.params, x, y);
        const rec = await opt.step(model, loss);
        const now = await accuracyAt(net, opt.params, x, y);
        assert.equal(rec.metric, after ? now : before, `step ${step} ${JSON.stringify(options)}`);
        if (before !== now) moved++;
      }
      opt.dispose();
    }
    assert.ok(
      moved > 0,
      "the accuracy never changed, so the test could not tell before from after",
    );
    const sgd = new SGD(net.init({ seed: 3, backend: be }), { lr: 0.5 });
    for (let step = 0; step < 3; step++) {
      const before = await accuracyAt(net, sgd.params, x, y);
      const rec = await sgd.step(model, loss);
      assert.equal(rec.metric, before);
    }
    const plain = await sgd.step(
      model,
      meanSquaredError(oneHot(Array(64).fill(0), 2, { backend: be })),
    );
    assert.equal(plain.metric, undefined);
    sgd.dispose();
    x.dispose();
    y.dispose();
  });
}

Deno.test("train: mini-batches come in the seed's order (Python's random.shuffle of one list)", async () => {
  const n = 10;
  const inputs = Float32Array.from({ length: n }, (_, i) => i);
  // An identity "network" and an optimizer that records which samples each step saw.
  const identity = {
    name: "identity",
    inputShape: [1],
    outputs: 1,
    paramShapes: [[1]],
    paramCount: 1,
    layerSizes: [1],
    init: () => [tensor([0], [1], { backend: cpu })],
    forward: (_p: readonly Tensor[], x: Tensor) => o.mul(x, 1),
  };
  const seen: number[][] = [];
  const recorder = {
    params: identity.init(),
    async step(model: (...p: Tensor[]) => Tensor) {
      const z = model(...this.params);
      seen.push(Array.from(await z.data()));
      z.dispose();
      return { loss: 0 };
    },
    dispose() {},
  };
  for (const order of ["python", "permutation"] as const) {
    seen.length = 0;
    await train({
      network: identity,
      optimizer: recorder,
      task: "regression",
      backend: cpu,
      train: { inputs, targets: inputs },
      epochs: 2,
      batchSize: 4,
      seed: 1,
      order,
    });
    assert.deepEqual(seen.map((b) => b.length), [4, 4, 2, 4, 4, 2]);
    if (order === "python") {
      // random.seed(1); idx = list(range(10)); random.shuffle(idx) (twice, one per epoch), from CPython.
      const rng = new PythonRandom(1);
      const idx = Array.from({ length: n }, (_, i) => i);
      rng.shuffle(idx);
      assert.deepEqual(idx, [6, 8, 9, 7, 5, 3, 0, 4, 1, 2]);
      assert.deepEqual(seen.slice(0, 3).flat(), idx);
      rng.shuffle(idx);
      assert.deepEqual(seen.slice(3).flat(), idx);
    } else {
      assert.notDeepEqual(seen.slice(0, 3).flat(), [6, 8, 9, 7, 5, 3, 0, 4, 1, 2]);
      assert.deepEqual([...seen.slice(0, 3).flat()].sort((a, b) => a - b), [...inputs]);
    }
  }
  await assert.rejects(
    () =>
      train({
        network: identity,
        optimizer: recorder,
        task: "regression",
        backend: cpu,
        train: { inputs, targets: inputs },
        epochs: 1,
        batchSize: 4,
        order: "random" as never,
      }),
    /order must be "python" or "permutation", got "random"/,
  );
});

Deno.test("demo: the sine's frequency is --frequency; the old --f says so (in train it names the run)", async () => {
  for (const args of [["--f", "5"], ["--f=5"], ["--epochs", "1", "--f", "5"]]) {
    const r = await cli("demo", ...args);
    assert.equal(r.code, 2, `demo ${args.join(" ")}: ${r.stderr}`);
    assert.match(
      r.stderr,
      /^error: demo: --f is now --frequency .*--f names the run folder in train/,
    );
  }
  const help = await cli("demo", "--help");
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--frequency\s+frequency of the sine \(default: 10\)/);
  assert.doesNotMatch(help.stdout, /--f\s/);
  // A bad frequency names the new flag.
  const bad = await cli("demo", "--frequency", "0");
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--frequency must be a number from 0.000001/);
});
