/**
 * The WebGPU backend: the {@link Backend} interface over a {@link GpuRuntime}, float32 only.
 * IR kernels (element-wise maps, views, reductions) come from one code generator
 * (`codegen.ts`); the routines live in one file per family (matmul, convolution, pooling,
 * softmax, layout), their kernels on one head (`routine.ts`).
 *
 * @module
 */

import {
  type Backend,
  type Conv2dSpec,
  type DeviceBuffer,
  type Epilogue,
  isPrologue,
  type MatmulCall,
  type MatmulSpec,
  type Pool2dSpec,
  type Prologue,
} from "../kernel/backend.ts";

import type { DType, TypedArray } from "../kernel/shape.ts";

import type { Kernel } from "../kernel/ir.ts";

import { SgnError } from "../errors.ts";
import { type GpuBuffer, GpuRuntime } from "./runtime.ts";
import { dispatchKernel, wgslKernel } from "./codegen.ts";
import { splitReduction } from "../kernel/ir.ts";

/** Workgroups a reduction should have at least before it is split in two passes. */
const SPLIT_GROUPS = 256;
import * as layout from "./layout.ts";
import { softmax } from "./softmax.ts";
import * as mm from "./matmul.ts";
import * as conv from "./conv.ts";
import * as pool from "./pool.ts";

/**
 * The scheduling switches of a {@link WebGpuBackend}, which its `hardwareSchedule` sets together.
 *
 * @example
 * ```ts
 * import { WebGpuBackend } from "./webgpu.ts";
 * const gpu = await WebGpuBackend.create();
 * if (gpu) {
 *   const was = gpu.schedule;
 *   gpu.hardwareSchedule = true; // count what a hardware GPU runs
 *   gpu.schedule = was;
 * }
 * ```
 */
export interface Schedule {
  /** {@link WebGpuBackend.groupProducts}. */
  readonly groupProducts: boolean;
  /** {@link WebGpuBackend.mapsInLoads}. */
  readonly mapsInLoads: boolean;
  /** {@link WebGpuBackend.poolArgmaxOnce}. */
  readonly poolArgmaxOnce: boolean;
  /** {@link WebGpuBackend.convBiasFold}. */
  readonly convBiasFold: boolean;
}

/**
 * The switches as a hardware GPU runs them; a software adapter's default has each the other way.
 * The one list of them: {@link WebGpuBackend.hardwareSchedule} and `schedule` go through it.
 */
const HARDWARE: Schedule = {
  groupProducts: true,
  mapsInLoads: true,
  poolArgmaxOnce: false,
  convBiasFold: true,
};
const SWITCHES = Object.keys(HARDWARE) as (keyof Schedule)[];

/** The WebGPU implementation of {@link Backend}. */
export class WebGpuBackend implements Backend {
  readonly name = "webgpu" as const;
  readonly dtypes: readonly DType[] = ["float32"];
  readonly hostReadback = false;
  poolInIr = true;

  /**
   * Independent products in as few dispatches as the device allows ({@link Backend.matmuls});
   * undefined while {@link WebGpuBackend.groupProducts} is off.
   */
  matmuls?: (items: readonly MatmulCall[]) => DeviceBuffer[];

  /** The backend over a runtime (most code calls {@link WebGpuBackend.create}). */
  constructor(readonly rt: GpuRuntime) {
    this.hardwareSchedule = !rt.software;
  }

  /**
   * Whether work is scheduled as for a hardware GPU, which pays per dispatch: products together
   * ({@link WebGpuBackend.groupProducts}) computing the maps only they read in their loads
   * ({@link WebGpuBackend.mapsInLoads}), the max-pool backward in one kernel where the windows do
   * not overlap ({@link WebGpuBackend.poolArgmaxOnce} off), and a conv layer's bias gradient in
   * its weight gradient's kernel ({@link WebGpuBackend.convBiasFold}). The default follows the
   * adapter: off on a software one, where each of the four measured slower, or at best level
   * (bench/README.md).
   * The dispatch counts turn it on to count what a hardware GPU runs.
   */
  get hardwareSchedule(): boolean {
    return SWITCHES.every((k) => this[k] === HARDWARE[k]);
  }
  set hardwareSchedule(on: boolean) {
    const s = Object.fromEntries(SWITCHES.map((k) => [k, on === HARDWARE[k]]));
    this.schedule = s as unknown as Schedule;
  }

