/**
 * The CPU reference backend: the IR kernels through the reference interpreter
 * (`kernel/interpret.ts`) and every routine of {@link Backend} as plain loops over Float32Array or
 * Float64Array. It is the oracle the WebGPU backend is tested against and the fallback where
 * WebGPU is missing, so clarity comes first; loop orders are chosen only to avoid needless
 * slowness (i-k-j matrix products). Arithmetic runs in JavaScript doubles and each result is
 * stored once in the output's precision.
 *
 * @module
 */

import {
  type Backend,
  checkConv2dSpec,
  checkConvWeights,
  checkMatmulSpec,
  checkPool2dSpec,
  conv2dOutSize,
  type Conv2dSpec,
  convWeightGradSize,
  convWeights,
  type DeviceBuffer,
  type Epilogue,
  matmulShape,
  type MatmulSpec,
  type Pool2dSpec,
} from "../kernel/backend.ts";

import type { DType, TypedArray } from "../kernel/shape.ts";

import type { Kernel } from "../kernel/ir.ts";

import { SgnError, showValue } from "../errors.ts";
import { epilogueKernel, load, outputSize } from "../kernel/ir.ts";
import { interpret } from "../kernel/interpret.ts";

/** A host buffer of the CPU backends. */
export class CpuBuffer implements DeviceBuffer {
  /** Whether the buffer went back to its backend (using it then is an error). */
  released = false;
  /** Element type, from the array type (found once: every kernel launch checks it). */
  readonly dtype: DType;
  #data: TypedArray;
  /** Wraps host memory. */
  constructor(data: TypedArray) {
    this.#data = data;
    this.dtype = data instanceof Float64Array ? "float64" : "float32";
  }
  /**
   * The elements. A subclass may derive them anew (cpu/wasm/arena.ts: after its memory grew), so
   * read `data` again after any allocation rather than keep it.
   */
  get data(): TypedArray {
    return this.#data;
  }
  /** Number of elements. */
  get size(): number {
    return this.data.length;
  }
}

/**
 * The IR reduction that gives a product's `sums` row (B's sums over k): the kernel the lazy
 * graph runs for a sum over that axis, so the row has that kernel's numbers on every backend.
 */
export function sumsKernel(spec: Required<MatmulSpec>): Kernel {
  const { k, n, transB, offsetB } = spec;
  const body = load(0, transB ? [k, 1] : [1, n], offsetB);
  return { shape: [n], inputs: 1, body, reduce: { op: "sum", shape: [k] } };
}

/**
 * The IR reduction that gives a weight gradient's `sums` (dy [n, f, ho, wo] summed over n, ho and
 * wo): the kernel the lazy graph runs for that sum, so the values are that kernel's on every
 * backend.
 */
export function convSumsKernel(s: Conv2dSpec, ho: number, wo: number): Kernel {
  const body = load(0, [ho * wo, s.f * ho * wo, wo, 1]);
  return { shape: [s.f], inputs: 1, body, reduce: { op: "sum", shape: [s.n, ho, wo] } };
}

/** max that lets NaN win, so that NaN propagates through reductions and pooling. */
const nanMax = (a: number, b: number) => (Number.isNaN(a) ? a : Number.isNaN(b) || b > a ? b : a);

/**
 * The CPU implementation of {@link Backend} (float32 and float64).
 *
 * @example
 * ```ts
 * import { CpuBackend } from "../backends.ts";
 * const cpu = new CpuBackend();
 * const a = cpu.upload(new Float64Array([1, 2, 3, 4]));
 * const c = cpu.matmul(a, a, { m: 2, k: 2, n: 2 });
 * console.log(await cpu.read(c)); // Float64Array [7, 10, 15, 22]
 * ```
 */
export class CpuBackend implements Backend {
  readonly name: "cpu" | "native" = "cpu";
  readonly description: string = "CPU reference backend (JavaScript loops)";
  /** Reading a buffer costs no device round trip: optimizers use host control flow. */
  readonly hostReadback = true;
  /** Unbounded: the machine's memory is the limit on the CPU. */
  readonly maxBufferBytes: number = Infinity;
  readonly dtypes: readonly DType[] = ["float32", "float64"];
  private live = 0;

