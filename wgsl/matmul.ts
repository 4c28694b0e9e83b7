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
 * operand is ever copied into a padded layout. An epilogue (kernel/ir.ts) is applied in the stores.
 *
 * @module
 */

import { checkMatmulSpec, matmulShape, type MatmulSpec } from "../kernel/backend.ts";

import { SgnError } from "../errors.ts";
import { ACC, constant, type Expr, exprSize, type Kernel, load, mapLoads } from "../kernel/ir.ts";
import { dispatchKernel, epilogueSource } from "./codegen.ts";
import { routineSource } from "./routine.ts";
import { type GpuBuffer, type GpuRuntime, LANES, MAX_GROUPS, Params, THREADS } from "./runtime.ts";
import { memoKernel } from "./source.ts";

/**
 * The work split of one product: each invocation computes an `r` x `c` block of the output, and a
 * workgroup of {@link LANES} invocations covers `wx` blocks along N times `wy` blocks along M.
 */
export interface MatmulTile {
  r: number;
  c: number;
  wx: number;
  wy: number;
}

/** Largest block side. */
const MAX_BLOCK = 32;

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const XYZW = ["x", "y", "z", "w"];

/**
 * WGSL of the product kernel. Operands are read as vec4 arrays, in vec4 units: A is
 * [batch?, m, lda] (or [batch?, k4, lda] with `transA`), B is [batch?, k4, ldb] (or
 * [batch?, n, ldb] with `transB`), K padded with zeros to k4 = 4 steps. Batch entries are
 * strideA / strideB apart (0 for a shared operand); z = workgroup z + batch0. The output is
 * [batch, m, n] floats, written as vec4s when n is a multiple of 4.
 */
const productKernel = memoKernel("product", productSource);

