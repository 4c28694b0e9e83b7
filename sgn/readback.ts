/**
 * Reading scalars back from the device, by name: a step names the one-element tensors it needs
 * on the host and reads them in a single readback (one concatenation, one transfer), the costliest
 * operation on WebGPU; the values come back under the same names, so nothing is unpacked by
 * position.
 *
 * @module
 */

import type { Tensor } from "../autodiff/tensor.ts";
import { concatFlat } from "./vectors.ts";

/** One-element tensors, and lists of them, by name: what a step reads back at once. */
export type Scalars = Record<string, Tensor | readonly Tensor[] | undefined>;

/** Their values under the same names (undefined where no tensor was given). */
export type ScalarValues<S extends Scalars> = {
  [K in keyof S]: S[K] extends Tensor ? number
    : S[K] extends readonly Tensor[] ? number[]
    : S[K] extends readonly Tensor[] | undefined ? number[] | undefined
    : number | undefined;
};

/** The tensors of `named`, in the order of its names. */
export function scalarTensors(named: Scalars): Tensor[] {
  return Object.values(named).flatMap((v) => (v === undefined ? [] : v instanceof Array ? v : [v]));
}

/**
 * Reads named one-element tensors (and lists of them) in a single readback, by name; the tensors
 * stay the caller's.
 *
 * @example
 * ```ts
 * import { init, tensor } from "../mod.ts";
 * import { readScalars } from "./readback.ts";
 * await init({ backend: "cpu" });
 * const v = await readScalars({ loss: tensor([0.5]), tries: [tensor([1]), tensor([2])] });
 * console.log(v.loss, v.tries); // 0.5 [1, 2]
 * ```
 */
export async function readScalars<S extends Scalars>(named: S): Promise<ScalarValues<S>> {
  const flat = concatFlat(scalarTensors(named));
  let values: ArrayLike<number>;
  try {
    values = await flat.data();
  } finally {
    flat.dispose();
  }
  let at = 0;
  const out: Record<string, number | number[] | undefined> = {};
  for (const [name, v] of Object.entries(named)) {
    out[name] = v === undefined
      ? undefined
      : v instanceof Array
      ? Array.from({ length: v.length }, () => values[at++])
      : values[at++];
  }
  return out as ScalarValues<S>;
}
