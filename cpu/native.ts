/**
 * The native CPU backend: matrix products and convolutions through BLAS (`cpu/blas.ts`, loaded
 * with `Deno.dlopen`), everything else as tight typed-array loops compiled once per operation
 * (no per-element function calls), and a size-bucketed pool that recycles host memory.
 *
 * It inherits the plain TypeScript backend (the oracle it is tested against) and replaces the
 * kernels that matter for speed; the rest (argmax and max reductions, concat/split, where and the
 * optimizers' vector kernels) are already tight loops there, and allocate through this backend's
 * pool.
 *
 * @module
 */

import {
  type BinaryOp,
  broadcastShapes,
  broadcastStrides,
  checkMatmulSpec,
  checkStridedView,
  type Conv2dSpec,
  type DeviceBuffer,
  type DType,
  type MatmulSpec,
  type Pool2dSpec,
  type ReduceOp,
  SgnError,
  sizeOf,
  type TypedArray,
  type UnaryOp,
} from "../backend.ts";
import { CpuBackend, CpuBuffer } from "./backend.ts";
import { type Blas, loadBlas } from "./blas.ts";

/** Each unary op as a statement that sets `y` from `x` (JavaScript doubles, stored once). */
const UNARY_CODE: Record<UnaryOp, string> = {
  neg: "y = -x;",
  exp: "y = Math.exp(x);",
  log: "y = Math.log(x);",
  // exp(-|x|) is exp(-x) for x >= 0 and exp(x) below: the reference's two stable branches.
  sigmoid: "const e = Math.exp(-Math.abs(x)); y = x >= 0 ? 1 / (1 + e) : e / (1 + e);",
  tanh: "y = Math.tanh(x);",
  relu: "y = x <= 0 ? 0 : x;",
  square: "y = x * x;",
  sqrt: "y = Math.sqrt(x);",
  reciprocal: "y = 1 / x;",
  abs: "y = Math.abs(x);",
  sign: "y = x !== x ? x : Math.sign(x);",
  step: "y = x > 0 ? 1 : 0;",
};

/** Each binary op as an expression of `x` and `y` (NaN propagates through max and min). */
const BINARY_CODE: Record<BinaryOp, string> = {
  add: "x + y",
  sub: "x - y",
  mul: "x * y",
  div: "x / y",
  max: "(x !== x || y !== y) ? NaN : x > y ? x : y",
  min: "(x !== x || y !== y) ? NaN : x < y ? x : y",
  pow: "Math.pow(x, y)",
  eq: "x === y ? 1 : 0",
  ne: "x !== y ? 1 : 0",
  lt: "x < y ? 1 : 0",
  le: "x <= y ? 1 : 0",
  gt: "x > y ? 1 : 0",
  ge: "x >= y ? 1 : 0",
};

type UnaryLoop = (a: TypedArray, out: TypedArray, n: number) => void;
/**
 * A block of `rows` x `len` outputs, out[io + r len + i] = f(a[ia + r ra + i sa],
 * b[ib + r rb + i sb]), with the inner strides sa, sb in {0, 1} compiled in and the row strides
 * ra, rb given.
 */
type BinaryLoop = (
  a: TypedArray,
  ia: number,
  ra: number,
  b: TypedArray,
  ib: number,
  rb: number,
  out: TypedArray,
  io: number,
  rows: number,
  len: number,
) => void;

const loops = new Map<string, UnaryLoop | BinaryLoop>();

/**
 * A loop compiled from source once per (op, variant, dtype): separate functions per dtype keep
 * V8's type feedback monomorphic, so the element accesses compile to plain loads and stores.
 */
function compiled<F>(key: string, params: string[], body: string): F {
  let f = loops.get(key);
  if (!f) {
    // deno-lint-ignore no-explicit-any
    f = new (Function as any)(...params, body) as UnaryLoop;
    loops.set(key, f);
  }
  return f as F;
}

function unaryLoop(op: UnaryOp, dtype: DType): UnaryLoop {
  return compiled(
    `u:${op}:${dtype}`,
    ["a", "out", "n"],
    `for (let i = 0; i < n; i++) { const x = a[i]; let y; ${UNARY_CODE[op]} out[i] = y; }`,
  );
}

