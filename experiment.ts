/**
 * The seed's experiments as a function: its flags (mlp.py and conv_net.py) with their defaults,
 * parsed and validated, turned into a data set, a network and an optimizer, trained, and written
 * as the seed's config.json and results.json. cli.ts is the command-line face of this module; it
 * prints, this module does not.
 *
 * @module
 */

import { SgnError } from "./backend.ts";
import { BACKEND_CHOICES, type BackendChoice, init } from "./autodiff/device.ts";
import { ARCHITECTURES, convNet, type ConvNetSpec, mlp, type Network } from "./models/networks.ts";
import { SGN } from "./sgn/sgn.ts";
import type { Optimizer } from "./sgn/sgn.ts";
import { Adam, type LrSchedule, SGD } from "./sgn/baselines.ts";
import { InterruptedError, type ProgressEvent, type ResultsRecord, train } from "./sgn/train.ts";
import { fsError, RunFolder, runState, RunTakenError } from "./run_folder.ts";
import { type RhoDecay, SGN_DEFAULTS } from "./sgn/options.ts";
import {
  loadBoston,
  loadCifar10,
  type LoadedDataset,
  loadFashionMnist,
  loadMnist,
  loadSeedSine,
  seedSineFileName,
  sineWaves,
} from "./datasets/mod.ts";

/** One flag: its name at the command line, its meaning and its default (as text). */
export interface FlagSpec {
  name: string;
  help: string;
  default: string;
  kind: "string" | "int" | "number" | "bool" | "ints";
}

/** Every flag of `train`, with the seed's defaults. */
export const TRAIN_FLAGS: FlagSpec[] = [
  {
    name: "dataset",
    help: "mnist | fashion | cifar10 | boston | sine_10 | sine_100",
    default: "boston",
    kind: "string",
  },
  {
    name: "layers",
    help: "hidden layer sizes of the MLP, e.g. --layers 20 20 20",
    default: "16 16",
    kind: "ints",
  },
  {
    name: "architecture",
    help: "conv net: architecture_1..4 or a path to a JSON spec (default: MLP)",
    default: "",
    kind: "string",
  },
  { name: "solver", help: "SGN | SGD | Adam", default: "SGN", kind: "string" },
  { name: "epochs", help: "number of epochs", default: "1", kind: "int" },
  { name: "batch_size", help: "mini-batch size", default: "1000", kind: "int" },
  {
    name: "seed",
    help: "random seed (shuffling, splits; initialization with --init seeded)",
    default: "12",
    kind: "int",
  },
  {
    name: "init",
    help:
      "auto (as the seed: numpy seed 10 for MLPs, RandomState(1) for conv nets) | numpy10 | seeded",
    default: "auto",
    kind: "string",
  },
  {
    name: "order",
    help:
      "mini-batch order: python (the seed's: random.seed(--seed), random.shuffle per epoch) | permutation",
    default: "python",
    kind: "string",
  },
  {
    name: "rho",
    help: "SGN: damping rho of the Gauss-Newton matrix (DAMP_RHO)",
    default: "0.001",
    kind: "number",
  },
  { name: "beta", help: "SGN: gradient momentum (BETA)", default: "0", kind: "number" },
  {
    name: "cg_prec",
    help: "SGN: diagonal preconditioner for CG (CG_PREC)",
    default: "false",
    kind: "bool",
  },
  {
    name: "LS",
    help: "SGN: backtracking line search (LS; the seed's script always searched)",
    default: "true",
    kind: "bool",
  },
  { name: "TR", help: "SGN: trust-region damping (TR)", default: "true", kind: "bool" },
  {
    name: "rho_schedule",
    help: "SGN without TR: const | linear | cos (RHO_DECAY)",
    default: "const",
    kind: "string",
  },
  {
    name: "rho_min",
    help: "SGN: lower bound of rho (DAMP_RHO_MIN)",
    default: "1e-6",
    kind: "number",
  },
  {
    name: "cg_max_iter",
    help: "SGN: CG iterations from step K_cg on (MAX_CG_ITERS)",
    default: "10",
    kind: "int",
  },
  {
    name: "cg_min_iter",
    help: "SGN: CG iterations before step K_cg (MIN_CG_ITERS)",
    default: "10",
    kind: "int",
  },
  {
    name: "K_cg",
    help: "SGN: step at which CG switches to cg_max_iter (K_CG)",
    default: "10",
    kind: "int",
  },
  {
    name: "alpha_exp",
    help: "SGN: exponent of the preconditioner (ALPHA_EXP)",
    default: "1",
    kind: "number",
  },
  {
    name: "armijo",
    help:
      "SGN: Armijo right-hand side: shrinking (Algorithm 3.1) | seed (fixed at the initial step, as the seed)",
    default: "shrinking",
    kind: "string",
  },
  { name: "lr", help: "SGD/Adam: learning rate", default: "0.001", kind: "number" },
  { name: "mom", help: "SGD: heavy-ball momentum", default: "0", kind: "number" },
  { name: "scheduler", help: "SGD: const | linear | cos | step", default: "const", kind: "string" },
  { name: "lr_final", help: "SGD: final learning rate", default: "0.001", kind: "number" },
  {
    name: "K",
    help: "last step of the rho (SGN) or learning-rate (SGD) decay",
    default: "1000",
    kind: "int",
  },
  { name: "r", help: "SGD step decay: factor", default: "0.1", kind: "number" },
  { name: "step", help: "SGD step decay: steps between decays", default: "10", kind: "int" },
  {
    name: "verbose",
    help: "0: no progress; 1: progress (epoch, step, loss, accuracy, ETA)",
    default: "0",
    kind: "int",
  },
  {
    name: "path",
    help: "directory in which the results folder is made",
    default: "./",
    kind: "string",
  },
  { name: "f", help: "name of the results folder", default: "results", kind: "string" },
  {
    name: "backend",
    help: "auto | webgpu | native | cpu (default: SGN_BACKEND, else auto: a hardware GPU, " +
      "else native BLAS, else what exists)",
    default: "",
    kind: "string",
  },
  {
    name: "data-dir",
    help:
      "directory with IDX (mnist, fashion), CIFAR-10 binary files, or the seed's sine JSON files",
    default: "",
    kind: "string",
  },
  {
    name: "float64",
    help: "compute in float64 (a CPU backend: native or cpu), as the seed's runs did",
    default: "false",
    kind: "bool",
  },
];

