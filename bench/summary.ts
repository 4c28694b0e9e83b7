/**
 * The figures printed after `deno bench`'s own table. Deno reports time per iteration, and one
 * iteration holds several kernels or products and one readback; these rows divide it into what
 * users compare (ms per kernel and GFLOP/s, ms per product, ms per SGN step) and add the WebGPU
 * runtime's counts (dispatches, submits, readbacks). Each bench body is wrapped by
 * {@link measured}, which keeps its fastest call; the table is printed when the process ends.
 * The figures are the bench's own calls, so they are as noisy as Deno's: the `*_report.ts`
 * scripts measure with more care (e.g. the readback cancelled out).
 */
import type { Backend } from "../kernel/backend.ts";
import { type GpuCounts, gpuCounts, gpuCountsSince } from "./devices.ts";

/** What the calls of one bench body took. */
export interface Measured {
  /** Calls made (warm-up included); 0 when the case was filtered out. */
  calls: number;
  /** Milliseconds of the fastest call. */
  bestMs: number;
  /** WebGPU counts summed over the calls; undefined on a CPU backend. */
  counts: GpuCounts | undefined;
}

/** Wraps a bench body so that its calls are timed and counted into `result`. */
export function measured(
  be: Backend,
  body: () => Promise<void>,
): { fn: () => Promise<void>; result: Measured } {
  const result: Measured = { calls: 0, bestMs: Infinity, counts: undefined };
  const fn = async () => {
    const before = gpuCounts(be);
    const t0 = performance.now();
    await body();
    const ms = performance.now() - t0;
    const done = gpuCountsSince(be, before);
    result.calls++;
    result.bestMs = Math.min(result.bestMs, ms);
    if (done) {
      const sum = result.counts ?? { dispatches: 0, submits: 0, readbacks: 0 };
      result.counts = {
        dispatches: sum.dispatches + done.dispatches,
        submits: sum.submits + done.submits,
        readbacks: sum.readbacks + done.readbacks,
      };
    }
  };
  return { fn, result };
}

/** A WebGPU count per call divided by `per` (e.g. kernels per call), or "-" on a CPU backend. */
export function perCall(m: Measured, key: keyof GpuCounts, per = 1): string {
  if (!m.counts || m.calls === 0) return "-";
  const x = m.counts[key] / m.calls / per;
  return Number.isInteger(x) ? String(x) : x.toFixed(1);
}

/**
 * Prints a markdown table after the benchmarks: `title`, the header (its first `textColumns`
 * columns left-aligned, the rest right-aligned) and the rows `rows()` gives when the process
 * ends. Callers leave out the cases that did not run (filtered out: `calls` is 0).
 */
export function printAfterBench(
  title: string,
  header: string[],
  textColumns: number,
  rows: () => string[][],
): void {
  globalThis.addEventListener("unload", () => {
    const body = rows();
    if (body.length === 0) return;
    console.log(`\n${title}\n`);
    console.log(`| ${header.join(" | ")} |`);
    console.log(`|${header.map((_, i) => (i < textColumns ? "---" : "---:")).join("|")}|`);
    for (const r of body) console.log(`| ${r.join(" | ")} |`);
  });
}