function productSource(
  transA: boolean,
  transB: boolean,
  vecOut: boolean,
  t: MatmulTile,
  epilogue = "",
  unaligned = false,
  epilogueLoop = false,
  sums = false,
): string {
  const { r: R, c: C } = t;
  const setup: string[] = [];
  const body: string[] = [];
  // With `sums`, A has one more row of ones (row m): the output's row m is B's sums over k.
  const rows = sums ? "(p.m + 1u)" : "p.m";
  if (unaligned) {
    // Operands as floats at any offset and leading dimension: each vec4 is gathered from four
    // floats, zero past K and clamped into the matrix along M and N.
    body.push("let k0 = kq * 4u;");
    if (transA) {
      for (const q of range(R / 4)) {
        for (const d of range(4)) {
          body.push(`let a${d}_${q} = ${ones4(`rowA(k0 + ${d}u, r0 + ${4 * q}u, aOff)`, q)};`);
        }
      }
    } else {
      for (const i of range(R)) {
        setup.push(`let ra${i} = aOff + min(r0 + ${i}u, p.m - 1u) * p.lda;`);
      }
      for (const i of range(R)) body.push(`let a${i} = ${ones(`alongA(ra${i}, k0)`, i)};`);
    }
    if (transB) {
      for (const j of range(C)) {
        setup.push(`let cb${j} = bOff + min(c0 + ${j}u, p.n - 1u) * p.ldb;`);
      }
      for (const j of range(C)) body.push(`let b${j} = alongB(cb${j}, k0);`);
    } else {
      for (const q of range(C / 4)) {
        for (const d of range(4)) {
          body.push(`let b${d}_${q} = rowB(k0 + ${d}u, c0 + ${4 * q}u, bOff);`);
        }
      }
    }
  } else if (transA) {
    // A^T stored [k4, m]: per K row, R/4 vec4s along M.
    for (const q of range(R / 4)) {
      setup.push(`let ra${q} = aOff + min(r0 / 4u + ${q}u, p.lda - 1u);`);
    }
    body.push(`let ka = kq * 4u * p.lda;`);
    for (const d of range(4)) {
      for (const q of range(R / 4)) {
        body.push(`let a${d}_${q} = ${ones4(`A[ra${q} + ka + ${d}u * p.lda]`, q)};`);
      }
    }
  } else {
    // A stored [m, k4]: per row, one vec4 along K.
    for (const i of range(R)) setup.push(`let ra${i} = aOff + min(r0 + ${i}u, p.m - 1u) * p.lda;`);
    for (const i of range(R)) body.push(`let a${i} = ${ones(`A[ra${i} + kq]`, i)};`);
  }
  if (unaligned) {
    // loaded above
  } else if (transB) {
    // B^T stored [n, k4]: per column, one vec4 along K.
    for (const j of range(C)) setup.push(`let cb${j} = bOff + min(c0 + ${j}u, p.n - 1u) * p.ldb;`);
    for (const j of range(C)) body.push(`let b${j} = B[cb${j} + kq];`);
  } else {
    // B stored [k4, n]: per K row, C/4 vec4s along N.
    for (const q of range(C / 4)) {
      setup.push(`let cb${q} = bOff + min(c0 / 4u + ${q}u, p.ldb - 1u);`);
    }
    body.push(`let kb = kq * 4u * p.ldb;`);
    for (const d of range(4)) {
      for (const q of range(C / 4)) body.push(`let b${d}_${q} = B[cb${q} + kb + ${d}u * p.ldb];`);
    }
  }
  // A[i, k + d] as a scalar; B[k + d, 4q..4q+3] as a vec4.
  const a = (i: number, d: number) =>
    transA ? `a${d}_${i >> 2}.${XYZW[i & 3]}` : `a${i}.${XYZW[d]}`;
  const b = (d: number, q: number) =>
    transB ? `vec4f(${range(4).map((j) => `b${4 * q + j}.${XYZW[d]}`).join(", ")})` : `b${d}_${q}`;
  for (const i of range(R)) {
    for (const q of range(C / 4)) {
      setup.push(`var acc${i}_${q} = vec4f();`);
      const sum = range(4).reduce(
        (s, d) => `fma(vec4f(${a(i, d)}), ${b(d, q)}, ${s})`,
        `acc${i}_${q}`,
      );
      body.push(`acc${i}_${q} = ${sum};`);
    }
  }
  const stores: string[] = [];
  for (const i of range(R)) {
    const row: string[] = [];
    for (const q of range(C / 4)) {
      const v = `acc${i}_${q}`;
      const at = `o + ${4 * q}u`;
      const value = epilogue && !epilogueLoop
        ? `vec4f(${range(4).map((j) => `epi(${at} + ${j}u, ${v}.${XYZW[j]})`).join(", ")})`
        : v;
      row.push(
        vecOut
          ? `if (c0 + ${4 * q}u < p.n) { O[o / 4u + ${q}u] = ${value}; }`
          : `put(${at}, c0 + ${4 * q}u, ${v});`,
      );
    }
    stores.push(
      `if (r0 + ${i}u < ${rows}) {\n    let o = base + (r0 + ${i}u) * p.n + c0;\n    ${
        row.join("\n    ")
      }\n  }`,
    );
  }
  const put = /* wgsl */ `
fn put(o: u32, c: u32, v: vec4f) {
  for (var j = 0u; j < 4u; j++) {
    if (c + j < p.n) { O[o + j] = ${epilogue && !epilogueLoop ? "epi(o + j, v[j])" : "v[j]"}; }
  }
}`;
  const operand = unaligned ? "f32" : "vec4f";
  return routineSource({
    params: [
      ...["m", "n", "steps", "lda", "ldb", "strideA", "strideB", "batch0", "wx", "wy", "k"],
      ...["offA", "offB"],
    ],
    consts: true,
    storage: [
      { name: "A", type: operand },
      { name: "B", type: operand },
      { name: "O", type: vecOut ? "vec4f" : "f32", write: true },
    ],
    decls: `${unaligned ? UNALIGNED_LOADS : ""}\n${epilogue}\n${vecOut ? "" : put}`,
    entry: { kind: "workgroup", wg: LANES },
    body: /* wgsl */ `let r0 = (wid.y * p.wy + lid / p.wx) * ${R}u;
  let c0 = (wid.x * p.wx + lid % p.wx) * ${C}u;
  let z = wid.z + p.batch0;
  let aOff = z * p.strideA + p.offA;
  let bOff = z * p.strideB + p.offB;
  ${setup.join("\n  ")}
  for (var kq = 0u; kq < p.steps; kq++) {
    ${body.join("\n    ")}
  }
  let base = z * ${rows} * p.n;
  ${stores.join("\n  ")}
  ${epilogue && epilogueLoop ? loopedEpilogue(R, C, vecOut, rows) : ""}`,
  });

  /** A's row r0 + i loaded along K (four values of one row), all ones in the sums row. */
  function ones(load: string, i: number): string {
    return sums ? `select(${load}, vec4f(1.0), r0 + ${i}u == p.m)` : load;
  }
  /** A's rows r0 + 4q ... r0 + 4q + 3 at one k, with a one in the sums row's lane. */
  function ones4(load: string, q: number): string {
    const lanes = `vec4u(r0 + ${4 * q}u) + vec4u(0u, 1u, 2u, 3u) == vec4u(p.m)`;
    return sums ? `select(${load}, vec4f(1.0), ${lanes})` : load;
  }
}

