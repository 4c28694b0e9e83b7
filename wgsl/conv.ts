/**
 * Convolution and pooling kernels.
 *
 * The three convolution products are lowered to the register-tiled matrix product: an im2col
 * gather lays out the receptive fields of a chunk of the batch as rows of
 * cols [chunk * ho * wo, c * kh * kw], then
 * - forward:      y'  = cols @ W^T            ([P, f] per image, transposed to [f, P]),
 * - weight grad:  dW += dy'^T @ cols          (K = chunk * ho * wo, split across cores),
 * - input grad:   dcols = dy' @ W, then col2im gathers each input pixel's terms (no atomics).
 * The batch is processed in chunks so that cols stays under {@link COLS_LIMIT} elements (WebGPU
 * limits one binding to 128 MiB).
 *
 * Max pooling runs directly: the forward kernel picks, per window, the element of `values` at
 * the first maximum of x; the backward kernel is a gather over the windows that contain each
 * input pixel, recomputing their argmax, so it needs no atomics either.
 *
 * @module
 */

import {
  checkConv2dSpec,
  checkPool2dSpec,
  type Conv2dSpec,
  type Pool2dSpec,
  SgnError,
} from "../backend.ts";
import { WGSL_MATH } from "./elementwise.ts";
import { matmul } from "./matmul.ts";
import { type GpuBuffer, type GpuRuntime, grid, Params } from "./runtime.ts";
import { concat, strided } from "./layout.ts";
import { axpy } from "./elementwise.ts";

const WG = 64;
/** Largest im2col buffer, in elements (64 MiB). */
const COLS_LIMIT = 16 * 1024 * 1024;

function expectSize(op: string, what: string, b: GpuBuffer, size: number): void {
  if (b.size !== size) {
    throw new SgnError(`${op}: ${what} has ${b.size} elements, expected ${size}`);
  }
}

/** Conv geometry shared by im2col and col2im, as a parameter block. */
function geometry(s: Conv2dSpec, ho: number, wo: number, n0: number, count: number): Params {
  return new Params().u32(
    count,
    s.c,
    s.h,
    s.w,
    s.kh,
    s.kw,
    s.strideH,
    s.strideW,
    s.padH,
    s.padW,
    ho,
    wo,
    n0,
    padded(s),
  );
}

/** Row length of cols: c * kh * kw rounded up to a multiple of 4, so matmul loads vec4s. */
function padded(s: Conv2dSpec): number {
  return Math.ceil((s.c * s.kh * s.kw) / 4) * 4;
}

const GEOMETRY = `struct P { total: u32, c: u32, h: u32, w: u32, kh: u32, kw: u32, sh: u32, sw: u32,
  ph: u32, pw: u32, ho: u32, wo: u32, n0: u32, ckPad: u32, stride: u32 }`;

/** cols[(n - n0) * P + oy * wo + ox, (c * kh + ky) * kw + kx] = x[n, c, iy, ix] or 0 (padding). */
const IM2COL = /* wgsl */ `
${GEOMETRY}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> cols: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * p.stride;
  if (i >= p.total) { return; }
  let row = i / p.ckPad;
  let col = i % p.ckPad;
  if (col >= p.c * p.kh * p.kw) { cols[i] = 0.0; return; }
  let kx = col % p.kw;
  let ky = (col / p.kw) % p.kh;
  let c = col / (p.kw * p.kh);
  let ox = row % p.wo;
  let oy = (row / p.wo) % p.ho;
  let n = p.n0 + row / (p.wo * p.ho);
  let iy = i32(oy * p.sh + ky) - i32(p.ph);
  let ix = i32(ox * p.sw + kx) - i32(p.pw);
  var v = 0.0;
  if (iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w)) {
    v = x[((n * p.c + c) * p.h + u32(iy)) * p.w + u32(ix)];
  }
  cols[i] = v;
}`;