/** Parsed and validated training flags. */
export type TrainArgs = Record<string, string | number | boolean | number[]>;

/**
 * Upper bounds of the numeric flags: far above any sensible run, low enough that a typo (an
 * extra zero, a pasted exponent) is an error instead of hours of work or unbounded memory.
 */
const MAXIMUM: Record<string, number> = {
  layers: 100000,
  epochs: 100000,
  batch_size: 10000000,
  seed: 2 ** 32 - 1,
  cg_max_iter: 10000,
  cg_min_iter: 10000,
  K_cg: 1e9,
  K: 1e9,
  step: 1e9,
  verbose: 1,
  rho: 1e12,
  rho_min: 1e12,
  beta: 0.999999,
  alpha_exp: 1,
  lr: 1e6,
  lr_final: 1e6,
  mom: 0.999999,
  r: 1,
};

/** The most hidden layers an MLP may have. */
const MAX_LAYERS = 100;

const INT_SYNTAX = /^\+?\d{1,16}$/;
const NUMBER_SYNTAX = /^[+]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

const TRUE = ["yes", "true", "t", "y", "1"];
const FALSE = ["no", "false", "f", "n", "0"];

/**
 * Parses `train`'s arguments: `--name value` or `--name=value`, `--layers` taking several
 * numbers. Unknown flags and bad values are errors that name them.
 */
