/**
 * The backend interface: a connector to one implementation of tensor kernels (WebGPU in `wgsl/`,
 * plain loops in `cpu/`). A backend owns device memory and runs kernels on it; it knows shapes and
 * element types but nothing about gradients, tracing or models. Every kernel takes its inputs as
 * buffers plus the shapes it needs and returns a freshly allocated output buffer that the caller
 * owns and must `release`. Kernels never mutate their inputs.
 *
 * Both backends pass the same conformance suite (`tests/conformance_test.ts`); the CPU backend is
 * the oracle for the WebGPU one.
 *
 * @module
 */

import { SgnError } from "../errors.ts";
import type { DType, TypedArray } from "./shape.ts";
import type { Expr, Kernel } from "./ir.ts";

/** Opaque handle to `size` elements of `dtype` in a backend's memory. */
export interface DeviceBuffer {
  /** Number of elements. */
  readonly size: number;
  /** Element type. */
  readonly dtype: DType;
}

/**
 * An element-wise map a routine applies to its result before storing it: `body` is an IR
 * expression over the output index in which `acc` is the routine's value there, reading
 * `inputs` (loads numbered 0..n-1) through views of the output shape.
 */
export interface Epilogue {
  /** The expression; `acc` is the routine's value at the output index. */
  body: Expr;
  /** The buffers the expression loads, numbered by position. */
  inputs: DeviceBuffer[];
}

/**
 * An operand computed as a product reads it, never stored: its element i (in the order the
 * operand's buffer would hold it) is `body` at the flat index i of `shape`, an IR expression
 * reading `inputs` (loads numbered 0..n-1; no `acc`). The lazy graph hands one to
 * {@link Backend.matmuls} in place of an element-wise map that only products read (the softmax
 * cross-entropy's gradient, read by a dense layer's two backward products), on backends that
 * take them ({@link Backend.prologues}).
 */
export interface Prologue {
  /** The operand's shape, over which `body` is evaluated; its size is the operand's. */
  shape: readonly number[];
  /** The expression at each index. */
  body: Expr;
  /** The buffers the expression loads, numbered by position. */
  inputs: DeviceBuffer[];
}

/**
 * Whether a product's operand is computed as it is read (a {@link Prologue}).
 *
 * @example
 * ```ts
 * import { isPrologue } from "./backend.ts";
 * import { load } from "./ir.ts";
 * import { CpuBackend } from "../cpu/oracle.ts";
 * const be = new CpuBackend();
 * const x = be.upload(new Float64Array([1, 2, 3, 4]));
 * console.log(isPrologue(x), isPrologue({ shape: [4], body: load(0, [1]), inputs: [x] })); // false true
 * ```
 */
export function isPrologue(x: DeviceBuffer | Prologue): x is Prologue {
  return "body" in x;
}

/** One product of {@link Backend.matmuls}: `matmul`'s arguments. */
export interface MatmulCall {
  /** The first operand (a prologue only on backends with {@link Backend.prologues}). */
  a: DeviceBuffer | Prologue;
  /** The second operand (likewise). */
  b: DeviceBuffer | Prologue;
  /** The product's sizes, layouts and offsets. */
  spec: MatmulSpec;
  /** Applied to each element before it is stored. */
  epilogue?: Epilogue;
}

/**
 * Matrix product options. Logical operands are A: [batch?, m, k] and B: [batch?, k, n]; with
 * `transA` the buffer of A holds [batch?, k, m] (and likewise `transB`: [batch?, n, k]). With
 * `batch` > 1, an operand whose `batchA` / `batchB` flag is false is shared by every batch entry.
 */
export interface MatmulSpec {
  /** Rows of A and of the output. */
  m: number;
  /** Columns of A, rows of B: the summed dimension. */
  k: number;
  /** Columns of B and of the output. */
  n: number;
  /** A's buffer holds A transposed, [batch?, k, m]. */
  transA?: boolean;
  /** B's buffer holds B transposed, [batch?, n, k]. */
  transB?: boolean;
  /** Number of products (default 1). */
  batch?: number;
  /** With batch > 1: A has one matrix per entry (default true), else one shared. */
  batchA?: boolean;
  /** With batch > 1: B has one matrix per entry (default true), else one shared. */
  batchB?: boolean;
  /** Where A starts in its buffer, in elements (default 0): a view into a larger buffer. */
  offsetA?: number;
  /** Where B starts in its buffer, in elements (default 0). */
  offsetB?: number;
  /**
   * One more output row, row m: the sums of B over k (the product with a row of ones appended
   * to A). For a layer's weight gradient x^T dy that row is its bias gradient, and [dW; db] is
   * how the parameters lie in a flat vector. Batch 1 only.
   */
  sums?: boolean;
}

