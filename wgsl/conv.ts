/**
 * Convolutions on WebGPU: the forward pass and its two gradient products. The kernels that do the
 * products come from one template (conv_template.ts) with block sizes from a cost model
 * (conv_plan.ts); what moves data around them is the IR's (codegen.ts): the weights transposed
 * into the kernels' layout, dy transposed for vec4 loads over filters, the weight gradient's
 * chunks summed, and the zeros of an empty batch.
 *
 * The transposed layouts are padded to whole vec4 blocks of output channels. The padding lanes
 * are never written: every lane of a vec4 accumulator is its own output channel, and the stores
 * drop the lanes past the last channel, so whatever the padding holds (a pooled buffer's old
 * values) never reaches a result.
 *
 * No atomics anywhere, so every result is deterministic.
 *
 * @module
 */

import {
  checkConv2dSpec,
  checkConvWeights,
  type Conv2dSpec,
  convWeightGradSize,
} from "../kernel/backend.ts";
import { SgnError } from "../errors.ts";
import { constant, type Expr, load } from "../kernel/ir.ts";
import { dispatchKernel, dispatchKernelInto, epilogueSource } from "./codegen.ts";
import {
  type ConvTile,
  type DirectShape,
  type GatherTile,
  planConv2d,
  planGather,
  planWeightGrad,
  type WeightGradPlan,
} from "./conv_plan.ts";
import { directSource, gatherSource, weightGradSource } from "./conv_template.ts";
import { expectShape, type GpuBuffer, type GpuRuntime, grid, LANES, Params } from "./runtime.ts";

/**
 * Block sizes that replace the cost model's choice (for tests and tuning): `direct` for the
 * forward pass and the input gradient at stride 1, `gather` for the input gradient at larger
 * strides, `weightGrad` for the weight gradient.
 */
export interface ConvPlans {
  direct?: ConvTile;
  gather?: GatherTile;
  weightGrad?: WeightGradPlan;
}

/** Throws a clear error unless every block size of `plans` is a positive integer (v 1 or 4). */
function checkPlans(plans: ConvPlans): void {
  for (const plan of [plans.direct, plans.gather, plans.weightGrad]) {
    for (const [key, v] of Object.entries(plan ?? {})) {
      const ok = typeof v === "boolean" ||
        (Number.isInteger(v) && v >= 1 && (key !== "v" || v === 1 || v === 4));
      if (!ok) {
        throw new SgnError(`conv: block size ${key} = ${v} in ${JSON.stringify(plans)}`);
      }
    }
  }
}

/** Records a template kernel over `count` invocations in workgroups of {@link LANES}. */
function dispatchBlocked(
  rt: GpuRuntime,
  code: string,
  params: Params,
  buffers: GpuBuffer[],
  count: number,
  consts: readonly number[] = [],
): void {
  const [gx, gy] = grid(Math.ceil(count / LANES));
  params.u32(count, gx);
  if (consts.length) params.consts(consts);
  rt.dispatch(code, params, buffers, [gx, gy]);
}

/**
 * The weights transposed into the template's layout [ci, kh, kw, coutPad] (coutPad >= cout, a
 * whole number of vector blocks): wt[ci, tap, co] = w[co, ci, tap] (forward: ci = c, co = f) or,
 * with `grad`, w[ci, co, tap] (input gradient: ci = f, co = c), w read from the spec's offsetW
 * on. One IR map kernel, run once per weight buffer, layout and offset while the weights live
 * (`GpuRuntime.derived`): a G v through a cached linearization convolves with the same weights
 * at every CG iteration. The caller must not release the result.
 */
function transposeWeights(
  rt: GpuRuntime,
  w: GpuBuffer,
  s: Conv2dSpec,
  grad: boolean,
  coutPad: number,
): GpuBuffer {
  const taps = s.kh * s.kw;
  const [cin, cout] = grad ? [s.f, s.c] : [s.c, s.f];
  const off = s.offsetW ?? 0;
  const key = `conv weights ${grad ? "grad" : "forward"} ${[s.f, s.c, s.kh, s.kw, coutPad, off]}`;
  return rt.derived(w, key, () => {
    const wt = rt.alloc(cin * taps * coutPad);
    const strides = grad ? [s.c * taps, 1, taps] : [taps, 1, s.c * taps];
    const kernel = { shape: [cin, taps, cout], inputs: 1, body: load(0, strides, off) };
    dispatchKernelInto(rt, kernel, [w], wt, { strides: [taps * coutPad, coutPad, 1], offset: 0 });
    return wt;
  });
}

