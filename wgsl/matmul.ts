/**
 * Matrix product, tuned for WebGPU on CPUs (Mesa's lavapipe / llvmpipe) and correct on any
 * adapter.
 *
 * On llvmpipe a workgroup runs on one thread with 8 invocations per AVX2 register (one lane
 * each), and every load from a storage buffer is a loop over the lanes: a vec4 load takes about
 * 115 cycles per 8 lanes, the time of ~200 8-wide FMAs. So the kernel maximizes FMAs per load:
 *
 * - each invocation owns an R x C block of the output (R, C multiples of 4, up to 32 x 32) in
 *   vec4 accumulators; per step of 4 along K it loads R + C vec4s, each along its operand's
 *   contiguous axis (transposes happen in registers, free in llvmpipe's SoA layout), for 4 R C
 *   FMAs: 64 loads for 4096 FMAs at 32 x 32;
 * - the K loop is branch-free and fully unrolled over the block; rows and columns past the edges
 *   are clamped into the matrix for loading and masked only at the final store;
 * - no workgroup memory: its loads are per-lane loops too (~0.7x the cost), so staging tiles
 *   there would save little next to the register blocking, and would add barriers;
 * - a workgroup is 8 invocations (one SIMD group) covering wx x wy blocks, so that small outputs
 *   still spread over every core;
 * - R, C and the arrangement are chosen per shape by a cost model ({@link planMatmul}). The
 *   compile time of a kernel grows steeply with R C (cold, on lavapipe: ~0.5 s at 16 x 16, 1.5 s
 *   at 16 x 32, 4.5 s at 32 x 32; Mesa caches compiled shaders on disk), so the large blocks are
 *   reserved for large products. Each (transA, transB, R, C, vec4 output) is its own pipeline.
 *
 * vec4 loads need K, every operand row and the operands' offsets on multiples of 4 floats; when
 * one is not, a variant of the kernel gathers each vec4 from four floats (zero past K), so no
 * operand is ever copied into a padded layout. An epilogue (kernel/ir.ts) is applied in the stores;
 * an operand given as a prologue (kernel/backend.ts `Prologue`) is computed in the loads of that
 * variant, one float at a time, and never stored.
 *
 * @module
 */

import { checkMatmulSpec, matmulShape, type MatmulSpec } from "../kernel/backend.ts";

import { SgnError } from "../errors.ts";
import {
  ACC,
  constant,
  type Expr,
  exprSize,
  type Kernel,
  load,
  mapLoads,
  walk,
} from "../kernel/ir.ts";
import { sizeOf } from "../kernel/shape.ts";
import { dispatchKernel, type EpilogueNames, epilogueSource } from "./codegen.ts";
import type { Storage } from "./routine.ts";
import { GpuBuffer, type GpuRuntime, LANES, MAX_GROUPS, Params, THREADS } from "./runtime.ts";
import {
  groupedKernel,
  type MatmulTile,
  MAX_BLOCK,
  PRODUCT_CONSTS,
  productKernel,
  type ProductNames,
  type ProductVariant,
} from "./matmul_source.ts";

export type { MatmulTile };

/**
 * Chooses the block size and arrangement for a product of `batch` [m, k] x [k, n] matrices by a
 * cost model of llvmpipe (cycles per 8 lanes: ~115 per vec4 load, ~2.2 per 4 FMAs, a store per
 * output), counting the blocks wasted past the edges and the rounds of workgroups over the
 * threads. Large blocks compile slowly, so they are reserved for large products.
 */