/** dx[n, c, iy, ix] = sum of dcols over the (output, kernel) positions that read x[n, c, iy, ix]. */
const COL2IM = /* wgsl */ `
${GEOMETRY}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> dcols: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * p.stride;
  if (i >= p.total) { return; }
  let ix = i % p.w;
  let iy = (i / p.w) % p.h;
  let c = (i / (p.w * p.h)) % p.c;
  let nl = i / (p.w * p.h * p.c);
  var acc = 0.0;
  for (var ky = 0u; ky < p.kh; ky++) {
    let ty = i32(iy + p.ph) - i32(ky);
    if (ty < 0 || u32(ty) % p.sh != 0u) { continue; }
    let oy = u32(ty) / p.sh;
    if (oy >= p.ho) { continue; }
    for (var kx = 0u; kx < p.kw; kx++) {
      let tx = i32(ix + p.pw) - i32(kx);
      if (tx < 0 || u32(tx) % p.sw != 0u) { continue; }
      let ox = u32(tx) / p.sw;
      if (ox >= p.wo) { continue; }
      let row = (nl * p.ho + oy) * p.wo + ox;
      acc += dcols[row * p.ckPad + (c * p.kh + ky) * p.kw + kx];
    }
  }
  dx[p.n0 * p.c * p.h * p.w + i] = acc;
}`;

/** Images per chunk so that the im2col buffer stays under the limit. */
function chunkSize(s: Conv2dSpec, ho: number, wo: number): number {
  const perImage = ho * wo * padded(s);
  return Math.max(1, Math.min(s.n, Math.floor(COLS_LIMIT / perImage)));
}

function im2col(
  rt: GpuRuntime,
  x: GpuBuffer,
  s: Conv2dSpec,
  ho: number,
  wo: number,
  n0: number,
  count: number,
) {
  const total = count * ho * wo * padded(s);
  const cols = rt.alloc(total);
  const [gx, gy] = grid(Math.ceil(total / WG));
  rt.dispatch(IM2COL, geometry(s, ho, wo, n0, total).u32(gx * WG), [x, cols], [gx, gy]);
  return cols;
}

/** The weights as [f, ckPad], zero-padded on the right (the weights themselves when ck = ckPad). */
function padWeights(rt: GpuRuntime, w: GpuBuffer, s: Conv2dSpec): GpuBuffer {
  const ck = s.c * s.kh * s.kw;
  const extra = padded(s) - ck;
  if (extra === 0) return w;
  const zeros = rt.alloc(s.f * extra);
  rt.dispatch(COPY_ZERO, new Params().u32(zeros.size), [zeros], [Math.ceil(zeros.size / WG)]);
  const out = concat(rt, [w, zeros], s.f, [ck, extra]);
  rt.release(zeros);
  return out;
}

/** Convolution forward: x [n, c, h, w], w [f, c, kh, kw] -> [n, f, ho, wo]. */
export function conv2d(rt: GpuRuntime, x: GpuBuffer, w: GpuBuffer, s: Conv2dSpec): GpuBuffer {
  const [ho, wo] = checkConv2dSpec("conv2d", s);
  expectSize("conv2d", "x", x, s.n * s.c * s.h * s.w);
  expectSize("conv2d", "w", w, s.f * s.c * s.kh * s.kw);
  const P = ho * wo;
  const wp = padWeights(rt, w, s);
  const chunk = chunkSize(s, ho, wo);
  const parts: GpuBuffer[] = [];
  for (let n0 = 0; n0 < s.n; n0 += chunk) {
    const count = Math.min(chunk, s.n - n0);
    const cols = im2col(rt, x, s, ho, wo, n0, count);
    // [count * P, f] = cols @ W^T, then per image [P, f] -> [f, P].
    const yt = matmul(rt, cols, wp, { m: count * P, k: padded(s), n: s.f, transB: true });
    rt.release(cols);
    parts.push(strided(rt, yt, [count, s.f, P], [P * s.f, 1, s.f], 0));
    rt.release(yt);
  }
  if (wp !== w) rt.release(wp);
  return joinBatch(rt, parts, s.n * s.f * P);
}

/** Concatenates per-chunk outputs along the batch (the common single-chunk case is free). */
function joinBatch(rt: GpuRuntime, parts: GpuBuffer[], total: number): GpuBuffer {
  if (parts.length === 1) return parts[0];
  const out = rt.alloc(total);
  let offset = 0;
  for (const part of parts) {
    copyInto(rt, part, out, offset);
    offset += part.size;
    rt.release(part);
  }
  return out;
}