/** sa, sb: whether each operand advances along the inner loop (1) or is broadcast (0). */
function binaryLoop(op: BinaryOp, sa: 0 | 1, sb: 0 | 1, dtype: DType): BinaryLoop {
  const x = sa ? "a[pa + i]" : "xa";
  const y = sb ? "b[pb + i]" : "yb";
  return compiled(
    `b:${op}:${sa}${sb}:${dtype}`,
    ["a", "ia", "ra", "b", "ib", "rb", "out", "io", "rows", "len"],
    `for (let r = 0, o = io; r < rows; r++) {
       const pa = ia + r * ra, pb = ib + r * rb, xa = a[pa], yb = b[pb];
       for (let i = 0; i < len; i++, o++) { const x = ${x}, y = ${y}; out[o] = ${BINARY_CODE[op]}; }
     }`,
  );
}

/**
 * Merges adjacent dimensions that are contiguous in every operand, so that loops run over as
 * few and as long rows as possible. Strides are per operand, aligned with `shape`.
 */
function collapse(shape: readonly number[], strides: number[][]): [number[], number[][]] {
  const keep = shape.map((_, i) => i).filter((i) => shape[i] !== 1);
  if (keep.length === 0) return [[1], strides.map(() => [0])];
  const outShape = [shape[keep[0]]];
  const outStrides = strides.map((s) => [s[keep[0]]]);
  for (let j = 1; j < keep.length; j++) {
    const d = keep[j];
    const last = outShape.length - 1;
    if (strides.every((s, k) => outStrides[k][last] === s[d] * shape[d])) {
      outShape[last] *= shape[d];
      strides.forEach((s, k) => (outStrides[k][last] = s[d]));
    } else {
      outShape.push(shape[d]);
      strides.forEach((s, k) => outStrides[k].push(s[d]));
    }
  }
  return [outShape, outStrides];
}

/**
 * Calls row(offsets, len) for every row of the last (innermost) dimension of `shape`, with the
 * starting offset of each operand; `offsets` is reused between calls.
 */
function forEachRow(
  shape: readonly number[],
  strides: readonly number[][],
  starts: readonly number[],
  row: (offsets: number[], len: number) => void,
): void {
  const rank = shape.length;
  const len = shape[rank - 1];
  const rows = sizeOf(shape) / Math.max(len, 1);
  if (len === 0 || rows === 0) return;
  const offsets = [...starts];
  const idx = new Array<number>(rank).fill(0);
  for (let r = 0; r < rows; r++) {
    row(offsets, len);
    for (let d = rank - 2; d >= 0; d--) {
      idx[d]++;
      for (let k = 0; k < offsets.length; k++) offsets[k] += strides[k][d];
      if (idx[d] < shape[d]) break;
      for (let k = 0; k < offsets.length; k++) offsets[k] -= strides[k][d] * shape[d];
      idx[d] = 0;
    }
  }
}

/** Cached im2col columns of convolution inputs: at most this many bytes in all. */
const COLUMN_BYTES = 512 * 2 ** 20;

/** Pooled host memory: at most this many bytes are kept for reuse. */
const POOL_BYTES = 512 * 2 ** 20;

/**
 * The native CPU implementation of {@link Backend} (float32 and float64): BLAS for matrix
 * products and convolutions, compiled loops for the rest. Create it with
 * {@link NativeBackend.create}, which returns why not when BLAS cannot be loaded.
 *
 * @example
 * ```ts
 * import { NativeBackend } from "./native.ts";
 * const r = NativeBackend.create();
 * if (r.backend) {
 *   const be = r.backend;
 *   const a = be.upload(new Float32Array([1, 2, 3, 4]));
 *   console.log(await be.read(be.matmul(a, a, { m: 2, k: 2, n: 2 }))); // [7, 10, 15, 22]
 * } else console.log(r.reason);
 * ```
 */
export class NativeBackend extends CpuBackend {
  override readonly name = "native" as const;
  override readonly description: string;
  #pool = new Map<string, TypedArray[]>();
  #pooled = 0;

  constructor(readonly blas: Blas) {
    super();
    const threads = blas.threads === undefined ? "" : `, ${blas.threads} threads`;
    const core = blas.core === undefined ? "" : `, ${blas.core} kernels`;
    this.description = `native CPU backend (BLAS ${blas.path}${core}${threads})`;
  }

  /** The backend, or the one-line reason it is not available (no FFI permission, no BLAS). */
  static create(): { backend: NativeBackend; reason?: undefined } | {
    backend: undefined;
    reason: string;
  } {
    const r = loadBlas();
    return r.blas
      ? { backend: new NativeBackend(r.blas) }
      : { backend: undefined, reason: r.reason };
  }