export function planMatmul(
  m: number,
  k: number,
  n: number,
  batch = 1,
  vecOut = n % 4 === 0,
): MatmulTile {
  const steps = Math.ceil(k / 4);
  const flops = 2 * batch * m * n * steps * 4;
  const maxArea = flops < 4e6 ? 64 : flops < 2e7 ? 256 : flops < 2e8 ? 512 : MAX_BLOCK * MAX_BLOCK;
  let best: MatmulTile = { r: 4, c: 4, wx: LANES, wy: 1 };
  let bestCost = Infinity;
  for (let r = 4; r <= MAX_BLOCK; r += 4) {
    for (let c = 4; c <= MAX_BLOCK; c += 4) {
      if (r * c > maxArea) continue;
      const perGroup = steps * (115 * (r + c) + 2.2 * r * c) + (vecOut ? 30 : 60) * r * c + 3000;
      for (let wx = LANES; wx >= 1; wx /= 2) {
        const wy = LANES / wx;
        const groups = Math.ceil(Math.ceil(n / c) / wx) * Math.ceil(Math.ceil(m / r) / wy) * batch;
        // Slight preference for power-of-two blocks, so that near-ties share pipelines.
        const bias = (r & (r - 1)) === 0 && (c & (c - 1)) === 0 ? 1 : 1.02;
        const cost = Math.ceil(groups / THREADS) * perGroup * bias;
        if (cost < bestCost) {
          bestCost = cost;
          best = { r, c, wx, wy };
        }
      }
    }
  }
  return best;
}

function checkTile(t: MatmulTile): void {
  const ok =
    [t.r, t.c].every((v) => Number.isInteger(v) && v >= 4 && v <= MAX_BLOCK && v % 4 === 0) &&
    Number.isInteger(t.wx) && Number.isInteger(t.wy) && t.wx >= 1 && t.wy >= 1 &&
    t.wx * t.wy === LANES;
  if (!ok) {
    throw new SgnError(
      `matmul: invalid tile ${JSON.stringify(t)} (r, c multiples of 4 up to ${MAX_BLOCK}, ` +
        `wx * wy = ${LANES})`,
    );
  }
}

/** An epilogue over GPU buffers (kernel/ir.ts expression and its inputs). */
type GpuEpilogue = { body: Expr; inputs: GpuBuffer[] };

/** An operand computed as it is read, over GPU buffers (kernel/backend.ts `Prologue`). */
export type GpuPrologue = { shape: readonly number[]; body: Expr; inputs: GpuBuffer[] };

/** An operand of a grouped product: a buffer, or a prologue. */
type GpuOperand = GpuBuffer | GpuPrologue;

/**
 * Matrix product on the GPU; see {@link MatmulSpec}. `tile` overrides the planned work split
 * and `split` the number of K chunks (for tests and tuning).
 */
export function matmul(
  rt: GpuRuntime,
  a: GpuBuffer,
  b: GpuBuffer,
  spec: MatmulSpec,
  tile?: MatmulTile,
  epilogue?: GpuEpilogue,
  forceSplit?: number,
): GpuBuffer {
  const p = plan(rt, { a, b, spec, tile, epilogue, forceSplit });
  if (p instanceof GpuBuffer) return p;
  runProduct(rt, p);
  return p.out;
}

/** One product of a {@link matmulGroup}. */
export interface GroupedProduct {
  a: GpuOperand;
  b: GpuOperand;
  spec: MatmulSpec;
  epilogue?: GpuEpilogue;
}

/**
 * Independent products in as few dispatches as the device allows: products of batch 1 that run
 * the product kernel share one dispatch (the workgroups dealt out to them in turn), as many as
 * fit the storage buffers a kernel may bind and the workgroups of one dispatch; the rest (and a
 * product alone) are dispatched as {@link matmul} would. Each output is what `matmul` gives, bit
 * for bit: every product runs its own kernel code on its own part of the grid. The backward pass
 * of a dense layer is such a pair (the weight gradient and the input gradient).
 */
export function matmulGroup(rt: GpuRuntime, items: readonly GroupedProduct[]): GpuBuffer[] {
  const planned = items.map((x) => plan(rt, x));
  const limit = rt.device.limits.maxStorageBuffersPerShaderStage;
  let chunk: Planned[] = [];
  const flush = () => {
    // A prologue's inputs are bound by name, as in a group: a product with one runs as a group
    // of one.
    if (chunk.length === 1 && !hasPrologue(chunk[0])) runProduct(rt, chunk[0]);
    else if (chunk.length) runGroup(rt, chunk);
    chunk = [];
  };
  for (const p of planned) {
    if (p instanceof GpuBuffer) continue;
    // A batched product takes the grid's z: it runs on its own.
    if (p.run.batch !== 1) {
      runProduct(rt, p);
      continue;
    }
    const next = [...chunk, p];
    if (bindingsOf(next).length > limit || groupsOf(next) > MAX_GROUPS) flush();
    chunk.push(p);
  }
  flush();
  return planned.map((p) => (p instanceof GpuBuffer ? p : p.out));
}

