/**
 * The training loop of the seed's experiments: epochs over in-memory arrays, shuffled by a seeded
 * generator, in mini-batches (the last one smaller), with per-epoch mean loss, train accuracy,
 * test metric and elapsed time, returned in the seed's results format. It never prints: progress
 * goes to a callback.
 *
 * @module
 */

import type { Backend } from "../kernel/backend.ts";

import { checkInt, SgnError } from "../errors.ts";

import type { DType } from "../kernel/shape.ts";
import { scope, type Tensor, tensor } from "../autodiff/tensor.ts";
import { PythonRandom, Random } from "../random.ts";
import type { Network } from "../models/networks.ts";
import { accuracy, meanSquaredError, oneHot, softmaxCrossEntropy } from "../models/losses.ts";
import { type Optimizer, SGN } from "../sgn/sgn.ts";
import { checkKnownOptions, SGN_DEFAULTS } from "../sgn/options.ts";
import {
  type CurvatureDiagnostics,
  dampedCondition,
  ggnDiagnostics,
} from "../linalg/diagnostics.ts";

export type { Dataset } from "../datasets/synthetic.ts";
import type { Dataset } from "../datasets/synthetic.ts";

/** Options of {@link train}. */
export interface TrainOptions {
  /** The network; its parameters are the optimizer's. */
  network: Network;
  /** The optimizer, holding the parameters (SGN, SGD, Adam or one of your own). */
  optimizer: Optimizer;
  /** "classification" (softmax cross-entropy over labels) or "regression" (mean squared error). */
  task: "classification" | "regression";
  /** The training data, shuffled into mini-batches every epoch. */
  train: Dataset;
  /** Test data, evaluated after every epoch (test_acc or test_loss); none when absent. */
  test?: Dataset;
  /** Passes over the training data. */
  epochs: number;
  /** Samples per mini-batch (the last batch of an epoch may be smaller). */
  batchSize: number;
  /** Seed of the shuffling. */
  seed?: number;
  /**
   * Mini-batch order. "python" (default) is the seed's: Python's `random.seed(seed)`, then
   * `random.shuffle` of one index list every epoch (each epoch reshuffles the previous order),
   * so runs see the seed's exact batches; "permutation" draws a fresh permutation per epoch from
   * our generator.
   */
  order?: "python" | "permutation";
  /** Backend the batches are uploaded to: the one holding the optimizer's parameters. */
  backend: Backend;
  /** Element type of the batches (float64 only on the CPU backend). Default float32. */
  dtype?: DType;
  /** Called after every step and every epoch. */
  onProgress?: (event: ProgressEvent) => void;
  /**
   * Awaited after every epoch with the record so far (e.g. to write results.json, so that a
   * crash keeps the finished epochs).
   */
  onEpoch?: (record: ResultsRecord) => Promise<void>;
  /** Stops the run between two steps, with an {@link InterruptedError}. */
  signal?: AbortSignal;
  /**
   * Curvature diagnostics every `diagnose.every` steps, recorded in the results' `diagnostics`
   * (see {@link DiagnoseOptions}); off when absent or when `every` is 0.
   */
  diagnose?: DiagnoseOptions;
}

/**
 * What `train({ diagnose })` measures: before steps 1, 1 + every, 1 + 2 every, ..., on the
 * step's mini-batch at the parameters the step starts from, the top eigenvalue of the
 * Gauss-Newton matrix G (Lanczos), its trace (Hutchinson) and the condition number of G + rho I,
 * rho being the damping of that SGN step (for other optimizers `rho`, by default the SGN default
 * damping). The time it takes is left out of the run's times (epoch_time, tot_time, progress);
 * the training itself is unchanged (the same batches, parameters and results).
 */
export interface DiagnoseOptions {
  /** Steps between two measurements; 0 turns them off. */
  every: number;
  /** Lanczos steps of each measurement; default 20. */
  lanczosSteps?: number;
  /** Hutchinson probes of each measurement; default 10. */
  probes?: number;
  /** The damping of the condition number for optimizers other than SGN (default 1e-3). */
  rho?: number;
}