  /** Counts buffers that a subclass hands out from its own memory (see liveBuffers). */
  protected adjustLive(delta: number): void {
    this.live += delta;
  }

  /** A new buffer of `size` elements (zeros here; a subclass may hand out recycled memory). */
  protected alloc(size: number, dtype: DType): CpuBuffer {
    this.live++;
    return new CpuBuffer(dtype === "float64" ? new Float64Array(size) : new Float32Array(size));
  }

  /** `b` as this backend's buffer; a clear error for a foreign or released one. */
  protected buf(b: DeviceBuffer, op: string): CpuBuffer {
    if (!(b instanceof CpuBuffer)) {
      throw new SgnError(`${op}: the buffer does not belong to the CPU backend`);
    }
    if (b.released) {
      throw new SgnError(`${op}: the buffer was already released (a disposed tensor was used)`);
    }
    return b;
  }

  /** Checks buffers and their dtypes; returns them and the common dtype. */
  protected args(op: string, ...bs: DeviceBuffer[]): [CpuBuffer[], DType] {
    const out = bs.map((b) => this.buf(b, op));
    const dtype = out[0].dtype;
    for (const b of out) {
      if (b.dtype !== dtype) {
        throw new SgnError(`${op}: operands have different dtypes (${dtype} and ${b.dtype})`);
      }
    }
    return [out, dtype];
  }

  /** A clear error unless `b` has `size` elements. */
  protected expectSize(op: string, what: string, b: CpuBuffer, size: number): void {
    if (b.size !== size) {
      throw new SgnError(`${op}: ${what} has ${b.size} elements, expected ${size}`);
    }
  }

  upload(data: TypedArray): DeviceBuffer {
    const b = this.alloc(data.length, data instanceof Float64Array ? "float64" : "float32");
    b.data.set(data);
    return b;
  }
  read(buffer: DeviceBuffer): Promise<TypedArray> {
    return Promise.resolve(this.buf(buffer, "read").data.slice());
  }
  release(buffer: DeviceBuffer): void {
    this.buf(buffer, "release").released = true;
    this.live--;
  }
  liveBuffers(): number {
    return this.live;
  }
  flush(): void {}

  /** Runs an IR kernel through the reference interpreter. */
  run(kernel: Kernel, inputs: readonly DeviceBuffer[], dtype: DType): DeviceBuffer {
    const bufs = this.kernelInputs(kernel, inputs, dtype);
    const out = this.alloc(outputSize(kernel), dtype);
    interpret(kernel, bufs.map((b) => b.data), out.data);
    return out;
  }

  /** Checks a kernel's input buffers (count, ownership, dtype). */
  protected kernelInputs(
    kernel: Kernel,
    inputs: readonly DeviceBuffer[],
    dtype: DType,
  ): CpuBuffer[] {
    if (inputs.length !== kernel.inputs) {
      throw new SgnError(`run: the kernel reads ${kernel.inputs} buffers, ${inputs.length} given`);
    }
    if (dtype !== "float32" && dtype !== "float64") {
      throw new SgnError(`run: unknown dtype ${showValue(dtype)}`);
    }
    const bufs = inputs.map((b) => this.buf(b, "run"));
    for (const b of bufs) {
      if (b.dtype !== dtype) {
        throw new SgnError(`run: a ${b.dtype} input to a ${dtype} kernel`);
      }
    }
    return bufs;
  }

  /** Applies a routine's epilogue to its raw result (which it releases). */
  protected epilogue(raw: DeviceBuffer, shape: readonly number[], epi?: Epilogue): DeviceBuffer {
    if (!epi) return raw;
    const out = this.run(epilogueKernel(shape, epi.body, epi.inputs.length), [
      ...epi.inputs,
      raw,
    ], raw.dtype);
    this.release(raw);
    return out;
  }

