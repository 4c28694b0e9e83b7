/**
 * Max pooling as kernels of the IR. A window of the input is a view with overlapping strides (the
 * output index steps by the stride, the window index by one), so the forward pass is a max
 * reduction over that view, and its JVP (the tangent at each window's first maximum) an argmax
 * reduction whose epilogue picks the tangent at the position it found, by a chain of selects over
 * the window's positions ({@link poolForwardKernel}).
 *
 * The backward, where the windows tile the plane, is a gather (each input position keeps dy
 * where its cell's window has its argmax) rather than the scatter the routine's name suggests
 * ({@link poolBackwardKernel}).
 *
 * WebGPU lowers its routines through these kernels (wgsl/pool.ts), and the graph builds them as
 * nodes of their own on backends that say so (`Backend.poolInIr`), so that element-wise work
 * on their operands fuses into their loads and their consumers (the relu after a pool) into
 * their epilogues.
 *
 * @module
 */

import type { Pool2dSpec } from "./backend.ts";
import { ACC, binary, constant, type Expr, index, type Kernel, load, where } from "./ir.ts";

/**
 * Most window positions whose tangent the forward kernel picks by its chain of selects (one
 * constant each): larger windows take the routine, which selects in passes.
 */
export const PICK_MAX = 16;

/**
 * The pooling windows of input `input` as a load: the output index [n, c, oy, ox], then (unless
 * `at` names one window position) the window index [ky, kx].
 */
export function windows(input: number, s: Pool2dSpec, at?: { ky: number; kx: number }): Expr {
  const { c, h, w } = s;
  const out = [c * h * w, h * w, s.strideH * w, s.strideW];
  return at ? load(input, out, at.ky * w + at.kx) : load(input, [...out, w, 1]);
}

/**
 * Select-chain over window positions lo..hi-1: the value of `values` (input 1) at the position
 * that `index` names, `rest` when it names none of them.
 */
export function pick(s: Pool2dSpec, index: Expr, lo: number, hi: number, rest: Expr): Expr {
  let e = rest;
  for (let k = hi - 1; k >= lo; k--) {
    const at = windows(1, s, { ky: Math.floor(k / s.kw), kx: k % s.kw });
    e = where(binary("eq", index, constant(k)), at, e);
  }
  return e;
}

/**
 * The max-pool forward as a kernel of the IR over x (input 0), output [n, c, ho, wo]: the
 * windows' maximum (a max reduction: the first NaN wins, then the first maximum, as in the
 * argmax), or with `values` (input 1, x's shape) the value at each window's first maximum: one
 * constant per window position but the last, which the caller keeps within its backend's limit
 * (the graph takes this kernel for windows of at most {@link PICK_MAX} positions).
 */
export function poolForwardKernel(
  s: Pool2dSpec,
  ho: number,
  wo: number,
  values: boolean,
): Kernel {
  const shape = [s.n, s.c, ho, wo];
  const reduce = { shape: [s.kh, s.kw] };
  if (!values) return { shape, inputs: 1, body: windows(0, s), reduce: { op: "max", ...reduce } };
  const last = s.kh * s.kw - 1;
  return {
    shape,
    inputs: 2,
    body: windows(0, s),
    reduce: { op: "argmax", ...reduce },
    epilogue: pick(s, ACC, 0, last, windows(1, s, { ky: s.kh - 1, kx: s.kw - 1 })),
  };
}

/**
 * Whether the windows tile the plane: they do not overlap, and the cells of stride size that hold
 * them cover it exactly (ho sh = h, wo sw = w), so that [n, c, h, w] is [n, c, ho, sh, wo, sw].
 */
export function tiles(s: Pool2dSpec, ho: number, wo: number): boolean {
  return s.strideH >= s.kh && s.strideW >= s.kw && ho * s.strideH === s.h &&
    wo * s.strideW === s.w;
}

/**
 * The max-pool backward as a kernel of the IR, for windows that {@link tiles} the plane: inputs
 * x and dy, output dx [n, c, h, w] as [n, c, ho, sh, wo, sw]. Each element reduces its cell's
 * window to the argmax (the forward's rule: the first NaN, else the first maximum) and keeps
 * dy where that is its own position r kw + t (and t < kw: a column of the cell right of the
 * window holds no position). A dy of -0 gives +0, as a sum into zeros does.
 */
export function poolBackwardKernel(s: Pool2dSpec, ho: number, wo: number): Kernel {
  const { c, h, w, kw } = s;
  const sh = s.strideH, sw = s.strideW;
  const x = load(0, [c * h * w, h * w, sh * w, 0, sw, 0, w, 1]);
  const dy = load(1, [c * ho * wo, ho * wo, wo, 0, 1, 0]);
  let keep = binary(
    "mul",
    binary("eq", ACC, index([0, 0, 0, kw, 0, 1])),
    binary("ne", dy, constant(0)),
  );
  if (kw < sw) keep = binary("mul", keep, binary("lt", index([0, 0, 0, 0, 0, 1]), constant(kw)));
  return {
    shape: [s.n, c, ho, sh, wo, sw],
    inputs: 2,
    body: x,
    reduce: { op: "argmax", shape: [s.kh, kw] },
    epilogue: where(keep, dy, constant(0)),
  };
}