const DIAGNOSE_OPTIONS: readonly (keyof DiagnoseOptions)[] = [
  "every",
  "lanczosSteps",
  "probes",
  "rho",
];

/** `diagnose` checked, with its defaults; undefined when off. */
function resolveDiagnose(d: DiagnoseOptions | undefined): Required<DiagnoseOptions> | undefined {
  if (d === undefined) return undefined;
  checkKnownOptions(d, DIAGNOSE_OPTIONS, "train diagnose");
  const every = checkInt(d.every, "train: diagnose.every", 0);
  if (every === 0) return undefined;
  const rho = d.rho ?? SGN_DEFAULTS.dampRho;
  if (typeof rho !== "number" || !Number.isFinite(rho) || rho < 0) {
    throw new SgnError(`train: diagnose.rho must be a number >= 0, got ${rho}`);
  }
  return {
    every,
    lanczosSteps: checkInt(d.lanczosSteps ?? 20, "train: diagnose.lanczosSteps", 1),
    probes: checkInt(d.probes ?? 10, "train: diagnose.probes", 1),
    rho,
  };
}

/** A finite measurement, or null (JSON has no NaN or Infinity). */
function finiteOrNull(x: number): number | null {
  return Number.isFinite(x) ? x : null;
}

/** The fields of {@link TrainOptions}, for the unknown-field check. */
const TRAIN_OPTIONS: readonly (keyof TrainOptions)[] = [
  "network",
  "optimizer",
  "task",
  "train",
  "test",
  "epochs",
  "batchSize",
  "seed",
  "order",
  "backend",
  "dtype",
  "onProgress",
  "onEpoch",
  "signal",
  "diagnose",
];

/**
 * How often (ms) a run with a stop signal lets the event loop turn between two steps. On a CPU
 * backend a step resolves without ever leaving the microtask queue, so a signal listener (Ctrl-C,
 * SIGTERM) would otherwise run only when the epoch ends. A turn (`setTimeout(0)`) costs about
 * 3 ms in Deno, so it is taken at most every 100 ms: under 3% of the time, and a stop request is
 * seen within one step of it.
 */
const YIELD_MS = 100;

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** Thrown by {@link train} when its signal aborts the run. */
export class InterruptedError extends SgnError {
  /** Always "InterruptedError". */
  override name = "InterruptedError";
}

/** Progress of a run. */
export interface ProgressEvent {
  /** After a step, or after an epoch (its test set evaluated and its record updated). */
  kind: "step" | "epoch";
  /** The epoch, counted from 1. */
  epoch: number;
  /** The step within the epoch, counted from 1 (stepsPerEpoch on epoch events). */
  step: number;
  /** Mini-batches per epoch. */
  stepsPerEpoch: number;
  /** The step's mini-batch loss, or the epoch's mean training loss on epoch events. */
  loss: number;
  /** Seconds since the run started (time spent on diagnostics left out). */
  elapsed: number;
  /** Set on epoch events. */
  record?: ResultsRecord;
}

export type { ResultsRecord } from "./results.ts";
import type { ResultsRecord } from "./results.ts";

function sampleSize(net: Network): number {
  return net.inputShape.reduce((a, b) => a * b, 1);
}

function batchOf(
  data: Dataset,
  rows: ArrayLike<number>,
  net: Network,
  task: TrainOptions["task"],
  be: Backend,
  dtype: DType = "float32",
): { x: Tensor; y: Tensor } {
  const size = sampleSize(net);
  const xs = new Float32Array(rows.length * size);
  for (let i = 0; i < rows.length; i++) {
    xs.set(data.inputs.subarray(rows[i] * size, rows[i] * size + size), i * size);
  }
  const x = tensor(xs, [rows.length, ...net.inputShape], { backend: be, dtype });
  if (task === "classification") {
    const labels = Array.from(rows, (r) => data.targets[r]);
    return { x, y: oneHot(labels, net.outputs, { backend: be, dtype }) };
  }
  const d = net.outputs;
  const ys = new Float32Array(rows.length * d);
  for (let i = 0; i < rows.length; i++) {
    for (let j = 0; j < d; j++) ys[i * d + j] = data.targets[rows[i] * d + j];
  }
  return { x, y: tensor(ys, [rows.length, d], { backend: be, dtype }) };
}

