/**
 * Reduction kernels: sum, max and argmax along an axis, softmax and log-softmax along rows, and
 * the optimizer's dot product and max-abs.
 *
 * An input is viewed as [outer, axis, inner]. With inner > 1 each invocation owns one output and
 * walks the axis (neighbouring invocations read neighbouring memory). With inner = 1 a workgroup
 * owns a row and reduces it in workgroup memory; long rows are first cut into chunks whose
 * partial results a second pass combines, so that both cores work on one long vector.
 *
 * @module
 */

import { type ReduceOp, SgnError } from "../backend.ts";
import { WGSL_MATH } from "./elementwise.ts";
import { type GpuBuffer, type GpuRuntime, grid, Params } from "./runtime.ts";
import { memoKernel } from "./source.ts";

const WG = 64;
/** Rows longer than this are reduced in two passes. */
const CHUNK = 4096;

/** How one reduction combines values: identity, element load and combine, in WGSL. */
interface Combine {
  init: string;
  combine: (acc: string, v: string) => string;
}

const NAN_MAX = (a: string, b: string) =>
  `select(select(${a}, ${b}, ${b} > ${a}), ${a} + ${b}, isNan(${a}) || isNan(${b}))`;

const COMBINE: Record<"sum" | "max", Combine> = {
  sum: { init: "0.0", combine: (a, v) => `${a} + ${v}` },
  max: { init: "-infF32()", combine: NAN_MAX },
};

/** Per-output loop: inner > 1 (or tiny axes). Handles argmax too. */
const columnKernel = memoKernel("column", columnSource);

function columnSource(op: ReduceOp): string {
  const body = op === "argmax"
    ? `var best = x[base]; var arg = 0u;
       for (var k = 1u; k < p.axis; k++) {
         let v = x[base + k * p.inner];
         if (!isNan(best) && (v > best || isNan(v))) { best = v; arg = k; }
       }
       out[i] = f32(arg);`
    : `var acc: f32 = ${COMBINE[op].init};
       for (var k = 0u; k < p.axis; k++) {
         let v = x[base + k * p.inner];
         acc = ${COMBINE[op].combine("acc", "v")};
       }
       out[i] = acc;`;
  return /* wgsl */ `
${WGSL_MATH}
struct P { n: u32, stride: u32, axis: u32, inner: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * p.stride;
  if (i >= p.n) { return; }
  let o = i / p.inner;
  let base = o * p.axis * p.inner + i % p.inner;
  ${body}
}`;
}

/**
 * Workgroup per (row, chunk): reduces `load(j)` over j in the chunk of a row of length p.len,
 * writing one value per (row, chunk). `inputs` are the WGSL declarations of the loaded buffers.
 */
const rowKernel = memoKernel("row", rowSource);

function rowSource(c: Combine, inputs: string[], load: string): string {
  const decls = inputs.map((n, i) =>
    `@group(0) @binding(${i + 1}) var<storage, read> ${n}: array<f32>;`
  ).join("\n");
  return /* wgsl */ `
${WGSL_MATH}
struct P { rows: u32, len: u32, chunk: u32, chunks: u32, stride: u32 }
@group(0) @binding(0) var<uniform> p: P;
${decls}
@group(0) @binding(${inputs.length + 1}) var<storage, read_write> out: array<f32>;
var<workgroup> part: array<f32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let g = wid.x + wid.y * p.stride;
  let row = g / p.chunks;
  let start = (g % p.chunks) * p.chunk;
  let end = min(start + p.chunk, p.len);
  let base = row * p.len;
  var acc: f32 = ${c.init};
  if (row < p.rows) {
    for (var j = start + t; j < end; j += ${WG}u) {
      let v = ${load};
      acc = ${c.combine("acc", "v")};
    }
  }
  part[t] = acc;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (t < s) { part[t] = ${c.combine("part[t]", "part[t + s]")}; }
    workgroupBarrier();
  }
  if (t == 0u && row < p.rows) { out[g] = part[0]; }
}`;
}