/**
 * 2-D convolution (cross-correlation, as in every deep learning library) on NCHW input [n, c, h, w]
 * with weights [f, c, kh, kw], giving [n, f, ho, wo], ho = floor((h + 2 ph - kh) / sh) + 1.
 */
export interface Conv2dSpec {
  /** Images in the batch. */
  n: number;
  /** Input channels. */
  c: number;
  /** Input height. */
  h: number;
  /** Input width. */
  w: number;
  /** Filters (output channels). */
  f: number;
  /** Kernel height. */
  kh: number;
  /** Kernel width. */
  kw: number;
  /** Vertical stride. */
  strideH: number;
  /** Horizontal stride. */
  strideW: number;
  /** Zero padding above and below. */
  padH: number;
  /** Zero padding left and right. */
  padW: number;
  /**
   * Where the weights start in their buffer, in elements (default 0): a view into a larger
   * buffer, such as a layer's weights in a flat parameter vector.
   */
  offsetW?: number;
  /**
   * The weight gradient only: f more values after the weights' gradient, dy summed over the
   * images and positions (the bias gradient, after the weights as in a flat parameter vector).
   */
  sums?: boolean;
}

/**
 * 2-D max pooling on NCHW input [n, c, h, w] with windows of kh x kw and strides (sh, sw), no
 * padding; windows that would cross the border are dropped: ho = floor((h - kh) / sh) + 1.
 */
export interface Pool2dSpec {
  /** Images in the batch. */
  n: number;
  /** Channels. */
  c: number;
  /** Input height. */
  h: number;
  /** Input width. */
  w: number;
  /** Window height. */
  kh: number;
  /** Window width. */
  kw: number;
  /** Vertical stride. */
  strideH: number;
  /** Horizontal stride. */
  strideW: number;
}

/** The output height and width of a convolution. */
export function conv2dOutSize(s: Conv2dSpec): [number, number] {
  return [
    Math.floor((s.h + 2 * s.padH - s.kh) / s.strideH) + 1,
    Math.floor((s.w + 2 * s.padW - s.kw) / s.strideW) + 1,
  ];
}

/** The output height and width of a max pool. */
export function pool2dOutSize(s: Pool2dSpec): [number, number] {
  return [
    Math.floor((s.h - s.kh) / s.strideH) + 1,
    Math.floor((s.w - s.kw) / s.strideW) + 1,
  ];
}

/** A tensor kernel implementation. See the module documentation. */
export interface Backend {
  /**
   * The backend's name in the registry above (autodiff/device.ts `BACKENDS`): "webgpu", "native"
   * (BLAS through FFI), "cpu" (the plain TypeScript oracle), ...; the value of `SGN_BACKEND`.
   */
  readonly name: string;
  /** Human-readable description of the device (the adapter for WebGPU). */
  readonly description: string;
  /** Element types this backend supports. */
  readonly dtypes: readonly DType[];
  /**
   * True when `read` costs no device round trip (the CPU backends): optimizers then decide on
   * the host, with no speculative work; false on WebGPU, where a readback is the costliest
   * operation there is.
   */
  readonly hostReadback: boolean;
  /**
   * True when max pooling should be kernels of the IR in the graph (kernel/pool.ts) rather than
   * routines: the forward pass, its JVP and the backward.
   * WebGPU, which lowers the routines as those kernels anyway: then element-wise work on their
   * operands fuses into their loads and their consumers (the relu after a pool) into their
   * epilogues. The CPU backends run their own loops (or oneDNN) faster.
   */
  readonly poolInIr?: boolean;
  /**
   * With {@link Backend.poolInIr}: whether the max-pool backward finds each window's argmax once,
   * in a kernel of its own, even where the windows do not overlap, rather than at every position
   * of the window's cell within the one gather kernel (kernel/pool.ts `poolBackwardKernels`): a
   * dispatch more, less arithmetic.
   */
  readonly poolArgmaxOnce?: boolean;
  /**
   * Whether the graph computes a conv layer's bias gradient in its weight gradient's routine
   * (`Conv2dSpec.sums`, folded by kernel/matmul.ts) rather than as a reduction of its own: a
   * dispatch less per conv layer, a few more registers in the routine. WebGPU's hardware
   * schedule; every backend honours `sums` whether or not its graph folds.
   */
  readonly convBiasFold?: boolean;
  /**
   * The largest buffer the device holds, in bytes: on WebGPU the device's storage-buffer binding
   * limit; on the CPU backends unbounded (the machine's memory is the limit there).
   */
  readonly maxBufferBytes: number;

  // --- memory -------------------------------------------------------------------------------
  /** Copies host data into a new buffer. */
  upload(data: TypedArray): DeviceBuffer;
  /** Reads a buffer back to the host; on WebGPU this is the only point that waits for the device. */
  read(buffer: DeviceBuffer): Promise<TypedArray>;
  /** Returns a buffer's memory to the backend. Using a released buffer afterwards is an error. */
  release(buffer: DeviceBuffer): void;
  /** How many buffers are allocated and not yet released (for leak tests). */
  liveBuffers(): number;
  /** Submits queued work (WebGPU) without waiting; a no-op on the CPU. */
  flush(): void;