  concat(parts: readonly DeviceBuffer[], outer: number, widths: readonly number[]): DeviceBuffer {
    if (parts.length !== widths.length || parts.length === 0) {
      throw new SgnError(`concat: ${parts.length} parts but ${widths.length} widths`);
    }
    const [bufs, dtype] = this.args("concat", ...parts);
    bufs.forEach((b, i) => this.expectSize("concat", `part ${i}`, b, outer * widths[i]));
    const total = widths.reduce((s, w) => s + w, 0);
    const out = this.alloc(outer * total, dtype);
    let col = 0;
    bufs.forEach((b, i) => {
      const w = widths[i];
      for (let r = 0; r < outer; r++) {
        out.data.set(b.data.subarray(r * w, r * w + w), r * total + col);
      }
      col += w;
    });
    return out;
  }

  split(x: DeviceBuffer, sizes: readonly number[]): DeviceBuffer[] {
    const [[a], dtype] = this.args("split", x);
    const total = sizes.reduce((s, n) => s + n, 0);
    if (total !== a.size) {
      throw new SgnError(`split: sizes add up to ${total}, the buffer has ${a.size}`);
    }
    let offset = 0;
    return sizes.map((n) => {
      const out = this.alloc(n, dtype);
      out.data.set(a.data.subarray(offset, offset + n));
      offset += n;
      return out;
    });
  }

  softmax(x: DeviceBuffer, rows: number, cols: number, log: boolean): DeviceBuffer {
    const [[a], dtype] = this.args("softmax", x);
    if (a.size !== rows * cols) {
      throw new SgnError(
        `softmax: a buffer of ${a.size} elements cannot be viewed as [${rows}, ${cols}]`,
      );
    }
    const out = this.alloc(a.size, dtype);
    for (let r = 0; r < rows; r++) {
      const b = r * cols;
      let m = -Infinity;
      for (let k = 0; k < cols; k++) m = nanMax(m, a.data[b + k]);
      let s = 0;
      for (let k = 0; k < cols; k++) s += Math.exp(a.data[b + k] - m);
      for (let k = 0; k < cols; k++) {
        out.data[b + k] = log ? a.data[b + k] - m - Math.log(s) : Math.exp(a.data[b + k] - m) / s;
      }
    }
    return out;
  }

  matmul(a: DeviceBuffer, b: DeviceBuffer, spec: MatmulSpec, epi?: Epilogue): DeviceBuffer {
    const [[x, y], dtype] = this.args("matmul", a, b);
    const checked = checkMatmulSpec(spec, x.size, y.size);
    const out = this.product(x, y, checked, dtype);
    if (checked.sums) this.sumsRow(y, checked, out);
    return this.epilogue(out, matmulShape(spec), epi);
  }

  /**
   * Writes B's sums over k into the last row of a product with `sums`, by the IR reduction the
   * lazy graph runs for a sum over an axis: the same numbers as that kernel on this backend.
   */
  protected sumsRow(y: CpuBuffer, spec: Required<MatmulSpec>, out: CpuBuffer): void {
    const sums = this.run(sumsKernel(spec), [y], y.dtype) as CpuBuffer;
    out.data.set(sums.data, spec.m * spec.n);
    this.release(sums);
  }

  /**
   * The plain matrix product of checked operands (nested loops, float64 accumulation), in a
   * buffer with room for the sums row when the spec asks for it.
   */
  protected product(
    x: CpuBuffer,
    y: CpuBuffer,
    spec: Required<MatmulSpec>,
    dtype: DType,
  ): CpuBuffer {
    const { m, k, n, transA, transB, batch, batchA, batchB, offsetA, offsetB } = spec;
    const out = this.alloc(batch * m * n + (spec.sums ? n : 0), dtype);
    const acc = new Float64Array(n);
    for (let t = 0; t < batch; t++) {
      const oa = offsetA + (batchA ? t * m * k : 0);
      const ob = offsetB + (batchB ? t * k * n : 0);
      for (let i = 0; i < m; i++) {
        acc.fill(0);
        for (let p = 0; p < k; p++) {
          const av = x.data[oa + (transA ? p * m + i : i * k + p)];
          if (transB) {
            for (let j = 0; j < n; j++) acc[j] += av * y.data[ob + j * k + p];
          } else {
            const row = ob + p * n;
            for (let j = 0; j < n; j++) acc[j] += av * y.data[row + j];
          }
        }
        out.data.set(acc, t * m * n + i * n);
      }
    }
    return out;
  }

