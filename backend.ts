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

/** Element types. WebGPU supports only float32; the CPU backend supports both. */
export type DType = "float32" | "float64";

/** The host-side array type for each dtype. */
export type TypedArray = Float32Array | Float64Array;

/** Opaque handle to `size` elements of `dtype` in a backend's memory. */
export interface DeviceBuffer {
  /** Number of elements. */
  readonly size: number;
  /** Element type. */
  readonly dtype: DType;
}

/**
 * The element-wise unary operations (one list; {@link UnaryOp} is its element type). `step` is
 * the derivative of relu: 1 where x > 0, else 0. `softplus` is log(1 + e^x); `erf` the error
 * function (kernel/erf.ts).
 */
export const UNARY_OPS = [
  "neg",
  "exp",
  "log",
  "sigmoid",
  "tanh",
  "relu",
  "square",
  "sqrt",
  "reciprocal",
  "abs",
  "sign",
  "step",
  "softplus",
  "erf",
] as const;

/** An element-wise unary operation: one of {@link UNARY_OPS}. */
export type UnaryOp = (typeof UNARY_OPS)[number];

/** Element-wise binary operations; comparisons return 1 where true and 0 where false. */
export type BinaryOp =
  | "add"
  | "sub"
  | "mul"
  | "div"
  | "max"
  | "min"
  | "pow"
  | "eq"
  | "ne"
  | "lt"
  | "le"
  | "gt"
  | "ge";

/** The list of binary ops, for tests and validation. */
export const BINARY_OPS: readonly BinaryOp[] = [
  "add",
  "sub",
  "mul",
  "div",
  "max",
  "min",
  "pow",
  "eq",
  "ne",
  "lt",
  "le",
  "gt",
  "ge",
];

export type { Expr, Kernel, ReduceOp } from "./kernel/ir.ts";
import type { Expr, Kernel } from "./kernel/ir.ts";

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
  /** "webgpu", "cpu" (the plain TypeScript oracle) or "native" (BLAS through FFI). */
  readonly name: "webgpu" | "cpu" | "native";
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
}

/** The broadcast shape of two shapes, NumPy rules, or undefined if they are incompatible. */
export function broadcastShapes(
  a: readonly number[],
  b: readonly number[],
): number[] | undefined {
  const rank = Math.max(a.length, b.length);
  const out = new Array<number>(rank);
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) return undefined;
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** The number of elements of a shape. */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** The most elements one tensor may hold (2^32): beyond it, a buffer cannot be allocated. */
export const MAX_ELEMENTS = 2 ** 32;

/**
 * `shape` checked as a user-given shape: an array of non-negative integers of at most
 * {@link MAX_ELEMENTS} elements in all, with `-1` allowed where `inferable`. `what` starts the
 * error (the function and argument it came through).
 *
 * @example
 * ```ts
 * import { checkShape } from "./backend.ts";
 * console.log(checkShape([2, 3], "zeros")); // [2, 3]
 * try { checkShape([2, 1.5], "zeros"); } catch (e) { console.log((e as Error).message); }
 * ```
 */
export function checkShape(shape: unknown, what: string, inferable = false): number[] {
  if (!Array.isArray(shape)) {
    throw new SgnError(
      `${what}: a shape is an array of sizes such as [2, 3], got ${showValue(shape)}`,
    );
  }
  const out: number[] = [...shape];
  if (
    out.length > 64 ||
    out.some((d) => !(Number.isSafeInteger(d) && (d >= 0 || (inferable && d === -1))))
  ) {
    throw new SgnError(
      `${what}: invalid shape ${showValue(shape)}: dimensions must be non-negative integers` +
        (inferable ? " (one may be -1, inferred)" : ""),
    );
  }
  const n = Math.abs(sizeOf(out));
  if (n > MAX_ELEMENTS) {
    throw new SgnError(
      `${what}: shape ${showValue(shape)} has ${n} elements, more than a tensor may hold ` +
        `(${MAX_ELEMENTS})`,
    );
  }
  return out;
}

/**
 * `v` checked as a user-given integer in [min, max] (no upper bound but the exact integers by
 * default); `what` names it in the error ("must be a positive integer" for min 1, "a
 * non-negative integer" for min 0, else the range).
 *
 * @example
 * ```ts
 * import { checkInt } from "./backend.ts";
 * console.log(checkInt(3, "maxPool2d: size", 1)); // 3
 * ```
 */
