/**
 * The native CPU backend: matrix products and convolutions through BLAS (`cpu/blas.ts`, loaded
 * with `Deno.dlopen`), the kernels of the IR in WebAssembly SIMD (`cpu/wasm/codegen.ts`) over one
 * memory arena (`cpu/wasm/arena.ts`) that BLAS reads and writes in place, and a size-bucketed pool
 * that recycles memory. Without WebAssembly SIMD, or with `SGN_WASM=none` or
 * `create({ wasm: false })`, buffers live on the JavaScript heap and the kernels run as compiled
 * JavaScript loops (`cpu/compile.ts`: no per-element function calls); those loops also run the
 * kernels that have no WebAssembly form (see cpu/wasm/codegen.ts) and any kernel with a buffer that
 * did not fit the arena.
 *
 * It inherits the plain TypeScript backend (the oracle it is tested against) and replaces what
 * matters for speed; the rest (concat/split, pooling forward) are tight loops there, and allocate
 * through this backend's pool. Its options are cpu/native_options.ts, its convolution and
 * pooling helpers cpu/native_conv.ts and cpu/native_pool.ts.
 *
 * @module
 */

import {
  type Conv2dSpec,
  convWeightGradSize,
  convWeights,
  type DeviceBuffer,
  type Epilogue,
  type MatmulSpec,
  pool2dOutSize,
  type Pool2dSpec,
} from "../kernel/backend.ts";

import type { DType, TypedArray } from "../kernel/shape.ts";

import { type Kernel, outputSize } from "../kernel/ir.ts";

import { SgnError } from "../errors.ts";
import { CpuBackend, CpuBuffer } from "./oracle.ts";
import { type Blas, gemmProduct, loadBlas, SINGLE_THREAD_WORK } from "./blas.ts";
import { type ConvKind, type Dnnl, loadDnnl } from "./dnnl.ts";
import { Arena, ArenaBuffer } from "./wasm/arena.ts";
import { wasmSoftmax } from "./wasm/softmax.ts";
import { biasOf, gather, im2colMap, scatterAdd } from "./native_conv.ts";
import { gatherArgmax, poolHazard, windowArgmax } from "./native_pool.ts";
import { runNativeKernel } from "./native_kernels.ts";
import { type NativeOptions, wasmChoice } from "./native_options.ts";
import { prepareNativeLaunch } from "./native_replay.ts";
import { prepareLaunchesWith } from "../kernel/record.ts";