/** A product planned for the product kernel: its operands, output, uniform fields, epilogue. */
interface Planned {
  a: GpuOperand;
  b: GpuOperand;
  out: GpuBuffer;
  run: ProductRun;
  epilogue?: GpuEpilogue;
  /** Buffers made for the product (prologues computed first), released once it is recorded. */
  temps?: GpuBuffer[];
}

/**
 * Checks a product and plans it: the output of one that needs no product kernel (empty, K = 0:
 * the epilogue alone, or K split into chunks: dispatched here), or the product kernel's run.
 */
function plan(
  rt: GpuRuntime,
  { a, b, spec, tile, epilogue, forceSplit }: GroupedProduct & {
    tile?: MatmulTile;
    forceSplit?: number;
  },
): GpuBuffer | Planned {
  const { m, k, n, transA, transB, batch, batchA, batchB, offsetA, offsetB, sums } =
    checkMatmulSpec(spec, operandSize(a), operandSize(b));
  if (tile) checkTile(tile);
  if ((isGpuPrologue(a) && offsetA) || (isGpuPrologue(b) && offsetB)) {
    throw new SgnError("matmul: an operand given as a prologue is read from its start (offset 0)");
  }
  // With `sums`, one more output row (batch 1).
  const size = (batch * m + (sums ? 1 : 0)) * n;
  if (size === 0) return rt.alloc(0);
  if (k === 0) {
    // acc = 0 everywhere: the epilogue (or zeros) as a map kernel of the IR.
    const body = epilogue?.body ?? ACC;
    const zero = mapLoads(body, (l) => (l.k === "acc" ? constant(0) : l));
    const kernel = { shape: matmulShape(spec), inputs: epilogue?.inputs.length ?? 0, body: zero };
    return dispatchKernel(rt, kernel, epilogue?.inputs ?? []);
  }
  // A batched product runs on the grid's z, alone, and a part's constants have a fixed room:
  // there, prologues are computed first, as the maps they are (what the graph would run).
  const temps: GpuBuffer[] = [];
  const consts = [a, b, epilogue].reduce(
    (n, x) => n + (x && !(x instanceof GpuBuffer) ? constCount(x.body) : 0),
    0,
  );
  if (batch > 1 || consts > PRODUCT_CONSTS) {
    const stored = (x: GpuOperand) => {
      if (!isGpuPrologue(x)) return x;
      const kernel = { shape: x.shape, inputs: x.inputs.length, body: x.body };
      return temps[temps.push(dispatchKernel(rt, kernel, x.inputs)) - 1];
    };
    [a, b] = [stored(a), stored(b)];
  }
  const vecOut = n % 4 === 0;
  // Prologues are computed per float (the unaligned variant's loads).
  const aligned = k % 4 === 0 && (transA ? m : k) % 4 === 0 && (transB ? k : n) % 4 === 0 &&
    offsetA % 4 === 0 && offsetB % 4 === 0 && !isGpuPrologue(a) && !isGpuPrologue(b);
  // Split K on hardware GPUs only: on llvmpipe it measured no faster (its threads are few) and
  // costs a dispatch (bench/README.md).
  const split = forceSplit ??
    (tile || batch > 1 || !aligned || rt.software ? 1 : splitK(m, k, n));
  if (split > 1 && (!aligned || batch > 1 || k % (4 * split) !== 0)) {
    throw new SgnError(`matmul: cannot split K = ${k} into ${split} chunks of whole vec4 steps`);
  }
  if (split > 1) {
    const out = splitProduct(rt, a as GpuBuffer, b as GpuBuffer, spec, split, epilogue);
    for (const x of temps) rt.release(x);
    return out;
  }
  const t = tile ?? planMatmul(m + (sums ? 1 : 0), k, n, batch, vecOut);
  // Stored shapes: A is [m, k] or (transA) [k, m]; B is [k, n] or (transB) [n, k]. The vec4
  // kernel needs K, every operand row and both offsets on multiples of 4; otherwise the
  // unaligned variant gathers its vec4s from floats (no padded copies, no extra dispatch).
  const unit = aligned ? 4 : 1;
  const run: ProductRun = {
    m,
    n,
    k,
    steps: Math.ceil(k / 4),
    lda: (transA ? m : k) / unit,
    ldb: (transB ? k : n) / unit,
    strideA: batchA ? (m * k) / unit : 0,
    strideB: batchB ? (k * n) / unit : 0,
    offA: offsetA / unit,
    offB: offsetB / unit,
    batch,
    transA,
    transB,
    vecOut,
    aligned,
    sums,
    t,
  };
  return { a, b, out: rt.alloc(size), run, temps, ...(epilogue ? { epilogue } : {}) };
}