  /**
   * Checks the two operands of a convolution kernel against its spec: conv2d takes (x, w),
   * conv2dInputGrad (dy, w), conv2dWeightGrad (x, dy). Returns the output size and the buffers;
   * w's elements start at `ow` (the spec's offsetW).
   */
  protected convOperands(
    op: "conv2d" | "conv2dInputGrad" | "conv2dWeightGrad",
    first: DeviceBuffer,
    second: DeviceBuffer,
    s: Conv2dSpec,
  ): { ho: number; wo: number; a: CpuBuffer; b: CpuBuffer; dtype: DType; ow: number } {
    const [ho, wo] = checkConv2dSpec(op, s);
    const [[a, b], dtype] = this.args(op, first, second);
    const size = {
      x: s.n * s.c * s.h * s.w,
      w: convWeights(s),
      dy: s.n * s.f * ho * wo,
    };
    const [na, nb] = op === "conv2d"
      ? (["x", "w"] as const)
      : op === "conv2dInputGrad"
      ? (["dy", "w"] as const)
      : (["x", "dy"] as const);
    this.expectSize(op, na, a, size[na]);
    if (nb === "w") checkConvWeights(op, s, b.size);
    else this.expectSize(op, nb, b, size[nb]);
    return { ho, wo, a, b, dtype, ow: nb === "w" ? s.offsetW ?? 0 : 0 };
  }

  /** Checks a pooling kernel's input x and its second operand (values or dy). */
  protected poolOperands(
    op: "maxPool2d" | "maxPool2dBackward",
    x: DeviceBuffer,
    second: DeviceBuffer,
    s: Pool2dSpec,
  ): { ho: number; wo: number; xb: CpuBuffer; b: CpuBuffer; dtype: DType } {
    const [ho, wo] = checkPool2dSpec(op, s);
    const [[xb, b], dtype] = this.args(op, x, second);
    this.expectSize(op, "x", xb, s.n * s.c * s.h * s.w);
    if (op === "maxPool2d") this.expectSize(op, "values", b, xb.size);
    else this.expectSize(op, "dy", b, s.n * s.c * ho * wo);
    return { ho, wo, xb, b, dtype };
  }

  /** Calls visit(xIndex, wIndex, yIndex) for every term of the convolution sum. */
  private convTerms(
    s: Conv2dSpec,
    ho: number,
    wo: number,
    visit: (xi: number, wi: number, yi: number) => void,
  ) {
    for (let n = 0; n < s.n; n++) {
      for (let f = 0; f < s.f; f++) {
        for (let oy = 0; oy < ho; oy++) {
          for (let ox = 0; ox < wo; ox++) {
            const yi = ((n * s.f + f) * ho + oy) * wo + ox;
            for (let c = 0; c < s.c; c++) {
              for (let ky = 0; ky < s.kh; ky++) {
                const iy = oy * s.strideH - s.padH + ky;
                if (iy < 0 || iy >= s.h) continue;
                for (let kx = 0; kx < s.kw; kx++) {
                  const ix = ox * s.strideW - s.padW + kx;
                  if (ix < 0 || ix >= s.w) continue;
                  visit(
                    ((n * s.c + c) * s.h + iy) * s.w + ix,
                    ((f * s.c + c) * s.kh + ky) * s.kw + kx,
                    yi,
                  );
                }
              }
            }
          }
        }
      }
    }
  }

  conv2d(x: DeviceBuffer, w: DeviceBuffer, s: Conv2dSpec, epi?: Epilogue): DeviceBuffer {
    const raw = this.convForward(x, w, s);
    return this.epilogue(raw, [s.n, s.f, ...conv2dOutSize(s)], epi);
  }

  /** The plain convolution (direct loops, float64 accumulation). */
  protected convForward(x: DeviceBuffer, w: DeviceBuffer, s: Conv2dSpec): DeviceBuffer {
    const { ho, wo, a: xb, b: wb, dtype, ow } = this.convOperands("conv2d", x, w, s);
    const acc = new Float64Array(s.n * s.f * ho * wo);
    this.convTerms(s, ho, wo, (xi, wi, yi) => (acc[yi] += xb.data[xi] * wb.data[ow + wi]));
    const out = this.alloc(acc.length, dtype);
    out.data.set(acc);
    return out;
  }

