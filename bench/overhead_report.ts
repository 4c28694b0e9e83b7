/**
 * Per-op overhead of the native backend, as counts that do not depend on the machine's load:
 * `deno run -A bench/overhead_report.ts [reps] [--conv] [--only TEXT]`. Rows: W1 loss + gradient
 * and one W1 SGN step (3 CG iterations, `w1Sgn`), each `reps` times after 10 warm-ups; with
 * `--conv` also W4 loss + gradient (Fashion architecture_1, batch 1000; 3 after 2 warm-ups);
 * `--only TEXT` keeps the rows whose label holds TEXT. Columns, per repetition: lazy ops (IR
 * kernels and routines), kernel launches through `run`, structural lookups, new structures,
 * compiled functions, buffer allocations, fresh allocations (pool misses: memory the engine
 * zero-fills), bytes zero-filled by `fill(0)`, readbacks, and host milliseconds (a loaded
 * machine's figure). Where the time goes: profile this tool and read the profile with
 * bench/profile_report.ts:
 *
 * ```sh
 * SGN_BLAS_THREADS=1 deno run -A --cpu-prof --cpu-prof-dir=prof bench/overhead_report.ts 200 --only SGN
 * deno run -A bench/profile_report.ts prof/*.cpuprofile
 * ```
 *
 * The allocation and fill counts wrap the backend's methods from outside (this tool only), so
 * the library carries no counters on its allocation path; a method the backend no longer has
 * shows as "-".
 */
import { parseArgs } from "node:util";
import type { Tensor } from "../autodiff/tensor.ts";
import { scope } from "../autodiff/tensor.ts";
import { valueAndGrad } from "../autodiff/transforms.ts";
import { CpuBackend } from "../cpu/oracle.ts";
import { compileStats } from "../cpu/compile.ts";
import { NativeBackend } from "../cpu/native.ts";
import { lazyStats } from "../kernel/lazy.ts";
import { w1, w1Sgn } from "./sgn_step_cases.ts";
import { Random } from "../random.ts";
import { tensor } from "../autodiff/tensor.ts";
import { ARCHITECTURE_1, convNet, type Network } from "../models/networks.ts";
import { oneHot, softmaxCrossEntropy } from "../models/losses.ts";

const created = NativeBackend.create();
if (!created.backend) {
  console.error(`native backend unavailable: ${created.reason}`);
  Deno.exit(1);
}
const be = created.backend;
const { values, positionals } = parseArgs({
  args: Deno.args,
  options: { conv: { type: "boolean", default: false }, only: { type: "string", default: "" } },
  allowPositionals: true,
});
const steps = Number(positionals[0] ?? 20);
/** Whether the row `label` is measured (`--only TEXT` keeps the rows whose label holds TEXT). */
const wanted = (label: string) => label.includes(values.only);
const WARMUP = 10;

/** Counts of the wrapped methods; undefined where the method does not exist. */
const counts = { runs: 0, allocs: 0, fresh: 0, freshBytes: 0, zeroBytes: 0, reads: 0 };
const missing = new Set<keyof typeof counts>();

type Method = (this: unknown, ...args: never[]) => unknown;
/** Wraps proto[name] so that each call first calls `count` with its receiver and arguments. */
function wrap(
  proto: object,
  name: string,
  key: keyof typeof counts,
  count: (self: never, ...args: never[]) => void,
): void {
  const p = proto as Record<string, Method>;
  const own = Object.getOwnPropertyDescriptor(proto, name)?.value as Method | undefined;
  if (typeof own !== "function") return void missing.add(key);
  p[name] = function (this: unknown, ...args: never[]) {
    count(this as never, ...args);
    return own.apply(this, args);
  };
}
wrap(NativeBackend.prototype, "run", "runs", () => counts.runs++);
wrap(NativeBackend.prototype, "alloc", "allocs", () => counts.allocs++);
// The base class's alloc runs when the pool has no buffer of that size: new, zeroed memory.
wrap(CpuBackend.prototype, "alloc", "fresh", (_: unknown, size: number, dtype: string) => {
  counts.fresh++;
  counts.freshBytes += size * (dtype === "float64" ? 8 : 4);
});
wrap(CpuBackend.prototype, "read", "reads", () => counts.reads++);
// fill lives on the prototype the typed arrays share.
wrap(
  Object.getPrototypeOf(Float32Array.prototype),
  "fill",
  "zeroBytes",
  (
    self: ArrayLike<number> & { BYTES_PER_ELEMENT: number },
    value: number,
    start?: number,
    end?: number,
  ) => {
    if (value !== 0) return;
    const from = start ?? 0, to = end ?? self.length;
    counts.zeroBytes += Math.max(0, to - from) * self.BYTES_PER_ELEMENT;
  },
);

