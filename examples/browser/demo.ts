/// <reference lib="dom" />
/**
 * The browser demo: trains the seed's sine regression (MLP 1-20-20-20-1 with sigmoids; 10,000
 * points x ~ U(-1, 1), y = sin(10 x) + N(0, 0.01^2), the first 30% held out; batches of 1000) with
 * SGN as the seed configures it (its preset, `SEED_PRESET` in sgn/options.ts, with 10 CG
 * iterations), on WebGPU when the browser gives an adapter and on the CPU backend otherwise, and
 * plots the train and test loss after every epoch.
 *
 * Query parameters, for tests and experiments: `epochs` (default 10), `n` (points, default
 * 10000), `backend` (auto, webgpu or cpu), `seed` (default 1), `f` (frequency, default 10).
 * Progress is published as `window.sgnDemo` ({@link DemoState}).
 *
 * The DOM types this file references would change the types of Deno's own globals for every file
 * checked with it (TextDecoderStream, for one), so `deno task check` checks it on its own.
 *
 * @module
 */

// A full specifier, not an import map entry, so that the file means the same to Deno's type
// check and to esbuild (tools/bundle.ts resolves it through Deno's npm cache).
import {
  Chart,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  LogarithmicScale,
  PointElement,
  Title,
  Tooltip,
  // deno-lint-ignore no-import-prefix
} from "npm:chart.js@4.6.1";
import {
  type BackendChoice,
  init,
  mlp,
  type ModelFn,
  type OutputLoss,
  SGN,
  type SgnStepRecord,
  train,
} from "../../mod.ts";
import { sineWaves } from "../../datasets/synthetic.ts";
import { SEED_PRESET } from "../../sgn/options.ts";

/**
 * One point of the loss curves.
 *
 * @example
 * ```ts ignore
 * const last: EpochLoss = globalThis.sgnDemo.losses.at(-1)!;
 * console.log(`epoch ${last.epoch}: test loss ${last.test}`);
 * ```
 */
export interface EpochLoss {
  epoch: number;
  train: number;
  test: number;
  /** Seconds since training started, at the end of the epoch. */
  seconds: number;
}

/**
 * What the page publishes as `window.sgnDemo`, for people in the console and for tests.
 *
 * @example
 * ```ts ignore
 * // In the page's console, once training is over:
 * const s: DemoState = globalThis.sgnDemo;
 * if (s.done) console.log(s.backend, s.error ?? s.losses.map((l) => l.test));
 * ```
 */
export interface DemoState {
  /** "webgpu" or "cpu" once chosen, "" before. */
  backend: string;
  /** The adapter (WebGPU) or "CPU reference backend ...". */
  backendDescription: string;
  /** Why WebGPU was not used, when it was not. */
  notice: string;
  epochs: number;
  epochsDone: number;
  losses: EpochLoss[];
  done: boolean;
  error: string | null;
}

declare global {
  // `var` is how a declaration adds a property to globalThis.
  var sgnDemo: DemoState;
  /** The chart.js instance, apart from {@link DemoState} because it is not JSON. */
  var sgnDemoChart: Chart<"line", { x: number; y: number }[]> | undefined;
}

/** SGN that lets the browser paint between steps: without it a run on the CPU backend would be
 * one long task, and the chart would appear only when training is over. */
class YieldingSgn extends SGN {
  override async step(model: ModelFn, loss: OutputLoss): Promise<SgnStepRecord> {
    await new Promise((resolve) => setTimeout(resolve, 0));
    return await super.step(model, loss);
  }
}

function param(q: URLSearchParams, name: string, fallback: number, min: number): number {
  const raw = q.get(name);
  if (raw === null) return fallback;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < min) throw new Error(`?${name}= must be a number >= ${min}`);
  return v;
}

function element<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page has no #${id}`);
  return el as T;
}

function makeChart(canvas: HTMLCanvasElement): Chart<"line", { x: number; y: number }[]> {
  Chart.register(
    LineController,
    LineElement,
    PointElement,
    LinearScale,
    LogarithmicScale,
    Legend,
    Title,
    Tooltip,
  );
  return new Chart(canvas, {
    type: "line",
    data: {
      datasets: [
        { label: "train loss", data: [], borderColor: "#1f77b4", backgroundColor: "#1f77b4" },
        { label: "test loss", data: [], borderColor: "#d62728", backgroundColor: "#d62728" },
      ],
    },
    options: {
      animation: false,
      maintainAspectRatio: false,
      scales: {
        x: { type: "linear", title: { display: true, text: "epoch" }, ticks: { precision: 0 } },
        y: {
          type: "logarithmic",
          title: { display: true, text: "mean squared error" },
          // chart.js pads log ticks to the smallest one's decimals ("3.0000"); two significant
          // digits without trailing zeros keep 1.5 apart from 2.
          ticks: { callback: (v) => String(Number(Number(v).toPrecision(2))) },
        },
      },
      plugins: { title: { display: true, text: "SGN on sin(10x): loss per epoch" } },
    },
  });
}

