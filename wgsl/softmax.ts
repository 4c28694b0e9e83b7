/**
 * Softmax and log-softmax along rows, one row per invocation: a routine, since a row's maximum,
 * its sum of exponentials and the normalized outputs are three passes over the row that one
 * invocation makes in registers.
 *
 * @module
 */

import { SgnError } from "../errors.ts";
import { routineSource } from "./routine.ts";
import { dispatchFlat, type GpuBuffer, type GpuRuntime, Params } from "./runtime.ts";
import { memoKernel } from "./source.ts";

const WG = 64;

/** The softmax (or log-softmax) kernel, one row per invocation. */
const softmaxKernel = memoKernel("softmax", (log: boolean) => {
  // log-softmax: log(s) = log1p(s - 1) where s - 1 is the sum without the (first) maximum's
  // exp(0) = 1, so that an output near 0 (a confident class: the others' exp sum to 1e-6, say)
  // keeps its relative accuracy; log(s) of the rounded float32 s would lose most of it. The
  // maximum's own term adds exp(x - m) - 1: 0 when finite, NaN when m is ±Infinity or NaN.
  const sum = log
    ? `var arg = 0u;
  for (var k = 1u; k < p.cols; k++) { if (x[b + k] > x[b + arg]) { arg = k; } }
  var s = exp(x[b + arg] - m) - 1.0;
  for (var k = 0u; k < p.cols; k++) { if (k != arg) { s += exp(x[b + k] - m); } }`
    : `var s = 0.0;
  for (var k = 0u; k < p.cols; k++) { s += exp(x[b + k] - m); }`;
  const write = log ? "x[b + k] - m - log1pF32(s)" : "exp(x[b + k] - m) / s";
  return routineSource({
    params: ["rows", "cols", "stride"],
    storage: [{ name: "x" }, { name: "out", write: true }],
    entry: { kind: "flat", wg: WG, count: "p.rows" },
    body: /* wgsl */ `let b = i * p.cols;
  var m = -infF32();
  for (var k = 0u; k < p.cols; k++) { m = maxF(m, x[b + k]); }
  ${sum}
  for (var k = 0u; k < p.cols; k++) { out[b + k] = ${write}; }`,
  });
});

/** Softmax or log-softmax of x viewed as [rows, cols], stable (the row maximum subtracted). */
export function softmax(
  rt: GpuRuntime,
  x: GpuBuffer,
  rows: number,
  cols: number,
  log: boolean,
): GpuBuffer {
  if (x.size !== rows * cols) {
    throw new SgnError(
      `softmax: a buffer of ${x.size} elements cannot be viewed as [${rows}, ${cols}]`,
    );
  }
  const code = softmaxKernel(log);
  const out = rt.alloc(rows * cols);
  dispatchFlat(rt, code, new Params().u32(rows, cols), [x, out], rows, WG);
  return out;
}
