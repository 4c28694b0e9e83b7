/**
 * Max pooling on WebGPU. The forward pass, its JVP and, where the windows tile the plane, the
 * backward are kernels of the IR (kernel/pool.ts), generated (codegen.ts) as every other map and
 * reduction is.
 *
 * Elsewhere (overlapping windows, or a border that no window covers) the gather needs dy and the
 * argmax of windows at rows oy - 1, ... , which at the border lie before or after the buffers:
 * no view reads them without reading outside the buffer. There the backward stays one template:
 * a gather over the windows that contain each input pixel that recomputes their argmax; for
 * windows that do not overlap each invocation owns a cell of the plane and writes all of it. No
 * atomics, so every result is deterministic.
 *
 * @module
 */

import { checkPool2dSpec, type Pool2dSpec } from "../kernel/backend.ts";
import { contiguous, load } from "../kernel/ir.ts";
import { pick, poolBackwardKernel, poolForwardKernel, tiles, windows } from "../kernel/pool.ts";
import { dispatchKernel, MAX_CONSTS } from "./codegen.ts";
import { routineSource } from "./routine.ts";
import { dispatchFlat, expectShape, type GpuBuffer, type GpuRuntime, Params } from "./runtime.ts";
import { memoKernel } from "./source.ts";

/** Workgroup size of the backward kernels. */
const WG = 64;

/** The output size [ho, wo] of a valid spec, after checking it and the input x. */
function checked(op: string, s: Pool2dSpec, x: GpuBuffer): [number, number] {
  const out = checkPool2dSpec(op, s);
  expectShape(op, "x", x, [s.n, s.c, s.h, s.w]);
  return out;
}

/**
 * Max pooling: per window, `values` (default x) at the first maximum of x. With `values` x
 * itself, the maximum (a max reduction: the first NaN wins, then the first maximum, as in the
 * argmax). Otherwise the argmax's position selects the value, in the reduction's epilogue; the
 * chain has one constant per position, so a window of more than {@link MAX_CONSTS} + 1 positions
 * materializes the argmax and selects in passes of {@link MAX_CONSTS} positions.
 */
export function maxPool2d(
  rt: GpuRuntime,
  x: GpuBuffer,
  s: Pool2dSpec,
  values?: GpuBuffer,
): GpuBuffer {
  const [ho, wo] = checked("maxPool2d", s, x);
  const shape = [s.n, s.c, ho, wo];
  if (values) expectShape("maxPool2d", "values", values, [s.n, s.c, s.h, s.w]);
  if (s.n * s.c === 0) return rt.alloc(0);
  if (!values || values === x) return dispatchKernel(rt, poolForwardKernel(s, ho, wo, false), [x]);
  const last = s.kh * s.kw - 1;
  if (last <= MAX_CONSTS) {
    return dispatchKernel(rt, poolForwardKernel(s, ho, wo, true), [x, values]);
  }
  const { body, reduce } = poolForwardKernel(s, ho, wo, true);
  const index = dispatchKernel(rt, { shape, inputs: 1, body, reduce }, [x]);
  const flat = contiguous(shape);
  let out: GpuBuffer | undefined;
  for (let lo = 0; lo < last; lo += MAX_CONSTS) {
    const hi = Math.min(lo + MAX_CONSTS, last);
    const rest = out ? load(2, flat) : windows(1, s, { ky: s.kh - 1, kx: s.kw - 1 });
    const body = pick(s, load(0, flat), lo, hi, rest);
    const prev = out;
    out = dispatchKernel(rt, { shape, inputs: prev ? 3 : 2, body }, [
      index,
      values,
      ...(prev ? [prev] : []),
    ]);
    if (prev) rt.release(prev);
  }
  rt.release(index);
  return out!;
}

