/**
 * Shapes, strides and element types: the arithmetic of n-dimensional arrays that every layer
 * shares.
 *
 * @module
 */

import { SgnError, showValue } from "../errors.ts";

/** Element types. WebGPU supports only float32; the CPU backend supports both. */
export type DType = "float32" | "float64";

/** The host-side array type for each dtype. */
export type TypedArray = Float32Array | Float64Array;

/** The number of elements of a shape. */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Whether two shapes are equal. */
export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
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

/** The most elements one tensor may hold (2^32): beyond it, a buffer cannot be allocated. */
export const MAX_ELEMENTS = 2 ** 32;

/**
 * `shape` checked as a user-given shape: an array of non-negative integers of at most
 * {@link MAX_ELEMENTS} elements in all, with `-1` allowed where `inferable`. `what` starts the
 * error (the function and argument it came through).
 *
 * @example
 * ```ts
 * import { checkShape } from "./shape.ts";
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
