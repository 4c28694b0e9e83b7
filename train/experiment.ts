/**
 * The seed's experiments as a function: its flags (mlp.py and conv_net.py) with their defaults,
 * parsed and validated, turned into a data set, a network and an optimizer, trained, and written
 * as the seed's config.json and results.json. cli.ts is the command-line face of this module; it
 * prints, this module does not.
 *
 * @module
 */

import type { Backend } from "../kernel/backend.ts";

import type { DType } from "../kernel/shape.ts";

import { SgnError } from "../errors.ts";
import { init } from "../autodiff/device.ts";
import { ARCHITECTURES, convNet, type ConvNetSpec, mlp, type Network } from "../models/networks.ts";
import { SGN } from "../sgn/sgn.ts";
import type { Optimizer } from "../sgn/sgn.ts";
import { Adam, SGD } from "../sgn/baselines.ts";
import { InterruptedError, type ProgressEvent, type ResultsRecord, train } from "./loop.ts";
import { fsError, RunFolder, runState, RunTakenError } from "./run_folder.ts";
import { optionsFor, seedConfig, settingsRecord, type TrainSettings } from "./settings.ts";
import {
  loadBoston,
  loadCifar10,
  type LoadedDataset,
  loadFashionMnist,
  loadMnist,
  loadSeedSine,
  seedSineFileName,
  sineWaves,
} from "../datasets/mod.ts";

async function loadData(a: TrainSettings, conv: boolean): Promise<LoadedDataset> {
  const format = conv ? "conv" : "mlp";
  const dir = a["data-dir"] || undefined;
  switch (a.dataset) {
    case "mnist":
      return await loadMnist(format, dir);
    case "fashion":
      return await loadFashionMnist(format, dir);
    case "cifar10":
      return await loadCifar10(dir ?? "./cifar-10-batches-bin", format);
    case "boston":
      return await loadBoston({ split: "keras" });
    default: {
      const f = a.dataset === "sine_10" ? 10 : 100;
      // With --data-dir, the seed's own data file (it was generated without a random seed).
      return dir
        ? await loadSeedSine(`${dir.replace(/\/+$/, "")}/${seedSineFileName(f)}`, f)
        : sineWaves(f, { seed: a.seed });
    }
  }
}

async function architecture(name: string): Promise<ConvNetSpec> {
  if (Object.hasOwn(ARCHITECTURES, name)) return ARCHITECTURES[name];
  let text: string;
  try {
    const st = await Deno.stat(name);
    if (!st.isFile || st.size > 1 << 20) throw new Error("not a small regular file");
    text = await Deno.readTextFile(name);
  } catch {
    throw new SgnError(
      `--architecture: "${name}" is neither a built-in (${
        Object.keys(ARCHITECTURES).join(", ")
      }) ` +
        "nor a readable JSON file (at most 1 MiB)",
    );
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new SgnError(`--architecture: ${name} is not valid JSON (${(e as Error).message})`);
  }
}

/**
 * The NumPy seed of the initialization that `--init` asks for (undefined: our seeded generator).
 * The seed draws MLP weights after `np.random.seed(10)` and conv-net weights from
 * `np.random.RandomState(1)`, whatever its --seed says, so all its runs share one initialization;
 * `auto` does the same.
 */
export function numpyInitSeed(init: string, conv: boolean): number | undefined {
  if (init === "seeded") return undefined;
  if (conv && init === "numpy10") {
    throw new SgnError(
      "--init numpy10 is the seed's MLP initialization; conv nets take --init auto or seeded",
    );
  }
  return conv ? 1 : 10;
}

/**
 * A run's config.json: the seed's `config` block for its solver, its network (`layers`, or
 * `architecture` for a conv net), the settings recorded at the top level, and where and how it
 * ran (data folder, initialization, backend, precision).
 *
 * @example
 * ```ts
 * import { runConfig } from "./experiment.ts";
 * import { resolveSettings } from "./settings.ts";
 * const c = runConfig(resolveSettings({ dataset: "mnist", layers: [20, 20, 20] }), "native");
 * console.log(c.config, c.layers, c.dtype); // { SOLVER: "SGN", MAX_CG_ITERS: 10, ... } [20, 20, 20] float32
 * ```
 */