/** Index of the first maximum of window (oy, ox) of the plane at `base`; the first NaN wins. */
const ARGMAX_WINDOW = /* wgsl */ `
fn argmaxWindow(base: u32, oy: u32, ox: u32) -> u32 {
  var best = base + oy * p.sh * p.w + ox * p.sw;
  var bv = x[best];
  for (var ky = 0u; ky < p.kh; ky++) {
    let row = base + (oy * p.sh + ky) * p.w + ox * p.sw;
    for (var kx = 0u; kx < p.kw; kx++) {
      let v = x[row + kx];
      if (!isNan(bv) && (v > bv || isNan(v))) { best = row + kx; bv = v; }
    }
  }
  return best;
}`;

/** Backward for overlapping windows: per input pixel, the windows that contain it. */
const GATHER = /* wgsl */ `let ix = i % p.w;
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
  dx[i] = acc;`;

/**
 * Backward for windows that do not overlap (stride >= window): the plane is cut into cy x cx
 * cells of sh x sw (the last ones clipped to the plane); a cell's window is its top-left
 * kh x kw corner when the window exists. Each invocation writes its whole cell: dy at the
 * window's argmax, 0 elsewhere.
 */
const CELLS = /* wgsl */ `let cx = i % p.cx;
  let cy = (i / p.cx) % p.cy;
  let plane = i / (p.cx * p.cy);
  let base = plane * p.h * p.w;
  let window = cy < p.ho && cx < p.wo;
  var best = 0xffffffffu;
  var g = 0.0;
  if (window) {
    best = argmaxWindow(base, cy, cx);
    g = dy[(plane * p.ho + cy) * p.wo + cx];
  }
  // A dy of -0 gives +0, as a sum into zeros (the CPU's) does. (0.0 + g is folded to g, and
  // g != 0.0 is false for NaN on llvmpipe: the bits tell ±0.)
  if ((bitcast<u32>(g) & 0x7fffffffu) == 0u) { best = 0xffffffffu; }
  for (var r = 0u; r < p.sh; r++) {
    let iy = cy * p.sh + r;
    for (var c = 0u; c < p.sw; c++) {
      let ix = cx * p.sw + c;
      let k = base + iy * p.w + ix;
      if (iy < p.h && ix < p.w) { dx[k] = select(0.0, g, k == best); }
    }
  }`;

/** The backward kernel: `cells` for windows that do not overlap, else the gather. */
const backwardKernel = memoKernel("poolBackward", (cells: boolean) =>
  routineSource({
    params: ["total", "h", "w", "kh", "kw", "sh", "sw", "ho", "wo", "cy", "cx", "stride"],
    storage: [{ name: "x" }, { name: "dy" }, { name: "dx", write: true }],
    decls: ARGMAX_WINDOW,
    entry: { kind: "flat", wg: WG, count: "p.total" },
    body: cells ? CELLS : GATHER,
  }));

/**
 * The transpose of maxPool2d in its values: dy sent to the argmax positions, through the IR where
 * the windows tile the plane (kernel/pool.ts), else the template.
 */
export function maxPool2dBackward(
  rt: GpuRuntime,
  x: GpuBuffer,
  dy: GpuBuffer,
  s: Pool2dSpec,
): GpuBuffer {
  const [ho, wo] = checked("maxPool2dBackward", s, x);
  expectShape("maxPool2dBackward", "dy", dy, [s.n, s.c, ho, wo]);
  if (s.n * s.c === 0) return rt.alloc(0);
  if (tiles(s, ho, wo)) return dispatchKernel(rt, poolBackwardKernel(s, ho, wo), [x, dy]);
  const dx = rt.alloc(s.n * s.c * s.h * s.w);
  const cells = s.strideH >= s.kh && s.strideW >= s.kw;
  const cy = cells ? Math.ceil(s.h / s.strideH) : 0;
  const cx = cells ? Math.ceil(s.w / s.strideW) : 0;
  const total = cells ? s.n * s.c * cy * cx : dx.size;
  const params = new Params()
    .u32(total, s.h, s.w, s.kh, s.kw, s.strideH, s.strideW, ho, wo, cy, cx);
  dispatchFlat(rt, backwardKernel(cells), params, [x, dy, dx], total, WG);
  return dx;
}
