/**
 * Matrix product, register-tiled for CPUs running WebGPU (llvmpipe/lavapipe), fine on GPUs too.
 *
 * Each invocation computes a 4 x 8 block of C as two mat4x4 accumulators, walking K four at a
 * time: it loads a 4x4 block of A and a 4x8 block of B as vec4s and accumulates them with
 * mat4x4 products (128 FMAs per 12 vec4 loads). Transposed operands are loaded along their
 * contiguous axis and transposed in registers. No workgroup memory: on a CPU the cache already
 * keeps the reused rows close, and barriers are expensive there.
 *
 * Variants are compiled per (transA, transB, aligned): the aligned variant needs every vec4 load
 * to start on a multiple of 4 (the contiguous dimensions of A and B, and K, multiples of 4); the
 * general one loads scalars with bounds checks and handles any size.
 *
 * @module
 */

import { checkMatmulSpec, type MatmulSpec, SgnError } from "../backend.ts";
import { type GpuBuffer, type GpuRuntime, MAX_GROUPS, Params } from "./runtime.ts";
import { reduce } from "./reduce.ts";

/** Tiling: RB x CB blocks of 4x4 per invocation, WG_X x WG_Y invocations per workgroup. */
export interface MatmulTiling {
  rb: number;
  cb: number;
  wgX: number;
  wgY: number;
}

/** The tiling measured fastest on lavapipe (bench/README.md). */
export let TILING: MatmulTiling = { rb: 2, cb: 2, wgX: 8, wgY: 8 };

/** Overrides the tiling (for tuning experiments). */
export function setTiling(t: MatmulTiling): void {
  TILING = t;
}

function kernel(transA: boolean, transB: boolean, aligned: boolean, t: MatmulTiling): string {
  const { rb, cb, wgX, wgY } = t;
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);
  // A block i: a matrix whose columns are A's rows r0+4i..+3 at k..k+3.
  const aBlock = (i: number) => {
    const ra = `ra${i}`;
    const rs = `(r0 + ${4 * i}u)`;
    if (!aligned) return `mat4x4f(la(${ra}.x, k), la(${ra}.y, k), la(${ra}.z, k), la(${ra}.w, k))`;
    return transA
      ? `transpose(mat4x4f(${
        range(4).map((d) => `A4[(aOff + (k + ${d}u) * p.m + ${rs}) / 4u]`).join(", ")
      }))`
      : `mat4x4f(${
        ["x", "y", "z", "w"].map((c) => `A4[(aOff + ${ra}.${c} * p.k + k) / 4u]`).join(", ")
      })`;
  };
  // B block j: a matrix whose columns are B's rows k..k+3 at columns c0+4j..+3.
  const bBlock = (j: number) => {
    const cbv = `cb${j}`;
    const cs = `cs${j}`;
    if (!aligned) return `mat4x4f(${range(4).map((d) => `lb(k + ${d}u, ${cbv})`).join(", ")})`;
    return transB
      ? `transpose(mat4x4f(${
        ["x", "y", "z", "w"].map((c) => `B4[(bOff + ${cbv}.${c} * p.k + k) / 4u]`).join(", ")
      }))`
      : `mat4x4f(${range(4).map((d) => `B4[(bOff + (k + ${d}u) * p.n + ${cs}) / 4u]`).join(", ")})`;
  };
  const decl = aligned
    ? `@group(0) @binding(1) var<storage, read> A4: array<vec4f>;
       @group(0) @binding(2) var<storage, read> B4: array<vec4f>;`
    : `@group(0) @binding(1) var<storage, read> A: array<f32>;
       @group(0) @binding(2) var<storage, read> B: array<f32>;`;
  // Scalar loads (general variant): out-of-range k reads as 0; rows and columns were clamped.
  const helpers = aligned ? "" : `
var<private> aOff: u32;
var<private> bOff: u32;
fn ea(r: u32, kk: u32) -> f32 {
  if (kk >= p.k) { return 0.0; }
  return A[aOff + ${transA ? "kk * p.m + r" : "r * p.k + kk"}];
}
fn la(r: u32, kk: u32) -> vec4f { return vec4f(ea(r, kk), ea(r, kk + 1u), ea(r, kk + 2u), ea(r, kk + 3u)); }
fn eb(kk: u32, c: u32) -> f32 {
  if (kk >= p.k) { return 0.0; }
  return B[bOff + ${transB ? "c * p.k + kk" : "kk * p.n + c"}];
}
fn lb(kk: u32, c: vec4u) -> vec4f { return vec4f(eb(kk, c.x), eb(kk, c.y), eb(kk, c.z), eb(kk, c.w)); }`;
  const setup = [
    ...range(rb).map((i) =>
      `let ra${i} = min(vec4u(r0 + ${4 * i}u) + vec4u(0u, 1u, 2u, 3u), vec4u(p.m - 1u));`
    ),
    ...range(cb).map((j) =>
      `let cb${j} = min(vec4u(c0 + ${4 * j}u) + vec4u(0u, 1u, 2u, 3u), vec4u(p.n - 1u));
  let cs${j} = min(c0 + ${4 * j}u, ${aligned ? "p.n - 4u" : "p.n - 1u"});`
    ),
    ...range(rb).flatMap((i) => range(cb).map((j) => `var acc${i}${j} = mat4x4f();`)),
  ].join("\n  ");
  const body = [
    ...range(rb).map((i) => `let a${i} = ${aBlock(i)};`),
    ...range(cb).map((j) => `let b${j} = ${bBlock(j)};`),
    ...range(rb).flatMap((i) => range(cb).map((j) => `acc${i}${j} += b${j} * a${i};`)),
  ].join("\n    ");
  const stores = range(rb).flatMap((i) =>
    range(cb).map((j) => `store(r0 + ${4 * i}u, c0 + ${4 * j}u, base, acc${i}${j});`)
  ).join("\n  ");
  return /* wgsl */ `
struct P { m: u32, k: u32, n: u32, batchA: u32, batchB: u32, groupsY: u32, kChunk: u32, batches: u32 }
@group(0) @binding(0) var<uniform> p: P;
${decl}
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
${helpers}
fn store(r0: u32, c0: u32, base: u32, acc: mat4x4f) {
  for (var r = 0u; r < 4u; r++) {
    if (r0 + r >= p.m) { break; }
    let o = base + (r0 + r) * p.n + c0;
    let v = acc[r];
    for (var j = 0u; j < 4u; j++) {
      if (c0 + j < p.n) { C[o + j] = v[j]; }
    }
  }
}
@compute @workgroup_size(${wgX}, ${wgY})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  // The batch index is folded into y so that large batches fit the dispatch limits.
  let batch = wid.y / p.groupsY;
  let row = gid.y - batch * p.groupsY * ${wgY}u;
  let r0 = row * ${4 * rb}u;
  let c0 = gid.x * ${4 * cb}u;
  if (r0 >= p.m || c0 >= p.n) { return; }
  ${aligned ? "let " : ""}aOff = batch * p.batchA * p.m * p.k;
  ${aligned ? "let " : ""}bOff = batch * p.batchB * p.k * p.n;
  ${setup}
  // Split-K: workgroup z sums its own chunk of K into its own slice of the output.
  let kEnd = min((wid.z + 1u) * p.kChunk, p.k);
  for (var k = wid.z * p.kChunk; k < kEnd; k += 4u) {
    ${body}
  }
  let base = (wid.z * p.batches + batch) * p.m * p.n;
  ${stores}
}`;
}