const COPY = /* wgsl */ `
struct P { n: u32, offset: u32, stride: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * p.stride;
  if (i < p.n) { dst[p.offset + i] = src[i]; }
}`;

function copyInto(rt: GpuRuntime, src: GpuBuffer, dst: GpuBuffer, offset: number): void {
  const [gx, gy] = grid(Math.ceil(src.size / WG));
  rt.dispatch(COPY, new Params().u32(src.size, offset, gx * WG), [src, dst], [gx, gy]);
}

/** dy [n, f, ho, wo] of images n0..n0+count-1 as rows [count * P, f]. */
function dyRows(rt: GpuRuntime, dy: GpuBuffer, f: number, P: number, n0: number, count: number) {
  return strided(rt, dy, [count, P, f], [f * P, 1, P], n0 * f * P);
}

/** The input-gradient product: dy [n, f, ho, wo], w -> dx [n, c, h, w]. */
export function conv2dInputGrad(
  rt: GpuRuntime,
  dy: GpuBuffer,
  w: GpuBuffer,
  s: Conv2dSpec,
): GpuBuffer {
  const [ho, wo] = checkConv2dSpec("conv2dInputGrad", s);
  expectSize("conv2dInputGrad", "dy", dy, s.n * s.f * ho * wo);
  expectSize("conv2dInputGrad", "w", w, s.f * s.c * s.kh * s.kw);
  const P = ho * wo;
  const wp = padWeights(rt, w, s);
  const dx = rt.alloc(s.n * s.c * s.h * s.w);
  const chunk = chunkSize(s, ho, wo);
  for (let n0 = 0; n0 < s.n; n0 += chunk) {
    const count = Math.min(chunk, s.n - n0);
    const rows = dyRows(rt, dy, s.f, P, n0, count);
    const dcols = matmul(rt, rows, wp, { m: count * P, k: s.f, n: padded(s) });
    rt.release(rows);
    const total = count * s.c * s.h * s.w;
    const [gx, gy] = grid(Math.ceil(total / WG));
    rt.dispatch(COL2IM, geometry(s, ho, wo, n0, total).u32(gx * WG), [dcols, dx], [gx, gy]);
    rt.release(dcols);
  }
  if (wp !== w) rt.release(wp);
  return dx;
}

/** The weight-gradient product: x, dy -> dw [f, c, kh, kw]. */
export function conv2dWeightGrad(
  rt: GpuRuntime,
  x: GpuBuffer,
  dy: GpuBuffer,
  s: Conv2dSpec,
): GpuBuffer {
  const [ho, wo] = checkConv2dSpec("conv2dWeightGrad", s);
  expectSize("conv2dWeightGrad", "x", x, s.n * s.c * s.h * s.w);
  expectSize("conv2dWeightGrad", "dy", dy, s.n * s.f * ho * wo);
  const P = ho * wo;
  const ck = s.c * s.kh * s.kw;
  const chunk = chunkSize(s, ho, wo);
  let dw: GpuBuffer | undefined;
  for (let n0 = 0; n0 < s.n; n0 += chunk) {
    const count = Math.min(chunk, s.n - n0);
    const cols = im2col(rt, x, s, ho, wo, n0, count);
    const rows = dyRows(rt, dy, s.f, P, n0, count);
    // [f, ck] = rows^T @ cols, K = count * P.
    const part = matmul(rt, rows, cols, { m: s.f, k: count * P, n: padded(s), transA: true });
    rt.release(cols);
    rt.release(rows);
    if (dw) {
      const sum = axpy(rt, { coef: 1, buf: rt.one }, part, dw);
      rt.release(part);
      rt.release(dw);
      dw = sum;
    } else {
      dw = part;
    }
  }
  if (!dw) {
    dw = rt.alloc(s.f * padded(s));
    rt.dispatch(COPY_ZERO, new Params().u32(dw.size), [dw], [Math.ceil(dw.size / WG)]);
  }
  if (padded(s) === ck) return dw;
  const out = strided(rt, dw, [s.f, ck], [padded(s), 1], 0);
  rt.release(dw);
  return out;
}

const COPY_ZERO = /* wgsl */ `
@group(0) @binding(0) var<uniform> p: vec4u;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) { if (gid.x < p.x) { out[gid.x] = 0.0; } }`;

// --- pooling ------------------------------------------------------------------------------

