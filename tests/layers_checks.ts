/**
 * What the layer tests (tests/layers_test.ts, layers_networks_test.ts) share: the backends the
 * harness gives, each one's widest dtype, and `near`, a closeness check that holds a vector's
 * small entries to its scale's accuracy and names the worst element.
 */

import assert from "node:assert/strict";
import type { Backend } from "../kernel/backend.ts";
import { backends } from "./harness.ts";

export const ALL = await backends();
export const dtypeOf = (be: Backend) => (be.dtypes.includes("float64") ? "float64" : "float32");
export const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/**
 * |a_i - e_i| <= rtol |e_i| + atol max(max|e|, floor), naming the worst element: a vector's
 * small entries are held to its scale's accuracy.
 */
export function near(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  rtol: number,
  atol: number,
  what: string,
  floor = 1e-3,
): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let scale = floor;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  for (let i = 0; i < got.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    if (!(err <= rtol * Math.abs(want[i]) + atol * scale)) {
      assert.fail(`${what}: element ${i} is ${got[i]}, expected ${want[i]} (scale ${scale})`);
    }
  }
}