function checkData(data: Dataset, net: Network, task: TrainOptions["task"], what: string): number {
  const size = sampleSize(net);
  const n = data.inputs.length / size;
  if (!Number.isInteger(n) || n === 0) {
    throw new SgnError(
      `${what}: ${data.inputs.length} input values are not a whole number of samples of ${size}`,
    );
  }
  const per = task === "classification" ? 1 : net.outputs;
  if (data.targets.length !== n * per) {
    throw new SgnError(
      `${what}: ${n} samples but ${data.targets.length} targets (expected ${n * per})`,
    );
  }
  return n;
}

/** Rejects NaN and infinite values (also values a float32 cannot hold), naming the first. */
function checkFinite(data: Dataset, what: string): void {
  for (const [name, arr] of [["input", data.inputs], ["target", data.targets]] as const) {
    for (let i = 0; i < arr.length; i++) {
      if (!Number.isFinite(arr[i])) {
        throw new SgnError(
          `${what}: ${name} value ${i} is ${arr[i]}; the data must be finite (check the file ` +
            "it came from, or clean the data before training)",
        );
      }
    }
  }
}

/** Mean loss and accuracy (classification) over a data set, in batches. */
async function evaluate(
  data: Dataset,
  opts: TrainOptions,
): Promise<{ loss: number; acc: number }> {
  const n = checkData(data, opts.network, opts.task, "test set");
  let loss = 0;
  let acc = 0;
  for (let start = 0; start < n; start += opts.batchSize) {
    const rows = Array.from({ length: Math.min(opts.batchSize, n - start) }, (_, i) => start + i);
    const { x, y } = batchOf(data, rows, opts.network, opts.task, opts.backend, opts.dtype);
    const held = [x, y];
    try {
      const lossFn = opts.task === "classification" ? softmaxCrossEntropy(y) : meanSquaredError(y);
      const stats = scope(() => {
        const z = opts.network.forward(opts.optimizer.params, x);
        return opts.task === "classification"
          ? [lossFn.value(z), accuracy(z, y)]
          : [lossFn.value(z)];
      });
      held.push(...stats);
      const values = await Promise.all(stats.map((s) => s.data()));
      loss += values[0][0] * rows.length;
      if (values[1]) acc += values[1][0] * rows.length;
    } finally {
      for (const t of held) t.dispose();
    }
  }
  return { loss: loss / n, acc: acc / n };
}

/**
 * Trains for `epochs` epochs and returns the seed's results record.
 *
 * @example
 * ```ts
 * import { init, mlp, SGN, train } from "../mod.ts";
 * const backend = await init({ backend: "cpu" });
 * const net = mlp({ inputs: 1, hidden: [8], outputs: 1 });
 * const xs = Float32Array.from({ length: 64 }, (_, i) => i / 64);
 * const results = await train({
 *   network: net, optimizer: new SGN(net.init()), task: "regression", backend,
 *   train: { inputs: xs, targets: xs.map((x) => x * x) }, epochs: 2, batchSize: 16,
 * });
 * console.log(results.avg_loss);
 * ```
 */