/** The counters now. */
function snapshot() {
  return {
    ops: lazyStats.kernels + lazyStats.routines,
    kernels: lazyStats.kernels,
    routines: lazyStats.routines,
    lookups: compileStats.lookups,
    structures: compileStats.structures,
    compilations: compileStats.compilations,
    ...counts,
    ms: performance.now(),
  };
}

async function measure(
  label: string,
  once: () => Promise<void>,
  warmup = WARMUP,
  reps = steps,
): Promise<void> {
  for (let i = 0; i < warmup; i++) await once();
  const a = snapshot();
  for (let i = 0; i < reps; i++) await once();
  const b = snapshot();
  const per = (k: keyof typeof a) =>
    missing.has(k as keyof typeof counts) ? "-" : ((b[k] - a[k]) / reps).toFixed(1);
  console.log(
    `| ${label} | ${per("ops")} (${per("kernels")} + ${per("routines")}) | ${per("runs")} | ` +
      `${per("lookups")} | ${per("structures")} | ${per("compilations")} | ${per("allocs")} | ` +
      `${per("fresh")} / ${per("freshBytes")} | ${per("zeroBytes")} | ${per("reads")} | ` +
      `${per("ms")} |`,
  );
}

console.log(
  `${be.description}; ${steps} repetitions after ${WARMUP} warm-ups; counts per repetition`,
);
console.log(
  "| workload | lazy ops (kernels + routines) | run calls | lookups | new structures | " +
    "compilations | allocs | fresh allocs / bytes | zero-filled bytes | readbacks | host ms (loaded) |",
);
console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");

/** Loss + gradient of `net` on a random batch, measured as one row. */
async function lossGradRow(
  label: string,
  net: Network,
  batch: number,
  warmup?: number,
  reps?: number,
) {
  const rng = new Random(1);
  const size = batch * net.inputShape.reduce((a, b) => a * b, 1);
  const x = tensor(rng.array(size, (r) => r.range(0, 1)), [batch, ...net.inputShape], {
    backend: be,
  });
  const y = oneHot(Array.from({ length: batch }, (_, i) => i % 10), 10, { backend: be });
  const loss = softmaxCrossEntropy(y);
  const params = net.init({ seed: 1, backend: be });
  const lossGrad = () =>
    scope(() => valueAndGrad((...q: Tensor[]) => loss.value(net.forward(q, x)))(...params)[1]);
  await measure(
    label,
    () => {
      const g = lossGrad();
      for (const t of g) t.realize();
      for (const t of g) t.dispose();
      return Promise.resolve();
    },
    warmup,
    reps,
  );
  for (const t of [...params, x, y]) t.dispose();
}

if (wanted("W1 loss+grad")) await lossGradRow("W1 loss+grad", w1(be).net, 1000);
if (wanted("W1 SGN step")) {
  const { problem, opt } = w1Sgn(be, 3);
  await measure("W1 SGN step (3 CG)", async () => {
    await opt.step(problem.model, problem.loss);
  });
  opt.dispose();
  for (const t of [problem.x, problem.y]) t.dispose();
}
if (values.conv && wanted("W4 loss+grad")) {
  await lossGradRow("W4 loss+grad", convNet(ARCHITECTURE_1, [1, 28, 28], 10), 1000, 2, 3);
}