/** Runs a direct convolution (conv_template.ts's directSource) of x with w. */
function runDirect(
  rt: GpuRuntime,
  x: GpuBuffer,
  w: GpuBuffer,
  d: DirectShape,
  grad: boolean,
  s: Conv2dSpec,
  epilogue?: { body: Expr; inputs: GpuBuffer[] },
  tile?: ConvTile,
): GpuBuffer {
  const t = tile ?? planConv2d(d);
  const fBlocks = Math.ceil(d.cout / (t.cf * t.v));
  const ld = fBlocks * t.cf;
  const wt = transposeWeights(rt, w, s, grad, ld * t.v);
  const out = rt.alloc(d.n * d.cout * d.ho * d.wo);
  const tilesX = Math.ceil(d.wo / t.tw);
  const tilesY = Math.ceil(d.ho / t.th);
  const params = new Params()
    .u32(d.cin, d.h, d.w, d.cout, d.ho, d.wo)
    .i32(d.padY, d.padX)
    .u32(tilesX, tilesY, fBlocks, ld);
  const epi = epilogue &&
    epilogueSource([d.n, d.cout, d.ho, d.wo], epilogue.body, epilogue.inputs.length, 4);
  // The gradient is the convolution with the flipped kernel.
  const code = directSource(d.kh, d.kw, d.sh, d.sw, t, grad, epi ? `${epi.decls}\n${epi.fn}` : "");
  const buffers = [x, wt, out, ...(epilogue?.inputs ?? [])];
  dispatchBlocked(rt, code, params, buffers, d.n * tilesX * tilesY * fBlocks, epi?.consts);
  return out;
}

/**
 * Convolution forward: x [n, c, h, w], w [f, c, kh, kw] -> [n, f, ho, wo], with an optional
 * epilogue; `plans` overrides the block sizes.
 */
export function conv2d(
  rt: GpuRuntime,
  x: GpuBuffer,
  w: GpuBuffer,
  s: Conv2dSpec,
  epilogue?: { body: Expr; inputs: GpuBuffer[] },
  plans: ConvPlans = {},
): GpuBuffer {
  checkPlans(plans);
  const [ho, wo] = checkConv2dSpec("conv2d", s);
  expectShape("conv2d", "x", x, [s.n, s.c, s.h, s.w]);
  checkConvWeights("conv2d", s, w.size);
  if (s.n === 0) return rt.alloc(0);
  const d: DirectShape = {
    n: s.n,
    cin: s.c,
    h: s.h,
    w: s.w,
    cout: s.f,
    ho,
    wo,
    kh: s.kh,
    kw: s.kw,
    sh: s.strideH,
    sw: s.strideW,
    padY: s.padH,
    padX: s.padW,
  };
  return runDirect(rt, x, w, d, false, s, epilogue, plans.direct);
}