export function checkInt(
  v: unknown,
  what: string,
  min: number,
  max: number = Number.MAX_SAFE_INTEGER,
): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    const bounded = max < Number.MAX_SAFE_INTEGER;
    const kind = !bounded && min === 1
      ? "a positive integer"
      : !bounded && min === 0
      ? "a non-negative integer"
      : `an integer from ${min}${bounded ? ` to ${max}` : " on"}`;
    throw new SgnError(`${what} must be ${kind}, got ${showValue(v)}`);
  }
  return v;
}

/** `v` checked as a list of integers in [min, max] (see {@link checkInt}). */
export function checkInts(
  v: unknown,
  what: string,
  min: number,
  max: number = Number.MAX_SAFE_INTEGER,
): number[] {
  if (!Array.isArray(v)) {
    throw new SgnError(`${what} must be an array of integers, got ${showValue(v)}`);
  }
  return v.map((x, i) => checkInt(x, `${what}[${i}]`, min, max));
}

/** Row-major strides of a shape. */
export function stridesOf(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

/**
 * Strides for reading an operand of shape `shape` as if broadcast to `outShape` (zero stride on
 * broadcast dimensions). `shape` must broadcast to `outShape`.
 */
export function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const own = stridesOf(shape);
  const rank = outShape.length;
  const out = new Array<number>(rank).fill(0);
  for (let i = 0; i < shape.length; i++) {
    const j = rank - shape.length + i;
    out[j] = shape[i] === 1 && outShape[j] !== 1 ? 0 : own[i];
  }
  return out;
}

/**
 * A value as an error message shows it: numbers as JavaScript writes them (NaN, Infinity, -0,
 * where JSON would write null or 0), strings quoted, anything else as JSON, cut to 80 characters.
 *
 * @example
 * ```ts
 * import { showValue } from "./backend.ts";
 * console.log(showValue(NaN), showValue("relu"), showValue([1, 2])); // NaN "relu" [1,2]
 * ```
 */
export function showValue(v: unknown): string {
  if (typeof v === "number") return Object.is(v, -0) ? "-0" : String(v);
  if (typeof v === "bigint") return `${v}n`;
  if (v === undefined || typeof v === "symbol") return String(v);
  if (typeof v === "function") return "a function";
  let text: string;
  try {
    text = JSON.stringify(v) ?? String(v);
  } catch {
    text = String(v);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** The error raised for misuse of a backend or tensor, with a message that says what to do. */
export class SgnError extends Error {
  /** Always "SgnError", so that messages and logs name the kind of error. */
  override name = "SgnError";
}

// --- spec validation shared by the backends ---------------------------------------------------

/** Validates a convolution spec and returns its output size [ho, wo]. */
export function checkConv2dSpec(op: string, s: Conv2dSpec): [number, number] {
  for (const key of ["n", "c", "h", "w", "f", "kh", "kw", "strideH", "strideW"] as const) {
    if (!Number.isInteger(s[key]) || s[key] < (key === "n" ? 0 : 1)) {
      throw new SgnError(`${op}: ${key} must be a positive integer, got ${s[key]}`);
    }
  }
  if (!Number.isInteger(s.padH) || !Number.isInteger(s.padW) || s.padH < 0 || s.padW < 0) {
    throw new SgnError(`${op}: padding must be non-negative integers, got ${s.padH}, ${s.padW}`);
  }
  const [ho, wo] = conv2dOutSize(s);
  if (ho < 1 || wo < 1) {
    throw new SgnError(`${op}: a ${s.kh}x${s.kw} kernel does not fit a padded ${s.h}x${s.w} input`);
  }
  return [ho, wo];
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

/** The output shape of a matrix product: [batch, m, n], or [m, n] when batch is 1. */
export function matmulShape(spec: MatmulSpec): number[] {
  const batch = spec.batch ?? 1;
  return batch > 1 ? [batch, spec.m, spec.n] : [spec.m, spec.n];
}

/** A matmul spec with defaults filled in, after checking it against the operand sizes. */
export function checkMatmulSpec(
  spec: MatmulSpec,
  sizeA: number,
  sizeB: number,
): Required<MatmulSpec> {
  const { m, k, n, transA = false, transB = false, offsetA = 0, offsetB = 0 } = spec;
  const batch = spec.batch ?? 1;
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
  return { m, k, n, transA, transB, batch, batchA, batchB, offsetA, offsetB };
}