  // --- memory: a size-bucketed pool; kernels fully overwrite what they allocate ---------------

  /** A buffer whose contents are undefined (every caller overwrites all of it). */
  protected override alloc(size: number, dtype: DType): CpuBuffer {
    const list = this.#pool.get(`${dtype}:${size}`);
    const data = list?.pop();
    if (!data) return super.alloc(size, dtype);
    this.#pooled -= data.byteLength;
    this.adjustLive(1);
    return new CpuBuffer(data);
  }

  /** A zero-filled buffer. */
  private zeros(size: number, dtype: DType): CpuBuffer {
    const b = this.alloc(size, dtype);
    b.data.fill(0);
    return b;
  }

  override release(buffer: DeviceBuffer): void {
    const b = this.buf(buffer, "release");
    super.release(b);
    this.#dropColumns(b);
    if (b.size > 0 && this.#pooled + b.data.byteLength <= POOL_BYTES) {
      const key = `${b.dtype}:${b.size}`;
      const list = this.#pool.get(key) ?? [];
      list.push(b.data);
      this.#pool.set(key, list);
      this.#pooled += b.data.byteLength;
    }
  }

  /** Drops the pooled memory (it is otherwise kept for reuse, up to 512 MiB). */
  trim(): void {
    for (const b of [...this.#cols.keys()]) this.#dropColumns(b);
    this.#pool.clear();
    this.#pooled = 0;
  }

  // --- element-wise ---------------------------------------------------------------------------

  override unary(op: UnaryOp, x: DeviceBuffer): DeviceBuffer {
    if (!(op in UNARY_CODE)) throw new SgnError(`unknown unary op '${op}'`);
    const [[a], dtype] = this.args(op, x);
    const out = this.alloc(a.size, dtype);
    unaryLoop(op, dtype)(a.data, out.data, a.size);
    return out;
  }

  override binary(
    op: BinaryOp,
    a: DeviceBuffer,
    aShape: readonly number[],
    b: DeviceBuffer,
    bShape: readonly number[],
  ): DeviceBuffer {
    if (!(op in BINARY_CODE)) throw new SgnError(`unknown binary op '${op}'`);
    const shape = broadcastShapes(aShape, bShape);
    if (!shape) {
      throw new SgnError(
        `${op}: shapes [${aShape.join(",")}] and [${bShape.join(",")}] do not broadcast`,
      );
    }
    const [[x, y], dtype] = this.args(op, a, b);
    this.expectSize(op, "the first operand", x, sizeOf(aShape));
    this.expectSize(op, "the second operand", y, sizeOf(bShape));
    const out = this.alloc(sizeOf(shape), dtype);
    const [cs, [sa, sb, so]] = collapse(shape, [
      broadcastStrides(aShape, shape),
      broadcastStrides(bShape, shape),
      broadcastStrides(shape, shape),
    ]);
    const last = cs.length - 1;
    const loop = binaryLoop(op, sa[last] ? 1 : 0, sb[last] ? 1 : 0, dtype);
    const xd = x.data, yd = y.data, od = out.data;
    if (cs.length === 1) {
      loop(xd, 0, 0, yd, 0, 0, od, 0, 1, cs[0]);
      return out;
    }
    // Blocks of the last two dimensions, one compiled call each.
    const rows = cs[last - 1];
    const [ra, rb] = [sa[last - 1], sb[last - 1]];
    const outer = cs.slice(0, last);
    outer[last - 1] = 1;
    forEachRow(
      [...outer, cs[last]],
      [[...sa.slice(0, last), 0], [...sb.slice(0, last), 0], [...so.slice(0, last), 0]],
      [0, 0, 0],
      (off, len) => loop(xd, off[0], ra, yd, off[1], rb, od, off[2], rows, len),
    );
    return out;
  }

  // --- layout ---------------------------------------------------------------------------------

  override strided(
    x: DeviceBuffer,
    outShape: readonly number[],
    strides: readonly number[],
    offset: number,
  ): DeviceBuffer {
    const [[a], dtype] = this.args("strided", x);
    checkStridedView(a.size, outShape, strides, offset);
    const n = sizeOf(outShape);
    const out = this.alloc(n, dtype);
    if (n === 0) return out;
    const [cs, [si, so]] = collapse(outShape, [[...strides], broadcastStrides(outShape, outShape)]);
    const ad = a.data, od = out.data;
    const s = si[cs.length - 1];
    forEachRow(cs, [si, so], [offset, 0], (off, len) => {
      const i0 = off[0], o0 = off[1];
      if (s === 1) od.set(ad.subarray(i0, i0 + len), o0);
      else if (s === 0) od.fill(ad[i0], o0, o0 + len);
      else for (let i = 0; i < len; i++) od[o0 + i] = ad[i0 + i * s];
    });
    return out;
  }

  // --- reductions -----------------------------------------------------------------------------

  override reduce(
    op: ReduceOp,
    x: DeviceBuffer,
    outer: number,
    axisSize: number,
    inner: number,
  ): DeviceBuffer {
    if (op !== "sum") return super.reduce(op, x, outer, axisSize, inner);
    const [[a], dtype] = this.args(op, x);
    if (a.size !== outer * axisSize * inner) {
      throw new SgnError(
        `${op}: a buffer of ${a.size} elements cannot be viewed as [${outer}, ${axisSize}, ${inner}]`,
      );
    }
    const out = this.alloc(outer * inner, dtype);
    const ad = a.data, od = out.data;
    if (inner === 1) {
      for (let o = 0; o < outer; o++) {
        let s = 0;
        const base = o * axisSize;
        for (let k = 0; k < axisSize; k++) s += ad[base + k];
        od[o] = s;
      }
      return out;
    }
    // Rows of the reduced axis are added in order into a float64 accumulator, reading memory
    // contiguously (the reference reads it with stride `inner`; the sums are the same).
    const acc = new Float64Array(inner);
    for (let o = 0; o < outer; o++) {
      acc.fill(0);
      for (let k = 0; k < axisSize; k++) {
        const base = (o * axisSize + k) * inner;
        for (let i = 0; i < inner; i++) acc[i] += ad[base + i];
      }
      od.set(acc, o * inner);
    }
    return out;
  }

  override softmax(x: DeviceBuffer, rows: number, cols: number, log: boolean): DeviceBuffer {
    const [[a], dtype] = this.args("softmax", x);
    if (a.size !== rows * cols) {
      throw new SgnError(
        `softmax: a buffer of ${a.size} elements cannot be viewed as [${rows}, ${cols}]`,
      );
    }
    const out = this.alloc(a.size, dtype);
    const ad = a.data, od = out.data;
    for (let r = 0; r < rows; r++) {
      const b = r * cols;
      let m = -Infinity;
      for (let k = 0; k < cols; k++) {
        const v = ad[b + k];
        if (v > m || v !== v) m = v;
        if (m !== m) break; // NaN propagates
      }
      let s = 0;
      if (log) {
        for (let k = 0; k < cols; k++) s += Math.exp(ad[b + k] - m);
        const ls = Math.log(s);
        for (let k = 0; k < cols; k++) od[b + k] = ad[b + k] - m - ls;
      } else {
        // exp once per element, kept in float64 until the division.
        const e = this.#rowScratch(cols);
        for (let k = 0; k < cols; k++) s += e[k] = Math.exp(ad[b + k] - m);
        for (let k = 0; k < cols; k++) od[b + k] = e[k] / s;
      }
    }
    return out;
  }

  #scratch = new Float64Array(0);
  #rowScratch(n: number): Float64Array {
    if (this.#scratch.length < n) this.#scratch = new Float64Array(n);
    return this.#scratch;
  }

  // --- linear algebra -------------------------------------------------------------------------

  override matmul(a: DeviceBuffer, b: DeviceBuffer, spec: MatmulSpec): DeviceBuffer {
    const [[x, y], dtype] = this.args("matmul", a, b);
    const { m, k, n, transA, transB, batch, batchA, batchB } = checkMatmulSpec(
      spec,
      x.size,
      y.size,
    );
    const out = this.alloc(batch * m * n, dtype);
    if (k === 0) {
      out.data.fill(0);
      return out;
    }
    const lda = transA ? m : k;
    const ldb = transB ? k : n;
    for (let t = 0; t < batch; t++) {
      const oa = batchA ? t * m * k : 0;
      const ob = batchB ? t * k * n : 0;
      this.blas.gemm(
        transA,
        transB,
        m,
        n,
        k,
        1,
        x.data.subarray(oa, oa + m * k),
        lda,
        y.data.subarray(ob, ob + k * n),
        ldb,
        0,
        out.data.subarray(t * m * n, (t + 1) * m * n),
        n,
      );
    }
    return out;
  }

  // --- convolutions: one GEMM per image over its im2col columns -----------------------------
  // The gather runs through an index map computed once per shape. The columns of an input are
  // kept while it lives (up to COLUMN_BYTES in all): an input is convolved many times with
  // different weights (forward, weight gradient, every J v and J^T u of a CG solve, line-search
  // tries on the same batch), and the gather costs more than the GEMM on the seed's few-channel
  // layers. Without a cached copy, one image's columns at a time stay in the CPU cache.

  #cols = new Map<CpuBuffer, { key: string; col: CpuBuffer }>();
  #colBytes = 0;

  /**
   * The im2col columns of every image of x ([n][ck][p]), cached; or undefined when they do not
   * fit the cache (the caller then gathers image by image).
   */
  #columns(x: CpuBuffer, s: Conv2dSpec, map: Int32Array): TypedArray | undefined {
    const key = `${map.length}:${[
      s.c,
      s.h,
      s.w,
      s.kh,
      s.kw,
      s.strideH,
      s.strideW,
      s.padH,
      s.padW,
    ]}`;
    const hit = this.#cols.get(x);
    if (hit?.key === key) {
      this.#cols.delete(x); // most recently used last
      this.#cols.set(x, hit);
      return hit.col.data;
    }
    const bytes = s.n * map.length * x.data.BYTES_PER_ELEMENT;
    if (bytes > COLUMN_BYTES) return undefined;
    if (hit) this.#dropColumns(x);
    while (this.#colBytes + bytes > COLUMN_BYTES) {
      this.#dropColumns(this.#cols.keys().next().value!);
    }
    const col = this.alloc(s.n * map.length, x.dtype);
    this.adjustLive(-1); // cache memory, not a buffer of the caller's
    const img = s.c * s.h * s.w;
    for (let i = 0; i < s.n; i++) {
      gather(x.data, i * img, map, col.data.subarray(i * map.length, (i + 1) * map.length));
    }
    this.#cols.set(x, { key, col });
    this.#colBytes += bytes;
    return col.data;
  }

  #dropColumns(x: CpuBuffer): void {
    const hit = this.#cols.get(x);
    if (!hit) return;
    this.#cols.delete(x);
    this.#colBytes -= hit.col.data.byteLength;
    this.adjustLive(1);
    this.release(hit.col);
  }

