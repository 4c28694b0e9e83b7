/**
 * Convolution and pooling kernels, written for WebGPU on CPUs (Mesa's lavapipe / llvmpipe) and
 * correct on any adapter.
 *
 * What costs what on llvmpipe (measured on the 2-core AVX2 machine, in cycles per 8-lane SIMD
 * group): every storage access is a loop over the lanes, whether or not the address is uniform
 * and also for workgroup memory: ~30 per scalar load, ~50 per vec4 load, ~65 per scalar store
 * (stores cost the same per float as vec4s); a vec4 FMA is ~4 (accumulators spill to the stack).
 * So the kernels below are implicit GEMMs that maximize FMAs per load with register blocking, and
 * never materialize im2col buffers (whose stores alone would cost more than the products). Shader
 * compile time grows steeply with the number of accumulators (cold: ~1 s at 200, ~2.5 s at 400,
 * ~8 s at 1000; Mesa caches compiled shaders on disk), so blocks are capped by the size of the
 * problem, as in matmul.ts.
 *
 * - conv2d (forward) is a direct implicit GEMM (M = output pixels, N = filters, K = c kh kw):
 *   each invocation owns a TH x TW tile of output pixels of one image times CF x V filters
 *   (V = 4: vec4 accumulators), and for each input channel loads the input patch once (scalar
 *   loads, clamped and masked for the zero padding) and the weights as vec4s from a transposed
 *   copy [c, kh, kw, f] padded to whole blocks; every patch value then feeds up to kh kw CF V
 *   FMAs and every weight vec4 TH TW vec4 FMAs. With `unrollKy` false the kernel rows are a
 *   runtime loop (smaller shaders for large kernels).
 * - conv2dInputGrad with stride 1 is the same kernel: a convolution of dy with the flipped,
 *   transposed kernel and padding kh - 1 - ph. With stride > 1, a gather kernel: each invocation
 *   owns a few input pixels of a row times 4 channels and tests, per tap, which output reads it
 *   (positions that no output reads get 0).
 * - conv2dWeightGrad is the GEMM dy^T im2col(x) with K = n ho wo: each invocation owns CC
 *   channels x 4 FQ filters x all kh kw taps in registers and walks a chunk of K in steps of an
 *   RH x RW output tile of one image (x patch reused across the taps); the chunks are summed by a
 *   second pass. When the channel blocks are many, dy is first transposed to [n, ho, wo, f] so
 *   that the 4 filters of an accumulator come in one vec4 load.
 * - Max pooling: forward per window; backward per non-overlapping window (stride >= window),
 *   or else a gather over the windows that contain each input pixel, recomputing their argmax.
 *   No atomics anywhere, so every result is deterministic.
 *
 * Block sizes are chosen per shape by a cost model of the figures above ({@link planConv2d},
 * {@link planWeightGrad}); every plan is its own pipeline, cached by the runtime.
 *
 * @module
 */

import { checkConv2dSpec, type Conv2dSpec } from "../kernel/backend.ts";

import type { Expr } from "../kernel/ir.ts";
import { epilogueSource } from "./codegen.ts";
import { WGSL_PRELUDE } from "./prelude.ts";
import {
  dispatchFlat,
  expectSize,
  type GpuBuffer,
  type GpuRuntime,
  grid,
  Params,
} from "./runtime.ts";
import { memoKernel } from "./source.ts";

/** Invocations per workgroup of the blocked kernels: one AVX2 register of f32 lanes. */
const LANES = 8;
/** Workgroup size of the simple element-wise kernels. */
const WG = 64;
/** Threads that run workgroups concurrently (lavapipe: one per CPU). */
const THREADS = Math.max(1, Math.min(64, globalThis.navigator?.hardwareConcurrency ?? 4));
/** Largest partial-sum buffer of the weight gradient, in elements. */
const PARTIAL_LIMIT = 4 * 1024 * 1024;

