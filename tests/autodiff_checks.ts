/**
 * What the autodiff property tests (tests/property_networks_test.ts, property_ties_test.ts,
 * property_programs_test.ts) share: the backends they run on (the float64 ones and every one in
 * its widest type), small vector helpers, host copies of tensors, and `near`, the closeness check
 * whose absolute term is relative to the vector's scale.
 */

import type { Backend } from "../kernel/backend.ts";
import type { Tensor } from "../autodiff/tensor.ts";
import { cpu, native, webgpu } from "./harness.ts";

const nat = await native();
export const gpu = await webgpu();
/** The float64 backends: the oracle and the native one. */
export const F64: Backend[] = [cpu, ...(nat ? [nat] : [])];
/** Every backend, each in its widest type. */
export const ALL: Backend[] = [...F64, ...(gpu ? [gpu] : [])];
export const dtypeOf = (be: Backend) => (be.dtypes.includes("float64") ? "float64" : "float32");

// --- small helpers ------------------------------------------------------------------------------

export const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
export const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};
export const absDot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] * b[i]);
  return s;
};
export const maxAbs = (a: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
};
const flat = (xs: ArrayLike<number>[]) => xs.flatMap((x) => Array.from(x));

export async function host(t: Tensor): Promise<number[]> {
  return Array.from(await t.data());
}
export async function hostAll(ts: Tensor[]): Promise<number[]> {
  return flat(await Promise.all(ts.map((t) => t.data())));
}

/**
 * |a_i - e_i| <= rtol |e_i| + atol max(max|e|, floor): the atol term is relative to the vector's
 * scale, so that a tiny entry of a large vector is held to the accuracy its computation can have
 * (`floor`: the scale of the inputs, for a vector that may be all zeros).
 */
export function near(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  rtol: number,
  atol: number,
  what: string,
  floor = 0,
): void {
  if (actual.length !== expected.length) {
    throw new Error(`${what}: length ${actual.length}, expected ${expected.length}`);
  }
  const scale = Math.max(maxAbs(expected), floor);
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    if (!(err <= rtol * Math.abs(expected[i]) + atol * scale + 1e-300)) {
      throw new Error(
        `${what}: element ${i} is ${actual[i]}, expected ${expected[i]} ` +
          `(rtol ${rtol}, atol ${atol} x ${scale})`,
      );
    }
  }
}

/** A matrix (rows of plain arrays) times a vector. */
export const matVec = (m: number[][], v: ArrayLike<number>) => m.map((row) => dot(row, v));
/** The transpose of a matrix times a vector. */
export function matTVec(m: number[][], u: ArrayLike<number>): number[] {
  const out = new Array(m[0]?.length ?? 0).fill(0);
  m.forEach((row, i) => row.forEach((v, j) => (out[j] += v * u[i])));
  return out;
}