/**
 * The epilogue over an invocation's block, after its raw stores: the block is read back and
 * rewritten in a loop, so that \`epi\` has one call site (four with vec4 output) instead of one
 * per element of the unrolled stores, which made shader compilation explode for large blocks and
 * large epilogues (W2's H v: minutes). Used when block size times epilogue size is large
 * ({@link EPILOGUE_INLINE}); small ones stay in the stores (no read-back).
 * Reading back what the same invocation stored is ordered (program order, same invocation).
 */
function loopedEpilogue(R: number, C: number, vecOut: boolean, rows: string): string {
  const inner = vecOut
    ? `for (var q = 0u; q < ${C / 4}u; q++) {
      if (c0 + 4u * q >= p.n) { break; }
      let at = o + 4u * q;
      let v = O[at / 4u];
      O[at / 4u] = vec4f(epi(at, v.x), epi(at + 1u, v.y), epi(at + 2u, v.z), epi(at + 3u, v.w));
    }`
    : `for (var j = 0u; j < ${C}u; j++) {
      if (c0 + j >= p.n) { break; }
      O[o + j] = epi(o + j, O[o + j]);
    }`;
  return `for (var i = 0u; i < ${R}u; i++) {
    if (r0 + i >= ${rows}) { break; }
    let o = base + (r0 + i) * p.n + c0;
    ${inner}
  }`;
}

/** Four floats of operand \`x\` along K from \`at\` (a row of A, or a column of B^T), zero past K. */
function alongK(x: string): string {
  const terms = range(4).map((d) => {
    const k = d ? `k0 + ${d}u` : "k0";
    return `select(0.0, ${x}[at + ${k}], ${k} < p.k)`;
  });
  return `fn along${x}(at: u32, k0: u32) -> vec4f {\n  return vec4f(${terms.join(", ")});\n}`;
}

/**
 * Four neighbours of row kk of operand \`x\` stored [k, dim] (A^T, or B), zero past K and
 * clamped to the matrix along \`dim\`.
 */
function rowOf(x: string, dim: string): string {
  const terms = range(4).map((j) => `${x}[row + min(c${j ? ` + ${j}u` : ""}, last)]`);
  return `fn row${x}(kk: u32, c: u32, off: u32) -> vec4f {
  if (kk >= p.k) { return vec4f(); }
  let row = off + kk * p.ld${x.toLowerCase()};
  let last = p.${dim} - 1u;
  return vec4f(${terms.join(", ")});
}`;
}