/** The input-gradient product: dy [n, f, ho, wo], w -> dx [n, c, h, w]; see {@link conv2d}. */
export function conv2dInputGrad(
  rt: GpuRuntime,
  dy: GpuBuffer,
  w: GpuBuffer,
  s: Conv2dSpec,
  plans: ConvPlans = {},
): GpuBuffer {
  checkPlans(plans);
  const op = "conv2dInputGrad";
  const [ho, wo] = checkConv2dSpec(op, s);
  expectShape(op, "dy", dy, [s.n, s.f, ho, wo]);
  checkConvWeights(op, s, w.size);
  if (s.n === 0) return rt.alloc(0);
  if (s.strideH === 1 && s.strideW === 1) {
    // A convolution of dy with the flipped kernel, channels swapped, "full" padding.
    const d: DirectShape = {
      n: s.n,
      cin: s.f,
      h: ho,
      w: wo,
      cout: s.c,
      ho: s.h,
      wo: s.w,
      kh: s.kh,
      kw: s.kw,
      sh: 1,
      sw: 1,
      padY: s.kh - 1 - s.padH,
      padX: s.kw - 1 - s.padW,
    };
    return runDirect(rt, dy, w, d, true, s, undefined, plans.direct);
  }
  const t = plans.gather ?? planGather(s);
  const cBlocks = Math.ceil(s.c / (4 * t.cf));
  const ld = cBlocks * t.cf;
  const wt = transposeWeights(rt, w, s, true, ld * 4);
  const dx = rt.alloc(s.n * s.c * s.h * s.w);
  const tilesX = Math.ceil(s.w / t.tw);
  const params = new Params()
    .u32(s.c, s.h, s.w, s.f, ho, wo, s.strideH, s.strideW)
    .i32(s.padH, s.padW)
    .u32(tilesX, cBlocks, ld);
  const count = s.n * s.h * tilesX * cBlocks;
  dispatchBlocked(rt, gatherSource(s.kh, s.kw, t), params, [dy, wt, dx], count);
  return dx;
}

/** The weight-gradient product: x, dy -> dw [f, c, kh, kw]; see {@link conv2d}. */
export function conv2dWeightGrad(
  rt: GpuRuntime,
  x: GpuBuffer,
  dy: GpuBuffer,
  s: Conv2dSpec,
  plans: ConvPlans = {},
): GpuBuffer {
  checkPlans(plans);
  const op = "conv2dWeightGrad";
  const [ho, wo] = checkConv2dSpec(op, s);
  expectShape(op, "x", x, [s.n, s.c, s.h, s.w]);
  expectShape(op, "dy", dy, [s.n, s.f, ho, wo]);
  // With `sums`, dy's sums per filter follow the weights (the bias gradient), from the same kernel.
  const weights = convWeightGradSize(s);
  if (s.n === 0) {
    return dispatchKernel(rt, { shape: [weights], inputs: 0, body: constant(0) }, []);
  }
  const t = plans.weightGrad ?? planWeightGrad(s, ho, wo);
  const f4 = Math.ceil(s.f / 4);
  let dyIn = dy;
  if (t.dyVec) {
    // dyT[n, oy, ox, f] = dy[n, f, oy, ox], rows padded to f4 vec4s.
    const pl = ho * wo;
    dyIn = rt.alloc(s.n * pl * f4 * 4);
    const kernel = { shape: [s.n, pl, s.f], inputs: 1, body: load(0, [s.f * pl, 1, pl]) };
    dispatchKernelInto(rt, kernel, [dy], dyIn, { strides: [pl * f4 * 4, f4 * 4, 1], offset: 0 });
  }
  const fBlocks = Math.ceil(s.f / (4 * t.fq));
  const cBlocks = Math.ceil(s.c / t.cc);
  const tilesX = Math.ceil(wo / t.rw);
  const tilesY = Math.ceil(ho / t.rh);
  const steps = s.n * tilesX * tilesY;
  const perChunk = Math.ceil(steps / t.chunks);
  const chunks = Math.ceil(steps / perChunk);
  const part = rt.alloc(chunks * weights);
  const params = new Params()
    .u32(s.c, s.h, s.w, s.f, ho, wo)
    .i32(s.padH, s.padW)
    .u32(tilesX, tilesY, fBlocks, cBlocks, steps, perChunk, f4);
  const code = weightGradSource(s.kh, s.kw, s.strideH, s.strideW, t, s.sums ?? false);
  dispatchBlocked(rt, code, params, [x, dyIn, part], fBlocks * cBlocks * chunks);
  if (dyIn !== dy) rt.release(dyIn);
  if (chunks === 1) return part;
  // The chunks' partial sums, added by a reduction of the IR.
  const sum = {
    shape: [weights],
    inputs: 1,
    body: load(0, [1, weights]),
    reduce: { op: "sum" as const, shape: [chunks] },
  };
  const dw = dispatchKernel(rt, sum, [part]);
  rt.release(part);
  return dw;
}
