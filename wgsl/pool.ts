/**
 * Max pooling on WebGPU, by the kernels of the IR (kernel/pool.ts), generated (codegen.ts) as
 * every other map and reduction is: the forward pass and its JVP as reductions over the windows
 * (a view with overlapping strides), the backward as a gather (each input position collects dy
 * from the windows whose argmax it is). No atomics, so every result is deterministic.
 *
 * @module
 */

import { checkPool2dSpec, type Pool2dSpec } from "../kernel/backend.ts";
import { contiguous, load } from "../kernel/ir.ts";
import {
  argmaxKernel,
  pick,
  poolBackwardKernels,
  poolForwardKernel,
  windows,
} from "../kernel/pool.ts";
import { dispatchKernel, MAX_CONSTS } from "./codegen.ts";
import { expectShape, type GpuBuffer, type GpuRuntime } from "./runtime.ts";

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
  const index = dispatchKernel(rt, argmaxKernel(s, ho, wo), [x]);
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

/**
 * The transpose of maxPool2d in its values: dy sent to the argmax positions, by the kernels of
 * the IR (kernel/pool.ts's `poolBackwardKernels`): one where the windows do not overlap (unless
 * `argmaxOnce`), the windows' argmax and then the gather where they do; where the cells reach
 * past the plane, a copy of its corner.
 */
export function maxPool2dBackward(
  rt: GpuRuntime,
  x: GpuBuffer,
  dy: GpuBuffer,
  s: Pool2dSpec,
  argmaxOnce = false,
): GpuBuffer {
  const [ho, wo] = checked("maxPool2dBackward", s, x);
  expectShape("maxPool2dBackward", "dy", dy, [s.n, s.c, ho, wo]);
  if (s.n * s.c === 0) return rt.alloc(0);
  const { argmax, gather, plane, fits } = poolBackwardKernels(s, ho, wo, argmaxOnce);
  const index = argmax && dispatchKernel(rt, argmax, [x]);
  const cells = dispatchKernel(rt, gather, [index ?? x, dy]);
  if (index) rt.release(index);
  if (fits) return cells;
  const shape = [s.n, s.c, s.h, s.w];
  const dx = dispatchKernel(rt, { shape, inputs: 1, body: load(0, contiguous(plane)) }, [cells]);
  rt.release(cells);
  return dx;
}