  // --- kernels of the IR ----------------------------------------------------------------------
  /**
   * Runs one kernel of the IR (element-wise maps, views, reductions; see `kernel/ir.ts`) on its
   * input buffers, giving a new buffer of the kernel's output size.
   */
  run(kernel: Kernel, inputs: readonly DeviceBuffer[], dtype: DType): DeviceBuffer;

  // --- layout -------------------------------------------------------------------------------
  /**
   * Concatenation: each part i is viewed as [outer, widths[i]] and the parts are placed side by
   * side, giving [outer, sum(widths)].
   */
  concat(parts: readonly DeviceBuffer[], outer: number, widths: readonly number[]): DeviceBuffer;
  /** The inverse of concat with outer = 1: consecutive pieces of `sizes` elements of x. */
  split(x: DeviceBuffer, sizes: readonly number[]): DeviceBuffer[];

  // --- routines: what is not one expression ---------------------------------------------------
  /** Softmax (or log-softmax) of x viewed as [rows, cols], along the last axis. */
  softmax(x: DeviceBuffer, rows: number, cols: number, log: boolean): DeviceBuffer;

  /**
   * Matrix product: [batch, m, n] (batch dimension omitted when it is 1), with an optional
   * epilogue applied to each element before it is stored.
   */
  matmul(a: DeviceBuffer, b: DeviceBuffer, spec: MatmulSpec, epilogue?: Epilogue): DeviceBuffer;
  /** Convolution forward: x [n, c, h, w], w [f, c, kh, kw] -> [n, f, ho, wo]. */
  conv2d(x: DeviceBuffer, w: DeviceBuffer, spec: Conv2dSpec, epilogue?: Epilogue): DeviceBuffer;
  /** The input-gradient product (transpose of conv2d in x): dy [n, f, ho, wo] -> [n, c, h, w]. */
  conv2dInputGrad(dy: DeviceBuffer, w: DeviceBuffer, spec: Conv2dSpec): DeviceBuffer;
  /** The weight-gradient product (transpose of conv2d in w): x, dy -> [f, c, kh, kw]. */
  conv2dWeightGrad(x: DeviceBuffer, dy: DeviceBuffer, spec: Conv2dSpec): DeviceBuffer;
  /**
   * Max pooling: for each window, the element of `values` (default: x itself) at the position of
   * the first maximum of x in that window. With `values` = a tangent this is the pool's JVP.
   */
  maxPool2d(x: DeviceBuffer, spec: Pool2dSpec, values?: DeviceBuffer): DeviceBuffer;
  /** The transpose of maxPool2d in `values`: scatters dy [n, c, ho, wo] to the argmax positions. */
  maxPool2dBackward(x: DeviceBuffer, dy: DeviceBuffer, spec: Pool2dSpec): DeviceBuffer;

  /**
   * Optional: independent products, each output what `matmul` gives for its item, run together
   * where the device gains by it (WebGPU: several products in one dispatch). The lazy graph
   * hands a backend that has it the products whose operands are ready at once (a dense layer's
   * weight and input gradients); a backend without it runs each through `matmul`.
   */
  matmuls?(items: readonly MatmulCall[]): DeviceBuffer[];
  /**
   * True when {@link Backend.matmuls} takes operands as {@link Prologue}s, computed in the
   * product's loads (WebGPU: one dispatch and one round trip through memory fewer per map).
   * A product given one has no offset for that operand. BLAS takes stored operands only, so the
   * CPU backends do not.
   */
  readonly prologues?: boolean;
}

// --- spec validation shared by the backends ---------------------------------------------------

/**
 * Validates a convolution spec and returns its output size [ho, wo]. The weights' buffer is
 * checked by {@link checkConvWeights}.
 */
export function checkConv2dSpec(op: string, s: Conv2dSpec): [number, number] {
  for (const key of ["n", "c", "h", "w", "f", "kh", "kw", "strideH", "strideW"] as const) {
    if (!Number.isInteger(s[key]) || s[key] < (key === "n" ? 0 : 1)) {
      throw new SgnError(`${op}: ${key} must be a positive integer, got ${s[key]}`);
    }
  }
  if (!Number.isInteger(s.padH) || !Number.isInteger(s.padW) || s.padH < 0 || s.padW < 0) {
    throw new SgnError(`${op}: padding must be non-negative integers, got ${s.padH}, ${s.padW}`);
  }
  if (
    s.sums !== undefined && (typeof s.sums !== "boolean" || (s.sums && op !== "conv2dWeightGrad"))
  ) {
    throw new SgnError(
      `${op}: sums (the bias gradient after a weight gradient) is a boolean for conv2dWeightGrad ` +
        `only, got ${s.sums}; leave it out of this spec`,
    );
  }
  const off = s.offsetW ?? 0;
  if (!Number.isInteger(off) || off < 0) {
    throw new SgnError(`${op}: offsetW must be a non-negative integer, got ${s.offsetW}`);
  }
  const [ho, wo] = conv2dOutSize(s);
  if (ho < 1 || wo < 1) {
    throw new SgnError(`${op}: a ${s.kh}x${s.kw} kernel does not fit a padded ${s.h}x${s.w} input`);
  }
  return [ho, wo];
}