export function parseTrainArgs(args: readonly string[]): TrainArgs {
  const byName = new Map(TRAIN_FLAGS.map((f) => [f.name, f]));
  const raw = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const token = args[i];
    if (!token.startsWith("--")) {
      throw new SgnError(`unexpected argument "${token}" (flags start with --)`);
    }
    let [name, value] = token.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    const flag = byName.get(name);
    if (!flag) throw new SgnError(`unknown flag --${name} (see --help)`);
    if (value === undefined) {
      if (flag.kind === "ints") {
        const values: string[] = [];
        while (i + 1 < args.length && !args[i + 1].startsWith("--")) values.push(args[++i]);
        value = values.join(" ");
      } else if (flag.kind === "bool" && (i + 1 >= args.length || args[i + 1].startsWith("--"))) {
        value = "true";
      } else {
        if (i + 1 >= args.length) throw new SgnError(`flag --${name} needs a value`);
        value = args[++i];
      }
    }
    raw.set(name, value);
  }
  const out: TrainArgs = {};
  for (const flag of TRAIN_FLAGS) {
    const text = raw.get(flag.name) ?? flag.default;
    const bad = (what: string) => new SgnError(`--${flag.name} must be ${what}, got "${text}"`);
    const max = MAXIMUM[flag.name] ?? Infinity;
    const upTo = max < Infinity ? ` up to ${max}` : "";
    switch (flag.kind) {
      case "string":
        out[flag.name] = text;
        break;
      case "int": {
        const zeroOk = ["verbose", "seed"].includes(flag.name);
        const v = Number(text);
        if (!INT_SYNTAX.test(text.trim()) || v < (zeroOk ? 0 : 1) || v > max) {
          throw bad(`${zeroOk ? "an integer from 0" : "a positive integer"}${upTo}`);
        }
        out[flag.name] = v;
        break;
      }
      case "number": {
        const v = Number(text);
        if (!NUMBER_SYNTAX.test(text.trim()) || !Number.isFinite(v) || v > max) {
          throw bad(`a number from 0${upTo}`);
        }
        out[flag.name] = v;
        break;
      }
      case "bool":
        if (TRUE.includes(text.toLowerCase())) out[flag.name] = true;
        else if (FALSE.includes(text.toLowerCase())) out[flag.name] = false;
        else throw bad(`a boolean (${TRUE.join("/")} or ${FALSE.join("/")})`);
        break;
      case "ints": {
        const words = text.split(/[\s,]+/).filter(Boolean);
        const parts = words.map(Number);
        if (
          parts.length === 0 || parts.length > MAX_LAYERS ||
          words.some((w, i) => !INT_SYNTAX.test(w) || parts[i] < 1 || parts[i] > max)
        ) {
          throw bad(`one to ${MAX_LAYERS} positive integers${upTo}`);
        }
        out[flag.name] = parts;
        break;
      }
    }
  }
  const choices: Record<string, string[]> = {
    dataset: ["mnist", "fashion", "cifar10", "boston", "sine_10", "sine_100"],
    solver: ["SGN", "SGD", "Adam"],
    rho_schedule: ["const", "linear", "cos"],
    armijo: ["shrinking", "seed"],
    init: ["auto", "numpy10", "seeded"],
    order: ["python", "permutation"],
    scheduler: ["const", "linear", "cos", "step"],
    backend: ["", ...BACKEND_CHOICES],
  };
  for (const [name, allowed] of Object.entries(choices)) {
    if (!allowed.includes(out[name] as string)) {
      const names = allowed.filter((v) => v !== "").join(", ");
      throw new SgnError(`--${name} must be one of ${names}, got "${out[name]}"`);
    }
  }
  if (out.float64 && out.backend === "webgpu") {
    throw new SgnError("--float64 needs a CPU backend (WebGPU computes in float32)");
  }
  const f = out.f as string;
  if (f === "" || f === "." || f === ".." || /[\/\\\0]/.test(f) || f.length > 200) {
    throw new SgnError(
      `--f must be a plain folder name (no slashes, not "." or "..", at most 200 characters), ` +
        `got "${f}": the run folder is made inside --path`,
    );
  }
  if ((out.path as string) === "") throw new SgnError(`--path must not be empty (default "./")`);
  return out;
}

/** The help text of `train`: every flag with its meaning and default. */
export function trainHelp(): string {
  const rows = TRAIN_FLAGS.map((f) =>
    `  --${f.name.padEnd(13)} ${f.help}${f.default !== "" ? ` (default: ${f.default})` : ""}`
  );
  return [
    "Usage: deno run -A cli.ts train [flags]",
    "",
    "Trains a network as the seed's mlp.py / conv_net.py do and writes config.json and",
    "results.json (the seed's keys) into <path>/<f>; an existing results.json is never overwritten.",
    "",
    ...rows,
  ].join("\n");
}