/** Cost model, in cycles per 8-lane SIMD group (see the module documentation). */
const COST = { load: 30, load4: 50, fma: 1, store: 65, invocation: 300, group: 1600, element: 12 };

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Largest register block (accumulators per invocation) worth its compile time for `flops`. */
function accumulatorCap(flops: number): number {
  return flops < 4e6 ? 64 : flops < 3e7 ? 128 : flops < 1.5e8 ? 256 : 400;
}

/** Largest number of FMAs in one unrolled loop body. */
const MAX_BODY = 4096;

/**
 * The head of every blocked kernel's entry point: its invocation index `g` over `p.count`
 * (grid rows of `p.nx` workgroups). Invocations past the end compute a clamped copy and store
 * nothing (`live` is false), which keeps control flow uniform.
 */
const BLOCKED_MAIN = /* wgsl */ `@compute @workgroup_size(${LANES})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let gi = (wid.x + wid.y * p.nx) * ${LANES}u + lid;
  let live = gi < p.count;
  let g = min(gi, p.count - 1u);
`;

/** Records a blocked kernel over `count` invocations in workgroups of {@link LANES}. */
function dispatchBlocked(
  rt: GpuRuntime,
  code: string,
  params: Params,
  buffers: GpuBuffer[],
  count: number,
  consts: readonly number[] = [],
): void {
  const [gx, gy] = grid(Math.ceil(count / LANES));
  // Epilogue constants (conv2d) follow the 14 fields and two pads, at byte 64.
  if (consts.length) params.u32(gx, 0, 0).f32(...consts);
  else params.u32(gx);
  rt.dispatch(code, params, buffers, [gx, gy]);
}

const ZERO = /* wgsl */ `
struct P { count: u32, stride: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * p.stride;
  if (i < p.count) { out[i] = 0.0; }
}`;

function zeros(rt: GpuRuntime, size: number): GpuBuffer {
  const out = rt.alloc(size);
  dispatchFlat(rt, ZERO, new Params().u32(size), [out], size);
  return out;
}

// --- weight layouts -----------------------------------------------------------------------------

/**
 * wt[((ci * kh + ky) * kw + kx) * coutPad + co] = w at (ci, co, ky, kx) (kernel flipped when
 * `flip`), 0 for co >= cout. w is [cout, cin, kh, kw] (forward: ci = c, co = f) or, with `grad`,
 * [cin, cout, kh, kw] (input gradient: ci = f, co = c).
 */
const WEIGHTS = /* wgsl */ `
struct P { cin: u32, cout: u32, kh: u32, kw: u32, coutPad: u32, grad: u32, flip: u32, total: u32,
  stride: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> wt: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * p.stride;
  if (i >= p.total) { return; }
  let co = i % p.coutPad;
  let r = i / p.coutPad;
  let kx = r % p.kw;
  let ky = (r / p.kw) % p.kh;
  let ci = r / (p.kw * p.kh);
  var v = 0.0;
  if (co < p.cout) {
    let sy = select(ky, p.kh - 1u - ky, p.flip == 1u);
    let sx = select(kx, p.kw - 1u - kx, p.flip == 1u);
    let plane = select(co * p.cin + ci, ci * p.cout + co, p.grad == 1u);
    v = w[(plane * p.kh + sy) * p.kw + sx];
  }
  wt[i] = v;
}`;

function transformWeights(
  rt: GpuRuntime,
  w: GpuBuffer,
  s: Conv2dSpec,
  grad: boolean,
  flip: boolean,
  coutPad: number,
): GpuBuffer {
  const [cin, cout] = grad ? [s.f, s.c] : [s.c, s.f];
  const total = cin * s.kh * s.kw * coutPad;
  const out = rt.alloc(total);
  const params = new Params().u32(
    cin,
    cout,
    s.kh,
    s.kw,
    coutPad,
    grad ? 1 : 0,
    flip ? 1 : 0,
    total,
  );
  dispatchFlat(rt, WEIGHTS, params, [w, out], total);
  return out;
}