/** The number of a convolution's weights, f c kh kw. */
export function convWeights(s: Conv2dSpec): number {
  return s.f * s.c * s.kh * s.kw;
}

/** The size of a weight gradient's result: the weights', and f sums after them with `sums`. */
export function convWeightGradSize(s: Conv2dSpec): number {
  return convWeights(s) + (s.sums ? s.f : 0);
}

/**
 * Throws a clear error unless a buffer of `size` elements holds a convolution's weights
 * [f, c, kh, kw]: exactly, or, when the spec gives `offsetW` (a window of a larger buffer), from
 * that offset on.
 */
export function checkConvWeights(op: string, s: Conv2dSpec, size: number): void {
  const need = convWeights(s), off = s.offsetW;
  if (off === undefined ? size !== need : off + need > size) {
    const where = off === undefined ? "" : ` from offset ${off}`;
    throw new SgnError(
      `${op}: w must hold [${s.f}, ${s.c}, ${s.kh}, ${s.kw}] (${need} elements)${where}, ` +
        `its buffer has ${size}`,
    );
  }
}

/** Validates a pooling spec and returns its output size [ho, wo]. */
export function checkPool2dSpec(op: string, s: Pool2dSpec): [number, number] {
  for (const key of ["n", "c", "h", "w", "kh", "kw", "strideH", "strideW"] as const) {
    if (!Number.isInteger(s[key]) || s[key] < (key === "n" || key === "c" ? 0 : 1)) {
      throw new SgnError(`${op}: ${key} must be a positive integer, got ${s[key]}`);
    }
  }
  const [ho, wo] = pool2dOutSize(s);
  if (ho < 1 || wo < 1) {
    throw new SgnError(`${op}: a ${s.kh}x${s.kw} window does not fit ${s.h}x${s.w}`);
  }
  return [ho, wo];
}

/**
 * The output shape of a matrix product: [batch, m, n], or [m, n] when batch is 1 ([m + 1, n]
 * with `sums`).
 */
export function matmulShape(spec: MatmulSpec): number[] {
  const batch = spec.batch ?? 1;
  return batch > 1 ? [batch, spec.m, spec.n] : [spec.m + (spec.sums ? 1 : 0), spec.n];
}

/** A matmul spec with defaults filled in, after checking it against the operand sizes. */
export function checkMatmulSpec(
  spec: MatmulSpec,
  sizeA: number,
  sizeB: number,
): Required<MatmulSpec> {
  const { m, k, n, transA = false, transB = false, offsetA = 0, offsetB = 0 } = spec;
  const batch = spec.batch ?? 1;
  const sums = spec.sums ?? false;
  if (sums && batch !== 1) {
    throw new SgnError(`matmul: sums (B's sums over k as one more row) need batch 1, got ${batch}`);
  }
  const batchA = batch > 1 ? spec.batchA ?? true : false;
  const batchB = batch > 1 ? spec.batchB ?? true : false;
  for (
    const [name, v] of [
      ["m", m],
      ["k", k],
      ["n", n],
      ["batch", batch],
      ["offsetA", offsetA],
      ["offsetB", offsetB],
    ] as const
  ) {
    if (!Number.isInteger(v) || v < 0) {
      throw new SgnError(`matmul: ${name} must be a non-negative integer, got ${v}`);
    }
  }
  const wantA = (batchA ? batch : 1) * m * k;
  const wantB = (batchB ? batch : 1) * k * n;
  // With offsets the operands are windows of larger buffers; without, they must fit exactly.
  const fits = spec.offsetA !== undefined || spec.offsetB !== undefined
    ? sizeA >= offsetA + wantA && sizeB >= offsetB + wantB
    : sizeA === wantA && sizeB === wantB;
  if (!fits) {
    throw new SgnError(
      `matmul: operands have ${sizeA} and ${sizeB} elements, expected ${wantA} and ${wantB} ` +
        `for ${JSON.stringify({ m, k, n, transA, transB, batch, offsetA, offsetB })}`,
    );
  }
  return { m, k, n, transA, transB, batch, batchA, batchB, offsetA, offsetB, sums };
}