/** The loads of the unaligned variant (see productSource). */
const UNALIGNED_LOADS = /* wgsl */ `
${["A", "B"].map(alongK).join("\n")}
${[["A", "m"], ["B", "n"]].map(([x, d]) => rowOf(x, d)).join("\n")}
`;

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
  epilogue?: { body: Expr; inputs: GpuBuffer[] },
  forceSplit?: number,
): GpuBuffer {
  const { m, k, n, transA, transB, batch, batchA, batchB, offsetA, offsetB, sums } =
    checkMatmulSpec(spec, a.size, b.size);
  if (tile) checkTile(tile);
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
  const vecOut = n % 4 === 0;
  const aligned = k % 4 === 0 && (transA ? m : k) % 4 === 0 && (transB ? k : n) % 4 === 0 &&
    offsetA % 4 === 0 && offsetB % 4 === 0;
  // Split K on hardware GPUs only: on llvmpipe it measured no faster (its threads are few) and
  // costs a dispatch (bench/README.md).
  const split = forceSplit ??
    (tile || batch > 1 || !aligned || rt.software ? 1 : splitK(m, k, n));
  if (split > 1 && (!aligned || batch > 1 || k % (4 * split) !== 0)) {
    throw new SgnError(`matmul: cannot split K = ${k} into ${split} chunks of whole vec4 steps`);
  }
  if (split > 1) return splitProduct(rt, a, b, spec, split, epilogue);
  const t = tile ?? planMatmul(m + (sums ? 1 : 0), k, n, batch, vecOut);
  const out = rt.alloc(size);
  // Stored shapes: A is [m, k] or (transA) [k, m]; B is [k, n] or (transB) [n, k]. The vec4
  // kernel needs K, every operand row and both offsets on multiples of 4; otherwise the
  // unaligned variant gathers its vec4s from floats (no padded copies, no extra dispatch).
  const unit = aligned ? 4 : 1;
  runProduct(rt, a, b, out, {
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
  }, epilogue);
  return out;
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

/** Records the product kernel over `r.batch` entries (in runs of MAX_GROUPS). */
function runProduct(
  rt: GpuRuntime,
  a: GpuBuffer,
  b: GpuBuffer,
  out: GpuBuffer,
  r: ProductRun,
  epilogue?: { body: Expr; inputs: GpuBuffer[] },
): void {
  const { t } = r;
  const rows = r.m + (r.sums ? 1 : 0);
  const gx = Math.ceil(Math.ceil(r.n / t.c) / t.wx);
  const gy = Math.ceil(Math.ceil(rows / t.r) / t.wy);
  if (gx > MAX_GROUPS || gy > MAX_GROUPS) {
    throw new SgnError(`matmul: an output of ${r.m} x ${r.n} is too large for one dispatch`);
  }
  const epi = epilogue &&
    epilogueSource(
      matmulShape({ m: r.m, k: r.k, n: r.n, batch: r.batch, sums: r.sums }),
      epilogue.body,
      epilogue.inputs.length,
      4,
    );
  const code = productKernel(
    r.transA,
    r.transB,
    r.vecOut,
    t,
    epi ? `${epi.decls}\n${epi.fn}` : "",
    !r.aligned,
    epilogue !== undefined && t.r * t.c * exprSize(epilogue.body) > EPILOGUE_INLINE,
    r.sums,
  );
  for (let b0 = 0; b0 < r.batch; b0 += MAX_GROUPS) {
    const params = new Params()
      .u32(r.m, r.n, r.steps, r.lda, r.ldb, r.strideA, r.strideB, b0, t.wx, t.wy, r.k)
      .u32(r.offA, r.offB)
      .consts(epi?.consts ?? []);
    rt.dispatch(code, params, [a, b, out, ...(epilogue?.inputs ?? [])], [
      gx,
      gy,
      Math.min(MAX_GROUPS, r.batch - b0),
    ]);
  }
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
  epilogue?: { body: Expr; inputs: GpuBuffer[] },
): GpuBuffer {
  const { m, k, n, transA, transB, offsetA = 0, offsetB = 0, sums = false } = spec;
  const kc = k / split;
  // With `sums`, each chunk's partial product has the sums row too.
  const rows = m + (sums ? 1 : 0);
  const partial = rt.alloc(split * rows * n);
  runProduct(rt, a, b, partial, {
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
  });
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
