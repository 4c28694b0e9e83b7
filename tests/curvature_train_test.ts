/**
 * The curvature options in use: the defaults (ggn, the whole batch) are the seed's step bit for
 * bit, curvatureRows follows its definition, bad options and a step without what the options need
 * give an SgnError saying what to do, train() hands SGN the first rows of each shuffled batch as
 * the curvature batch, and steps with each curvature keep the buffer count flat on every backend.
 */

import assert from "node:assert/strict";
import { SgnError } from "../errors.ts";
import { type Tensor, tensor } from "../autodiff/tensor.ts";
import { fisherLinearize, type OutputLoss } from "../autodiff/transforms.ts";
import { mlp } from "../models/networks.ts";
import { SGN, type SgnStepRecord } from "../sgn/sgn.ts";
import type { Optimizer } from "../sgn/optimizer.ts";
import {
  type Curvature,
  curvatureRows,
  resolveSgnOptions,
  type SgnOptions,
} from "../sgn/options.ts";
import { parseTrainArgs } from "../train/settings.ts";
import { train } from "../train/loop.ts";
import { backendLabel, cpu } from "./harness.ts";
import { makeProblem, range } from "./curvature_oracle.ts";
import { all, flatOf, onBackend, paramsOf } from "./curvature_support.ts";

Deno.test("curvature: the defaults (ggn, the whole batch) are the seed's step bit for bit", async () => {
  const p = makeProblem(7, { n: 8, inp: 3, hid: 4, out: 3, loss: "ce" });
  const runs: number[][] = [];
  const records: SgnStepRecord[][] = [];
  for (const options of [{}, { curvature: "ggn", curvatureBatch: 1 }] as SgnOptions[]) {
    const b = onBackend(p, cpu, "float64");
    const opt = new SGN(paramsOf(p, cpu, "float64"), { trustRegion: true, ...options });
    const recs: SgnStepRecord[] = [];
    for (let s = 0; s < 4; s++) {
      // The third argument is never called with the whole batch.
      recs.push(
        await opt.step(b.model, b.loss, () => {
          throw new Error("the curvature batch was asked for");
        }),
      );
    }
    runs.push(await flatOf(opt.params));
    records.push(recs);
    opt.dispose();
    b.dispose();
  }
  assert.deepEqual(runs[1], runs[0]);
  assert.deepEqual(records[1], records[0]);
  assert.equal(records[0][0].curvature, "ggn");
  assert.equal(records[0][0].curvatureRows, 8);
  assert.equal(records[0][0].negativeCurvature, false);
});

Deno.test("curvature: curvatureRows by its definition", () => {
  const cases: [number, number, number][] = [
    [1, 1000, 1000],
    [0.25, 1000, 250],
    [0.1, 30, 3], // 0.1 * 30 = 3.0000000000000004
    [0.3, 10, 3],
    [0.35, 10, 4], // rounded, not truncated
    [0.001, 100, 1], // at least one row
    [300, 1000, 300],
    [300, 200, 200], // at most the batch (the last, smaller batch of an epoch)
  ];
  for (const [f, n, rows] of cases) assert.equal(curvatureRows(f, n), rows, `${f} of ${n}`);
});

