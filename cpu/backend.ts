/**
 * The CPU reference backend: every kernel of {@link Backend} as plain loops over Float32Array or
 * Float64Array. It is the oracle the WebGPU backend is tested against and the fallback where
 * WebGPU is missing, so clarity comes first; loop orders are chosen only to avoid needless
 * slowness (i-k-j matrix products). Arithmetic runs in JavaScript doubles and each result is
 * stored once in the output's precision.
 *
 * @module
 */

import {
  type Backend,
  type BinaryOp,
  broadcastShapes,
  broadcastStrides,
  checkConv2dSpec,
  checkMatmulSpec,
  checkPool2dSpec,
  checkStridedView,
  type Conv2dSpec,
  type DeviceBuffer,
  type DType,
  type MatmulSpec,
  type Pool2dSpec,
  type ReduceOp,
  type Scalar,
  SgnError,
  sizeOf,
  type TypedArray,
  type UnaryOp,
} from "../backend.ts";

/** A host buffer of the CPU backend. */
export class CpuBuffer implements DeviceBuffer {
  released = false;
  constructor(readonly data: TypedArray) {}
  get size(): number {
    return this.data.length;
  }
  get dtype(): DType {
    return this.data instanceof Float64Array ? "float64" : "float32";
  }
}

function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

const UNARY: Record<UnaryOp, (x: number) => number> = {
  neg: (x) => -x,
  exp: Math.exp,
  log: Math.log,
  sigmoid,
  tanh: Math.tanh,
  relu: (x) => (x <= 0 ? 0 : x), // NaN stays NaN
  square: (x) => x * x,
  sqrt: Math.sqrt,
  reciprocal: (x) => 1 / x,
  abs: Math.abs,
  sign: (x) => (Number.isNaN(x) ? x : Math.sign(x)),
  step: (x) => (x > 0 ? 1 : 0),
};

