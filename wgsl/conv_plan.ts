/**
 * Block sizes of the convolution kernels (conv.ts), chosen per shape by a cost model of WebGPU on
 * CPUs (Mesa's lavapipe / llvmpipe), measured on the 2-core AVX2 machine in cycles per 8-lane SIMD
 * group: every storage access is a loop over the lanes, whether or not the address is uniform and
 * also for workgroup memory: ~30 per scalar load, ~50 per vec4 load, ~65 per scalar store (stores
 * cost the same per float as vec4s); a vec4 FMA is ~4 (accumulators spill to the stack). So the
 * kernels are implicit GEMMs that maximize FMAs per load with register blocking. Shader compile
 * time grows steeply with the number of accumulators (cold: ~1 s at 200, ~2.5 s at 400, ~8 s at
 * 1000; Mesa caches compiled shaders on disk), so blocks are capped by the size of the problem,
 * as in matmul.ts. Every plan is its own pipeline, cached by the runtime.
 *
 * @module
 */

import type { Conv2dSpec } from "../kernel/backend.ts";
import { LANES, THREADS } from "./runtime.ts";

/** Largest partial-sum buffer of the weight gradient, in elements. */
const PARTIAL_LIMIT = 4 * 1024 * 1024;

/** Cost model, in cycles per 8-lane SIMD group (see the module documentation). */
const COST = { load: 30, load4: 50, fma: 1, store: 65, invocation: 300, group: 1600, element: 12 };

/** Largest register block (accumulators per invocation) worth its compile time for `flops`. */
function accumulatorCap(flops: number): number {
  return flops < 4e6 ? 64 : flops < 3e7 ? 128 : flops < 1.5e8 ? 256 : 400;
}

/** Largest number of FMAs in one unrolled loop body. */
export const MAX_BODY = 4096;

/**
 * The register block of the direct convolution: a `th` x `tw` tile of output pixels times `cf`
 * groups of `v` output channels per invocation; `unrollKy` unrolls the kernel rows too.
 */
export interface ConvTile {
  th: number;
  tw: number;
  cf: number;
  v: 1 | 4;
  unrollKy: boolean;
}

/** A direct convolution problem: x [n, cin, h, w] -> y [n, cout, ho, wo]. */
export interface DirectShape {
  n: number;
  cin: number;
  h: number;
  w: number;
  cout: number;
  ho: number;
  wo: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  padY: number;
  padX: number;
}

/** The modelled cost of a direct convolution with a tile, in cycles. */
function directCost(d: DirectShape, t: ConvTile): number {
  const { th, tw, cf, v } = t;
  const wLoad = v === 4 ? COST.load4 : COST.load;
  const outs = th * tw * cf * v;
  const pw = (tw - 1) * d.sw + d.kw;
  const perChannel = t.unrollKy
    ? ((th - 1) * d.sh + d.kh) * pw * COST.load + d.kh * d.kw * cf * wLoad +
      outs * d.kh * d.kw * COST.fma
    : d.kh * (th * pw * COST.load + d.kw * cf * wLoad + outs * d.kw * COST.fma);
  const count = d.n * Math.ceil(d.ho / th) * Math.ceil(d.wo / tw) * Math.ceil(d.cout / (cf * v));
  const perGroup = d.cin * perChannel + outs * COST.store + COST.invocation + COST.group;
  return Math.ceil(Math.ceil(count / LANES) / THREADS) * perGroup;
}

const directPlans = new Map<string, ConvTile>();

/** Chooses the tile of a direct convolution by the cost model, within the compile budget. */
export function planConv2d(d: DirectShape): ConvTile {
  const key = JSON.stringify(d);
  const cached = directPlans.get(key);
  if (cached) return cached;
  const flops = 2 * d.n * d.cout * d.ho * d.wo * d.cin * d.kh * d.kw;
  const cap = accumulatorCap(flops);
  let best: ConvTile = { th: 1, tw: 1, cf: 1, v: 1, unrollKy: false };
  let bestCost = Infinity;
  for (const v of [4, 1] as const) {
    for (let cf = 1; cf <= 8; cf++) {
      if (cf > 1 && (cf - 1) * v >= d.cout) break;
      for (let th = 1; th <= Math.min(d.ho, 16); th++) {
        for (let tw = 1; tw <= Math.min(d.wo, 16); tw++) {
          const outs = th * tw * cf * v;
          if (outs > cap) break;
          for (const unrollKy of [true, false]) {
            if (outs * d.kw * (unrollKy ? d.kh : 1) > MAX_BODY) continue;
            const t: ConvTile = { th, tw, cf, v, unrollKy };
            // A slight preference for fewer accumulators: faster compiles at near-equal cost.
            const cost = directCost(d, t) * (1 + outs / 4000);
            if (cost < bestCost) {
              bestCost = cost;
              best = t;
            }
          }
        }
      }
    }
  }
  directPlans.set(key, best);
  return best;
}

