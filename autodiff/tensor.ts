/**
 * `Tensor`: an n-dimensional float array living on a backend, and scopes that free temporaries.
 *
 * Device memory is released deterministically, never by the garbage collector: call
 * `t.dispose()`, declare `using t = ...`, or run code inside {@link scope}, which disposes every
 * tensor created inside it except those it returns.
 *
 * @module
 */

import type { Backend, DeviceBuffer } from "../kernel/backend.ts";

import { checkShape, type DType, sizeOf, type TypedArray } from "../kernel/shape.ts";

import { SgnError, showValue } from "../errors.ts";
import { getBackend } from "./device.ts";
import { Lazy } from "../kernel/lazy.ts";
import { full as lazyFull } from "../kernel/graph.ts";

/** Nested arrays of numbers, as accepted by {@link tensor}. */
export type NestedArray = number | readonly NestedArray[];

/** Options for creating tensors. */
export interface TensorOptions {
  /** Element type; default "float32" (the only one WebGPU has). */
  dtype?: DType;
  /** Backend; default the one selected by `init()` or `setBackend()`. */
  backend?: Backend;
}

const scopes: Set<Tensor>[] = [];

/**
 * An n-dimensional array of float32 (or, on the CPU backend, float64) values on a backend.
 *
 * @example
 * ```ts
 * import { init, tensor } from "../mod.ts";
 * await init({ backend: "cpu" });
 * const t = tensor([[1, 2], [3, 4]]);
 * console.log(t.shape, await t.data()); // [2, 2] Float32Array [1, 2, 3, 4]
 * t.dispose();
 * ```
 */
export class Tensor {
  #lazy: Lazy | undefined;
  #disposed = false;

  /**
   * Wraps a backend buffer or a lazy array of the kernel layer; the tensor takes ownership of
   * it. Most code uses {@link tensor}.
   */
  constructor(
    readonly backend: Backend,
    data: DeviceBuffer | Lazy | undefined,
    readonly shape: readonly number[],
    readonly dtype: DType,
  ) {
    const lazy = data && !(data instanceof Lazy) ? Lazy.of(backend, data, shape) : data;
    if (lazy && (lazy.size !== sizeOf(shape) || lazy.shape.length !== shape.length)) {
      lazy.release();
      throw new SgnError(
        `an array of shape [${lazy.shape.join(", ")}] cannot have shape [${shape.join(", ")}]`,
      );
    }
    this.#lazy = lazy;
    if (lazy) scopes.at(-1)?.add(this);
  }

  /** Number of elements. */
  get size(): number {
    return sizeOf(this.shape);
  }

  /** Number of dimensions. */
  get rank(): number {
    return this.shape.length;
  }

  /** Whether {@link dispose} has run. */
  get disposed(): boolean {
    return this.#disposed;
  }