// --- direct convolution (forward, and input gradient with stride 1) ---------------------------

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
interface DirectShape {
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

/** WGSL of the direct convolution with kernel kh x kw, strides sh, sw and tile `t`. */
const directKernel = memoKernel("direct", directSource);

function directSource(
  kh: number,
  kw: number,
  sh: number,
  sw: number,
  t: ConvTile,
  epilogue = "",
): string {
  const { th: TH, tw: TW, cf: CF, v: V, unrollKy } = t;
  const T = V === 4 ? "vec4f" : "f32";
  const bc = (x: string) => (V === 4 ? `vec4f(${x})` : x);
  const KHu = unrollKy ? kh : 1;
  const PH = unrollKy ? (TH - 1) * sh + kh : TH;
  const PW = (TW - 1) * sw + kw;
  const rowOf = (py: number, ky: number) => (unrollKy ? py * sh + ky : py);
  const setup: string[] = [];
  const body: string[] = [];
  // Patch rows (clamped for loading, masked for the zero padding) and columns.
  const rowStep = unrollKy ? 1 : sh;
  const kyTerm = unrollKy ? "" : " + i32(ky)";
  const rows = range(PH).map((i) =>
    `let iy${i} = iyB + ${i * rowStep}${kyTerm}; ` +
    `let ry${i} = u32(clamp(iy${i}, 0, ih - 1)) * p.w; let vy${i} = u32(iy${i}) < p.h;`
  );
  (unrollKy ? setup : body).push(...rows);
  for (const j of range(PW)) {
    setup.push(
      `let ix${j} = ixB + ${j}; let rx${j} = u32(clamp(ix${j}, 0, iw - 1)); ` +
        `let vx${j} = u32(ix${j}) < p.w;`,
    );
  }
  for (const i of range(PH)) {
    for (const j of range(PW)) {
      body.push(`let x${i}_${j} = select(0.0, X[xb + ry${i} + rx${j}], vy${i} && vx${j});`);
    }
  }
  for (const tap of range(KHu * kw)) {
    for (const q of range(CF)) body.push(`let w${tap}_${q} = W[wb + ${tap}u * p.ld + ${q}u];`);
  }
  for (const py of range(TH)) {
    for (const px of range(TW)) {
      for (const q of range(CF)) {
        const acc = `a${py}_${px}_${q}`;
        setup.push(`var ${acc} = ${T}();`);
        let sum = acc;
        for (const ky of range(KHu)) {
          for (const kx of range(kw)) {
            sum = `fma(${bc(`x${rowOf(py, ky)}_${px * sw + kx}`)}, w${ky * kw + kx}_${q}, ${sum})`;
          }
        }
        body.push(`${acc} = ${sum};`);
      }
    }
  }
  const stores: string[] = [];
  for (const py of range(TH)) {
    for (const px of range(TW)) {
      const st: string[] = [];
      for (const q of range(CF)) {
        for (const j of range(V)) {
          const k = q * V + j;
          const val = V === 4 ? `a${py}_${px}_${q}[${j}]` : `a${py}_${px}_${q}`;
          st.push(`if (f0 + ${k}u < p.cout) { Y[o + ${k}u * pl] = ${val}; }`);
        }
      }
      stores.push(
        `if (live && oy0 + ${py}u < p.ho && ox0 + ${px}u < p.wo) {\n` +
          `    let o = ob + (oy0 + ${py}u) * p.wo + ox0 + ${px}u;\n    ${st.join("\n    ")}\n  }`,
      );
    }
  }
  const loop = unrollKy
    ? `for (var c = 0u; c < p.cin; c++) {
    ${body.join("\n    ")}
    xb += plane;
    wb += ${kh * kw}u * p.ld;
  }`
    : `for (var c = 0u; c < p.cin; c++) {
    for (var ky = 0u; ky < ${kh}u; ky++) {
      ${body.join("\n      ")}
      wb += ${kw}u * p.ld;
    }
    xb += plane;
  }`;
  return /* wgsl */ `
struct P { cin: u32, h: u32, w: u32, cout: u32, ho: u32, wo: u32, padY: i32, padX: i32,
  tilesX: u32, tilesY: u32, fBlocks: u32, ld: u32, count: u32, nx: u32${
    epilogue ? ", pad0: u32, pad1: u32, c: array<vec4f, 12>" : ""
  } }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> W: array<${T}>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
${epilogue}
${BLOCKED_MAIN}  let fb = g % p.fBlocks;
  let t = g / p.fBlocks;
  let tx = t % p.tilesX;
  let ty = (t / p.tilesX) % p.tilesY;
  let n = t / (p.tilesX * p.tilesY);
  let ih = i32(p.h);
  let iw = i32(p.w);
  let oy0 = ty * ${TH}u;
  let ox0 = tx * ${TW}u;
  let iyB = i32(oy0 * ${sh}u) - p.padY;
  let ixB = i32(ox0 * ${sw}u) - p.padX;
  ${setup.join("\n  ")}
  let plane = p.h * p.w;
  var xb = n * p.cin * plane;
  var wb = fb * ${CF}u;
  ${loop}
  let f0 = fb * ${CF * V}u;
  let pl = p.ho * p.wo;
  let ob = (n * p.cout + f0) * pl;
  ${stores.join("\n  ")}
  ${
    // The epilogue in a loop over the tile, after the raw stores: one call site of epi, so that
    // shader compilation does not grow with the tile (see matmul.ts).
    epilogue
      ? `for (var py = 0u; py < ${TH}u; py++) {
    for (var px = 0u; px < ${TW}u; px++) {
      if (!live || oy0 + py >= p.ho || ox0 + px >= p.wo) { continue; }
      let o = ob + (oy0 + py) * p.wo + ox0 + px;
      for (var k = 0u; k < ${CF * V}u; k++) {
        if (f0 + k >= p.cout) { break; }
        let at = o + k * pl;
        Y[at] = epi(at, Y[at]);
      }
    }
  }`
      : ""}
}`;
}

/** Runs a direct convolution; `wt` is the transformed weights [cin, kh, kw, coutPad]. */
function runDirect(
  rt: GpuRuntime,
  x: GpuBuffer,
  w: GpuBuffer,
  d: DirectShape,
  grad: boolean,
  s: Conv2dSpec,
  epilogue?: { body: Expr; inputs: GpuBuffer[] },
): GpuBuffer {
  const t = planConv2d(d);
  const fBlocks = Math.ceil(d.cout / (t.cf * t.v));
  const ld = fBlocks * t.cf;
  const wt = transformWeights(rt, w, s, grad, grad, ld * t.v);
  const out = rt.alloc(d.n * d.cout * d.ho * d.wo);
  const tilesX = Math.ceil(d.wo / t.tw);
  const tilesY = Math.ceil(d.ho / t.th);
  const count = d.n * tilesX * tilesY * fBlocks;
  const params = new Params()
    .u32(d.cin, d.h, d.w, d.cout, d.ho, d.wo)
    .i32(d.padY, d.padX)
    .u32(tilesX, tilesY, fBlocks, ld, count);
  const epi = epilogue &&
    epilogueSource([d.n, d.cout, d.ho, d.wo], epilogue.body, epilogue.inputs.length, 4);
  const code = directKernel(
    d.kh,
    d.kw,
    d.sh,
    d.sw,
    t,
    epi ? `${WGSL_PRELUDE}\n${epi.decls}\n${epi.fn}` : "",
  );
  const buffers = [x, wt, out, ...(epilogue?.inputs ?? [])];
  dispatchBlocked(rt, code, params, buffers, count, epi?.consts);
  rt.release(wt);
  return out;
}

/** Convolution forward: x [n, c, h, w], w [f, c, kh, kw] -> [n, f, ho, wo]. */
export function conv2d(
  rt: GpuRuntime,
  x: GpuBuffer,
  w: GpuBuffer,
  s: Conv2dSpec,
  epilogue?: { body: Expr; inputs: GpuBuffer[] },
): GpuBuffer {
  const [ho, wo] = checkConv2dSpec("conv2d", s);
  expectSize("conv2d", "x", x, s.n * s.c * s.h * s.w, `[${s.n}, ${s.c}, ${s.h}, ${s.w}]`);
  expectSize("conv2d", "w", w, s.f * s.c * s.kh * s.kw, `[${s.f}, ${s.c}, ${s.kh}, ${s.kw}]`);
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
  return runDirect(rt, x, w, d, false, s, epilogue);
}

// --- input gradient -----------------------------------------------------------------------------

/** The tile of the strided input-gradient gather: `tw` pixels of a row times 4 `cf` channels. */
interface GatherTile {
  tw: number;
  cf: number;
}

function planGather(s: Conv2dSpec): GatherTile {
  const cf = Math.min(2, Math.ceil(s.c / 4));
  const taps = s.kh * s.kw;
  let tw = Math.max(1, Math.min(s.w, 8));
  while (tw > 1 && taps * tw * cf * 4 > MAX_BODY) tw--;
  return { tw, cf };
}

/**
 * dx[n, c, iy, ix] = sum over f, ky, kx of dy[n, f, oy, ox] w[f, c, ky, kx] where
 * oy * sh = iy + ph - ky and ox * sw = ix + pw - kx, for any strides. Weights are [f, kh, kw, cPad].
 */
const gatherKernel = memoKernel("gather", gatherSource);

function gatherSource(kh: number, kw: number, t: GatherTile): string {
  const { tw: TW, cf: CF } = t;
  const setup: string[] = [];
  const body: string[] = [];
  for (const ky of range(kh)) {
    setup.push(
      `let ty${ky} = i32(iy) + p.ph - ${ky}; ` +
        `let vy${ky} = ty${ky} >= 0 && u32(ty${ky}) % p.sh == 0u && u32(ty${ky}) / p.sh < p.ho; ` +
        `let ry${ky} = min(u32(max(ty${ky}, 0)) / p.sh, p.ho - 1u) * p.wo;`,
    );
  }
  for (const px of range(TW)) {
    for (const kx of range(kw)) {
      setup.push(
        `let tx${px}_${kx} = i32(ix0 + ${px}u) + p.pw - ${kx}; ` +
          `let vx${px}_${kx} = tx${px}_${kx} >= 0 && u32(tx${px}_${kx}) % p.sw == 0u && ` +
          `u32(tx${px}_${kx}) / p.sw < p.wo; ` +
          `let rx${px}_${kx} = min(u32(max(tx${px}_${kx}, 0)) / p.sw, p.wo - 1u);`,
      );
    }
  }
  for (const px of range(TW)) for (const q of range(CF)) setup.push(`var a${px}_${q} = vec4f();`);
  for (const ky of range(kh)) {
    for (const kx of range(kw)) {
      for (const q of range(CF)) {
        body.push(`let w${ky}_${kx}_${q} = W[wb + ${ky * kw + kx}u * p.ld + ${q}u];`);
      }
      for (const px of range(TW)) {
        body.push(
          `let d${ky}_${kx}_${px} = select(0.0, DY[db + ry${ky} + rx${px}_${kx}], ` +
            `vy${ky} && vx${px}_${kx});`,
        );
        for (const q of range(CF)) {
          body.push(
            `a${px}_${q} = fma(vec4f(d${ky}_${kx}_${px}), w${ky}_${kx}_${q}, a${px}_${q});`,
          );
        }
      }
    }
  }
  const stores: string[] = [];
  for (const px of range(TW)) {
    const st: string[] = [];
    for (const q of range(CF)) {
      for (const j of range(4)) {
        st.push(
          `if (c0 + ${q * 4 + j}u < p.c) { DX[o + ${q * 4 + j}u * plane] = a${px}_${q}[${j}]; }`,
        );
      }
    }
    stores.push(
      `if (live && ix0 + ${px}u < p.w) {\n    let o = ob + iy * p.w + ix0 + ${px}u;\n    ${
        st.join("\n    ")
      }\n  }`,
    );
  }
  return /* wgsl */ `
struct P { n: u32, c: u32, h: u32, w: u32, f: u32, ho: u32, wo: u32, sh: u32, sw: u32, ph: i32,
  pw: i32, tilesX: u32, cBlocks: u32, ld: u32, count: u32, nx: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> DY: array<f32>;
@group(0) @binding(2) var<storage, read> W: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> DX: array<f32>;
${BLOCKED_MAIN}  let cb = g % p.cBlocks;
  let t = g / p.cBlocks;
  let tx = t % p.tilesX;
  let iy = (t / p.tilesX) % p.h;
  let n = t / (p.tilesX * p.h);
  let ix0 = tx * ${TW}u;
  ${setup.join("\n  ")}
  let pl = p.ho * p.wo;
  var db = n * p.f * pl;
  var wb = cb * ${CF}u;
  for (var f = 0u; f < p.f; f++) {
    ${body.join("\n    ")}
    db += pl;
    wb += ${kh * kw}u * p.ld;
  }
  let c0 = cb * ${CF * 4}u;
  let plane = p.h * p.w;
  let ob = (n * p.c + c0) * plane;
  ${stores.join("\n  ")}
}`;
}

/** The input-gradient product: dy [n, f, ho, wo], w -> dx [n, c, h, w]. */
export function conv2dInputGrad(
  rt: GpuRuntime,
  dy: GpuBuffer,
  w: GpuBuffer,
  s: Conv2dSpec,
): GpuBuffer {
  const op = "conv2dInputGrad";
  const [ho, wo] = checkConv2dSpec(op, s);
  expectSize(op, "dy", dy, s.n * s.f * ho * wo, `[${s.n}, ${s.f}, ${ho}, ${wo}]`);
  expectSize(op, "w", w, s.f * s.c * s.kh * s.kw, `[${s.f}, ${s.c}, ${s.kh}, ${s.kw}]`);
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
    return runDirect(rt, dy, w, d, true, s);
  }
  const t = planGather(s);
  const cBlocks = Math.ceil(s.c / (4 * t.cf));
  const ld = cBlocks * t.cf;
  const wt = transformWeights(rt, w, s, true, false, ld * 4);
  const dx = rt.alloc(s.n * s.c * s.h * s.w);
  const tilesX = Math.ceil(s.w / t.tw);
  const count = s.n * s.h * tilesX * cBlocks;
  const params = new Params()
    .u32(s.n, s.c, s.h, s.w, s.f, ho, wo, s.strideH, s.strideW)
    .i32(s.padH, s.padW)
    .u32(tilesX, cBlocks, ld, count);
  dispatchBlocked(rt, gatherKernel(s.kh, s.kw, t), params, [dy, wt, dx], count);
  rt.release(wt);
  return dx;
}