/** Matrix product on the GPU; see {@link MatmulSpec}. */
export function matmul(rt: GpuRuntime, a: GpuBuffer, b: GpuBuffer, spec: MatmulSpec): GpuBuffer {
  const { m, k, n, transA, transB, batch, batchA, batchB } = checkMatmulSpec(spec, a.size, b.size);
  if (batch * m * n === 0) return rt.alloc(0);
  if (k === 0) {
    const zero = rt.alloc(batch * m * n);
    rt.dispatch(ZERO, new Params().u32(zero.size), [zero], [Math.ceil(zero.size / 64)]);
    return zero;
  }
  // vec4 loads need their starting offsets (including the batch offsets) on multiples of 4.
  const aligned = k % 4 === 0 && (transA ? m % 4 === 0 : true) && (transB ? true : n % 4 === 0) &&
    n >= 4;
  const t = TILING;
  const gx = Math.ceil(n / (4 * t.cb) / t.wgX);
  const gy = Math.ceil(m / (4 * t.rb) / t.wgY);
  if (gx > MAX_GROUPS || gy * batch > MAX_GROUPS) {
    throw new SgnError(`matmul: ${batch} x ${m} x ${n} is too large for one dispatch`);
  }
  // Too few workgroups to keep every core busy and a long K: split K, then sum the slices.
  const groups = gx * gy * batch;
  const splits = groups >= SPLIT_BELOW_GROUPS ? 1 : Math.max(
    1,
    Math.min(
      Math.ceil(SPLIT_BELOW_GROUPS / groups),
      Math.floor(k / MIN_SPLIT_K),
    ),
  );
  const kChunk = Math.ceil(k / splits / 4) * 4;
  const parts = Math.ceil(k / kChunk);
  const out = rt.alloc(parts * batch * m * n);
  rt.dispatch(
    kernel(transA, transB, aligned, t),
    new Params().u32(m, k, n, batchA ? 1 : 0, batchB ? 1 : 0, gy, kChunk, batch),
    [a, b, out],
    [gx, gy * batch, parts],
  );
  if (parts === 1) return out;
  const sum = reduce(rt, "sum", out, 1, parts, batch * m * n);
  rt.release(out);
  return sum;
}

/** Below this many workgroups K is split, so that every core gets work (lavapipe runs one
 * workgroup per core at a time). Measured: with 2+ workgroups splitting does not pay here. */
const SPLIT_BELOW_GROUPS = 4;
/** Each K chunk keeps at least this many terms. */
const MIN_SPLIT_K = 256;

const ZERO = /* wgsl */ `
@group(0) @binding(0) var<uniform> p: vec4u;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) { if (gid.x < p.x) { out[gid.x] = 0.0; } }`;
