/**
 * What the conformance tests (tests/conformance_test.ts, conformance_edges_test.ts) share: the
 * targets (the native backend's variants in float32 and float64, and WebGPU), a runner that runs a
 * kernel on a target and on the CPU oracle with the same inputs, input domains per op, and the
 * tolerance of sums: |target - cpu| <= eps sum|terms| (float32 summation error grows with the
 * number and size of the terms, not with the result), also for convolutions and their gradients.
 */

import assert from "node:assert/strict";
import {
  type Backend,
  conv2dOutSize,
  type Conv2dSpec,
  type DeviceBuffer,
} from "../kernel/backend.ts";
import type { BinaryOp, UnaryOp } from "../kernel/ir.ts";
import type { DType, TypedArray } from "../kernel/shape.ts";
import { cpu, nativeVariants, put, type Random, take, webgpu } from "./harness.ts";

export const SIZES = [1, 3, 7, 33, 257, 1000, 4099];

/** A backend under test and the dtype it is checked in. */
interface Target {
  be: Backend;
  dtype: DType;
  label: string;
}

const natives = await nativeVariants();
const gpu = await webgpu();
export const targets: Target[] = [
  ...natives.flatMap(({ label, be }) =>
    (["float32", "float64"] as const).map((dtype) => ({ be, dtype, label: `${label} ${dtype}` }))
  ),
  ...(gpu ? [{ be: gpu as Backend, dtype: "float32" as DType, label: "webgpu" }] : []),
];

/**
 * Runs a kernel on the target and on the CPU oracle with the same inputs (in the target's
 * dtype); returns [target, cpu] outputs.
 */
export function runner(t: Target) {
  return async function both(
    inputs: ArrayLike<number>[],
    run: (be: Backend, bufs: DeviceBuffer[]) => DeviceBuffer,
  ): Promise<[TypedArray, TypedArray]> {
    const out: TypedArray[] = [];
    for (const be of [t.be, cpu]) {
      const bufs = inputs.map((x) => put(be, x, t.dtype));
      const o = run(be, bufs);
      out.push(await take(be, o));
      bufs.forEach((b) => be.release(b));
    }
    return [out[0], out[1]];
  };
}

export function domain(op: UnaryOp | BinaryOp, rng: Random): number {
  switch (op) {
    case "log":
    case "sqrt":
      return rng.range(0.05, 4);
    case "reciprocal":
    case "div":
      return (rng.uniform() < 0.5 ? -1 : 1) * rng.range(0.1, 3);
    case "exp":
      return rng.range(-20, 20);
    case "sigmoid":
    case "tanh":
    case "softplus":
      return rng.range(-12, 12);
    case "erf":
      return rng.range(-7, 7);
    default:
      return rng.range(-3, 3);
  }
}

/** Absolute sums |a|+|b|... per output, for tolerances of sums. */
export function absScale(values: ArrayLike<number>): Float32Array {
  return Float32Array.from(values, Math.abs);
}

export function assertSumClose(
  g: ArrayLike<number>,
  c: ArrayLike<number>,
  scale: ArrayLike<number>,
  what: string,
  eps = 1e-5,
) {
  assert.equal(g.length, c.length, `${what}: length`);
  for (let i = 0; i < g.length; i++) {
    const tol = eps * scale[i] + eps / 10;
    if (!(Math.abs(g[i] - c[i]) <= tol)) {
      throw new Error(`${what}: element ${i} is ${g[i]}, CPU gives ${c[i]} (tolerance ${tol})`);
    }
  }
}

/** A convolution and its two gradient products on a target against the oracle. */
export async function checkConvs(
  both: ReturnType<typeof runner>,
  eps: number,
  specs: Conv2dSpec[],
  rng: Random,
): Promise<void> {
  for (const s of specs) {
    const [ho, wo] = conv2dOutSize(s);
    const x = rng.array(s.n * s.c * s.h * s.w);
    const w = rng.array(s.f * s.c * s.kh * s.kw);
    const dy = rng.array(s.n * s.f * ho * wo);
    const what = JSON.stringify(s);
    const [g, c] = await both([x, w], (be, [a, b]) => be.conv2d(a, b, s));
    const [sc] = await both([absScale(x), absScale(w)], (be, [a, b]) => be.conv2d(a, b, s));
    assertSumClose(g, c, sc, `conv2d ${what}`, eps);
    const [gi, ci] = await both([dy, w], (be, [a, b]) => be.conv2dInputGrad(a, b, s));
    const [si] = await both(
      [absScale(dy), absScale(w)],
      (be, [a, b]) => be.conv2dInputGrad(a, b, s),
    );
    assertSumClose(gi, ci, si, `conv2dInputGrad ${what}`, eps);
    const [gw, cw] = await both([x, dy], (be, [a, b]) => be.conv2dWeightGrad(a, b, s));
    const [sw] = await both(
      [absScale(x), absScale(dy)],
      (be, [a, b]) => be.conv2dWeightGrad(a, b, s),
    );
    assertSumClose(gw, cw, sw, `conv2dWeightGrad ${what}`, eps);
  }
}