export type { NativeOptions };

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
  /** "native": BLAS through FFI and compiled loops. */
  override readonly name = "native" as const;
  /** The BLAS library, its threads and kernels. */
  override readonly description: string;
  #pool = new Map<string, TypedArray[]>();
  #pooled = 0;
  /** The memory arena of the WebAssembly kernels, or undefined (JavaScript loops). */
  readonly arena: Arena | undefined;
  /** How many IR kernels ran in WebAssembly and as JavaScript loops (diagnostics, tests). */
  readonly kernelRuns = { wasm: 0, js: 0 };

  /**
   * oneDNN, for float32 convolutions and max pooling, when it loaded (else undefined, and those
   * run as im2col + BLAS and JavaScript loops).
   */
  readonly dnnl: Dnnl | undefined;

  /** A native backend over a loaded BLAS (see {@link NativeBackend.create}). */
  constructor(readonly blas: Blas, options: NativeOptions = {}) {
    super();
    const threads = blas.threads === undefined
      ? ""
      : `, ${blas.threads} threads from 2^${Math.log2(SINGLE_THREAD_WORK)} multiply-adds up`;
    const core = blas.core === undefined ? "" : `, ${blas.core} kernels`;
    const w = wasmChoice(options.wasm);
    this.arena = w.on
      ? new Arena({
        initialBytes: options.arenaBytes,
        maxBytes: options.arenaMaxBytes,
        poolBytes: POOL_BYTES,
      })
      : undefined;
    const kernels = w.on
      ? "kernels in WebAssembly SIMD over one memory arena"
      : `kernels as JavaScript loops (${w.why})`;
    const d = options.dnnl === false
      ? { dnnl: undefined, reason: "create({ dnnl: false })" }
      : loadDnnl();
    this.dnnl = d.dnnl;
    const conv = d.dnnl
      ? `oneDNN ${d.dnnl.version} convolutions and pooling (float32)`
      : `im2col convolutions (no oneDNN: ${d.reason})`;
    this.description =
      `native CPU backend (BLAS ${blas.path}${core}${threads}; ${kernels}; ${conv})`;
    // Replays run their launches resolved once (cpu/native_replay.ts), over the arena.
    const { arena, kernelRuns: runs } = this;
    const alloc = (size: number, dtype: DType) => this.alloc(size, dtype);
    const release = (b: DeviceBuffer) => this.release(b);
    const parts = arena && { backend: this, arena, blas, runs, alloc, release };
    if (parts) prepareLaunchesWith(this, (l) => prepareNativeLaunch(parts, l));
  }

  /**
   * The backend, or the one-line reason it is not available (no FFI permission, no BLAS).
   * `options` choose the WebAssembly kernels and oneDNN (see {@link NativeOptions}); without
   * oneDNN convolutions run as im2col + BLAS, and the description says why.
   */
  static create(options: NativeOptions = {}): { backend: NativeBackend; reason?: undefined } | {
    backend: undefined;
    reason: string;
  } {
    const r = loadBlas();
    return r.blas
      ? { backend: new NativeBackend(r.blas, options) }
      : { backend: undefined, reason: r.reason };
  }

  // --- memory: a size-bucketed pool; kernels fully overwrite what they allocate ---------------

  /**
   * A buffer whose contents are undefined (every caller overwrites all of it): in the arena
   * when there is one and it has room, else on the JavaScript heap.
   */
  protected override alloc(size: number, dtype: DType): CpuBuffer {
    if (this.arena) {
      const b = this.arena.buffer(size, dtype);
      if (b) {
        this.adjustLive(1);
        return b;
      }
    }
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

  /** Returns a buffer to the pool (and drops what was cached for it). */
  override release(buffer: DeviceBuffer): void {
    const b = this.buf(buffer, "release");
    super.release(b);
    this.#dropColumns(b);
    if (b instanceof ArenaBuffer) b.arena.release(b);
    else if (b.size > 0 && this.#pooled + b.data.byteLength <= POOL_BYTES) {
      const key = `${b.dtype}:${b.size}`;
      const list = this.#pool.get(key) ?? [];
      list.push(b.data);
      this.#pool.set(key, list);
      this.#pooled += b.data.byteLength;
    }
  }

  /**
   * Drops the pooled memory (it is otherwise kept for reuse, up to 512 MiB). In the arena it
   * becomes free space for any size (a WebAssembly memory does not shrink).
   */
  trim(): void {
    for (const b of [...this.#cols.keys()]) this.#dropColumns(b);
    this.#pool.clear();
    this.#pooled = 0;
    this.arena?.trim();
  }

  // --- IR kernels: compiled loops (cpu/compile.ts) ----------------------------------------------

  /** Runs an IR kernel: in WebAssembly or as compiled loops (cpu/native_kernels.ts). */
  override run(kernel: Kernel, inputs: readonly DeviceBuffer[], dtype: DType): DeviceBuffer {
    const bufs = this.kernelInputs(kernel, inputs, dtype);
    const out = this.alloc(outputSize(kernel), dtype);
    if (out.size > 0) runNativeKernel(kernel, bufs, out, dtype, this.arena, this.kernelRuns);
    return out;
  }

  /** Softmax or log-softmax along rows, as tight loops. */
  override softmax(x: DeviceBuffer, rows: number, cols: number, log: boolean): DeviceBuffer {
    const [[a], dtype] = this.args("softmax", x);
    if (a.size !== rows * cols) {
      throw new SgnError(
        `softmax: a buffer of ${a.size} elements cannot be viewed as [${rows}, ${cols}]`,
      );
    }
    const out = this.alloc(a.size, dtype);
    if (dtype === "float32" && a instanceof ArenaBuffer && out instanceof ArenaBuffer) {
      wasmSoftmax(a.arena.memory)(a.ptr, out.ptr, rows, cols, log ? 1 : 0);
      return out;
    }
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

  /** The matrix product through BLAS gemm, one call per batch entry. */
  protected override product(
    x: CpuBuffer,
    y: CpuBuffer,
    spec: Required<MatmulSpec>,
    dtype: DType,
  ): CpuBuffer {
    // With `sums`, one more row (written by the caller).
    const out = this.alloc(spec.batch * spec.m * spec.n + (spec.sums ? spec.n : 0), dtype);
    if (spec.k === 0) out.data.fill(0);
    else gemmProduct(this.blas, spec, x.data, y.data, out.data);
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

  /** Products oneDNN turned down, by kind and spec: the fallback serves them from then on. */
  #dnnlRefused = new Set<string>();

  /**
   * Runs `work` (oneDNN calls for the product named by `key`) unless oneDNN turned that product
   * down before; a throw (e.g. "unimplemented" for this spec) marks it turned down. Undefined
   * when it did not run.
   */
  #viaDnnl<T>(key: string, work: (d: Dnnl) => T): T | undefined {
    const d = this.dnnl;
    if (!d || this.#dnnlRefused.has(key)) return undefined;
    try {
      return work(d);
    } catch {
      this.#dnnlRefused.add(key);
      return undefined;
    }
  }

  /**
   * Runs one convolution product through oneDNN into `out` when it applies (float32, nothing
   * empty, a spec oneDNN accepts) and says whether it did. With `bias` (forward only), adds
   * bias[offset + f] to every output of filter f in the same pass.
   */
  #dnnlConv(
    kind: ConvKind,
    s: Conv2dSpec,
    a: CpuBuffer,
    b: CpuBuffer,
    out: CpuBuffer,
    bias?: { buf: CpuBuffer; offset: number },
  ): boolean {
    if (a.dtype !== "float32" || a.size === 0 || b.size === 0 || out.size === 0) return false;
    // One primitive per spec whatever the weights' offset: oneDNN gets their window.
    const { offsetW = 0, ...spec } = s;
    const key = `${bias ? "forwardBias" : kind}:${JSON.stringify(spec)}`;
    return this.#viaDnnl(key, (d) => {
      const [x, y, o] = [a.data, b.data, out.data] as Float32Array[];
      const wy = kind === "backwardWeights" ? y : y.subarray(offsetW, offsetW + convWeights(spec));
      if (bias) {
        const bd = (bias.buf.data as Float32Array).subarray(bias.offset, bias.offset + s.f);
        d.convBias(spec, x, wy, bd, o);
      } else d.conv(kind, spec, x, wy, o);
      return true;
    }) ?? false;
  }

  /**
   * Convolution with an epilogue: a bias per filter (`acc + bias[f]`, as the networks' conv layers
   * build it) is oneDNN's bias argument, in the same pass; other epilogues run after the product.
   */
  override conv2d(x: DeviceBuffer, w: DeviceBuffer, s: Conv2dSpec, epi?: Epilogue): DeviceBuffer {
    const bias = epi && this.dnnl ? biasOf(epi, s) : undefined;
    if (bias) {
      const { ho, wo, a: xb, b: wb, dtype } = this.convOperands("conv2d", x, w, s);
      const buf = this.buf(bias.buffer, "conv2d");
      if (buf.dtype === dtype && bias.offset + s.f <= buf.size) {
        const out = this.alloc(s.n * s.f * ho * wo, dtype);
        if (this.#dnnlConv("forward", s, xb, wb, out, { buf, offset: bias.offset })) return out;
        this.release(out);
      }
    }
    return super.conv2d(x, w, s, epi);
  }

  /** Convolution: oneDNN, or one GEMM per image over its cached im2col columns. */
  protected override convForward(x: DeviceBuffer, w: DeviceBuffer, s: Conv2dSpec): DeviceBuffer {
    const { ho, wo, a: xb, b: wb, dtype, ow } = this.convOperands("conv2d", x, w, s);
    const ck = s.c * s.kh * s.kw, p = ho * wo;
    const out = this.alloc(s.n * s.f * p, dtype);
    if (this.#dnnlConv("forward", s, xb, wb, out)) return out;
    this.#eachImageColumns(xb, s, ho, wo, (i, c) => {
      const y = out.data.subarray(i * s.f * p, (i + 1) * s.f * p);
      const wd = wb.data.subarray(ow, ow + s.f * ck);
      this.blas.gemm(false, false, s.f, p, ck, 1, wd, ck, c, p, 0, y, p);
    });
    return out;
  }

  /** The input gradient: oneDNN, or GEMMs into columns scattered back (col2im). */
  override conv2dInputGrad(dy: DeviceBuffer, w: DeviceBuffer, s: Conv2dSpec): DeviceBuffer {
    const { ho, wo, a: db, b: wb, dtype, ow } = this.convOperands("conv2dInputGrad", dy, w, s);
    const ck = s.c * s.kh * s.kw, p = ho * wo, img = s.c * s.h * s.w;
    const dnnlOut = this.alloc(s.n * img, dtype);
    if (this.#dnnlConv("backwardData", s, db, wb, dnnlOut)) return dnnlOut;
    this.release(dnnlOut);
    const map = im2colMap(s, ho, wo);
    const out = this.zeros(s.n * img, dtype);
    const col = this.alloc(ck * p, dtype);
    try {
      for (let i = 0; i < s.n; i++) {
        const g = db.data.subarray(i * s.f * p, (i + 1) * s.f * p);
        const wd = wb.data.subarray(ow, ow + s.f * ck);
        this.blas.gemm(true, false, ck, p, s.f, 1, wd, ck, g, p, 0, col.data, p);
        scatterAdd(col.data, map, out.data, i * img);
      }
    } finally {
      this.release(col);
    }
    return out;
  }

  /** The weight gradient: oneDNN, or one GEMM per image over the cached columns. */
  override conv2dWeightGrad(x: DeviceBuffer, dy: DeviceBuffer, s: Conv2dSpec): DeviceBuffer {
    const { ho, wo, a: xb, b: db, dtype } = this.convOperands("conv2dWeightGrad", x, dy, s);
    const ck = s.c * s.kh * s.kw, p = ho * wo;
    const size = convWeightGradSize(s);
    const { sums: _, ...plain } = s;
    const dnnlOut = this.alloc(size, dtype);
    if (this.#dnnlConv("backwardWeights", plain, xb, db, dnnlOut)) {
      if (s.sums) this.convSums(db, s, ho, wo, dnnlOut);
      return dnnlOut;
    }
    this.release(dnnlOut);
    const out = this.zeros(size, dtype);
    this.#eachImageColumns(xb, s, ho, wo, (i, c) => {
      const g = db.data.subarray(i * s.f * p, (i + 1) * s.f * p);
      this.blas.gemm(false, true, s.f, ck, p, 1, g, p, c, p, 1, out.data, ck);
    });
    if (s.sums) this.convSums(db, s, ho, wo, out);
    return out;
  }

  // --- max pooling through oneDNN: its workspace, kept per input, replaces the argmax ----------

  /** oneDNN's max-pooling workspace per pooled input buffer (inputs never change while they live). */
  #workspaces = new WeakMap<CpuBuffer, { key: string; ws: Uint8Array }>();

  /**
   * oneDNN's forward max pooling of x into y (a scratch buffer when y is not given), its
   * workspace kept for the backward pass; or undefined where oneDNN does not apply: not float32,
   * an empty buffer, a spec it refused, or a NaN or -Infinity in x (see {@link poolHazard}: the
   * JavaScript path serves those inputs).
   */
  #dnnlPool(xb: CpuBuffer, s: Pool2dSpec, y?: CpuBuffer): Uint8Array | undefined {
    if (!this.dnnl || xb.dtype !== "float32" || xb.size === 0) return undefined;
    const key = `pool:${JSON.stringify(s)}`;
    const hit = this.#workspaces.get(xb);
    if (hit?.key === key && !y) return hit.ws;
    if (poolHazard(xb.data)) return undefined;
    const [ho, wo] = pool2dOutSize(s);
    const out = y ?? this.alloc(s.n * s.c * ho * wo, xb.dtype);
    try {
      return this.#viaDnnl(key, (d) => {
        const ws = hit?.key === key ? hit.ws : new Uint8Array(d.poolWorkspaceBytes(s));
        d.maxPool(s, xb.data as Float32Array, out.data as Float32Array, ws);
        this.#workspaces.set(xb, { key, ws });
        return ws;
      });
    } finally {
      if (!y) this.release(out);
    }
  }

  /** Max pooling: oneDNN (keeping its workspace), else the cached argmax of each window. */
  override maxPool2d(x: DeviceBuffer, s: Pool2dSpec, values?: DeviceBuffer): DeviceBuffer {
    if (!values && this.dnnl) {
      const { ho, wo, xb, dtype } = this.poolOperands("maxPool2d", x, x, s);
      const out = this.alloc(s.n * s.c * ho * wo, dtype);
      if (this.#dnnlPool(xb, s, out)) return out;
      this.release(out);
    } else if (values && this.dnnl) {
      // The JVP: values (a tangent) at each window's argmax, read from oneDNN's workspace where
      // its format was verified for this spec.
      const { ho, wo, xb, b: vb, dtype } = this.poolOperands("maxPool2d", x, values, s);
      const format = dtype === "float32" && xb.size > 0 ? this.#argmaxFormat(s) : undefined;
      const ws = format && this.#dnnlPool(xb, s);
      if (ws) {
        const out = this.alloc(s.n * s.c * ho * wo, dtype);
        const at = format === "u8" ? ws : new Int32Array(ws.buffer, ws.byteOffset, ws.length / 4);
        gatherArgmax(s, ho, wo, at, vb.data, out.data);
        return out;
      }
    }
    return super.maxPool2d(x, s, values);
  }

  /** oneDNN's verified workspace format for a spec (see Dnnl.argmaxFormat), or undefined. */
  #argmaxFormat(s: Pool2dSpec): "u8" | "s32" | undefined {
    return this.#viaDnnl(`pool:${JSON.stringify(s)}`, (d) => d.argmaxFormat(s));
  }

  // --- max pooling: the argmax of each window, computed once per input -----------------------

  /** Argmax positions per pooled input buffer (inputs never change while they live). */
  #argmax = new WeakMap<CpuBuffer, { key: string; arg: Int32Array }>();

  /** The argmax of each pooling window, cached per input buffer. */
  protected override argmaxWindows(
    x: CpuBuffer,
    s: Pool2dSpec,
    ho: number,
    wo: number,
  ): Int32Array {
    const key = `${s.n},${s.c},${s.h},${s.w},${s.kh},${s.kw},${s.strideH},${s.strideW}`;
    const hit = this.#argmax.get(x);
    if (hit?.key === key) return hit.arg;
    const arg = windowArgmax(x.data, s, ho, wo);
    this.#argmax.set(x, { key, arg });
    return arg;
  }

  /** Scatters dy to the positions of oneDNN's workspace, else to the cached argmax positions. */
  override maxPool2dBackward(x: DeviceBuffer, dy: DeviceBuffer, s: Pool2dSpec): DeviceBuffer {
    const { ho, wo, xb, b: db, dtype } = this.poolOperands("maxPool2dBackward", x, dy, s);
    const ws = this.#dnnlPool(xb, s);
    if (ws && db.size > 0) {
      const out = this.alloc(xb.size, dtype);
      const done = this.#viaDnnl(`poolBackward:${JSON.stringify(s)}`, (d) => {
        d.maxPoolBackward(s, db.data as Float32Array, ws, out.data as Float32Array);
        return true;
      });
      if (done) return out;
      this.release(out); // a backward oneDNN turned down: the argmax scatter below
    }
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
