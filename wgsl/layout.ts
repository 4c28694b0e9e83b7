/**
 * Concatenation and splitting: routines that move many buffers in one dispatch (views, transposes
 * and broadcasts are IR kernels, `wgsl/codegen.ts`).
 *
 * @module
 */

import { SgnError } from "../errors.ts";
import { type GpuBuffer, type GpuRuntime, grid, Params } from "./runtime.ts";
import { memoKernel } from "./source.ts";

const WG = 64;

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

/**
 * One kernel moving pieces between a flat buffer and `n` part buffers: "gather" fills the flat
 * buffer from the parts (concat), "scatter" fills the parts from it (split). Part k covers flat
 * indices [start[k], start[k + 1]).
 */
const piecesKernel = memoKernel("pieces", piecesSource);

function piecesSource(n: number, dir: "gather" | "scatter"): string {
  const parts = Array.from(
    { length: n },
    (_, k) =>
      `@group(0) @binding(${k + 1}) var<storage, ${
        dir === "gather" ? "read" : "read_write"
      }> p${k}: array<f32>;`,
  ).join("\n");
  const flat = `@group(0) @binding(${n + 1}) var<storage, ${
    dir === "gather" ? "read_write" : "read"
  }> flat: array<f32>;`;
  const branches = Array.from({ length: n }, (_, k) => {
    const lo = `p.start[${Math.floor(k / 4)}][${k % 4}]`;
    const hi = `p.start[${Math.floor((k + 1) / 4)}][${(k + 1) % 4}]`;
    const move = dir === "gather" ? `flat[i] = p${k}[i - ${lo}];` : `p${k}[i - ${lo}] = flat[i];`;
    return `if (i >= ${lo} && i < ${hi}) { ${move} }`;
  }).join(" else ");
  return /* wgsl */ `
struct P { n: u32, stride: u32, base: u32, pad: u32, start: array<vec4u, 8> }
@group(0) @binding(0) var<uniform> p: P;
${parts}
${flat}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = p.base + gid.x + gid.y * p.stride;
  if (i >= p.n) { return; }
  ${branches}
}`;
}

/** Runs piecesKernel over groups of parts that fit the storage-binding limit. */
function movePieces(
  rt: GpuRuntime,
  flat: GpuBuffer,
  parts: readonly GpuBuffer[],
  dir: "gather" | "scatter",
): void {
  const group = Math.min(31, rt.device.limits.maxStorageBuffersPerShaderStage - 1);
  let base = 0;
  for (let g = 0; g < parts.length; g += group) {
    const chunk = parts.slice(g, g + group);
    const start = [base];
    for (const part of chunk) start.push(start.at(-1)! + part.size);
    const end = start.at(-1)!;
    const [gx, gy] = grid(Math.ceil((end - base) / WG));
    const params = new Params().u32(end, gx * WG, base, 0, ...start);
    params.u32(...new Array(32 - start.length).fill(end));
    if (end > base) {
      rt.dispatch(piecesKernel(chunk.length, dir), params, [...chunk, flat], [gx, gy]);
    }
    base = end;
  }
}

/** Splits x into consecutive pieces of `sizes` elements, one dispatch per group of pieces. */
export function split(rt: GpuRuntime, x: GpuBuffer, sizes: readonly number[]): GpuBuffer[] {
  const total = sizes.reduce((s, n) => s + n, 0);
  if (total !== x.size) {
    throw new SgnError(`split: sizes add up to ${total}, the buffer has ${x.size}`);
  }
  const parts = sizes.map((n) => rt.alloc(n));
  movePieces(rt, x, parts, "scatter");
  return parts;
}

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
  if (outer === 1) {
    movePieces(rt, out, parts, "gather");
    return out;
  }
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