/** Reduces rows of length `len` with `load` over `inputs`; two passes for long rows. */
function reduceRows(
  rt: GpuRuntime,
  c: Combine,
  inputs: GpuBuffer[],
  names: string[],
  load: string,
  rows: number,
  len: number,
): GpuBuffer {
  const chunks = len > CHUNK ? Math.ceil(len / CHUNK) : 1;
  const chunk = Math.ceil(len / chunks);
  const out = rt.alloc(rows * chunks);
  const [gx, gy] = grid(rows * chunks);
  rt.dispatch(
    rowKernel(c, names, load),
    new Params().u32(rows, len, chunk, chunks, gx),
    [...inputs, out],
    [gx, gy],
  );
  if (chunks === 1) return out;
  const final = reduceRows(rt, c, [out], ["x"], "x[base + j]", rows, chunks);
  rt.release(out);
  return final;
}

/** Reduces x viewed as [outer, axis, inner] along the middle axis. */
export function reduce(
  rt: GpuRuntime,
  op: ReduceOp,
  x: GpuBuffer,
  outer: number,
  axis: number,
  inner: number,
): GpuBuffer {
  if (x.size !== outer * axis * inner) {
    throw new SgnError(
      `${op}: a buffer of ${x.size} elements cannot be viewed as [${outer}, ${axis}, ${inner}]`,
    );
  }
  if (op !== "sum" && op !== "max" && op !== "argmax") {
    throw new SgnError(`unknown reduction '${op}'`);
  }
  const n = outer * inner;
  if (axis === 0) {
    const value = op === "sum" ? 0 : op === "max" ? -Infinity : 0;
    return fillValue(rt, n, value);
  }
  if (op === "argmax" || inner > 1 || axis <= 16 || outer >= 4096) {
    const out = rt.alloc(n);
    const [gx, gy] = grid(Math.ceil(n / WG));
    rt.dispatch(columnKernel(op), new Params().u32(n, gx * WG, axis, inner), [x, out], [gx, gy]);
    return out;
  }
  return reduceRows(rt, COMBINE[op], [x], ["x"], "x[base + j]", outer, axis);
}

const FILL_VALUE = /* wgsl */ `
struct P { n: u32, value: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) { if (gid.x < p.n) { out[gid.x] = p.value; } }`;

function fillValue(rt: GpuRuntime, n: number, value: number): GpuBuffer {
  const out = rt.alloc(n);
  rt.dispatch(FILL_VALUE, new Params().u32(n).f32(value), [out], [Math.ceil(n / WG)]);
  return out;
}

/** Inner product as a one-element buffer. */
export function dot(rt: GpuRuntime, x: GpuBuffer, y: GpuBuffer): GpuBuffer {
  if (x.size !== y.size) throw new SgnError(`dot: sizes ${x.size} and ${y.size} differ`);
  if (x.size === 0) return fillValue(rt, 1, 0);
  return reduceRows(rt, COMBINE.sum, [x, y], ["x", "y"], "x[j] * y[j]", 1, x.size);
}

/** max |x_i| as a one-element buffer, NaN if any element is NaN, 0 when empty. */
export function maxAbs(rt: GpuRuntime, x: GpuBuffer): GpuBuffer {
  if (x.size === 0) return fillValue(rt, 1, 0);
  return reduceRows(rt, COMBINE.max, [x], ["x"], "abs(x[j])", 1, x.size);
}

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
  return /* wgsl */ `
${WGSL_MATH}
struct P { rows: u32, cols: u32, stride: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let r = gid.x + gid.y * p.stride;
  if (r >= p.rows) { return; }
  let b = r * p.cols;
  var m = -infF32();
  for (var k = 0u; k < p.cols; k++) { m = ${NAN_MAX("m", "x[b + k]")}; }
  ${sum}
  for (var k = 0u; k < p.cols; k++) { out[b + k] = ${write}; }
}`;
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
  const [gx, gy] = grid(Math.ceil(rows / WG));
  rt.dispatch(code, new Params().u32(rows, cols, gx * WG), [x, out], [gx, gy]);
  return out;
}