  /**
   * The switches {@link WebGpuBackend.hardwareSchedule} sets, as they are now: a value to put
   * back later (`const was = gpu.schedule; ...; gpu.schedule = was`).
   */
  get schedule(): Schedule {
    return Object.fromEntries(SWITCHES.map((k) => [k, this[k]])) as unknown as Schedule;
  }
  set schedule(s: Schedule) {
    for (const k of SWITCHES) this[k] = s[k];
  }

  /**
   * {@link Backend.poolArgmaxOnce}: off with {@link WebGpuBackend.hardwareSchedule} (a dispatch
   * fewer), on otherwise. On llvmpipe, where arithmetic is what costs, the backward of W3's
   * second pool (2 x 2 over 64 maps of 13 x 13, batch 128) took 45.5 ms with each argmax found at
   * every position of its cell and 32.1 ms with it found once, its first pool (30 x 30) 88.3 and
   * 58.5 ms (bench/README.md).
   */
  poolArgmaxOnce = false;

  /**
   * {@link Backend.convBiasFold}: on with {@link WebGpuBackend.hardwareSchedule} (a dispatch fewer
   * per conv layer in each gradient and G v). On lavapipe the weight-gradient kernel with the bias
   * accumulators measured slower on one machine (W4 loss + gradient 149 -> 169 ms) and level on
   * another (bench/README.md, issue 23's ninth pass), so software adapters keep it off.
   */
  convBiasFold = false;

  /**
   * Whether products whose operands are ready at once run in one dispatch (the lazy graph and
   * replays hand them to {@link WebGpuBackend.matmuls}). On by default on hardware GPUs, which
   * pay per dispatch; off on software adapters, where the grouped kernel measured slower
   * (llvmpipe: a cached W1 G v 10-12 -> 12-16 ms; bench/README.md), as splitting K is. Set with
   * {@link WebGpuBackend.hardwareSchedule}.
   */
  get groupProducts(): boolean {
    return this.matmuls !== undefined;
  }
  set groupProducts(on: boolean) {
    this.matmuls = on ? (items) => this.productsTogether(items) : undefined;
  }

  /**
   * Whether products running together ({@link WebGpuBackend.groupProducts}) compute in their
   * loads the element-wise maps that only they read ({@link Backend.prologues}): a dispatch and
   * a round trip through memory fewer per map, each element computed by every invocation that
   * loads it. Set with {@link WebGpuBackend.hardwareSchedule}. On llvmpipe, where every load is
   * a loop over the lanes, a W1 SGN step with products together measured slower with it (167 ->
   * 176 ms, bench/README.md); hardware GPUs, not measured here, pay per dispatch.
   */
  mapsInLoads = false;

  /** {@link Backend.prologues}: with products together and {@link WebGpuBackend.mapsInLoads}. */
  get prologues(): boolean {
    return this.matmuls !== undefined && this.mapsInLoads;
  }

  /** Finds an adapter and creates the backend, or returns undefined when there is none. */
  static async create(): Promise<WebGpuBackend | undefined> {
    const rt = await GpuRuntime.create();
    return rt && new WebGpuBackend(rt);
  }

  /** The device's storage-buffer binding limit, in bytes. */
  get maxBufferBytes(): number {
    return this.rt.device.limits.maxStorageBufferBindingSize;
  }

  /** The adapter's description. */
  get description(): string {
    return this.rt.description;
  }

  /** Whether the adapter is a software rasterizer (then the native CPU backend is faster). */
  get software(): boolean {
    return this.rt.software;
  }

