/**
 * The command line of sgn. Until the experiment CLI (data sets, the seed's flags, results files)
 * exists, `deno run -A cli.ts` (or `deno task demo`) trains the seed's sine regression with SGN.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  type Backend,
  type BackendChoice,
  init,
  mlp,
  Random,
  SGN,
  SgnError,
  train,
} from "./mod.ts";
import { parseTrainArgs, runExperiment, trainHelp } from "./experiment.ts";

/** `train`: the seed's experiments with its flags; progress on a terminal, plain lines otherwise. */
async function trainCommand(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(trainHelp());
    return 0;
  }
  const parsed = parseTrainArgs(args);
  const tty = Deno.stdout.isTerminal();
  const verbose = parsed.verbose as number;
  const encoder = new TextEncoder();
  let accSum = 0;
  const outcome = await runExperiment(
    parsed,
    (e) => {
      if (e.kind === "step" && verbose >= 1) {
        const done = (e.epoch - 1) * e.stepsPerEpoch + e.step;
        const total = (parsed.epochs as number) * e.stepsPerEpoch;
        const eta = (e.elapsed / done) * (total - done);
        const line = `epoch ${e.epoch}/${parsed.epochs} step ${e.step}/${e.stepsPerEpoch} ` +
          `loss ${e.loss.toFixed(4)} elapsed ${e.elapsed.toFixed(1)} s ETA ${eta.toFixed(0)} s`;
        if (tty) Deno.stdout.writeSync(encoder.encode(`\r${line}\x1b[K`));
        else if (e.step % 5 === 0) console.log(line);
      }
      if (e.kind === "epoch" && e.record) {
        const r = e.record;
        const metric = r.test_acc
          ? `train acc ${(100 * r.acc!.at(-1)!).toFixed(2)}%, test acc ${
            (100 * r.test_acc.at(-1)!).toFixed(2)
          }%`
          : `test loss ${r.test_loss!.at(-1)!.toFixed(5)}`;
        if (tty && verbose >= 1) Deno.stdout.writeSync(encoder.encode("\r\x1b[K"));
        console.log(
          `epoch ${e.epoch}: loss ${r.avg_loss.at(-1)!.toFixed(5)}, ${metric}, ${
            e.elapsed.toFixed(1)
          } s`,
        );
        accSum++;
      }
    },
    (info) => {
      console.log(`backend: ${info.backend}`);
      console.log(
        `data: ${info.data.name}, ${info.data.train.targets.length} training and ` +
          `${info.data.test.targets.length} test samples; network: ${info.network.name} ` +
          `(${info.network.paramCount} parameters)`,
      );
      console.log(`results: ${info.folder}`);
    },
  );
  console.log(`wrote ${outcome.folder}/config.json and results.json (${accSum} epochs)`);
  return 0;
}

const HELP = `Usage: deno run -A cli.ts [demo] [options]
       deno run -A cli.ts train [flags]    (the seed's experiments; train --help lists the flags)

Trains the seed's sine-regression MLP (1-20-20-20-1, sigmoid; 10,000 points x ~ U(-1, 1),
y = sin(f x) + N(0, 0.01^2), the first 30% held out) with SGN as the seed configures it
(rho 1e-4, trust region and line search on, rho_min 1e-6, 10 CG iterations), printing the
test loss after every epoch. The full experiment CLI (data sets, the seed's flags, results
files) is being built.

Options:
  --backend webgpu|cpu|auto   backend (default: auto, or SGN_BACKEND)
  --epochs N                  epochs (default 5)
  --f F                       frequency of the sine (default 10)
  --cg-iters N                CG iterations (default 10)
  --seed N                    seed of data, initialization and shuffling (default 1)
  --float64                   compute in float64 (CPU backend only), as the seed did
  -h, --help                  this text`;

async function demo(be: Backend, o: Record<string, number>, float64: boolean) {
  const rng = new Random(o.seed);
  const n = 10000;
  const xs = new Float32Array(n);
  const ys = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    xs[i] = rng.range(-1, 1);
    ys[i] = Math.sin(o.f * xs[i]) + 0.01 * rng.normal();
  }
  const cut = 0.3 * n;
  const dtype = float64 ? "float64" : "float32";
  const net = mlp({ inputs: 1, hidden: [20, 20, 20], outputs: 1 });
  const optimizer = new SGN(net.init({ seed: o.seed, backend: be, dtype }), {
    dampRho: 1e-4,
    dampRhoMin: 1e-6,
    trustRegion: true,
    lineSearch: true,
    cgMaxIters: o["cg-iters"],
  });
  console.log(`backend: ${be.name} (${be.description}), ${dtype}`);
  console.log(
    `${net.name}, ${net.paramCount} parameters; sine f = ${o.f}; SGN, ${
      o["cg-iters"]
    } CG iterations`,
  );
  await train({
    network: net,
    optimizer,
    task: "regression",
    backend: be,
    dtype,
    train: { inputs: xs.slice(cut), targets: ys.slice(cut) },
    test: { inputs: xs.slice(0, cut), targets: ys.slice(0, cut) },
    epochs: o.epochs,
    batchSize: 1000,
    seed: o.seed,
    onProgress: (e) => {
      if (e.kind !== "epoch" || !e.record) return;
      const r = e.record;
      console.log(
        `epoch ${e.epoch}: train loss ${r.avg_loss.at(-1)!.toFixed(5)}, ` +
          `test loss ${r.test_loss!.at(-1)!.toFixed(5)}, rho ${r.rho!.at(-1)!.toExponential(2)}, ` +
          `${e.elapsed.toFixed(1)} s`,
      );
    },
  });
  optimizer.dispose();
}

async function main(args: string[]): Promise<number> {
  if (args[0] === "train") {
    try {
      return await trainCommand(args.slice(1));
    } catch (e) {
      if (e instanceof SgnError) {
        console.error(`error: ${e.message}`);
        return 2;
      }
      throw e;
    }
  }
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        backend: { type: "string", default: "" },
        epochs: { type: "string", default: "5" },
        f: { type: "string", default: "10" },
        "cg-iters": { type: "string", default: "10" },
        seed: { type: "string", default: "1" },
        float64: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (e) {
    console.error(`error: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const command = positionals[0] ?? "demo";
  if (command !== "demo") {
    console.error(`error: unknown command "${command}" (available: demo, train)\n\n${HELP}`);
    return 2;
  }
  const ints: Record<string, number> = {};
  for (const key of ["epochs", "f", "cg-iters", "seed"] as const) {
    const v = Number(values[key]);
    const ok = key === "f"
      ? Number.isFinite(v) && v > 0
      : Number.isInteger(v) && v >= (key === "seed" ? 0 : 1);
    if (!ok) {
      const kind = key === "f" ? "number" : "integer";
      console.error(`error: --${key} must be a positive ${kind}, got "${values[key]}"`);
      return 2;
    }
    ints[key] = v;
  }
  const choice = values.backend || undefined;
  if (choice && !["webgpu", "cpu", "auto"].includes(choice)) {
    console.error(`error: --backend must be webgpu, cpu or auto, got "${choice}"`);
    return 2;
  }
  if (values.float64 && choice && choice !== "cpu") {
    console.error("error: --float64 needs the CPU backend (WebGPU computes in float32)");
    return 2;
  }
  const backend = (values.float64 ? "cpu" : choice) as BackendChoice | undefined;
  const be = await init({ backend });
  await demo(be, ints, values.float64);
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