const BINARY: Record<BinaryOp, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  max: (a, b) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : a > b ? a : b),
  min: (a, b) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : a < b ? a : b),
  pow: Math.pow,
  eq: (a, b) => (a === b ? 1 : 0),
  ne: (a, b) => (a !== b ? 1 : 0),
  lt: (a, b) => (a < b ? 1 : 0),
  le: (a, b) => (a <= b ? 1 : 0),
  gt: (a, b) => (a > b ? 1 : 0),
  ge: (a, b) => (a >= b ? 1 : 0),
};

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
  readonly dtypes: readonly DType[] = ["float32", "float64"];
  private live = 0;

  /** Counts buffers that a subclass hands out from its own memory (see liveBuffers). */
  protected adjustLive(delta: number): void {
    this.live += delta;
  }

  protected alloc(size: number, dtype: DType): CpuBuffer {
    this.live++;
    return new CpuBuffer(dtype === "float64" ? new Float64Array(size) : new Float32Array(size));
  }

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

  protected expectSize(op: string, what: string, b: CpuBuffer, size: number): void {
    if (b.size !== size) {
      throw new SgnError(`${op}: ${what} has ${b.size} elements, expected ${size}`);
    }
  }

  protected scalar(s: Scalar, op: string): number {
    if (typeof s === "number") return s;
    const b = this.buf(s, op);
    if (b.size !== 1) {
      throw new SgnError(`${op}: a scalar buffer must have 1 element, not ${b.size}`);
    }
    return b.data[0];
  }

  upload(data: TypedArray): DeviceBuffer {
    const b = this.alloc(data.length, data instanceof Float64Array ? "float64" : "float32");
    b.data.set(data);
    return b;
  }
  fill(size: number, value: number, dtype: DType): DeviceBuffer {
    if (dtype !== "float32" && dtype !== "float64") {
      throw new SgnError(`fill: unknown dtype ${dtype}`);
    }
    const b = this.alloc(size, dtype);
    b.data.fill(value);
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

  unary(op: UnaryOp, x: DeviceBuffer): DeviceBuffer {
    const f = UNARY[op];
    if (!f) throw new SgnError(`unknown unary op '${op}'`);
    const [[a], dtype] = this.args(op, x);
    const out = this.alloc(a.size, dtype);
    for (let i = 0; i < a.size; i++) out.data[i] = f(a.data[i]);
    return out;
  }

  binary(
    op: BinaryOp,
    a: DeviceBuffer,
    aShape: readonly number[],
    b: DeviceBuffer,
    bShape: readonly number[],
  ): DeviceBuffer {
    const f = BINARY[op];
    if (!f) throw new SgnError(`unknown binary op '${op}'`);
    const shape = broadcastShapes(aShape, bShape);
    if (!shape) {
      throw new SgnError(
        `${op}: shapes [${aShape.join(",")}] and [${bShape.join(",")}] do not broadcast`,
      );
    }
    const [[x, y], dtype] = this.args(op, a, b);
    this.expectSize(op, "the first operand", x, sizeOf(aShape));
    this.expectSize(op, "the second operand", y, sizeOf(bShape));
    const n = sizeOf(shape);
    const out = this.alloc(n, dtype);
    const sa = broadcastStrides(aShape, shape);
    const sb = broadcastStrides(bShape, shape);
    const idx = new Array<number>(shape.length).fill(0);
    let ia = 0;
    let ib = 0;
    for (let i = 0; i < n; i++) {
      out.data[i] = f(x.data[ia], y.data[ib]);
      // Odometer increment of the multi-index, updating both offsets incrementally.
      for (let d = shape.length - 1; d >= 0; d--) {
        idx[d]++;
        ia += sa[d];
        ib += sb[d];
        if (idx[d] < shape[d]) break;
        ia -= sa[d] * shape[d];
        ib -= sb[d] * shape[d];
        idx[d] = 0;
      }
    }
    return out;
  }

  where(cond: DeviceBuffer, a: DeviceBuffer, b: DeviceBuffer): DeviceBuffer {
    const [[c, x, y], dtype] = this.args("where", cond, a, b);
    if (c.size !== x.size || x.size !== y.size) {
      throw new SgnError(`where: sizes ${c.size}, ${x.size} and ${y.size} must be equal`);
    }
    const out = this.alloc(x.size, dtype);
    for (let i = 0; i < x.size; i++) out.data[i] = c.data[i] !== 0 ? x.data[i] : y.data[i];
    return out;
  }

  strided(
    x: DeviceBuffer,
    outShape: readonly number[],
    strides: readonly number[],
    offset: number,
  ): DeviceBuffer {
    const [[a], dtype] = this.args("strided", x);
    checkStridedView(a.size, outShape, strides, offset);
    const n = sizeOf(outShape);
    const out = this.alloc(n, dtype);
    const idx = new Array<number>(outShape.length).fill(0);
    let ix = offset;
    for (let i = 0; i < n; i++) {
      out.data[i] = a.data[ix];
      for (let d = outShape.length - 1; d >= 0; d--) {
        idx[d]++;
        ix += strides[d];
        if (idx[d] < outShape[d]) break;
        ix -= strides[d] * outShape[d];
        idx[d] = 0;
      }
    }
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

  reduce(
    op: ReduceOp,
    x: DeviceBuffer,
    outer: number,
    axisSize: number,
    inner: number,
  ): DeviceBuffer {
    const [[a], dtype] = this.args(op, x);
    if (a.size !== outer * axisSize * inner) {
      throw new SgnError(
        `${op}: a buffer of ${a.size} elements cannot be viewed as [${outer}, ${axisSize}, ${inner}]`,
      );
    }
    if (op !== "sum" && op !== "max" && op !== "argmax") {
      throw new SgnError(`unknown reduction '${op}'`);
    }
    const out = this.alloc(outer * inner, dtype);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        const base = o * axisSize * inner + i;
        let acc = op === "sum" ? 0 : -Infinity;
        let arg = 0;
        for (let k = 0; k < axisSize; k++) {
          const v = a.data[base + k * inner];
          if (op === "sum") acc += v;
          else if (k === 0 || (!Number.isNaN(acc) && (v > acc || Number.isNaN(v)))) {
            acc = v;
            arg = k;
          }
        }
        out.data[o * inner + i] = op === "argmax" ? arg : acc;
      }
    }
    return out;
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

  matmul(a: DeviceBuffer, b: DeviceBuffer, spec: MatmulSpec): DeviceBuffer {
    const [[x, y], dtype] = this.args("matmul", a, b);
    const { m, k, n, transA, transB, batch, batchA, batchB } = checkMatmulSpec(
      spec,
      x.size,
      y.size,
    );
    const out = this.alloc(batch * m * n, dtype);
    const acc = new Float64Array(n);
    for (let t = 0; t < batch; t++) {
      const oa = batchA ? t * m * k : 0;
      const ob = batchB ? t * k * n : 0;
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
   * conv2dInputGrad (dy, w), conv2dWeightGrad (x, dy). Returns the output size and the buffers.
   */
  protected convOperands(
    op: "conv2d" | "conv2dInputGrad" | "conv2dWeightGrad",
    first: DeviceBuffer,
    second: DeviceBuffer,
    s: Conv2dSpec,
  ): { ho: number; wo: number; a: CpuBuffer; b: CpuBuffer; dtype: DType } {
    const [ho, wo] = checkConv2dSpec(op, s);
    const [[a, b], dtype] = this.args(op, first, second);
    const size = {
      x: s.n * s.c * s.h * s.w,
      w: s.f * s.c * s.kh * s.kw,
      dy: s.n * s.f * ho * wo,
    };
    const [na, nb] = op === "conv2d"
      ? (["x", "w"] as const)
      : op === "conv2dInputGrad"
      ? (["dy", "w"] as const)
      : (["x", "dy"] as const);
    this.expectSize(op, na, a, size[na]);
    this.expectSize(op, nb, b, size[nb]);
    return { ho, wo, a, b, dtype };
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

  conv2d(x: DeviceBuffer, w: DeviceBuffer, s: Conv2dSpec): DeviceBuffer {
    const { ho, wo, a: xb, b: wb, dtype } = this.convOperands("conv2d", x, w, s);
    const acc = new Float64Array(s.n * s.f * ho * wo);
    this.convTerms(s, ho, wo, (xi, wi, yi) => (acc[yi] += xb.data[xi] * wb.data[wi]));
    const out = this.alloc(acc.length, dtype);
    out.data.set(acc);
    return out;
  }

  conv2dInputGrad(dy: DeviceBuffer, w: DeviceBuffer, s: Conv2dSpec): DeviceBuffer {
    const { ho, wo, a: db, b: wb, dtype } = this.convOperands("conv2dInputGrad", dy, w, s);
    const acc = new Float64Array(s.n * s.c * s.h * s.w);
    this.convTerms(s, ho, wo, (xi, wi, yi) => (acc[xi] += db.data[yi] * wb.data[wi]));
    const out = this.alloc(acc.length, dtype);
    out.data.set(acc);
    return out;
  }

  conv2dWeightGrad(x: DeviceBuffer, dy: DeviceBuffer, s: Conv2dSpec): DeviceBuffer {
    const { ho, wo, a: xb, b: db, dtype } = this.convOperands("conv2dWeightGrad", x, dy, s);
    const acc = new Float64Array(s.f * s.c * s.kh * s.kw);
    this.convTerms(s, ho, wo, (xi, wi, yi) => (acc[wi] += xb.data[xi] * db.data[yi]));
    const out = this.alloc(acc.length, dtype);
    out.data.set(acc);
    return out;
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
    for (let i = 0; i < arg.length; i++) out.data[i] = vb.data[arg[i]];
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

  dot(x: DeviceBuffer, y: DeviceBuffer): DeviceBuffer {
    const [[a, b], dtype] = this.args("dot", x, y);
    if (a.size !== b.size) throw new SgnError(`dot: sizes ${a.size} and ${b.size} differ`);
    let s = 0;
    for (let i = 0; i < a.size; i++) s += a.data[i] * b.data[i];
    return this.upload(dtype === "float64" ? new Float64Array([s]) : new Float32Array([s]));
  }

  axpy(alpha: Scalar, x: DeviceBuffer, y: DeviceBuffer): DeviceBuffer {
    const al = this.scalar(alpha, "axpy");
    const [[a, b], dtype] = this.args("axpy", x, y);
    if (a.size !== b.size) throw new SgnError(`axpy: sizes ${a.size} and ${b.size} differ`);
    const out = this.alloc(a.size, dtype);
    for (let i = 0; i < a.size; i++) out.data[i] = al * a.data[i] + b.data[i];
    return out;
  }

  scale(alpha: Scalar, x: DeviceBuffer): DeviceBuffer {
    const al = this.scalar(alpha, "scale");
    const [[a], dtype] = this.args("scale", x);
    const out = this.alloc(a.size, dtype);
    for (let i = 0; i < a.size; i++) out.data[i] = al * a.data[i];
    return out;
  }

  maxAbs(x: DeviceBuffer): DeviceBuffer {
    const [[a], dtype] = this.args("maxAbs", x);
    let m = 0;
    for (let i = 0; i < a.size; i++) m = nanMax(m, Math.abs(a.data[i]));
    return this.upload(dtype === "float64" ? new Float64Array([m]) : new Float32Array([m]));
  }

  precond(a: DeviceBuffer, b: DeviceBuffer, c: Scalar, p: number): DeviceBuffer {
    const cv = this.scalar(c, "precond");
    const [[x, y], dtype] = this.args("precond", a, b);
    if (x.size !== y.size) throw new SgnError(`precond: sizes ${x.size} and ${y.size} differ`);
    const out = this.alloc(x.size, dtype);
    for (let i = 0; i < x.size; i++) {
      out.data[i] = x.data[i] / Math.pow(y.data[i] * y.data[i] + cv, p);
    }
    return out;
  }
}
