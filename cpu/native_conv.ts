/**
 * The native backend's convolution helpers (cpu/native.ts): the im2col index map of an image
 * (cached per shape), the gather of an image's columns through it and its transpose (col2im),
 * and the bias of a conv epilogue that oneDNN can add in the same pass.
 *
 * @module
 */

import {
  conv2dOutSize,
  type Conv2dSpec,
  type DeviceBuffer,
  type Epilogue,
} from "../kernel/backend.ts";
import type { TypedArray } from "../kernel/shape.ts";

const maps = new Map<string, Int32Array>();

/**
 * The im2col index map of one image: map[(c kh + ky) kw + kx][oy wo + ox] is the offset of
 * x[c][iy][ix] in the image, iy = oy sh - ph + ky and ix = ox sw - pw + kx, or -1 in the
 * padding. Cached per shape (a few shapes per network).
 */
export function im2colMap(s: Conv2dSpec, ho: number, wo: number): Int32Array {
  const key = [s.c, s.h, s.w, s.kh, s.kw, s.strideH, s.strideW, s.padH, s.padW].join(",");
  let map = maps.get(key);
  if (map) return map;
  map = new Int32Array(s.c * s.kh * s.kw * ho * wo);
  let j = 0;
  for (let c = 0; c < s.c; c++) {
    for (let ky = 0; ky < s.kh; ky++) {
      for (let kx = 0; kx < s.kw; kx++) {
        for (let oy = 0; oy < ho; oy++) {
          const iy = oy * s.strideH - s.padH + ky;
          for (let ox = 0; ox < wo; ox++, j++) {
            const ix = ox * s.strideW - s.padW + kx;
            map[j] = iy < 0 || iy >= s.h || ix < 0 || ix >= s.w ? -1 : (c * s.h + iy) * s.w + ix;
          }
        }
      }
    }
  }
  maps.set(key, map);
  return map;
}

/** col[j] = x[base + map[j]] (0 where map[j] < 0). */
export function gather(x: TypedArray, base: number, map: Int32Array, col: TypedArray): void {
  for (let j = 0; j < map.length; j++) {
    const k = map[j];
    col[j] = k < 0 ? 0 : x[base + k];
  }
}

/** dx[base + map[j]] += col[j]: the transpose of {@link gather}. */
export function scatterAdd(col: TypedArray, map: Int32Array, dx: TypedArray, base: number): void {
  for (let j = 0; j < map.length; j++) {
    const k = map[j];
    if (k >= 0) dx[base + k] += col[j];
  }
}

/**
 * The bias of an epilogue that only adds one value per filter to the convolution (`acc + b[f]`,
 * either order), as the buffer and the offset of b[0]; else undefined.
 */
export function biasOf(
  epi: Epilogue,
  s: Conv2dSpec,
): { buffer: DeviceBuffer; offset: number } | undefined {
  const e = epi.body;
  if (e.k !== "binary" || e.op !== "add") return undefined;
  const [acc, l] = e.a.k === "acc" ? [e.a, e.b] : [e.b, e.a];
  if (acc.k !== "acc" || l.k !== "load" || l.strides.length !== 4) return undefined;
  const [ho, wo] = conv2dOutSize(s);
  const sizes = [s.n, s.f, ho, wo];
  const want = [0, 1, 0, 0];
  // A dimension of size 1 is never stepped through: its stride does not matter.
  if (!l.strides.every((st, d) => sizes[d] === 1 || st === want[d])) return undefined;
  return { buffer: epi.inputs[l.input], offset: l.offset };
}
