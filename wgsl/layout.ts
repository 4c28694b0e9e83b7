/**
 * Layout kernels: a strided gather (transpose, slice, broadcast) and concatenation.
 *
 * @module
 */

import { SgnError, sizeOf } from "../backend.ts";
import { coalesce, decodeIndex, MAX_RANK } from "./elementwise.ts";
import { type GpuBuffer, type GpuRuntime, grid, Params } from "./runtime.ts";

const WG = 64;

const stridedKernel = (rank: number) => /* wgsl */ `
struct P { n: u32, stride: u32, offset: u32, pad: u32, shape: array<vec4u, 2>, ix: array<vec4u, 2> }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * p.stride;
  if (i >= p.n) { return; }
  ${decodeIndex(rank, ["ix"])}
  out[i] = x[p.offset + ix];
}`;

/** `out[idx] = x[offset + sum_i idx_i * strides[i]]` over every index of outShape. */
export function strided(
  rt: GpuRuntime,
  x: GpuBuffer,
  outShape: readonly number[],
  strides: readonly number[],
  offset: number,
): GpuBuffer {
  if (strides.length !== outShape.length) {
    throw new SgnError(
      `strided: ${strides.length} strides for a shape of rank ${outShape.length}`,
    );
  }
  const n = sizeOf(outShape);
  let last = offset;
  outShape.forEach((d, i) => (last += d > 0 ? (d - 1) * strides[i] : 0));
  if (n > 0 && (offset < 0 || last >= x.size || strides.some((s) => s < 0))) {
    throw new SgnError(
      `strided: the view [${outShape}] with strides [${strides}] at offset ${offset} ` +
        `reads outside a buffer of ${x.size} elements`,
    );
  }
  const { shape, strides: [sx] } = coalesce(outShape, [strides]);
  if (shape.length > MAX_RANK) {
    throw new SgnError(`strided: views need at most ${MAX_RANK} distinct dimensions`);
  }
  const dims = [...shape, 1, 1, 1, 1, 1, 1, 1, 1].slice(0, 8);
  const sxs = [...sx, 0, 0, 0, 0, 0, 0, 0, 0].slice(0, 8);
  const out = rt.alloc(n);
  const [gx, gy] = grid(Math.ceil(n / WG));
  const code = stridedKernel(shape.length);
  rt.dispatch(code, new Params().u32(n, gx * WG, offset, 0, ...dims, ...sxs), [x, out], [
    gx,
    gy,
  ]);
  return out;
}

const COPY_REGION = /* wgsl */ `
struct P { n: u32, stride: u32, width: u32, outWidth: u32, col: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * p.stride;
  if (i >= p.n) { return; }
  let row = i / p.width;
  out[row * p.outWidth + p.col + i % p.width] = x[i];
}`;

/** Places parts viewed as [outer, widths[i]] side by side: [outer, sum(widths)]. */
export function concat(
  rt: GpuRuntime,
  parts: readonly GpuBuffer[],
  outer: number,
  widths: readonly number[],
): GpuBuffer {
  if (parts.length !== widths.length) {
    throw new SgnError(`concat: ${parts.length} parts but ${widths.length} widths`);
  }
  parts.forEach((part, i) => {
    if (part.size !== outer * widths[i]) {
      throw new SgnError(
        `concat: part ${i} has ${part.size} elements, expected ${outer} x ${widths[i]}`,
      );
    }
  });
  const total = widths.reduce((s, w) => s + w, 0);
  const out = rt.alloc(outer * total);
  let col = 0;
  parts.forEach((part, i) => {
    const n = part.size;
    const [gx, gy] = grid(Math.ceil(n / WG));
    rt.dispatch(COPY_REGION, new Params().u32(n, gx * WG, widths[i], total, col), [part, out], [
      gx,
      gy,
    ]);
    col += widths[i];
  });
  return out;
}
