/**
 * Where a W1 step's WebGPU dispatches go:
 * `deno run -A bench/dispatch_report.ts [steps] [--alone] [--conv]`
 * (`--alone`: products one per dispatch, a software adapter's default; else as a hardware GPU runs
 * them, two together where their operands are ready at once). Counts
 * one W1 loss + gradient (each gradient tensor, then the gradient as one flat vector, as SGN
 * computes it) and `steps` (default 3) W1 SGN steps with 3 CG iterations, with `--conv` also
 * one loss + gradient and one cached G v of the seed's conv nets W3 and W4
 * (bench/dispatch_cases.ts, after warm-ups), each dispatch labelled by the backend call that made
 * it: an IR kernel by its kind and shapes (`map [16750]`, `reduce sum [] <- [16750] x3` for a
 * kernel with three outputs), a routine by its name and spec (`matmul 784x1000x20 A^T`; products
 * run together in one dispatch as `matmuls together: ...`). Columns:
 * dispatches per labelled call, and the distinct pipelines the workload used (a real GPU pays per
 * pipeline switch too). Counts are exact: the machine's load does not change them.
 *
 * The labels come from wrapping the backend's methods here, from outside (this tool only), so the
 * library carries no labelling on its dispatch path.
 */
import { WebGpuBackend } from "../wgsl/webgpu.ts";
import { GpuRuntime } from "../wgsl/runtime.ts";
import type { Kernel } from "../kernel/ir.ts";
import type { MatmulCall, MatmulSpec } from "../kernel/backend.ts";
import {
  CONV_BATCH,
  countConv,
  countLossGrad,
  countSteps,
  DISPATCH_TARGETS,
} from "./dispatch_cases.ts";

const be = await WebGpuBackend.create();
if (!be) {
  console.error("no WebGPU adapter: nothing to count");
  Deno.exit(1);
}
const steps = Number(Deno.args.find((a) => !a.startsWith("--")) ?? 3);
// What a hardware GPU runs: products together, with the maps only they read in their loads (off
// by default on a software adapter, where it measured slower); `--alone` counts without.
be.hardwareSchedule = !Deno.args.includes("--alone");

/** Labels of the calls being counted, with their dispatches; undefined when not counting. */
let tally: Map<string, number> | undefined;
/** Pipelines (by source) dispatched while counting. */
const pipelines = new Set<string>();
let depth = 0;

/** The label of a backend call from its name and arguments. */
function labelOf(name: string, args: unknown[]): string {
  if (name === "run") {
    const k = args[0] as Kernel;
    const outs = 1 + ((k as { more?: unknown[] }).more?.length ?? 0);
    const times = outs > 1 ? ` x${outs}` : "";
    if (!k.reduce) return `map [${k.shape}]${times}`;
    const epi = k.epilogue ? " +epilogue" : "";
    return `reduce ${k.reduce.op} [${k.shape}] <- [${k.reduce.shape}]${epi}${times}`;
  }
  const product = (s: MatmulSpec, epilogue: unknown) => {
    const t = `${s.transA ? " A^T" : ""}${s.transB ? " B^T" : ""}`;
    return `${s.m}x${s.k}x${s.n}${t}${s.sums ? " +sums" : ""}${epilogue ? " +epilogue" : ""}`;
  };
  if (name === "matmul") return `matmul ${product(args[2] as MatmulSpec, args[3])}`;
  if (name === "productsTogether") {
    const items = args[0] as MatmulCall[];
    return `matmuls together: ${items.map((x) => product(x.spec, x.epilogue)).join(" | ")}`;
  }
  if (name === "concat") return `concat of ${(args[0] as unknown[]).length}`;
  if (name === "softmax") return args[3] ? "log-softmax" : "softmax";
  return name;
}