function isGpuPrologue(x: GpuOperand): x is GpuPrologue {
  return !(x instanceof GpuBuffer);
}

function hasPrologue(p: Planned): boolean {
  return isGpuPrologue(p.a) || isGpuPrologue(p.b);
}

function operandSize(x: GpuOperand): number {
  return isGpuPrologue(x) ? sizeOf(x.shape) : x.size;
}

/** The constants an expression's WGSL reads from its parameter block (one per constant node). */
function constCount(e: Expr): number {
  let n = 0;
  walk(e, (x) => x.k === "const" && n++);
  return n;
}

/** The uniform fields and variant of one product dispatch (strides and offsets in load units). */
interface ProductRun {
  m: number;
  n: number;
  k: number;
  steps: number;
  lda: number;
  ldb: number;
  strideA: number;
  strideB: number;
  offA: number;
  offB: number;
  batch: number;
  transA: boolean;
  transB: boolean;
  vecOut: boolean;
  aligned: boolean;
  /** One more output row: B's sums over k. */
  sums: boolean;
  t: MatmulTile;
}

/** The product's workgroups along N and M. */
function gridOf(r: ProductRun): [number, number] {
  const { t } = r;
  const gx = Math.ceil(Math.ceil(r.n / t.c) / t.wx);
  const gy = Math.ceil(Math.ceil((r.m + (r.sums ? 1 : 0)) / t.r) / t.wy);
  if (gx > MAX_GROUPS || gy > MAX_GROUPS) {
    throw new SgnError(`matmul: an output of ${r.m} x ${r.n} is too large for one dispatch`);
  }
  return [gx, gy];
}

/**
 * The kernel variant of a planned product, its epilogue named by `names`, its prologues by `pro`
 * (their functions' tag and their inputs' names: a product with prologues runs as a group, see
 * matmulGroup).
 */
function variantOf(
  p: Planned,
  names?: EpilogueNames,
  pro?: { tag: string; input: (b: GpuBuffer) => string },
): { v: ProductVariant; consts: number[] } {
  const r = p.run;
  const epi = p.epilogue &&
    epilogueSource(
      matmulShape({ m: r.m, k: r.k, n: r.n, batch: r.batch, sums: r.sums }),
      p.epilogue.body,
      p.epilogue.inputs.length,
      4,
      names,
    );
  // Constants: the epilogue's, then A's prologue's, then B's.
  let slot = epi?.consts.length ?? 0;
  const consts = [...epi?.consts ?? []];
  const prologue = (x: GpuOperand, name: "A" | "B") => {
    if (!isGpuPrologue(x)) return "";
    if (!names || !pro) throw new SgnError("matmul: a prologue runs in a grouped kernel");
    const src = epilogueSource(x.shape, x.body, x.inputs.length, 0, {
      fn: `pro${name}${pro.tag}`,
      params: names.params,
      input: (j) => pro.input(x.inputs[j]),
    }, slot);
    slot += src.consts.length;
    consts.push(...src.consts);
    return src.fn;
  };
  const [prologueA, prologueB] = [prologue(p.a, "A"), prologue(p.b, "B")];
  const v: ProductVariant = {
    transA: r.transA,
    transB: r.transB,
    vecOut: r.vecOut,
    t: r.t,
    // A part of a grouped kernel binds its epilogue's inputs with the other buffers.
    epilogue: epi ? (names ? epi.fn : `${epi.decls}\n${epi.fn}`) : "",
    unaligned: !r.aligned,
    epilogueLoop: p.epilogue !== undefined &&
      r.t.r * r.t.c * exprSize(p.epilogue.body) > EPILOGUE_INLINE,
    sums: r.sums,
    prologueA,
    prologueB,
  };
  return { v, consts };
}

