/**
 * The WebGPU backend: the {@link Backend} interface over a {@link GpuRuntime}, float32 only.
 * Kernels live in one file per family (element-wise, layout, reductions, matmul, convolution).
 *
 * @module
 */

import {
  type Backend,
  type BinaryOp,
  type Conv2dSpec,
  type DeviceBuffer,
  type DType,
  type MatmulSpec,
  type Pool2dSpec,
  type ReduceOp,
  type Scalar,
  SgnError,
  type TypedArray,
  type UnaryOp,
} from "../backend.ts";
import { GpuRuntime } from "./runtime.ts";
import * as ew from "./elementwise.ts";
import * as layout from "./layout.ts";
import * as red from "./reduce.ts";
import * as mm from "./matmul.ts";
import * as conv from "./conv.ts";

/** The WebGPU implementation of {@link Backend}. */
export class WebGpuBackend implements Backend {
  readonly name = "webgpu" as const;
  readonly dtypes: readonly DType[] = ["float32"];
  readonly hostReadback = false;

  constructor(readonly rt: GpuRuntime) {}

  /** Finds an adapter and creates the backend, or returns undefined when there is none. */
  static async create(): Promise<WebGpuBackend | undefined> {
    const rt = await GpuRuntime.create();
    return rt && new WebGpuBackend(rt);
  }

  get description(): string {
    return this.rt.description;
  }

  /** Whether the adapter is a software rasterizer (then the native CPU backend is faster). */
  get software(): boolean {
    return this.rt.software;
  }

  private buf(b: DeviceBuffer, op: string) {
    return this.rt.check(b, op);
  }

  private scalar(s: Scalar, op: string): ew.ScalarArg {
    return typeof s === "number" ? { coef: s, buf: this.rt.one } : {
      coef: 1,
      buf: this.rt.check(s, op),
    };
  }

  upload(data: TypedArray): DeviceBuffer {
    if (!(data instanceof Float32Array)) {
      throw new SgnError(
        "the WebGPU backend stores float32 only: pass a Float32Array, or use the CPU backend for float64",
      );
    }
    return this.rt.upload(data);
  }
  fill(size: number, value: number, dtype: DType): DeviceBuffer {
    if (dtype !== "float32") {
      throw new SgnError(`the WebGPU backend stores float32 only, not ${dtype}`);
    }
    return ew.fill(this.rt, size, value);
  }
  read(buffer: DeviceBuffer): Promise<TypedArray> {
    return this.rt.read(buffer);
  }
  release(buffer: DeviceBuffer): void {
    this.rt.release(buffer);
  }
  liveBuffers(): number {
    return this.rt.liveBuffers();
  }
  flush(): void {
    this.rt.flush();
  }

  unary(op: UnaryOp, x: DeviceBuffer): DeviceBuffer {
    return ew.unary(this.rt, op, this.buf(x, op));
  }
  binary(
    op: BinaryOp,
    a: DeviceBuffer,
    aShape: readonly number[],
    b: DeviceBuffer,
    bShape: readonly number[],
  ): DeviceBuffer {
    return ew.binary(this.rt, op, this.buf(a, op), aShape, this.buf(b, op), bShape);
  }
  where(cond: DeviceBuffer, a: DeviceBuffer, b: DeviceBuffer): DeviceBuffer {
    return ew.where(this.rt, this.buf(cond, "where"), this.buf(a, "where"), this.buf(b, "where"));
  }

  strided(
    x: DeviceBuffer,
    outShape: readonly number[],
    strides: readonly number[],
    offset: number,
  ): DeviceBuffer {
    return layout.strided(this.rt, this.buf(x, "strided"), outShape, strides, offset);
  }
  concat(parts: readonly DeviceBuffer[], outer: number, widths: readonly number[]): DeviceBuffer {
    return layout.concat(this.rt, parts.map((p) => this.buf(p, "concat")), outer, widths);
  }

  split(x: DeviceBuffer, sizes: readonly number[]): DeviceBuffer[] {
    return layout.split(this.rt, this.buf(x, "split"), sizes);
  }
  reduce(
    op: ReduceOp,
    x: DeviceBuffer,
    outer: number,
    axisSize: number,
    inner: number,
  ): DeviceBuffer {
    return red.reduce(this.rt, op, this.buf(x, op), outer, axisSize, inner);
  }
  softmax(x: DeviceBuffer, rows: number, cols: number, log: boolean): DeviceBuffer {
    return red.softmax(this.rt, this.buf(x, "softmax"), rows, cols, log);
  }

  matmul(a: DeviceBuffer, b: DeviceBuffer, spec: MatmulSpec): DeviceBuffer {
    return mm.matmul(this.rt, this.buf(a, "matmul"), this.buf(b, "matmul"), spec);
  }
  conv2d(x: DeviceBuffer, w: DeviceBuffer, spec: Conv2dSpec): DeviceBuffer {
    return conv.conv2d(this.rt, this.buf(x, "conv2d"), this.buf(w, "conv2d"), spec);
  }
  conv2dInputGrad(dy: DeviceBuffer, w: DeviceBuffer, spec: Conv2dSpec): DeviceBuffer {
    const op = "conv2dInputGrad";
    return conv.conv2dInputGrad(this.rt, this.buf(dy, op), this.buf(w, op), spec);
  }
  conv2dWeightGrad(x: DeviceBuffer, dy: DeviceBuffer, spec: Conv2dSpec): DeviceBuffer {
    const op = "conv2dWeightGrad";
    return conv.conv2dWeightGrad(this.rt, this.buf(x, op), this.buf(dy, op), spec);
  }
  maxPool2d(x: DeviceBuffer, spec: Pool2dSpec, values?: DeviceBuffer): DeviceBuffer {
    const v = values && this.buf(values, "maxPool2d");
    return conv.maxPool2d(this.rt, this.buf(x, "maxPool2d"), spec, v);
  }
  maxPool2dBackward(x: DeviceBuffer, dy: DeviceBuffer, spec: Pool2dSpec): DeviceBuffer {
    const op = "maxPool2dBackward";
    return conv.maxPool2dBackward(this.rt, this.buf(x, op), this.buf(dy, op), spec);
  }

  dot(x: DeviceBuffer, y: DeviceBuffer): DeviceBuffer {
    return red.dot(this.rt, this.buf(x, "dot"), this.buf(y, "dot"));
  }
  axpy(alpha: Scalar, x: DeviceBuffer, y: DeviceBuffer): DeviceBuffer {
    return ew.axpy(this.rt, this.scalar(alpha, "axpy"), this.buf(x, "axpy"), this.buf(y, "axpy"));
  }
  scale(alpha: Scalar, x: DeviceBuffer): DeviceBuffer {
    return ew.scale(this.rt, this.scalar(alpha, "scale"), this.buf(x, "scale"));
  }
  maxAbs(x: DeviceBuffer): DeviceBuffer {
    return red.maxAbs(this.rt, this.buf(x, "maxAbs"));
  }
  precond(a: DeviceBuffer, b: DeviceBuffer, c: Scalar, p: number): DeviceBuffer {
    const op = "precond";
    return ew.precond(this.rt, this.buf(a, op), this.buf(b, op), this.scalar(c, op), p);
  }
}