export async function train(opts: TrainOptions): Promise<ResultsRecord> {
  checkKnownOptions(opts, TRAIN_OPTIONS, "train");
  if (opts.task !== "classification" && opts.task !== "regression") {
    throw new SgnError(`train: task must be "classification" or "regression", got "${opts.task}"`);
  }
  const n = checkData(opts.train, opts.network, opts.task, "training set");
  checkFinite(opts.train, "training set");
  if (opts.test) {
    checkData(opts.test, opts.network, opts.task, "test set");
    checkFinite(opts.test, "test set");
  }
  if (!Number.isInteger(opts.epochs) || opts.epochs < 1) {
    throw new SgnError(`train: epochs must be a positive integer, got ${opts.epochs}`);
  }
  if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) {
    throw new SgnError(`train: batchSize must be a positive integer, got ${opts.batchSize}`);
  }
  const order = opts.order ?? "python";
  if (order !== "python" && order !== "permutation") {
    throw new SgnError(`train: order must be "python" or "permutation", got "${order}"`);
  }
  const seed = checkInt(opts.seed ?? 1, "train: seed", 0);
  const diagnose = resolveDiagnose(opts.diagnose);
  const python = order === "python" ? new PythonRandom(seed) : undefined;
  const rng = python ? undefined : new Random(seed);
  const indices = Uint32Array.from({ length: n }, (_, i) => i);
  const classification = opts.task === "classification";
  const record: ResultsRecord = {
    avg_loss: [],
    ...(classification ? { acc: [], test_acc: [], tot_epochs: 0 } : { test_loss: [] }),
    tot_time: 0,
    tot_iterations: 0,
    ...(opts.optimizer instanceof SGN ? { rho: [], alpha: [] } : {}),
    epoch_time: [],
    ...(diagnose
      ? {
        diagnostics: {
          step: [],
          epoch: [],
          top_eigenvalue: [],
          bottom_eigenvalue: [],
          trace: [],
          trace_std_error: [],
          rho: [],
          condition: [],
        },
      }
      : {}),
  };
  const stepsPerEpoch = Math.ceil(n / opts.batchSize);
  const t0 = performance.now();
  // Milliseconds spent on diagnostics, left out of every time the run reports.
  let diagnosing = 0;
  const seconds = () => (performance.now() - t0 - diagnosing) / 1000;
  let iterations = 0;
  let lastYield = t0;
  for (let epoch = 1; epoch <= opts.epochs; epoch++) {
    let rows: Uint32Array;
    if (python) {
      python.shuffle(indices);
      rows = indices;
    } else {
      rows = rng!.permutation(n);
    }
    let lossSum = 0;
    let accSum = 0;
    for (let s = 0; s < stepsPerEpoch; s++) {
      if (opts.signal && performance.now() - lastYield > YIELD_MS) {
        await yieldToEventLoop();
        lastYield = performance.now();
      }
      if (opts.signal?.aborted) {
        throw new InterruptedError(
          `interrupted in epoch ${epoch} at step ${s + 1} of ${stepsPerEpoch}` +
            (opts.signal.reason instanceof Error
              ? ""
              : opts.signal.reason
              ? ` (${opts.signal.reason})`
              : ""),
        );
      }
      const batch = rows.subarray(s * opts.batchSize, Math.min(n, (s + 1) * opts.batchSize));
      const { x, y } = batchOf(
        opts.train,
        batch,
        opts.network,
        opts.task,
        opts.backend,
        opts.dtype,
      );
      // A curvature mini-batch (SGN's curvatureBatch) is the batch's first rows: the batch is a
      // window of a shuffled order, so they are a uniformly random subset of it.
      const parts: Tensor[] = [];
      const lossOf = (t: Tensor) => classification ? softmaxCrossEntropy(t) : meanSquaredError(t);
      const firstRows = (m: number) => {
        const part = batchOf(
          opts.train,
          batch.subarray(0, m),
          opts.network,
          opts.task,
          opts.backend,
          opts.dtype,
        );
        parts.push(part.x, part.y);
        return { model: (...p: Tensor[]) => opts.network.forward(p, part.x), loss: lossOf(part.y) };
      };
      try {
        const lossFn = lossOf(y);
        const model = (...p: Tensor[]) => opts.network.forward(p, x);
        // Measured before the step: the G its conjugate gradient uses.
        let measured: CurvatureDiagnostics | null | undefined;
        if (diagnose && iterations % diagnose.every === 0) {
          const start = performance.now();
          try {
            measured = await ggnDiagnostics(model, lossFn, opts.optimizer.params, {
              lanczosSteps: diagnose.lanczosSteps,
              probes: diagnose.probes,
              seed: seed * 100003 + iterations,
            });
          } catch (e) {
            // Products that are not finite: recorded as not measured; the step says the rest.
            if (!(e instanceof SgnError)) throw e;
            measured = null;
          }
          diagnosing += performance.now() - start;
        }
        const rec = await opts.optimizer.step(model, lossFn, firstRows);
        lossSum += rec.loss;
        if (classification) {
          // The batch accuracy where the seed scores it (the optimizer reports it from outputs
          // it evaluated); an optimizer that does not report it is scored after its step.
          if (rec.metric !== undefined) accSum += rec.metric;
          else {
            const acc = scope(() => accuracy(opts.network.forward(opts.optimizer.params, x), y));
            accSum += (await acc.data())[0];
            acc.dispose();
          }
        }
        if (opts.optimizer instanceof SGN) {
          const r = rec as unknown as { rho: number; alpha: number };
          record.rho!.push(r.rho);
          record.alpha!.push(r.alpha);
        }
        if (measured !== undefined) {
          const d = record.diagnostics!;
          const rho = opts.optimizer instanceof SGN
            ? (rec as unknown as { rho: number }).rho
            : diagnose!.rho;
          d.step.push(iterations + 1);
          d.epoch.push(epoch);
          d.top_eigenvalue.push(measured ? finiteOrNull(measured.topEigenvalue) : null);
          d.bottom_eigenvalue.push(measured ? finiteOrNull(measured.bottomEigenvalue) : null);
          d.trace.push(measured ? finiteOrNull(measured.trace) : null);
          d.trace_std_error.push(measured ? finiteOrNull(measured.traceStdError) : null);
          d.rho.push(rho);
          d.condition.push(
            measured
              ? finiteOrNull(
                dampedCondition(measured.topEigenvalue, measured.bottomEigenvalue, rho),
              )
              : null,
          );
        }
        iterations++;
        opts.onProgress?.({
          kind: "step",
          epoch,
          step: s + 1,
          stepsPerEpoch,
          loss: rec.loss,
          elapsed: seconds(),
        });
      } finally {
        x.dispose();
        y.dispose();
        for (const t of parts) t.dispose();
      }
    }
    const avgLoss = lossSum / stepsPerEpoch;
    const test = opts.test ? await evaluate(opts.test, opts) : undefined;
    // A non-finite figure cannot be recorded (JSON has no NaN): the run has diverged, and the
    // record keeps the epochs before this one.
    const bad = !Number.isFinite(avgLoss)
      ? `the mean training loss is ${avgLoss}`
      : test && !Number.isFinite(test.loss)
      ? `the test loss is ${test.loss}`
      : undefined;
    if (bad) {
      throw new SgnError(
        `epoch ${epoch}: ${bad}; the run diverged (try a smaller learning rate or step, or more ` +
          "damping)",
      );
    }
    record.avg_loss.push(avgLoss);
    if (classification) record.acc!.push(accSum / stepsPerEpoch);
    if (test) {
      if (classification) record.test_acc!.push(test.acc);
      else record.test_loss!.push(test.loss);
    }
    record.tot_time = seconds();
    record.tot_iterations = iterations;
    if (classification) record.tot_epochs = epoch;
    record.epoch_time.push(record.tot_time);
    await opts.onEpoch?.(structuredClone(record));
    opts.onProgress?.({
      kind: "epoch",
      epoch,
      step: stepsPerEpoch,
      stepsPerEpoch,
      loss: record.avg_loss.at(-1)!,
      elapsed: seconds(),
      record,
    });
  }
  return record;
}