const POOL_HEAD = `
${WGSL_MATH}
struct P { total: u32, h: u32, w: u32, kh: u32, kw: u32, sh: u32, sw: u32, ho: u32, wo: u32, stride: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
// Index (within the plane at base) of the first maximum of window (oy, ox); NaN counts as max.
fn argmaxWindow(base: u32, oy: u32, ox: u32) -> u32 {
  var best = base + oy * p.sh * p.w + ox * p.sw;
  var bv = x[best];
  for (var ky = 0u; ky < p.kh; ky++) {
    for (var kx = 0u; kx < p.kw; kx++) {
      let i = base + (oy * p.sh + ky) * p.w + ox * p.sw + kx;
      let v = x[i];
      if (!isNan(bv) && (v > bv || isNan(v))) { best = i; bv = v; }
    }
  }
  return best;
}`;

const POOL_FORWARD = /* wgsl */ `
${POOL_HEAD}
@group(0) @binding(2) var<storage, read> values: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * p.stride;
  if (i >= p.total) { return; }
  let ox = i % p.wo;
  let oy = (i / p.wo) % p.ho;
  let plane = i / (p.wo * p.ho);
  out[i] = values[argmaxWindow(plane * p.h * p.w, oy, ox)];
}`;

const POOL_BACKWARD = /* wgsl */ `
${POOL_HEAD}
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * p.stride;
  if (i >= p.total) { return; }
  let ix = i % p.w;
  let iy = (i / p.w) % p.h;
  let plane = i / (p.w * p.h);
  let base = plane * p.h * p.w;
  // Windows oy with oy * sh <= iy < oy * sh + kh, likewise ox.
  let oyLo = select(0u, (iy - p.kh + p.sh) / p.sh, iy + 1u > p.kh);
  let oxLo = select(0u, (ix - p.kw + p.sw) / p.sw, ix + 1u > p.kw);
  let oyHi = min(iy / p.sh + 1u, p.ho);
  let oxHi = min(ix / p.sw + 1u, p.wo);
  var acc = 0.0;
  for (var oy = oyLo; oy < oyHi; oy++) {
    for (var ox = oxLo; ox < oxHi; ox++) {
      if (argmaxWindow(base, oy, ox) == i) { acc += dy[(plane * p.ho + oy) * p.wo + ox]; }
    }
  }
  dx[i] = acc;
}`;

function poolParams(s: Pool2dSpec, ho: number, wo: number, total: number, stride: number): Params {
  return new Params().u32(total, s.h, s.w, s.kh, s.kw, s.strideH, s.strideW, ho, wo, stride);
}

/** Max pooling: per window, `values` (default x) at the first maximum of x. */
export function maxPool2d(
  rt: GpuRuntime,
  x: GpuBuffer,
  s: Pool2dSpec,
  values?: GpuBuffer,
): GpuBuffer {
  const [ho, wo] = checkPool2dSpec("maxPool2d", s);
  expectSize("maxPool2d", "x", x, s.n * s.c * s.h * s.w);
  if (values) expectSize("maxPool2d", "values", values, x.size);
  const total = s.n * s.c * ho * wo;
  const out = rt.alloc(total);
  const [gx, gy] = grid(Math.ceil(total / WG));
  rt.dispatch(POOL_FORWARD, poolParams(s, ho, wo, total, gx * WG), [x, values ?? x, out], [gx, gy]);
  return out;
}

/** The transpose of maxPool2d in its values: scatters dy to the argmax positions. */
export function maxPool2dBackward(
  rt: GpuRuntime,
  x: GpuBuffer,
  dy: GpuBuffer,
  s: Pool2dSpec,
): GpuBuffer {
  const [ho, wo] = checkPool2dSpec("maxPool2dBackward", s);
  expectSize("maxPool2dBackward", "x", x, s.n * s.c * s.h * s.w);
  expectSize("maxPool2dBackward", "dy", dy, s.n * s.c * ho * wo);
  const total = x.size;
  const dx = rt.alloc(total);
  const [gx, gy] = grid(Math.ceil(total / WG));
  rt.dispatch(POOL_BACKWARD, poolParams(s, ho, wo, total, gx * WG), [x, dy, dx], [gx, gy]);
  return dx;
}