/** The uniform block of a product dispatch from batch entry `b0`, after `head` fields. */
function paramsOf(r: ProductRun, b0: number, consts: number[], head: number[] = []): Params {
  return new Params()
    .u32(...head)
    .u32(r.m, r.n, r.steps, r.lda, r.ldb, r.strideA, r.strideB, b0, r.t.wx, r.t.wy, r.k)
    .u32(r.offA, r.offB)
    .consts(consts);
}

/** Records the product kernel over `p.run.batch` entries (in runs of MAX_GROUPS). */
function runProduct(rt: GpuRuntime, p: Planned): void {
  const r = p.run;
  const [gx, gy] = gridOf(r);
  const { v, consts } = variantOf(p);
  const code = productKernel(v);
  const buffers = [p.a as GpuBuffer, p.b as GpuBuffer, p.out, ...(p.epilogue?.inputs ?? [])];
  for (let b0 = 0; b0 < r.batch; b0 += MAX_GROUPS) {
    rt.dispatch(code, paramsOf(r, b0, consts), buffers, [
      gx,
      gy,
      Math.min(MAX_GROUPS, r.batch - b0),
    ]);
  }
  for (const x of p.temps ?? []) rt.release(x);
}

/**
 * The storage buffers of a grouped kernel: each distinct (buffer, element type) once, in the
 * order the parts read them (a buffer two products read, such as the output gradient both
 * products of a dense layer's backward pass take, is bound once).
 */
function bindingsOf(parts: readonly Planned[]): { buffer: GpuBuffer; storage: Storage }[] {
  const out: { buffer: GpuBuffer; storage: Storage }[] = [];
  const bind = (buffer: GpuBuffer, type: Storage["type"], write = false): string => {
    let at = out.findIndex((x) => x.buffer === buffer && x.storage.type === type);
    if (at < 0) {
      at = out.length;
      out.push({ buffer, storage: { name: `s${at}`, type, ...(write ? { write } : {}) } });
    }
    return out[at].storage.name;
  };
  for (const p of parts) {
    const operand = p.run.aligned ? "vec4f" : "f32";
    for (const x of [p.a, p.b]) {
      if (isGpuPrologue(x)) { for (const e of x.inputs) bind(e, "f32"); }
      else bind(x, operand);
    }
    bind(p.out, p.run.vecOut ? "vec4f" : "f32", true);
    for (const e of p.epilogue?.inputs ?? []) bind(e, "f32");
  }
  return out;
}

/** Workgroups of a grouped dispatch. */
function groupsOf(parts: readonly Planned[]): number {
  return parts.reduce((sum, p) => {
    const [gx, gy] = gridOf(p.run);
    return sum + gx * gy;
  }, 0);
}