/** The tile of the strided input-gradient gather: `tw` pixels of a row times 4 `cf` channels. */
export interface GatherTile {
  tw: number;
  cf: number;
}

export function planGather(s: Conv2dSpec): GatherTile {
  const cf = Math.min(2, Math.ceil(s.c / 4));
  const taps = s.kh * s.kw;
  let tw = Math.max(1, Math.min(s.w, 8));
  while (tw > 1 && taps * tw * cf * 4 > MAX_BODY) tw--;
  return { tw, cf };
}

/**
 * The register block of the weight gradient: `cc` channels x 4 `fq` filters x all taps per
 * invocation, stepping over `rh` x `rw` output tiles; `dyVec` reads dy transposed to
 * [n, ho, wo, f4] (vec4 loads over filters). `chunks` splits the reduction.
 */
export interface WeightGradPlan {
  rh: number;
  rw: number;
  cc: number;
  fq: number;
  dyVec: boolean;
  chunks: number;
}

const weightGradPlans = new Map<string, WeightGradPlan>();

/** Chooses the weight-gradient block and reduction split by the cost model. */
export function planWeightGrad(s: Conv2dSpec, ho: number, wo: number): WeightGradPlan {
  const key = JSON.stringify(s);
  const cached = weightGradPlans.get(key);
  if (cached) return cached;
  const taps = s.kh * s.kw;
  const weights = s.f * s.c * taps;
  const flops = 2 * s.n * ho * wo * weights;
  const cap = accumulatorCap(flops);
  const maxChunks = Math.max(1, Math.floor(PARTIAL_LIMIT / weights));
  let best: WeightGradPlan = { rh: 1, rw: 1, cc: 1, fq: 1, dyVec: false, chunks: 1 };
  let bestCost = Infinity;
  for (const dyVec of [false, true]) {
    const transpose = dyVec ? (s.n * ho * wo * Math.ceil(s.f / 4) * 4 * COST.element) / THREADS : 0;
    for (let fq = 1; fq <= 8; fq++) {
      if (fq > 1 && (fq - 1) * 4 >= s.f) break;
      for (let cc = 1; cc <= Math.min(s.c, 8); cc++) {
        const acc = cc * taps * fq * 4;
        if (acc > cap) break;
        const blocks = Math.ceil(s.f / (4 * fq)) * Math.ceil(s.c / cc);
        for (let rh = 1; rh <= Math.min(ho, 8); rh++) {
          for (let rw = 1; rw <= Math.min(wo, 16); rw++) {
            const px = rh * rw;
            if (acc * px > MAX_BODY) break;
            const patch = ((rh - 1) * s.strideH + s.kh) * ((rw - 1) * s.strideW + s.kw);
            const step = (dyVec ? px * fq * COST.load4 : px * fq * 4 * COST.load) +
              cc * patch * COST.load + acc * px * COST.fma + 100;
            const steps = s.n * Math.ceil(ho / rh) * Math.ceil(wo / rw);
            for (let m = 1; m <= 32; m *= 2) {
              const chunks = Math.max(
                1,
                Math.min(steps, maxChunks, Math.floor((m * THREADS * LANES) / blocks)),
              );
              const count = blocks * chunks;
              const perGroup = Math.ceil(steps / chunks) * step + acc * COST.store +
                COST.invocation + COST.group;
              const reduce = chunks > 1 ? (weights * (chunks * 4 + 8)) / THREADS : 0;
              const cost = (Math.ceil(Math.ceil(count / LANES) / THREADS) * perGroup + reduce +
                transpose) * (1 + acc / 4000);
              if (cost < bestCost) {
                bestCost = cost;
                best = { rh, rw, cc, fq, dyVec, chunks };
              }
            }
          }
        }
      }
    }
  }
  weightGradPlans.set(key, best);
  return best;
}