// --- weight gradient ----------------------------------------------------------------------------

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

/** dyT[((n * ho + oy) * wo + ox) * f4 + f] = dy[n, f, oy, ox], 0 for f >= nf. */
const DY_T = /* wgsl */ `
struct P { nf: u32, pl: u32, f4: u32, total: u32, stride: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dyT: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * p.stride;
  if (i >= p.total) { return; }
  let f = i % p.f4;
  let r = i / p.f4;
  let pix = r % p.pl;
  let n = r / p.pl;
  var v = 0.0;
  if (f < p.nf) { v = dy[(n * p.nf + f) * p.pl + pix]; }
  dyT[i] = v;
}`;

/** out[i] = sum over k < chunks of part[k * size + i]. */
const SUM_CHUNKS = /* wgsl */ `
struct P { size: u32, chunks: u32, stride: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> part: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * p.stride;
  if (i >= p.size) { return; }
  var acc = 0.0;
  for (var k = 0u; k < p.chunks; k++) { acc += part[k * p.size + i]; }
  out[i] = acc;
}`;

/** WGSL of the partial weight gradients of one reduction chunk per invocation. */
const weightGradKernel = memoKernel("weightGrad", weightGradSource);

function weightGradSource(kh: number, kw: number, sh: number, sw: number, t: WeightGradPlan) {
  const { rh: RH, rw: RW, cc: CC, fq: FQ, dyVec } = t;
  const PH = (RH - 1) * sh + kh;
  const PW = (RW - 1) * sw + kw;
  const setup: string[] = [];
  const body: string[] = [];
  // Channel and filter offsets, clamped into range (the extra ones are dropped at the store).
  for (const cc of range(CC)) setup.push(`let co${cc} = min(c0 + ${cc}u, p.c - 1u) * plane;`);
  if (!dyVec) {
    for (const k of range(FQ * 4)) setup.push(`let fo${k} = min(f0 + ${k}u, p.f - 1u) * pl;`);
  } else {
    for (const q of range(FQ)) setup.push(`let fv${q} = min(fb * ${FQ}u + ${q}u, p.f4 - 1u);`);
  }
  for (const py of range(RH)) {
    body.push(
      `let yy${py} = oy0 + ${py}u; let my${py} = valid && yy${py} < p.ho; ` +
        `let dr${py} = min(yy${py}, p.ho - 1u);`,
    );
  }
  for (const px of range(RW)) {
    body.push(
      `let xx${px} = ox0 + ${px}u; let mx${px} = xx${px} < p.wo; let dc${px} = min(xx${px}, p.wo - 1u);`,
    );
  }
  for (const q of range(FQ)) {
    for (const py of range(RH)) {
      for (const px of range(RW)) {
        const v = dyVec
          ? `DY[((n * p.ho + dr${py}) * p.wo + dc${px}) * p.f4 + fv${q}]`
          : `vec4f(${
            range(4).map((j) => `DY[db + fo${q * 4 + j} + dr${py} * p.wo + dc${px}]`).join(", ")
          })`;
        body.push(`let d${q}_${py}_${px} = select(vec4f(), ${v}, my${py} && mx${px});`);
      }
    }
  }
  for (const i of range(PH)) {
    body.push(
      `let iy${i} = i32(oy0 * ${sh}u) - p.padY + ${i}; ` +
        `let ry${i} = u32(clamp(iy${i}, 0, ih - 1)) * p.w; let vy${i} = u32(iy${i}) < p.h;`,
    );
  }
  for (const j of range(PW)) {
    body.push(
      `let ix${j} = i32(ox0 * ${sw}u) - p.padX + ${j}; ` +
        `let rx${j} = u32(clamp(ix${j}, 0, iw - 1)); let vx${j} = u32(ix${j}) < p.w;`,
    );
  }
  for (const cc of range(CC)) {
    for (const i of range(PH)) {
      for (const j of range(PW)) {
        body.push(
          `let x${cc}_${i}_${j} = select(0.0, X[xb + co${cc} + ry${i} + rx${j}], vy${i} && vx${j});`,
        );
      }
    }
    for (const ky of range(kh)) {
      for (const kx of range(kw)) {
        for (const q of range(FQ)) {
          const acc = `a${cc}_${ky}_${kx}_${q}`;
          setup.push(`var ${acc} = vec4f();`);
          let sum = acc;
          for (const py of range(RH)) {
            for (const px of range(RW)) {
              sum = `fma(vec4f(x${cc}_${py * sh + ky}_${px * sw + kx}), d${q}_${py}_${px}, ${sum})`;
            }
          }
          body.push(`${acc} = ${sum};`);
        }
      }
    }
  }
  const stores: string[] = [];
  for (const cc of range(CC)) {
    for (const q of range(FQ)) {
      for (const j of range(4)) {
        const k = q * 4 + j;
        const st = range(kh * kw).map((tap) =>
          `O[o + ${tap}u] = a${cc}_${Math.floor(tap / kw)}_${tap % kw}_${q}[${j}];`
        );
        stores.push(
          `if (live && c0 + ${cc}u < p.c && f0 + ${k}u < p.f) {\n` +
            `    let o = ob + ((f0 + ${k}u) * p.c + c0 + ${cc}u) * ${kh * kw}u;\n    ${
              st.join("\n    ")
            }\n  }`,
        );
      }
    }
  }
  return /* wgsl */ `
struct P { c: u32, h: u32, w: u32, f: u32, ho: u32, wo: u32, padY: i32, padX: i32,
  tilesX: u32, tilesY: u32, fBlocks: u32, cBlocks: u32, steps: u32, perChunk: u32, f4: u32,
  count: u32, nx: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> DY: array<${dyVec ? "vec4f" : "f32"}>;
@group(0) @binding(3) var<storage, read_write> O: array<f32>;
${BLOCKED_MAIN}  let fb = g % p.fBlocks;
  let cb = (g / p.fBlocks) % p.cBlocks;
  let chunk = g / (p.fBlocks * p.cBlocks);
  let f0 = fb * ${FQ * 4}u;
  let c0 = cb * ${CC}u;
  let ih = i32(p.h);
  let iw = i32(p.w);
  let plane = p.h * p.w;
  let pl = p.ho * p.wo;
  ${setup.join("\n  ")}
  // Every chunk has perChunk steps; steps past the end read clamped data with dy masked to 0.
  for (var i = 0u; i < p.perChunk; i++) {
    let s0 = chunk * p.perChunk + i;
    let valid = s0 < p.steps;
    let s = min(s0, p.steps - 1u);
    let tx = s % p.tilesX;
    let ty = (s / p.tilesX) % p.tilesY;
    let n = s / (p.tilesX * p.tilesY);
    let oy0 = ty * ${RH}u;
    let ox0 = tx * ${RW}u;
    let xb = n * p.c * plane;
    ${dyVec ? "" : "let db = n * p.f * pl;"}
    ${body.join("\n    ")}
  }
  let ob = chunk * p.f * p.c * ${kh * kw}u;
  ${stores.join("\n  ")}
}`;
}