Deno.test("curvature: bad options give an SgnError naming the option", () => {
  const bad: [SgnOptions, RegExp][] = [
    [
      { curvature: "newton" as Curvature },
      /curvature \(CURVATURE\) must be "ggn", "hessian" or "fisher", got "newton"/,
    ],
    [{ curvatureBatch: 0 }, /curvatureBatch \(CURVATURE_BATCH\) must be a fraction .*, got 0$/],
    [{ curvatureBatch: -0.5 }, /curvatureBatch .*, got -0.5$/],
    [{ curvatureBatch: 2.5 }, /curvatureBatch .*an integer.*, got 2.5$/],
    [{ curvatureBatch: 1.5 }, /curvatureBatch .*, got 1.5$/],
    [{ curvatureBatch: NaN }, /curvatureBatch .*, got NaN$/],
    [{ curvatureBatch: Infinity }, /curvatureBatch .*, got Infinity$/],
    [{ curvatureBatch: 1e8 }, /curvatureBatch .*, got 100000000$/],
    [{ curvatureBatch: "0.5" as unknown as number }, /curvatureBatch .*, got "0.5"$/],
  ];
  for (const [options, message] of bad) {
    assert.throws(
      () => resolveSgnOptions(options),
      (e) => e instanceof SgnError && message.test(e.message),
      JSON.stringify(options),
    );
  }
  for (const ok of [0.5, 1, 2, 1000]) resolveSgnOptions({ curvatureBatch: ok });
  // The command line holds the same bounds (one definition).
  assert.throws(
    () => parseTrainArgs(["--curvature_batch", "2.5"]),
    /--curvature_batch must be a fraction/,
  );
  assert.throws(
    () => parseTrainArgs(["--curvature_batch", "0"]),
    /--curvature_batch must be a fraction/,
  );
  assert.throws(
    () => parseTrainArgs(["--curvature", "newton"]),
    /--curvature must be one of ggn, hessian, fisher/,
  );
  assert.equal(parseTrainArgs(["--curvature_batch", "0.25"]).curvature_batch, 0.25);
  assert.equal(parseTrainArgs([]).curvature, "ggn");
  assert.equal(parseTrainArgs([]).curvature_batch, 1);
});

Deno.test("curvature: a step without what the options need gives an SgnError saying what to do", async () => {
  const p = makeProblem(2, { n: 4, inp: 2, hid: 2, out: 2, loss: "mse" });
  const b = onBackend(p, cpu, "float64");
  const expectError = async (
    options: SgnOptions,
    step: (o: SGN) => Promise<unknown>,
    re: RegExp,
  ) => {
    const opt = new SGN(paramsOf(p, cpu, "float64"), options);
    const before = await flatOf(opt.params);
    const live = cpu.liveBuffers();
    await assert.rejects(step(opt), (e) => e instanceof SgnError && re.test(e.message), re.source);
    assert.equal(cpu.liveBuffers(), live, "a failed step frees its temporaries");
    assert.deepEqual(await flatOf(opt.params), before, "and leaves the parameters");
    opt.dispose();
  };
  await expectError(
    { curvatureBatch: 0.5 },
    (o) => o.step(b.model, b.loss),
    /curvatureBatch \(0.5\) needs the step's third argument/,
  );
  await expectError(
    { curvatureBatch: 2 },
    (o) => o.step(b.model, b.loss, "rows" as never),
    /third argument/,
  );
  const { perExample: _, ...noPerExample } = b.loss;
  await expectError(
    { curvature: "fisher" },
    (o) => o.step(b.model, noPerExample as OutputLoss),
    /curvature "fisher" needs the loss's perExample/,
  );
  await expectError(
    { curvatureBatch: 2 },
    (o) => o.step(b.model, b.loss, () => ({ model: b.model, loss: b.loss })),
    /gives 4 rows; 2 were asked for/,
  );
  await expectError(
    { curvatureBatch: 2 },
    (o) => o.step(b.model, b.loss, () => null as never),
    /must be \{ model, loss \}/,
  );
  assert.throws(
    () =>
      fisherLinearize(b.model, { value: b.loss.value } as OutputLoss, paramsOf(p, cpu, "float64")),
    /has no perExample/,
  );
  b.dispose();
});

// --- the training loop: the curvature batch is the first rows of a shuffled batch ------------

