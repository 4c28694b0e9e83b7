/**
 * Every value the training loop records, checked by value on small runs against an independent
 * computation (tests/reference.ts and the formulas below), for regression with SGN and for
 * classification with SGD, on the CPU backends in float64: the per-epoch mean loss, train and
 * test metrics, rho and alpha of every step, the iteration and epoch counts, and the times. The
 * batches follow the seed's order (Python's shuffle; PythonRandom is checked against CPython in
 * models_test.ts), the last batch smaller.
 */
import assert from "node:assert/strict";
import { tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import type { Network } from "../models/networks.ts";
import { SGN } from "../sgn/sgn.ts";
import { SGD } from "../sgn/baselines.ts";
import { train } from "../train/loop.ts";
import { PythonRandom } from "../random.ts";
import { cpu, native, Random } from "./harness.ts";
import { forward, loss, type Problem, ReferenceSgn } from "./reference.ts";

/** z = act(x W + b) as a library network (the reference's model). */
function linearNet(
  inputs: number,
  outputs: number,
  act: "linear" | "sigmoid",
  theta0: Float64Array,
) {
  const shapes = [[inputs, outputs], [outputs]];
  const net: Network = {
    name: `linear ${inputs}-${outputs} ${act}`,
    inputShape: [inputs],
    outputs,
    paramShapes: shapes,
    paramCount: inputs * outputs + outputs,
    layerSizes: [outputs],
    init: (opts = {}) => [
      tensor(theta0.subarray(0, inputs * outputs), shapes[0], { ...opts }),
      tensor(theta0.subarray(inputs * outputs), shapes[1], { ...opts }),
    ],
    forward: ([w, b], x) => {
      const a = o.add(o.matmul(x, w), b);
      return act === "sigmoid" ? o.sigmoid(a) : a;
    },
  };
  return net;
}

/** The seed's batches: one Python shuffle of the same index list per epoch. */
function batches(n: number, size: number, epochs: number, seed: number): number[][][] {
  const rng = new PythonRandom(seed);
  const idx = Uint32Array.from({ length: n }, (_, i) => i);
  const out: number[][][] = [];
  for (let e = 0; e < epochs; e++) {
    rng.shuffle(idx);
    const epoch: number[][] = [];
    for (let s = 0; s < n; s += size) epoch.push(Array.from(idx.subarray(s, s + size)));
    out.push(epoch);
  }
  return out;
}

/** The sub-problem of the given rows. */
function rowsOf(p: Problem, rows: number[]): Problem {
  return {
    ...p,
    n: rows.length,
    x: Float64Array.from(rows.flatMap((r) => Array.from(p.x.subarray(r * p.i, (r + 1) * p.i)))),
    y: Float64Array.from(rows.flatMap((r) => Array.from(p.y.subarray(r * p.d, (r + 1) * p.d)))),
  };
}

function close(actual: number, expected: number, what: string, rtol = 1e-9) {
  assert.ok(
    Math.abs(actual - expected) <= rtol * (1 + Math.abs(expected)),
    `${what}: ${actual}, expected ${expected}`,
  );
}

const backendsF64 = [cpu, await native()].filter((b): b is NonNullable<typeof b> => !!b);

/** Inputs and targets, drawn as float32 values so that the loop and the reference agree. */
function data(rng: Random, n: number, i: number, d: number, targets: (r: Random) => number) {
  return {
    x: Float64Array.from({ length: n * i }, () => Math.fround(rng.range(-1, 1))),
    y: Float64Array.from({ length: n * d }, () => Math.fround(targets(rng))),
  };
}

for (const be of backendsF64) {
  Deno.test(`training loop (${be.name}): regression with SGN records the reference's values`, async () => {
    const rng = new Random(41);
    const [n, nTest, i, d, batch, epochs, seed] = [10, 7, 3, 2, 4, 3, 5];
    const tr = data(rng, n, i, d, (r) => r.range(0.1, 0.9));
    const te = data(rng, nTest, i, d, (r) => r.range(0.1, 0.9));
    const theta0 = Float64Array.from({ length: i * d + d }, () => rng.normal());
    const whole: Problem = { n, i, d, x: tr.x, y: tr.y, act: "sigmoid" };
    const test: Problem = { n: nTest, i, d, x: te.x, y: te.y, act: "sigmoid" };
    const options = { dampRho: 0.01, trustRegion: true, cgMaxIters: 3, cgMinIters: 3, alpha: 16 };
    const ref = new ReferenceSgn(whole, theta0, options);
    const want = { avg_loss: [] as number[], test_loss: [] as number[], rho: [] as number[] };
    const alphas: number[] = [];
    for (const epoch of batches(n, batch, epochs, seed)) {
      let sum = 0;
      for (const rows of epoch) {
        const r = ref.step(rowsOf(whole, rows));
        sum += r.loss;
        want.rho.push(r.rho);
        alphas.push(r.alpha);
      }
      want.avg_loss.push(sum / epoch.length); // the mean over batches, as the seed records it
      want.test_loss.push(loss(test, ref.theta));
    }
    const net = linearNet(i, d, "sigmoid", theta0);
    const opt = new SGN(net.init({ backend: be, dtype: "float64" }), options);
    const got = await train({
      network: net,
      optimizer: opt,
      task: "regression",
      backend: be,
      dtype: "float64",
      train: { inputs: Float32Array.from(tr.x), targets: Float32Array.from(tr.y) },
      test: { inputs: Float32Array.from(te.x), targets: Float32Array.from(te.y) },
      epochs,
      batchSize: batch,
      seed,
    });
    opt.dispose();
    // The data are float32 values (as the data sets are), so loop and reference see the same.
    assert.equal(got.tot_iterations, epochs * 3);
    assert.equal(got.avg_loss.length, epochs);
    assert.equal(got.acc, undefined);
    assert.equal(got.epoch_time.length, epochs);
    assert.ok(got.epoch_time.every((t, k) => t > (got.epoch_time[k - 1] ?? 0)), "times increase");
    assert.equal(got.tot_time, got.epoch_time.at(-1));
    got.avg_loss.forEach((v, k) => close(v, want.avg_loss[k], `avg_loss[${k}]`));
    got.test_loss!.forEach((v, k) => close(v, want.test_loss[k], `test_loss[${k}]`));
    got.rho!.forEach((v, k) => close(v, want.rho[k], `rho[${k}]`));
    got.alpha!.forEach((v, k) => close(v, alphas[k], `alpha[${k}]`, 1e-12));
    assert.ok(new Set(alphas).size > 1 && new Set(want.rho).size > 1, "rho and alpha vary");
  });

  Deno.test(`training loop (${be.name}): classification with SGD records the reference's values`, async () => {
    const rng = new Random(42);
    const [n, nTest, i, classes, batch, epochs, seed, lr] = [11, 9, 3, 3, 4, 2, 8, 0.7];
    const xs = Float64Array.from({ length: n * i }, () => Math.fround(rng.range(-1, 1)));
    const labels = Int32Array.from({ length: n }, () => Math.floor(rng.uniform() * classes));
    const xt = Float64Array.from({ length: nTest * i }, () => Math.fround(rng.range(-1, 1)));
    const lt = Int32Array.from({ length: nTest }, () => Math.floor(rng.uniform() * classes));
    const theta0 = Float64Array.from({ length: i * classes + classes }, () => rng.normal());
    // Softmax cross-entropy of a linear model, by hand.
    const logits = (x: Float64Array, rows: number[], theta: Float64Array) =>
      forward({ n: rows.length, i, d: classes, x, y: new Float64Array(0), act: "linear" }, theta).z;
    const stats = (x: Float64Array, ys: ArrayLike<number>, theta: Float64Array) => {
      const m = ys.length;
      const z = logits(x, Array.from({ length: m }), theta);
      let l = 0;
      let right = 0;
      const dz = new Float64Array(m * classes);
      for (let r = 0; r < m; r++) {
        const row = z.subarray(r * classes, (r + 1) * classes);
        const mx = Math.max(...row);
        const e = row.map((v) => Math.exp(v - mx));
        const s = e.reduce((a, b) => a + b, 0);
        l += -(row[ys[r]] - mx - Math.log(s)) / m;
        const arg = row.indexOf(mx);
        if (arg === ys[r]) right++;
        for (let c = 0; c < classes; c++) {
          dz[r * classes + c] = (e[c] / s - (c === ys[r] ? 1 : 0)) / m;
        }
      }
      // dL/dtheta = J^T dz, with the linear model's Jacobian.
      const g = new Float64Array(theta.length);
      for (let r = 0; r < m; r++) {
        for (let c = 0; c < classes; c++) {
          for (let k = 0; k < i; k++) g[k * classes + c] += x[r * i + k] * dz[r * classes + c];
          g[i * classes + c] += dz[r * classes + c];
        }
      }
      return { loss: l, acc: right / m, g };
    };
    const sub = (x: Float64Array, rows: number[]) =>
      Float64Array.from(rows.flatMap((r) => Array.from(x.subarray(r * i, (r + 1) * i))));
    let theta = Float64Array.from(theta0);
    const want = { avg_loss: [] as number[], acc: [] as number[], test_acc: [] as number[] };
    for (const epoch of batches(n, batch, epochs, seed)) {
      let [lossSum, accSum] = [0, 0];
      for (const rows of epoch) {
        const s = stats(sub(xs, rows), rows.map((r) => labels[r]), theta);
        lossSum += s.loss;
        accSum += s.acc; // SGD: scored before its step, as the seed scores it
        theta = theta.map((v, k) => v - lr * s.g[k]);
      }
      want.avg_loss.push(lossSum / epoch.length);
      want.acc.push(accSum / epoch.length);
      want.test_acc.push(stats(xt, lt, theta).acc);
    }
    const net = linearNet(i, classes, "linear", theta0);
    const opt = new SGD(net.init({ backend: be, dtype: "float64" }), { lr });
    const got = await train({
      network: net,
      optimizer: opt,
      task: "classification",
      backend: be,
      dtype: "float64",
      train: { inputs: Float32Array.from(xs), targets: labels },
      test: { inputs: Float32Array.from(xt), targets: lt },
      epochs,
      batchSize: batch,
      seed,
    });
    opt.dispose();
    assert.equal(got.tot_iterations, epochs * 3);
    assert.equal(got.tot_epochs, epochs);
    assert.equal(got.rho, undefined, "no rho for SGD");
    assert.equal(got.test_loss, undefined);
    got.avg_loss.forEach((v, k) => close(v, want.avg_loss[k], `avg_loss[${k}]`));
    assert.deepEqual(got.acc!.map((v) => v.toFixed(12)), want.acc.map((v) => v.toFixed(12)));
    assert.deepEqual(got.test_acc, want.test_acc);
    assert.notDeepEqual(want.acc, want.test_acc, "train and test accuracy differ here");
  });
}