  #buf(b: DeviceBuffer, op: string): GpuBuffer {
    return this.rt.check(b, op);
  }

  upload(data: TypedArray): DeviceBuffer {
    if (!(data instanceof Float32Array)) {
      throw new SgnError(
        "the WebGPU backend stores float32 only: pass a Float32Array, or use the CPU backend for float64",
      );
    }
    return this.rt.upload(data);
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

  run(kernel: Kernel, inputs: readonly DeviceBuffer[], dtype: DType): DeviceBuffer {
    if (dtype !== "float32") {
      throw new SgnError(`the WebGPU backend stores float32 only, not ${dtype}`);
    }
    if (inputs.length !== kernel.inputs) {
      throw new SgnError(`run: the kernel reads ${kernel.inputs} buffers, ${inputs.length} given`);
    }
    const bufs = inputs.map((b) => this.#buf(b, "run"));
    const compiled = wgslKernel(kernel);
    const { plan } = compiled;
    // Few outputs over a long reduction: a workgroup per output leaves the device idle, so the
    // reduction runs in two passes (partials over chunks, then their combination). On hardware
    // GPUs only: llvmpipe's few threads are busy enough, and there it measured slower (an extra
    // dispatch and a partial buffer; bench/README.md).
    const redSize = kernel.reduce?.shape.reduce((a, b) => a * b, 1) ?? 0;
    const parts = Math.min(64, Math.floor(SPLIT_GROUPS / Math.max(1, plan.count)));
    const split = !this.rt.software && plan.layout === "group" && redSize >= 16384 && parts >= 2
      ? splitReduction(kernel, parts)
      : undefined;
    if (!split) return dispatchKernel(this.rt, kernel, bufs, compiled);
    const partial = dispatchKernel(this.rt, split[0], bufs);
    const out = dispatchKernel(this.rt, split[1], [...bufs, partial]);
    this.rt.release(partial);
    return out;
  }

  concat(parts: readonly DeviceBuffer[], outer: number, widths: readonly number[]): DeviceBuffer {
    return layout.concat(this.rt, parts.map((p) => this.#buf(p, "concat")), outer, widths);
  }

  split(x: DeviceBuffer, sizes: readonly number[]): DeviceBuffer[] {
    return layout.split(this.rt, this.#buf(x, "split"), sizes);
  }
  softmax(x: DeviceBuffer, rows: number, cols: number, log: boolean): DeviceBuffer {
    return softmax(this.rt, this.#buf(x, "softmax"), rows, cols, log);
  }

  /** An epilogue over this runtime's buffers. */
  #epi(epilogue: Epilogue | undefined, op: string) {
    return epilogue && {
      body: epilogue.body,
      inputs: epilogue.inputs.map((x) => this.#buf(x, op)),
    };
  }

  matmul(a: DeviceBuffer, b: DeviceBuffer, spec: MatmulSpec, epilogue?: Epilogue): DeviceBuffer {
    const epi = this.#epi(epilogue, "matmul");
    return mm.matmul(this.rt, this.#buf(a, "matmul"), this.#buf(b, "matmul"), spec, undefined, epi);
  }
  /** Independent products, as few dispatches as the device allows (`wgsl/matmul.ts`). */
  productsTogether(items: readonly MatmulCall[]): DeviceBuffer[] {
    return mm.matmulGroup(
      this.rt,
      items.map((x) => {
        const epilogue = this.#epi(x.epilogue, "matmul");
        const operand = (y: DeviceBuffer | Prologue) =>
          isPrologue(y)
            ? { shape: y.shape, body: y.body, inputs: y.inputs.map((z) => this.#buf(z, "matmul")) }
            : this.#buf(y, "matmul");
        return {
          a: operand(x.a),
          b: operand(x.b),
          spec: x.spec,
          ...(epilogue ? { epilogue } : {}),
        };
      }),
    );
  }
  conv2d(x: DeviceBuffer, w: DeviceBuffer, spec: Conv2dSpec, epilogue?: Epilogue): DeviceBuffer {
    const epi = this.#epi(epilogue, "conv2d");
    return conv.conv2d(this.rt, this.#buf(x, "conv2d"), this.#buf(w, "conv2d"), spec, epi);
  }
  conv2dInputGrad(dy: DeviceBuffer, w: DeviceBuffer, spec: Conv2dSpec): DeviceBuffer {
    const op = "conv2dInputGrad";
    return conv.conv2dInputGrad(this.rt, this.#buf(dy, op), this.#buf(w, op), spec);
  }
  conv2dWeightGrad(x: DeviceBuffer, dy: DeviceBuffer, spec: Conv2dSpec): DeviceBuffer {
    const op = "conv2dWeightGrad";
    return conv.conv2dWeightGrad(this.rt, this.#buf(x, op), this.#buf(dy, op), spec);
  }
  maxPool2d(x: DeviceBuffer, spec: Pool2dSpec, values?: DeviceBuffer): DeviceBuffer {
    const v = values && this.#buf(values, "maxPool2d");
    return pool.maxPool2d(this.rt, this.#buf(x, "maxPool2d"), spec, v);
  }
  maxPool2dBackward(x: DeviceBuffer, dy: DeviceBuffer, spec: Pool2dSpec): DeviceBuffer {
    const op = "maxPool2dBackward";
    const [xb, db] = [this.#buf(x, op), this.#buf(dy, op)];
    return pool.maxPool2dBackward(this.rt, xb, db, spec, this.poolArgmaxOnce);
  }
}