const proto = WebGpuBackend.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
for (const name of Object.getOwnPropertyNames(WebGpuBackend.prototype)) {
  const own = Object.getOwnPropertyDescriptor(proto, name)?.value;
  if (name === "constructor" || typeof own !== "function") continue;
  proto[name] = function (this: WebGpuBackend, ...args: unknown[]) {
    const d0 = this.rt.stats.dispatches;
    depth++;
    try {
      return own.apply(this, args);
    } finally {
      depth--;
      const n = this.rt.stats.dispatches - d0;
      // Only the outermost call is labelled (a routine may run IR kernels through `run`).
      if (tally && depth === 0 && n > 0) {
        const label = labelOf(name, args);
        tally.set(label, (tally.get(label) ?? 0) + n);
      }
    }
  };
}
const dispatch = GpuRuntime.prototype.dispatch;
GpuRuntime.prototype.dispatch = function (this: GpuRuntime, code, ...rest) {
  if (tally) pipelines.add(code);
  return dispatch.call(this, code, ...rest);
};

/** Runs `run` with every dispatch inside it labelled into `into`. */
function labelled(into: Map<string, number>) {
  return async <T>(run: () => Promise<T>): Promise<T> => {
    tally = into;
    try {
      return await run();
    } finally {
      tally = undefined;
    }
  };
}

function print(
  title: string,
  t: Map<string, number>,
  per: number,
  total: number,
  target?: number,
  pipes = pipelines.size,
) {
  const goal = target === undefined ? "" : ` (target <= ${target})`;
  console.log(`\n${title}: ${total} dispatches${goal}, ${pipes} pipelines`);
  console.log("| call | dispatches |");
  console.log("|---|---:|");
  for (const [label, n] of [...t].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))) {
    console.log(`| ${label} | ${Number.isInteger(n / per) ? n / per : (n / per).toFixed(2)} |`);
  }
}

console.log(
  `WebGPU on ${be.description}; products run together: ${be.groupProducts ? "on" : "off"}`,
);
const lg = new Map<string, number>();
pipelines.clear();
const lossGrad = await countLossGrad(be, 1, labelled(lg));
print("W1 loss + gradient", lg, 1, lossGrad, DISPATCH_TARGETS.lossGrad);
const lgFlat = new Map<string, number>();
pipelines.clear();
const lossGradFlat = await countLossGrad(be, 1, labelled(lgFlat), true);
const flatTitle = "W1 loss + gradient as one flat vector (SGN's)";
print(flatTitle, lgFlat, 1, lossGradFlat, DISPATCH_TARGETS.lossGrad);

const st = new Map<string, number>();
pipelines.clear();
const counted = await countSteps(be, steps, 2, labelled(st));
const total = counted.reduce((a, c) => a + c.dispatches, 0);
const tries = counted.map((c) => c.tries).join(", ");
print(
  `W1 SGN step, 3 CG iterations (mean of ${steps}; line-search tries ${tries})`,
  st,
  steps,
  total / steps,
  DISPATCH_TARGETS.step,
);
console.log(`per step: ${counted.map((c) => c.dispatches).join(", ")} dispatches`);

if (Deno.args.includes("--conv")) {
  // The seed's conv nets: where a loss + gradient's and a cached G v's dispatches go.
  for (const which of ["W3", "W4"] as const) {
    const maps = { lossGrad: new Map<string, number>(), gv: new Map<string, number>() };
    const pipes = { lossGrad: 0, gv: 0 };
    const n = await countConv(be, which, async (what, run) => {
      pipelines.clear();
      const out = await labelled(maps[what])(run);
      pipes[what] = pipelines.size;
      return out;
    });
    print(
      `${which} loss + gradient (batch ${CONV_BATCH})`,
      maps.lossGrad,
      1,
      n.lossGrad,
      undefined,
      pipes.lossGrad,
    );
    print(`${which} cached G v (batch ${CONV_BATCH})`, maps.gv, 1, n.gv, undefined, pipes.gv);
    const sm = new Map<string, number>();
    pipelines.clear();
    const sc = await countSteps(be, steps, 2, labelled(sm), which);
    print(
      `${which} SGN step, 3 CG iterations (batch ${CONV_BATCH}, mean of ${steps}; line-search ` +
        `tries ${sc.map((c) => c.tries).join(", ")})`,
      sm,
      steps,
      sc.reduce((a, c) => a + c.dispatches, 0) / steps,
    );
  }
}