/** An optimizer that records the rows it is given (targets are the row indices) and SGN's records. */
class Spy implements Optimizer {
  batches: number[][] = [];
  subBatches: number[][] = [];
  records: SgnStepRecord[] = [];
  constructor(readonly inner: SGN, readonly m: number) {}
  get params() {
    return this.inner.params;
  }
  dispose() {
    this.inner.dispose();
  }
  /** The targets of a mean-squared-error loss: sqrt of its per-example loss at z = 0. */
  async #rows(loss: OutputLoss, n: number): Promise<number[]> {
    const z = tensor(new Float64Array(n), [n, 1], { backend: cpu, dtype: "float64" });
    const l = loss.perExample!(z);
    const rows = Array.from(await l.data(), (v) => Math.round(Math.sqrt(v)));
    z.dispose();
    l.dispose();
    return rows;
  }
  async step(
    model: (...p: Tensor[]) => Tensor,
    loss: OutputLoss,
    sub?: (rows: number) => { model: typeof model; loss: OutputLoss },
  ) {
    const z = model(...this.inner.params);
    const n = z.shape[0];
    z.dispose();
    this.batches.push(await this.#rows(loss, n));
    const part = sub!(Math.min(this.m, n));
    this.subBatches.push(await this.#rows(part.loss, Math.min(this.m, n)));
    const rec = await this.inner.step(model, loss, sub);
    this.records.push(rec);
    return rec;
  }
}

Deno.test("curvature: train() hands SGN the first rows of each shuffled batch as the curvature batch", async () => {
  const n = 40, batchSize = 8, m = 3;
  const net = mlp({ inputs: 1, hidden: [2], outputs: 1, activation: "tanh" });
  const data = {
    inputs: Float32Array.from({ length: n }, (_, i) => i / n),
    targets: Float32Array.from({ length: n }, (_, i) => i),
  };
  const spy = new Spy(
    new SGN(net.init({ seed: 1, backend: cpu, dtype: "float64" }), {
      curvatureBatch: m,
      dampRho: 10,
    }),
    m,
  );
  await train({
    network: net,
    optimizer: spy,
    task: "regression",
    backend: cpu,
    dtype: "float64",
    train: data,
    epochs: 3,
    batchSize,
    seed: 4,
  });
  assert.equal(spy.batches.length, 15);
  spy.batches.forEach((rows, s) =>
    assert.deepEqual(spy.subBatches[s], rows.slice(0, m), `step ${s}`)
  );
  assert.ok(spy.records.every((r) => r.curvatureRows === m));
  // The batches of an epoch are a permutation of the data, and it changes from epoch to epoch:
  // the first rows of a batch are a random subset, not fixed rows of the data.
  for (let e = 0; e < 3; e++) {
    const seen = spy.batches.slice(e * 5, e * 5 + 5).flat().sort((a, b) => a - b);
    assert.deepEqual(seen, range(n), `epoch ${e + 1} sees every row once`);
  }
  const firstOfEpoch = [0, 5, 10].map((s) => spy.subBatches[s].join());
  assert.equal(new Set(firstOfEpoch).size, 3, "the first curvature batch differs between epochs");
  const inOrder = spy.batches.flat().every((r, i) => r === i % n);
  assert.ok(!inOrder, "the batches are shuffled");
  spy.dispose();
});

// --- memory ----------------------------------------------------------------------------------

for (const be of all) {
  Deno.test(`curvature (${backendLabel(be)}): steps with each curvature and a curvature batch keep the buffer count flat`, async () => {
    const p = makeProblem(9, { n: 6, inp: 2, hid: 3, out: 2, loss: "ce" });
    const b = onBackend(p, be, "float32");
    const sub = onBackend(p, be, "float32", 3);
    for (const curvature of ["ggn", "hessian", "fisher"] as const) {
      for (const curvatureBatch of [1, 0.5]) {
        const live = be.liveBuffers();
        const opt = new SGN(paramsOf(p, be, "float32"), {
          curvature,
          curvatureBatch,
          trustRegion: true,
        });
        await opt.step(b.model, b.loss, () => sub);
        const flat = be.liveBuffers();
        for (let s = 0; s < 4; s++) await opt.step(b.model, b.loss, () => sub);
        assert.equal(be.liveBuffers(), flat, `${curvature}, ${curvatureBatch}: flat`);
        opt.dispose();
        assert.equal(be.liveBuffers(), live, `${curvature}, ${curvatureBatch}: dispose frees all`);
      }
    }
    b.dispose();
    sub.dispose();
  });
}
