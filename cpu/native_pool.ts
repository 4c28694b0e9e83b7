/**
 * The native backend's max pooling helpers (cpu/native.ts): the argmax of every window, the
 * gather of a tangent at the argmax positions oneDNN's workspace records, and the inputs oneDNN's
 * max pooling gets wrong (NaN, -Infinity), which the JavaScript path serves instead.
 *
 * @module
 */

import type { Pool2dSpec } from "../kernel/backend.ts";
import type { TypedArray } from "../kernel/shape.ts";

/**
 * The input index of each pooling window's maximum, outputs in row-major order: the first
 * maximum wins, and the first NaN wins over any number and stays.
 */
export function windowArgmax(xd: TypedArray, s: Pool2dSpec, ho: number, wo: number): Int32Array {
  const arg = new Int32Array(s.n * s.c * ho * wo);
  // Offsets of a window's elements from its first, in row-major order.
  const offs = new Int32Array(s.kh * s.kw);
  for (let ky = 0, t = 0; ky < s.kh; ky++) {
    for (let kx = 0; kx < s.kw; kx++) offs[t++] = ky * s.w + kx;
  }
  const nt = offs.length, sh = s.strideH, sw = s.strideW;
  let o = 0;
  for (let nc = 0; nc < s.n * s.c; nc++) {
    for (let oy = 0; oy < ho; oy++) {
      const rowBase = (nc * s.h + oy * sh) * s.w;
      for (let ox = 0; ox < wo; ox++, o++) {
        const start = rowBase + ox * sw;
        let best = start;
        let bv = xd[start];
        // The first maximum wins; the first NaN wins over any number and stays.
        for (let t = 1; t < nt; t++) {
          const v = xd[start + offs[t]];
          if (v > bv || (v !== v && bv === bv)) {
            best = start + offs[t];
            bv = v;
          }
        }
        arg[o] = best;
      }
    }
  }
  return arg;
}

/**
 * out[o] = v[the input index of output o's window argmax], the argmax given as its position in
 * the window (ky kw + kx) per output.
 */
export function gatherArgmax(
  s: Pool2dSpec,
  ho: number,
  wo: number,
  at: Uint8Array | Int32Array,
  v: TypedArray,
  out: TypedArray,
): void {
  const sh = s.strideH, sw = s.strideW, w = s.w;
  // The input offset of each window position from the window's first element.
  const offs = new Int32Array(s.kh * s.kw);
  for (let ky = 0, t = 0; ky < s.kh; ky++) {
    for (let kx = 0; kx < s.kw; kx++) offs[t++] = ky * w + kx;
  }
  let o = 0;
  for (let nc = 0; nc < s.n * s.c; nc++) {
    for (let oy = 0; oy < ho; oy++) {
      const row = (nc * s.h + oy * sh) * w;
      for (let ox = 0, start = row; ox < wo; ox++, o++, start += sw) {
        out[o] = v[start + offs[at[o]]];
      }
    }
  }
}

/**
 * Whether a buffer holds a value oneDNN's max pooling gets wrong: NaN (skipped, where ours
 * returns it) or -Infinity (a window of only -Infinity gives -FLT_MAX there).
 */
export function poolHazard(x: TypedArray): boolean {
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (v !== v || v === -Infinity) return true;
  }
  return false;
}