async function loadData(a: TrainArgs, conv: boolean): Promise<LoadedDataset> {
  const format = conv ? "conv" : "mlp";
  const dir = (a["data-dir"] as string) || undefined;
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
        : sineWaves(f, { seed: a.seed as number });
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

/** The seed's config.json `config` block for the chosen solver. */
export function seedConfig(a: TrainArgs): Record<string, unknown> {
  if (a.solver === "SGN") {
    return {
      SOLVER: "SGN",
      MAX_CG_ITERS: a.cg_max_iter,
      MIN_CG_ITERS: a.cg_min_iter,
      K_CG: a.K_cg,
      TR: a.TR,
      LS: a.LS,
      CG_TOL: SGN_DEFAULTS.cgTol,
      PRINT_LEVEL: a.verbose,
      MAX_LS_ITERS: SGN_DEFAULTS.maxLsIters,
      CG_PREC: a.cg_prec,
      DAMP_RHO: a.rho,
      RHO_LS: SGN_DEFAULTS.rhoLs,
      C_LS: SGN_DEFAULTS.cLs,
      ALPHA: SGN_DEFAULTS.alpha,
      BETA: a.beta,
      DAMP_RHO_MIN: a.rho_min,
      BATCH_SIZE: a.batch_size,
      ALPHA_EXP: a.alpha_exp,
      // Ours, not the seed's: which Armijo right-hand side the line search used.
      ARMIJO: a.armijo,
      ...(a.TR ? {} : { RHO_DECAY: a.rho_schedule, K: a.K }),
    };
  }
  return {
    SOLVER: a.solver,
    MOMENTUM: a.mom,
    LR0: a.lr,
    SCHEDULER: a.scheduler,
    LR_K: a.lr_final,
    K: a.K,
    EPOCHS: a.epochs,
    BATCH_SIZE: a.batch_size,
    ...(a.scheduler === "step" ? { STEP: a.step, REDUCTION: a.r } : {}),
  };
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
  a: TrainArgs,
  onProgress?: (e: ProgressEvent) => void,
  onStart?: (
    info: { network: Network; data: LoadedDataset; backend: string; folder: string },
  ) => void,
  signal?: AbortSignal,
): Promise<ExperimentOutcome> {
  const folder = `${(a.path as string).replace(/\/+$/, "") || "."}/${a.f}`;
  // Refuse early (before loading data) when the folder already holds a run; the exclusive
  // claim below is what makes this safe between processes.
  const before = await runState(folder, a.epochs as number).catch((e) => {
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
  const conv = (a.architecture as string) !== "" || a.dataset === "cifar10";
  const dtype = a.float64 ? "float64" : "float32";
  // An unset --backend leaves the choice to SGN_BACKEND, then to the auto rule.
  const backend = await init({ backend: (a.backend as BackendChoice) || undefined, dtype });
  const data = await loadData(a, conv);
  const network = conv
    ? convNet(
      await architecture((a.architecture as string) || "architecture_4"),
      data.inputShape,
      data.outputs,
    )
    : mlp({ inputs: data.inputShape[0], hidden: a.layers as number[], outputs: data.outputs });
  const numpySeed = numpyInitSeed(a.init as string, conv);
  const params = network.init({ seed: a.seed as number, backend, dtype, numpySeed });
  let optimizer: Optimizer;
  if (a.solver === "SGN") {
    optimizer = new SGN(params, {
      dampRho: a.rho as number,
      dampRhoMin: a.rho_min as number,
      beta: a.beta as number,
      cgPrec: a.cg_prec as boolean,
      alphaExp: a.alpha_exp as number,
      trustRegion: a.TR as boolean,
      rhoDecay: a.rho_schedule as RhoDecay,
      k: a.K as number,
      cgMaxIters: a.cg_max_iter as number,
      cgMinIters: a.cg_min_iter as number,
      kCg: a.K_cg as number,
      lineSearch: a.LS as boolean,
      armijo: a.armijo as "shrinking" | "seed",
    });
  } else if (a.solver === "SGD") {
    optimizer = new SGD(params, {
      lr: a.lr as number,
      momentum: a.mom as number,
      schedule: a.scheduler as LrSchedule,
      lrFinal: a.lr_final as number,
      k: a.K as number,
      decay: a.r as number,
      step: a.step as number,
    });
  } else {
    optimizer = new Adam(params, { lr: a.lr as number });
  }
  const run = await RunFolder.claim(folder);
  const config = {
    config: seedConfig(a),
    ...(conv ? { architecture: a.architecture || "architecture_4" } : { layers: a.layers }),
    dataset: a.dataset,
    ...(a["data-dir"] ? { data_dir: a["data-dir"] } : {}),
    seed: a.seed,
    init: numpySeed === undefined ? "seeded" : `numpy${numpySeed}`,
    order: a.order,
    epochs: a.epochs,
    backend: backend.name,
    dtype,
  };
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
      epochs: a.epochs as number,
      batchSize: a.batch_size as number,
      seed: a.seed as number,
      order: a.order as "python" | "permutation",
      backend,
      dtype,
      signal,
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