/** The weight-gradient product: x, dy -> dw [f, c, kh, kw]. */
export function conv2dWeightGrad(
  rt: GpuRuntime,
  x: GpuBuffer,
  dy: GpuBuffer,
  s: Conv2dSpec,
): GpuBuffer {
  const op = "conv2dWeightGrad";
  const [ho, wo] = checkConv2dSpec(op, s);
  expectSize(op, "x", x, s.n * s.c * s.h * s.w, `[${s.n}, ${s.c}, ${s.h}, ${s.w}]`);
  expectSize(op, "dy", dy, s.n * s.f * ho * wo, `[${s.n}, ${s.f}, ${ho}, ${wo}]`);
  const weights = s.f * s.c * s.kh * s.kw;
  if (s.n === 0) return zeros(rt, weights);
  const t = planWeightGrad(s, ho, wo);
  const f4 = Math.ceil(s.f / 4);
  let dyIn = dy;
  if (t.dyVec) {
    const total = s.n * ho * wo * f4 * 4;
    dyIn = rt.alloc(total);
    dispatchFlat(rt, DY_T, new Params().u32(s.f, ho * wo, f4 * 4, total), [dy, dyIn], total);
  }
  const fBlocks = Math.ceil(s.f / (4 * t.fq));
  const cBlocks = Math.ceil(s.c / t.cc);
  const tilesX = Math.ceil(wo / t.rw);
  const tilesY = Math.ceil(ho / t.rh);
  const steps = s.n * tilesX * tilesY;
  const perChunk = Math.ceil(steps / t.chunks);
  const chunks = Math.ceil(steps / perChunk);
  const count = fBlocks * cBlocks * chunks;
  const part = rt.alloc(chunks * weights);
  const params = new Params()
    .u32(s.c, s.h, s.w, s.f, ho, wo)
    .i32(s.padH, s.padW)
    .u32(tilesX, tilesY, fBlocks, cBlocks, steps, perChunk, f4, count);
  const code = weightGradKernel(s.kh, s.kw, s.strideH, s.strideW, t);
  dispatchBlocked(rt, code, params, [x, dyIn, part], count);
  if (dyIn !== dy) rt.release(dyIn);
  if (chunks === 1) return part;
  const dw = rt.alloc(weights);
  dispatchFlat(rt, SUM_CHUNKS, new Params().u32(weights, chunks), [part, dw], weights);
  rt.release(part);
  return dw;
}