/** Records products of batch 1 as one dispatch (see {@link matmulGroup}). */
function runGroup(rt: GpuRuntime, group: readonly Planned[]): void {
  // In the order of their kernels' code, so that one set of products is one pipeline whatever
  // order they come in (each part writes its own output).
  const key = (p: Planned) =>
    JSON.stringify(
      variantOf(p, { fn: "epi", params: "p", input: (j) => `e${j}` }, {
        tag: "",
        input: () => "x",
      }).v,
    );
  const parts = group.map((p) => ({ p, key: key(p) }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map((x) => x.p);
  const bindings = bindingsOf(parts);
  const nameOf = (b: GpuBuffer, type: Storage["type"]) =>
    bindings.find((x) => x.buffer === b && x.storage.type === type)!.storage.name;
  let end = 0;
  const params: Params[] = [];
  const kernels = parts.map((p, i) => {
    const r = p.run;
    const operand = r.aligned ? "vec4f" : "f32";
    // An operand computed by a prologue has no buffer of its own (its name goes unused).
    const operandName = (x: GpuOperand) => (isGpuPrologue(x) ? "" : nameOf(x, operand));
    const N: ProductNames = {
      p: `g.s${i}`,
      A: operandName(p.a),
      B: operandName(p.b),
      O: nameOf(p.out, r.vecOut ? "vec4f" : "f32"),
      tag: `_${i}`,
    };
    const inputs = p.epilogue?.inputs ?? [];
    const { v, consts } = variantOf(p, {
      fn: `epi_${i}`,
      params: N.p,
      input: (j) => nameOf(inputs[j], "f32"),
    }, { tag: N.tag, input: (b) => nameOf(b, "f32") });
    const [gx, gy] = gridOf(r);
    end += gx * gy;
    params.push(paramsOf(r, 0, consts, [gx, end]));
    return { v, N };
  });
  const code = groupedKernel(kernels, bindings.map((x) => x.storage));
  rt.dispatch(code, params, bindings.map((x) => x.buffer), [end]);
  for (const p of group) for (const x of p.temps ?? []) rt.release(x);
}

/** Block elements times epilogue nodes above which the epilogue runs in a loop (see below). */
const EPILOGUE_INLINE = 2048;

/** Invocations below which a product has too little parallel work for the threads. */
const SPLIT_BELOW = 64 * THREADS;

/**
 * How many chunks to cut K into for a thin product (few output blocks, long K): each chunk is
 * a batch entry of the product kernel, and one reduction sums them. 1 = no split. Chunks are
 * whole vec4 steps, so the aligned kernel runs unchanged on each.
 */
export function splitK(m: number, k: number, n: number): number {
  const t = planMatmul(m, k, n);
  const blocks = Math.ceil(m / t.r) * Math.ceil(n / t.c);
  if (blocks >= SPLIT_BELOW || k < 256) return 1;
  const steps = k / 4;
  let best = 1;
  for (let s = 2; s <= 16; s++) {
    if (steps % s !== 0 || steps / s < 8) continue;
    best = s;
    if (blocks * s >= SPLIT_BELOW) break;
  }
  return best;
}

/**
 * A product with K cut into `split` chunks: the chunks' partial products [split, m, n] from one
 * batched dispatch, summed by one reduction kernel of the IR that applies the epilogue too.
 */
function splitProduct(
  rt: GpuRuntime,
  a: GpuBuffer,
  b: GpuBuffer,
  spec: MatmulSpec,
  split: number,
  epilogue?: GpuEpilogue,
): GpuBuffer {
  const { m, k, n, transA, transB, offsetA = 0, offsetB = 0, sums = false } = spec;
  const kc = k / split;
  // With `sums`, each chunk's partial product has the sums row too.
  const rows = m + (sums ? 1 : 0);
  const partial = rt.alloc(split * rows * n);
  const run: ProductRun = {
    m,
    n,
    k: kc,
    steps: kc / 4,
    lda: (transA ? m : k) / 4,
    ldb: (transB ? k : n) / 4,
    // Chunk z starts kc columns (or rows, when transposed) after chunk z - 1.
    strideA: (transA ? kc * m : kc) / 4,
    strideB: (transB ? kc : kc * n) / 4,
    offA: offsetA / 4,
    offB: offsetB / 4,
    batch: split,
    transA: transA ?? false,
    transB: transB ?? false,
    vecOut: n % 4 === 0,
    aligned: true,
    sums,
    t: planMatmul(rows, kc, n, split),
  };
  runProduct(rt, { a, b, out: partial, run });
  const inputs = epilogue?.inputs ?? [];
  const shift = (e: Expr) =>
    mapLoads(e, (l) => (l.k === "load" ? { ...l, input: l.input + 1 } : l));
  const kernel: Kernel = {
    shape: [rows, n],
    inputs: inputs.length + 1,
    body: load(0, [n, 1, rows * n]),
    reduce: { op: "sum", shape: [split] },
    ...(epilogue ? { epilogue: shift(epilogue.body) } : {}),
  };
  const out = dispatchKernel(rt, kernel, [partial, ...inputs]);
  rt.release(partial);
  return out;
}