export function runConfig(a: TrainSettings, backend: string): Record<string, unknown> {
  const conv = isConv(a);
  const numpySeed = numpyInitSeed(a.init, conv);
  return {
    config: seedConfig(a),
    ...(conv ? { architecture: a.architecture || "architecture_4" } : { layers: a.layers }),
    ...settingsRecord(a),
    ...(a["data-dir"] ? { data_dir: a["data-dir"] } : {}),
    init: numpySeed === undefined ? "seeded" : `numpy${numpySeed}`,
    backend,
    dtype: a.float64 ? "float64" : "float32",
  };
}

/** Whether the settings ask for a conv net (an architecture, or CIFAR-10, which needs one). */
function isConv(a: TrainSettings): boolean {
  return a.architecture !== "" || a.dataset === "cifar10";
}

/**
 * What one training step needs at most, from the network's shapes alone (before anything is
 * allocated): `bytes` in all, and the largest single buffer. Parameters count ten times (the
 * parameters, the gradient, CG's four vectors, momentum, the line search's candidate, the
 * preconditioner and a spare), the batch's activations four times (values, tangents, cotangents
 * and a temporary). An estimate, within a small factor: it tells a network that fits from one
 * that cannot.
 *
 * @example
 * ```ts
 * import { stepMemory } from "./experiment.ts";
 * import { mlp } from "../models/networks.ts";
 * const net = mlp({ inputs: 784, hidden: [20, 20, 20], outputs: 10 });
 * console.log(stepMemory(net, 1000, "float32").bytes); // about 1.2 MB
 * ```
 */
export function stepMemory(
  network: Network,
  batch: number,
  dtype: DType,
): { bytes: number; largestBuffer: number } {
  const size = dtype === "float64" ? 8 : 4;
  const activations = network.layerSizes.reduce((a, b) => a + b, 0) * batch;
  const widest = Math.max(0, ...network.layerSizes) * batch;
  return {
    bytes: (10 * network.paramCount + 4 * activations) * size,
    largestBuffer: Math.max(network.paramCount, widest) * size,
  };
}

/**
 * Refuses, in one line, a network and batch whose training step cannot fit: more memory than the
 * machine has (or 64 GiB where it cannot be asked), or one buffer larger than the device holds.
 */
export function checkStepMemory(
  network: Network,
  batch: number,
  dtype: DType,
  backend: Backend,
): void {
  const need = stepMemory(network, batch, dtype);
  let total = 64 * 2 ** 30;
  try {
    total = Deno.systemMemoryInfo().total;
  } catch {
    // no --allow-sys: the stated limit stands
  }
  const gib = (b: number) => `${(b / 2 ** 30).toPrecision(3)} GiB`;
  const what = `${network.name}: ${network.paramCount} parameters, and activations of ` +
    `${network.layerSizes.reduce((a, b) => a + b, 0)} values a sample for a batch of ${batch}`;
  const fix = "use fewer or narrower layers, or a smaller --batch_size";
  if (!(need.bytes <= total)) {
    throw new SgnError(
      `the network is too large: a training step needs about ${gib(need.bytes)} (${what}), ` +
        `more than this machine's ${gib(total)} of memory; ${fix}`,
    );
  }
  if (!(need.largestBuffer <= backend.maxBufferBytes)) {
    throw new SgnError(
      `the network is too large for the ${backend.name} backend: one of its buffers needs ` +
        `${gib(need.largestBuffer)} (${what}), more than the ${
          gib(backend.maxBufferBytes)
        } the device holds in one buffer; ${fix}, or a CPU backend (--backend native)`,
    );
  }
}