async function run(state: DemoState): Promise<void> {
  const q = new URLSearchParams(location.search);
  const epochs = param(q, "epochs", 10, 1);
  const n = param(q, "n", 10000, 10);
  const seed = param(q, "seed", 1, 0);
  const f = param(q, "f", 10, 0);
  const choice = (q.get("backend") ?? "auto") as BackendChoice;
  if (!["auto", "webgpu", "cpu"].includes(choice)) {
    throw new Error("?backend= must be auto, webgpu or cpu");
  }
  state.epochs = Math.floor(epochs);

  const status = element<HTMLParagraphElement>("status");
  const backendLine = element<HTMLParagraphElement>("backend");
  const be = await init({
    backend: choice,
    onNotice: (m) => (state.notice = m),
  });
  state.backend = be.name;
  state.backendDescription = be.description;
  backendLine.textContent = be.name === "webgpu"
    ? `Backend: WebGPU (${be.description})`
    : `Backend: CPU (${state.notice ? "no WebGPU adapter in this browser" : "chosen"})`;
  backendLine.dataset.backend = be.name;

  // The same data as `deno task demo` for the same seed.
  const data = sineWaves(f, { n, seed });
  const cut = data.test.inputs.length;
  const net = mlp({ inputs: 1, hidden: [20, 20, 20], outputs: 1 });
  const optimizer = new YieldingSgn(net.init({ seed, backend: be }), {
    ...SEED_PRESET,
    cgMaxIters: 10,
  });
  const chart = makeChart(element<HTMLCanvasElement>("loss"));
  globalThis.sgnDemoChart = chart;
  status.textContent = `${net.name}, ${net.paramCount} parameters; ${n - cut} training and ` +
    `${cut} test points; training ${state.epochs} epochs...`;
  try {
    await train({
      network: net,
      optimizer,
      task: "regression",
      backend: be,
      train: data.train,
      test: data.test,
      epochs: state.epochs,
      batchSize: 1000,
      seed,
      onProgress: (e) => {
        if (e.kind === "step") {
          status.textContent = `epoch ${e.epoch}/${state.epochs}, step ${e.step}/` +
            `${e.stepsPerEpoch}: batch loss ${e.loss.toExponential(3)}`;
          return;
        }
        const r = e.record!;
        const point: EpochLoss = {
          epoch: e.epoch,
          train: r.avg_loss.at(-1)!,
          test: r.test_loss!.at(-1)!,
          seconds: e.elapsed,
        };
        state.losses.push(point);
        state.epochsDone = e.epoch;
        chart.data.datasets[0].data.push({ x: point.epoch, y: point.train });
        chart.data.datasets[1].data.push({ x: point.epoch, y: point.test });
        chart.update();
        status.textContent = `epoch ${e.epoch}/${state.epochs}: train loss ` +
          `${point.train.toExponential(3)}, test loss ${point.test.toExponential(3)}, ` +
          `${e.elapsed.toFixed(1)} s`;
      },
    });
  } finally {
    optimizer.dispose();
  }
  const last = state.losses.at(-1)!;
  status.textContent = `done: ${state.epochs} epochs in ${last.seconds.toFixed(1)} s, test loss ` +
    `${last.test.toExponential(3)}`;
}

function fail(state: DemoState, e: unknown): void {
  state.error ??= e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  const el = document.getElementById("error");
  if (el) el.textContent = `Error: ${state.error}`;
}

const state: DemoState = {
  backend: "",
  backendDescription: "",
  notice: "",
  epochs: 0,
  epochsDone: 0,
  losses: [],
  done: false,
  error: null,
};
globalThis.sgnDemo = state;
addEventListener("unhandledrejection", (e) => fail(state, e.reason));
try {
  await run(state);
} catch (e) {
  console.error(e);
  fail(state, e);
} finally {
  state.done = true;
}