  /**
   * The lazy array of the kernel layer behind this tensor (pending or computed); throws a clear
   * error once the tensor is disposed.
   */
  get lazy(): Lazy {
    if (this.#disposed) {
      throw new SgnError(
        `a disposed tensor of shape [${this.shape.join(", ")}] was used: ` +
          "keep it alive (return it from the scope, or dispose it later)",
      );
    }
    if (!this.#lazy) throw new SgnError("this tensor has no buffer of its own");
    return this.#lazy;
  }

  /** The device buffer, computing the tensor first if it is still pending. */
  get buffer(): DeviceBuffer {
    return this.lazy.realize();
  }

  /**
   * Computes the tensor now if it is pending (an explicit flush of the lazy graph beneath it),
   * so that state kept across steps does not carry a growing expression. Returns the tensor. A
   * tensor that is a window of a computed buffer (one of several results one kernel wrote, such
   * as a bias gradient computed with its weight gradient) has no graph beneath it and stays a
   * window, holding that buffer; `buffer` gives it a buffer of its own.
   */
  realize(): this {
    this.lazy.flush();
    return this;
  }

  /** Copies the values to the host. On WebGPU this waits for all queued work. */
  async data(): Promise<TypedArray> {
    // A window of another tensor's memory (a parameter of a flat vector, say) is read from
    // there, rather than copied into a buffer of its own first.
    const lazy = this.lazy;
    lazy.flush();
    const w = lazy.computed ? undefined : lazy.window();
    if (w) {
      const all = await this.backend.read(w.src.realize());
      return all.slice(w.offset, w.offset + this.size);
    }
    return await this.backend.read(lazy.realize());
  }

  /** The values as nested JavaScript arrays (a number for a scalar). */
  async array(): Promise<NestedArray> {
    const flat = await this.data();
    const build = (dim: number, offset: number): NestedArray => {
      if (dim === this.shape.length) return flat[offset];
      const stride = sizeOf(this.shape.slice(dim + 1));
      return Array.from({ length: this.shape[dim] }, (_, i) => build(dim + 1, offset + i * stride));
    };
    return build(0, 0);
  }

  /** Releases the device memory. Disposing twice is harmless; using a disposed tensor is not. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#lazy?.release();
    this.#lazy = undefined;
    for (const s of scopes) s.delete(this);
  }

  /** Tensors this one is made of (a tracer's primal and tangent); none for concrete tensors. */
  children(): readonly Tensor[] {
    return [];
  }

  /** Lets `using t = tensor(...)` dispose the tensor at the end of the block. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  /** A short description: shape, dtype and backend (not the values: see {@link Tensor.data}). */
  toString(): string {
    return `Tensor(shape=[${this.shape.join(", ")}], dtype=${this.dtype}, ${this.backend.name})`;
  }
}

function inferShape(values: NestedArray): number[] {
  const shape: number[] = [];
  let v: NestedArray = values;
  while (Array.isArray(v)) {
    shape.push(v.length);
    v = v[0] as NestedArray;
  }
  return shape;
}

function flatten(values: NestedArray, shape: readonly number[], out: number[], dim = 0): void {
  if (dim === shape.length) {
    if (typeof values !== "number") {
      throw new SgnError("tensor: nested arrays are ragged (rows of different lengths)");
    }
    out.push(values);
    return;
  }
  if (!Array.isArray(values) || values.length !== shape[dim]) {
    throw new SgnError(
      `tensor: nested arrays are ragged: expected ${shape[dim]} entries at depth ${dim}`,
    );
  }
  for (const v of values) flatten(v, shape, out, dim + 1);
}

/**
 * Throws unless `x` is a Tensor; `what` names the operand in the error (an array is pointed at
 * `tensor(...)`).
 */
export function checkTensor(x: unknown, what: string): asserts x is Tensor {
  if (!(x instanceof Tensor)) {
    throw new SgnError(
      `${what} must be a Tensor, got ${
        Array.isArray(x) ? "an array (make it a tensor with tensor(...))" : showValue(x)
      }`,
    );
  }
}

/** Checks a {@link TensorOptions} argument: an object whose backend, if any, is a backend. */
function checkOptions(options: unknown, what: string): void {
  if (typeof options !== "object" || options === null) {
    throw new SgnError(
      `${what}: options must be an object such as { dtype: "float64" }, got ${showValue(options)}`,
    );
  }
  const b = (options as TensorOptions).backend;
  if (b !== undefined && (typeof b !== "object" || b === null || !Array.isArray(b.dtypes))) {
    throw new SgnError(
      `${what}: options.backend must be a backend (see init()), got ${showValue(b)}`,
    );
  }
}

/**
 * Creates a tensor from a number, nested arrays or a typed array (with its shape).
 *
 * @example
 * ```ts
 * import { init, tensor } from "../mod.ts";
 * await init({ backend: "cpu" });
 * const a = tensor([[1, 2, 3], [4, 5, 6]]); // shape [2, 3]
 * const b = tensor(new Float32Array(6), [3, 2]);
 * const c = tensor(1.5); // a scalar, shape []
 * ```
 */
export function tensor(
  values: NestedArray | ArrayLike<number>,
  shape?: readonly number[],
  options: TensorOptions = {},
): Tensor {
  checkOptions(options, "tensor");
  const backend = options.backend ?? getBackend();
  const dtype = options.dtype ?? "float32";
  if (!backend.dtypes.includes(dtype)) {
    throw new SgnError(
      `the ${backend.name} backend does not support ${dtype} (it has ${backend.dtypes.join(", ")})`,
    );
  }
  if (
    typeof values !== "number" && !Array.isArray(values) &&
    !(ArrayBuffer.isView(values) && !(values instanceof DataView))
  ) {
    throw new SgnError(
      `tensor: values must be a number, nested arrays of numbers or a typed array, got ${
        showValue(values)
      }`,
    );
  }
  let flat: ArrayLike<number>;
  if (typeof values === "number") {
    flat = [values];
    shape ??= [];
  } else if (Array.isArray(values)) {
    const inferred = inferShape(values as NestedArray);
    const out: number[] = [];
    flatten(values as NestedArray, inferred, out);
    flat = out;
    shape ??= inferred.length > 1 ? inferred : [out.length];
  } else {
    flat = values as ArrayLike<number>;
    shape ??= [flat.length];
  }
  shape = checkShape(shape, "tensor");
  if (sizeOf(shape) !== flat.length) {
    throw new SgnError(
      `tensor: ${flat.length} values cannot have shape [${shape.join(", ")}] ` +
        `(${sizeOf(shape)} elements)`,
    );
  }
  const data = dtype === "float64" ? Float64Array.from(flat) : Float32Array.from(flat);
  return new Tensor(backend, backend.upload(data), shape, dtype);
}

/** A tensor of the given shape with every element equal to `value`. */
export function full(shape: readonly number[], value: number, options: TensorOptions = {}): Tensor {
  shape = checkShape(shape, "full");
  if (typeof value !== "number") {
    throw new SgnError(`full: the value must be a number, got ${showValue(value)}`);
  }
  checkOptions(options, "full");
  const backend = options.backend ?? getBackend();
  const dtype = options.dtype ?? "float32";
  if (!backend.dtypes.includes(dtype)) {
    throw new SgnError(
      `the ${backend.name} backend does not support ${dtype} (it has ${backend.dtypes.join(", ")})`,
    );
  }
  return new Tensor(backend, lazyFull(backend, shape, value, dtype), shape, dtype);
}

/** A tensor of zeros. */
export function zeros(shape: readonly number[], options: TensorOptions = {}): Tensor {
  return full(shape, 0, options);
}

/** Every tensor reachable in a returned value (arrays, plain objects, maps' values). */
function reachable(value: unknown, out: Set<Tensor>): void {
  if (value instanceof Tensor) {
    out.add(value);
    for (const c of value.children()) reachable(c, out);
  } else if (Array.isArray(value)) { for (const v of value) reachable(v, out); }
  else if (value instanceof Map) { for (const v of value.values()) reachable(v, out); }
  else if (
    value && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype
  ) {
    for (const v of Object.values(value)) reachable(v, out);
  }
}

/**
 * Runs `fn` and disposes every tensor created during it that is not part of its result (tensors
 * in returned arrays and plain objects are kept and belong to the enclosing scope). Synchronous
 * by design: a scope cannot tell which of several interleaved async tasks created a tensor.
 *
 * @example
 * ```ts
 * import { init, scope, tensor } from "../mod.ts";
 * await init({ backend: "cpu" });
 * const kept = scope(() => {
 *   const tmp = tensor([1, 2]);
 *   return tensor([3, 4]); // tmp is disposed, this one survives
 * });
 * ```
 */
export function scope<T>(fn: () => T): T {
  const { result, created: mine } = collect(fn);
  if (result instanceof Promise) {
    for (const t of mine) t.dispose();
    throw new SgnError("scope: the function returned a Promise; scopes are synchronous");
  }
  const keep = new Set<Tensor>();
  reachable(result, keep);
  const parent = scopes.at(-1);
  for (const t of mine) {
    if (keep.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}

/**
 * Runs `fn` and returns its result with every concrete tensor created during it that is still
 * alive, without disposing anything: the caller owns them (transformations keep a forward pass's
 * intermediates this way and free them later).
 */
export function collect<T>(fn: () => T): { result: T; created: Set<Tensor> } {
  const mine = new Set<Tensor>();
  scopes.push(mine);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of mine) t.dispose();
    throw e;
  }
  scopes.pop();
  return { result, created: mine };
}

/** The index the next scope (or collection) will get. */
export function scopeDepth(): number {
  return scopes.length;
}

/**
 * Moves `t` from any scope opened after index `depth` into the scope at `depth`: a transformation
 * that records a value created by a nested transformation takes ownership of it, so that the
 * nested one does not free what the outer record still needs. Tensors not held by those scopes
 * (the caller's own) are left alone.
 */
export function claim(t: Tensor, depth: number): void {
  let found = false;
  for (let i = depth + 1; i < scopes.length; i++) found = scopes[i].delete(t) || found;
  if (found) scopes[depth].add(t);
}

/**
 * Hands `t` to the innermost open scope (if any), as if it had been created there: for values a
 * transformation collected (see {@link collect}) and then gives to its caller.
 */
export function adopt(t: Tensor): void {
  if (!t.disposed) scopes.at(-1)?.add(t);
}

/** Removes a tensor from the enclosing scopes so it outlives them. Returns it. */
export function keep<T extends Tensor>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}
