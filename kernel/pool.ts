/**
 * Max pooling as kernels of the IR. A window of the input is a view with overlapping strides (the
 * output index steps by the stride, the window index by one), so the forward pass is a max
 * reduction over that view, and its JVP (the tangent at each window's first maximum) an argmax
 * reduction whose epilogue picks the tangent at the position it found, by a chain of selects over
 * the window's positions ({@link poolForwardKernel}).
 *
 * The backward is a gather (each input position collects dy from the windows whose argmax it
 * is) rather than the scatter the routine's name suggests, for any windows: apart, overlapping,
 * or leaving a border ({@link poolBackwardKernels}).
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
  return disjoint(s) && ho * s.strideH === s.h && wo * s.strideW === s.w;
}

/** Whether no two windows share a position (the stride is at least the window, both ways). */
export function disjoint(s: Pool2dSpec): boolean {
  return s.strideH >= s.kh && s.strideW >= s.kw;
}

/**
 * The max-pool backward as kernels of the IR, for any spec ({@link poolBackwardKernels}): the
 * kernels, in order, and the plane they leave.
 */
export interface PoolBackward {
  /** Each window's argmax ([n, c, ho, wo], from x), where it comes first: the gather's input 0. */
  readonly argmax?: Kernel;
  /**
   * dx as [n, c, hc, sh, wc, sw]: the plane cut into hc x wc cells of the stride's size, which
   * cover it (hc = ceil(h / sh), wc = ceil(w / sw)). Inputs (x, dy), or (argmax, dy).
   */
  readonly gather: Kernel;
  /** The gather's output as a plane, [n, c, hc sh, wc sw]: dx is its [n, c, h, w] corner. */
  readonly plane: readonly number[];
  /** Whether that plane is dx itself (the cells end where the map does, both ways). */
  readonly fits: boolean;
}

/**
 * The max-pool backward (dy sent to each window's first maximum: the first NaN, else the first
 * maximum; summed into zeros, so a dy of -0 gives +0) as kernels of the IR. The output is the
 * plane cut into cells of the stride's size, [n, c, hc, sh, wc, sw], a cell's position (r, t)
 * being input row qy sh + r, column qx sw + t.
 *
 * - Windows that do not overlap ({@link disjoint}): one kernel over (x, dy). A cell holds at most
 *   one window's positions, its top-left kh x kw corner (window (qy, qx)); each element reduces
 *   that window to its argmax and keeps dy where the argmax is its own position r kw + t.
 * - Overlapping windows, or with `argmaxOnce` any windows: the argmax of each window first,
 *   then a sum over the windows that contain each position. Those are windows oy = qy - j for
 *   j < mh = ceil(kh / sh), at window row ky = r + j sh (likewise columns); the sum runs j from
 *   mh - 1 down to 0, so windows add up in the order a scatter over them would. For windows
 *   apart (one window or none per position) this is a dispatch more than the one kernel, with
 *   each argmax found once instead of at every position of its cell, which an adapter short of
 *   arithmetic, such as a software one, prefers.
 *
 * Both read windows and dy beyond the maps' edges: in the cells past the last window (the border
 * a pool leaves, and cells reaching past the plane), and, overlapping, above and left of the first
 * window. Those loads are masked: a `where` whose condition, made of index leaves, excludes them,
 * so the value they read (garbage, or nothing at all: every lowering reads past a buffer without
 * faulting, see {@link Expr}) never reaches the result.
 */
export function poolBackwardKernels(
  s: Pool2dSpec,
  ho: number,
  wo: number,
  argmaxOnce = false,
): PoolBackward {
  const { n, c, h, w, kh, kw } = s;
  const sh = s.strideH, sw = s.strideW;
  const hc = Math.ceil(h / sh), wc = Math.ceil(w / sw);
  const shape = [n, c, hc, sh, wc, sw];
  const plane = [n, c, hc * sh, wc * sw];
  const fits = hc * sh === h && wc * sw === w;
  const all = (conds: Expr[]) => conds.reduce((a, b) => binary("mul", a, b));
  if (disjoint(s) && !argmaxOnce) {
    // Loop [n, c, qy, r, qx, t, ky, kx]: window (qy, qx) at every position of its cell.
    const x = load(0, [c * h * w, h * w, sh * w, 0, sw, 0, w, 1]);
    const dy = load(1, [c * ho * wo, ho * wo, wo, 0, 1, 0]);
    const conds = [
      binary("eq", ACC, index([0, 0, 0, kw, 0, 1])),
      binary("ne", dy, constant(0)),
    ];
    // A column t >= kw holds no position (r >= kh gives r kw + t >= kh kw: no argmax's).
    if (kw < sw) conds.push(binary("lt", index([0, 0, 0, 0, 0, 1]), constant(kw)));
    if (hc > ho) conds.push(binary("lt", index([0, 0, 1, 0, 0, 0]), constant(ho)));
    if (wc > wo) conds.push(binary("lt", index([0, 0, 0, 0, 1, 0]), constant(wo)));
    const gather: Kernel = {
      shape,
      inputs: 2,
      body: x,
      reduce: { op: "argmax", shape: [kh, kw] },
      epilogue: where(all(conds), dy, constant(0)),
    };
    return { gather, plane, fits };
  }
  const mh = Math.ceil(kh / sh), mw = Math.ceil(kw / sw);
  // Loop [n, c, qy, r, qx, t, j', i'] with j = mh - 1 - j': window oy = qy - mh + 1 + j'.
  const window = [c * ho * wo, ho * wo, wo, 0, 1, 0, wo, 1];
  const first = -((mh - 1) * wo + (mw - 1));
  const [argmax, dy] = [load(0, window, first), load(1, window, first)];
  const oy = index([0, 0, 1, 0, 0, 0, 1, 0], 1 - mh);
  const ox = index([0, 0, 0, 0, 1, 0, 0, 1], 1 - mw);
  // The position in window (oy, ox): row r + j sh, column t + i sw.
  const kx = index([0, 0, 0, 0, 0, 1, 0, -sw], (mw - 1) * sw);
  const at = index([0, 0, 0, kw, 0, 1, -sh * kw, -sw], (mh - 1) * sh * kw + (mw - 1) * sw);
  const conds = [binary("eq", argmax, at), binary("ne", dy, constant(0))];
  if (mw * sw > kw) conds.push(binary("lt", kx, constant(kw)));
  if (mh > 1) conds.push(binary("ge", oy, constant(0)));
  if (mw > 1) conds.push(binary("ge", ox, constant(0)));
  if (hc > ho) conds.push(binary("lt", oy, constant(ho)));
  if (wc > wo) conds.push(binary("lt", ox, constant(wo)));
  return {
    argmax: argmaxKernel(s, ho, wo),
    gather: {
      shape,
      inputs: 2,
      body: where(all(conds), dy, constant(0)),
      reduce: { op: "sum", shape: [mh, mw] },
    },
    plane,
    fits,
  };
}

/** Each window's argmax (the first NaN, else the first maximum) over x: [n, c, ho, wo]. */
export function argmaxKernel(s: Pool2dSpec, ho: number, wo: number): Kernel {
  const shape = [s.n, s.c, ho, wo];
  return { shape, inputs: 1, body: windows(0, s), reduce: { op: "argmax", shape: [s.kh, s.kw] } };
}