  /**
   * Calls body(i, columns of image i) for every image of x: from the cached columns when x has
   * them, else gathered one image at a time into a scratch buffer.
   */
  #eachImageColumns(
    xb: CpuBuffer,
    s: Conv2dSpec,
    ho: number,
    wo: number,
    body: (i: number, col: TypedArray) => void,
  ): void {
    const map = im2colMap(s, ho, wo);
    const per = map.length, img = s.c * s.h * s.w;
    const cached = this.#columns(xb, s, map);
    const col = cached ? undefined : this.alloc(per, xb.dtype);
    try {
      for (let i = 0; i < s.n; i++) {
        if (cached) body(i, cached.subarray(i * per, (i + 1) * per));
        else {
          gather(xb.data, i * img, map, col!.data);
          body(i, col!.data);
        }
      }
    } finally {
      if (col) this.release(col);
    }
  }

  override conv2d(x: DeviceBuffer, w: DeviceBuffer, s: Conv2dSpec): DeviceBuffer {
    const { ho, wo, a: xb, b: wb, dtype } = this.convOperands("conv2d", x, w, s);
    const ck = s.c * s.kh * s.kw, p = ho * wo;
    const out = this.alloc(s.n * s.f * p, dtype);
    this.#eachImageColumns(xb, s, ho, wo, (i, c) => {
      const y = out.data.subarray(i * s.f * p, (i + 1) * s.f * p);
      this.blas.gemm(false, false, s.f, p, ck, 1, wb.data, ck, c, p, 0, y, p);
    });
    return out;
  }

  override conv2dInputGrad(dy: DeviceBuffer, w: DeviceBuffer, s: Conv2dSpec): DeviceBuffer {
    const { ho, wo, a: db, b: wb, dtype } = this.convOperands("conv2dInputGrad", dy, w, s);
    const ck = s.c * s.kh * s.kw, p = ho * wo, img = s.c * s.h * s.w;
    const map = im2colMap(s, ho, wo);
    const out = this.zeros(s.n * img, dtype);
    const col = this.alloc(ck * p, dtype);
    try {
      for (let i = 0; i < s.n; i++) {
        const g = db.data.subarray(i * s.f * p, (i + 1) * s.f * p);
        this.blas.gemm(true, false, ck, p, s.f, 1, wb.data, ck, g, p, 0, col.data, p);
        scatterAdd(col.data, map, out.data, i * img);
      }
    } finally {
      this.release(col);
    }
    return out;
  }

  override conv2dWeightGrad(x: DeviceBuffer, dy: DeviceBuffer, s: Conv2dSpec): DeviceBuffer {
    const { ho, wo, a: xb, b: db, dtype } = this.convOperands("conv2dWeightGrad", x, dy, s);
    const ck = s.c * s.kh * s.kw, p = ho * wo;
    const out = this.zeros(s.f * ck, dtype);
    this.#eachImageColumns(xb, s, ho, wo, (i, c) => {
      const g = db.data.subarray(i * s.f * p, (i + 1) * s.f * p);
      this.blas.gemm(false, true, s.f, ck, p, 1, g, p, c, p, 1, out.data, ck);
    });
    return out;
  }

  // --- max pooling: the argmax of each window, computed once per input -----------------------

  /** Argmax positions per pooled input buffer (inputs never change while they live). */
  #argmax = new WeakMap<CpuBuffer, { key: string; arg: Int32Array }>();

  protected override argmaxWindows(
    x: CpuBuffer,
    s: Pool2dSpec,
    ho: number,
    wo: number,
  ): Int32Array {
    const key = `${s.n},${s.c},${s.h},${s.w},${s.kh},${s.kw},${s.strideH},${s.strideW}`;
    const hit = this.#argmax.get(x);
    if (hit?.key === key) return hit.arg;
    const arg = new Int32Array(s.n * s.c * ho * wo);
    const xd = x.data;
    // Offsets of a window's elements from its first, in row-major order.
    const offs = new Int32Array(s.kh * s.kw);
    for (let ky = 0, t = 0; ky < s.kh; ky++) {
      for (let kx = 0; kx < s.kw; kx++) offs[t++] = ky * s.w + kx;
    }
    const nt = offs.length, sh = s.strideH, sw = s.strideW;
    let o = 0;
    for (let nc = 0; nc < s.n * s.c; nc++) {
      for (let oy = 0; oy < ho; oy++) {
        const rowBase = (nc * s.h + oy * sh) * s.w;
        for (let ox = 0; ox < wo; ox++, o++) {
          const start = rowBase + ox * sw;
          let best = start;
          let bv = xd[start];
          // The first maximum wins; the first NaN wins over any number and stays.
          for (let t = 1; t < nt; t++) {
            const v = xd[start + offs[t]];
            if (v > bv || (v !== v && bv === bv)) {
              best = start + offs[t];
              bv = v;
            }
          }
          arg[o] = best;
        }
      }
    }
    this.#argmax.set(x, { key, arg });
    return arg;
  }

  override maxPool2dBackward(x: DeviceBuffer, dy: DeviceBuffer, s: Pool2dSpec): DeviceBuffer {
    const { ho, wo, xb, b: db, dtype } = this.poolOperands("maxPool2dBackward", x, dy, s);
    const arg = this.argmaxWindows(xb, s, ho, wo);
    const out = this.zeros(xb.size, dtype);
    const od = out.data, dd = db.data;
    if (s.strideH >= s.kh && s.strideW >= s.kw) {
      // Windows do not overlap: one store each. 0 + dy, as the reference's sum into zeros: a
      // dy of -0 gives +0 there.
      for (let i = 0; i < arg.length; i++) od[arg[i]] = 0 + dd[i];
    } else {
      for (let i = 0; i < arg.length; i++) od[arg[i]] += dd[i];
    }
    return out;
  }
}

const maps = new Map<string, Int32Array>();

/**
 * The im2col index map of one image: map[(c kh + ky) kw + kx][oy wo + ox] is the offset of
 * x[c][iy][ix] in the image, iy = oy sh - ph + ky and ix = ox sw - pw + kx, or -1 in the
 * padding. Cached per shape (a few shapes per network).
 */
function im2colMap(s: Conv2dSpec, ho: number, wo: number): Int32Array {
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
function gather(x: TypedArray, base: number, map: Int32Array, col: TypedArray): void {
  for (let j = 0; j < map.length; j++) {
    const k = map[j];
    col[j] = k < 0 ? 0 : x[base + k];
  }
}

/** dx[base + map[j]] += col[j]: the transpose of {@link gather}. */
function scatterAdd(col: TypedArray, map: Int32Array, dx: TypedArray, base: number): void {
  for (let j = 0; j < map.length; j++) {
    const k = map[j];
    if (k >= 0) dx[base + k] += col[j];
  }
}