/** What {@link runExperiment} reports back. */
export interface ExperimentOutcome {
  folder: string;
  network: Network;
  data: LoadedDataset;
  results: ResultsRecord;
  backend: string;
}

/**
 * Runs one training experiment from parsed flags and writes config.json and results.json into
 * `<path>/<f>`, which it claims exclusively ({@link RunFolder}); results.json is rewritten after
 * every epoch with a status (running, then finished; diverged or interrupted, with the reason,
 * when the run stops early). Refuses to start when the folder holds a finished or live run.
 * `signal` interrupts the run between two steps.
 */
export async function runExperiment(
  a: TrainSettings,
  onProgress?: (e: ProgressEvent) => void,
  onStart?: (
    info: { network: Network; data: LoadedDataset; backend: string; folder: string },
  ) => void,
  signal?: AbortSignal,
): Promise<ExperimentOutcome> {
  const folder = `${a.path.replace(/\/+$/, "") || "."}/${a.f}`;
  // Refuse early (before loading data) when the folder already holds a run; the exclusive
  // claim below is what makes this safe between processes.
  const before = await runState(folder, a.epochs).catch((e) => {
    throw fsError(e, `cannot use the results folder ${folder}`);
  });
  if (before.kind === "finished" || before.kind === "live") {
    throw new RunTakenError(
      before.kind === "live"
        ? `${folder} is being trained by another run (${before.claim}); choose another --f`
        : `refusing to overwrite ${folder}/results.json: that results folder already holds a ` +
          "run (choose another --f or --path, or remove it)",
    );
  }
  const conv = isConv(a);
  const dtype = a.float64 ? "float64" : "float32";
  // An unset --backend leaves the choice to SGN_BACKEND, then to the auto rule.
  const backend = await init({ backend: a.backend || undefined, dtype });
  const data = await loadData(a, conv);
  const network = conv
    ? convNet(
      await architecture(a.architecture || "architecture_4"),
      data.inputShape,
      data.outputs,
    )
    : mlp({ inputs: data.inputShape[0], hidden: a.layers, outputs: data.outputs });
  const numpySeed = numpyInitSeed(a.init, conv);
  checkStepMemory(network, a.batch_size, dtype, backend);
  const params = network.init({ seed: a.seed, backend, dtype, numpySeed });
  const optimizer: Optimizer = a.solver === "SGN"
    ? new SGN(params, optionsFor(a, "SGN"))
    : a.solver === "SGD"
    ? new SGD(params, optionsFor(a, "SGD"))
    : new Adam(params, optionsFor(a, "Adam"));
  const run = await RunFolder.claim(folder);
  const config = runConfig(a, backend.name);
  let last: ResultsRecord | undefined;
  try {
    await run.writeConfig(config);
    onStart?.({ network, data, backend: `${backend.name} (${backend.description})`, folder });
    const results = await train({
      network,
      optimizer,
      task: data.task,
      train: data.train,
      test: data.test,
      epochs: a.epochs,
      batchSize: a.batch_size,
      seed: a.seed,
      order: a.order,
      backend,
      dtype,
      signal,
      diagnose: {
        every: a.diagnose,
        lanczosSteps: a.diagnose_lanczos,
        probes: a.diagnose_probes,
      },
      onProgress: (e) => {
        if (e.kind === "step") void run.heartbeat();
        onProgress?.(e);
      },
      onEpoch: async (record) => {
        last = record;
        await run.writeResults(record, "running");
      },
    });
    await run.writeResults(results, "finished");
    return { folder, network, data, results, backend: backend.name };
  } catch (e) {
    // Keep the finished epochs, with what stopped the run.
    const status = e instanceof InterruptedError || !(e instanceof SgnError)
      ? "interrupted"
      : "diverged";
    const reason = e instanceof Error ? e.message : String(e);
    const empty = { avg_loss: [], tot_time: 0, tot_iterations: 0, epoch_time: [] };
    await run.writeResults(last ?? empty, status, reason).catch(() => {});
    throw e;
  } finally {
    optimizer.dispose();
  }
}