  conv2dInputGrad(dy: DeviceBuffer, w: DeviceBuffer, s: Conv2dSpec): DeviceBuffer {
    const { ho, wo, a: db, b: wb, dtype, ow } = this.convOperands("conv2dInputGrad", dy, w, s);
    const acc = new Float64Array(s.n * s.c * s.h * s.w);
    this.convTerms(s, ho, wo, (xi, wi, yi) => (acc[xi] += db.data[yi] * wb.data[ow + wi]));
    const out = this.alloc(acc.length, dtype);
    out.data.set(acc);
    return out;
  }

  conv2dWeightGrad(x: DeviceBuffer, dy: DeviceBuffer, s: Conv2dSpec): DeviceBuffer {
    const { ho, wo, a: xb, b: db, dtype } = this.convOperands("conv2dWeightGrad", x, dy, s);
    const acc = new Float64Array(convWeights(s));
    this.convTerms(s, ho, wo, (xi, wi, yi) => (acc[wi] += xb.data[xi] * db.data[yi]));
    const out = this.alloc(convWeightGradSize(s), dtype);
    out.data.set(acc);
    if (s.sums) this.convSums(db, s, ho, wo, out);
    return out;
  }

  /**
   * Writes dy's sums over images and positions after a weight gradient with `sums`, by the IR
   * reduction the lazy graph would run for them ({@link convSumsKernel}).
   */
  protected convSums(dy: CpuBuffer, s: Conv2dSpec, ho: number, wo: number, out: CpuBuffer): void {
    const sums = this.run(convSumsKernel(s, ho, wo), [dy], dy.dtype) as CpuBuffer;
    out.data.set(sums.data, convWeights(s));
    this.release(sums);
  }

  /** For every output of the pool, the input index of the first maximum of its window. */
  protected argmaxWindows(x: CpuBuffer, s: Pool2dSpec, ho: number, wo: number): Int32Array {
    const arg = new Int32Array(s.n * s.c * ho * wo);
    for (let nc = 0; nc < s.n * s.c; nc++) {
      for (let oy = 0; oy < ho; oy++) {
        for (let ox = 0; ox < wo; ox++) {
          let best = -1;
          let bv = -Infinity;
          for (let ky = 0; ky < s.kh; ky++) {
            for (let kx = 0; kx < s.kw; kx++) {
              const i = (nc * s.h + oy * s.strideH + ky) * s.w + ox * s.strideW + kx;
              const v = x.data[i];
              if (best < 0 || (!Number.isNaN(bv) && (v > bv || Number.isNaN(v)))) {
                best = i;
                bv = v;
              }
            }
          }
          arg[(nc * ho + oy) * wo + ox] = best;
        }
      }
    }
    return arg;
  }

  maxPool2d(x: DeviceBuffer, s: Pool2dSpec, values?: DeviceBuffer): DeviceBuffer {
    const { ho, wo, xb, b: vb, dtype } = this.poolOperands("maxPool2d", x, values ?? x, s);
    const arg = this.argmaxWindows(xb, s, ho, wo);
    const out = this.alloc(arg.length, dtype);
    const od = out.data, vd = vb.data; // after the allocation (see CpuBuffer.data)
    for (let i = 0; i < arg.length; i++) od[i] = vd[arg[i]];
    return out;
  }

  maxPool2dBackward(x: DeviceBuffer, dy: DeviceBuffer, s: Pool2dSpec): DeviceBuffer {
    const { ho, wo, xb, b: db, dtype } = this.poolOperands("maxPool2dBackward", x, dy, s);
    const arg = this.argmaxWindows(xb, s, ho, wo);
    const acc = new Float64Array(xb.size);
    for (let i = 0; i < arg.length; i++) acc[arg[i]] += db.data[i];
    const out = this.alloc(acc.length, dtype);
    out.data.set(acc);
    return out;
  }
}
