/**
 * What the autodiff tests (tests/autodiff_test.ts, autodiff_networks_test.ts) check with: random
 * tensors, host copies, central finite differences of a function of tensors in float64 on the CPU
 * backend with a closeness check relative to the values' scale, and small networks written here
 * as functions of their parameter lists (an MLP, a conv net) with random parameters.
 */

import assert from "node:assert/strict";
import type { Backend } from "../kernel/backend.ts";
import { type Tensor, tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import { cpu, type Random, webgpu } from "./harness.ts";

export const gpu = await webgpu();

export type Dtype = "float32" | "float64";

export function rand(
  be: Backend,
  shape: number[],
  rng: Random,
  dtype: Dtype = "float64",
  lo = -1,
  hi = 1,
): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(rng.array(n, (r) => r.range(lo, hi)), shape, { backend: be, dtype });
}

export async function host(t: Tensor): Promise<number[]> {
  return Array.from(await t.data());
}

export function dotHost(a: number[], b: number[]): number {
  return a.reduce((s, v, i) => s + v * b[i], 0);
}

/** f(x + h v) with x, v host arrays, evaluated on float64 CPU tensors. */
async function evalAt(
  f: (...xs: Tensor[]) => Tensor,
  xs: Tensor[],
  vs: number[][],
  h: number,
): Promise<number[]> {
  const shifted = await Promise.all(
    xs.map(async (x, i) => {
      const base = await host(x);
      return tensor(base.map((v, j) => v + h * vs[i][j]), x.shape, {
        backend: cpu,
        dtype: "float64",
      });
    }),
  );
  const y = f(...shifted);
  const out = await host(y);
  y.dispose();
  shifted.forEach((t) => t.dispose());
  return out;
}

/** Central difference of f at xs along vs. */
export async function fd(
  f: (...xs: Tensor[]) => Tensor,
  xs: Tensor[],
  vs: number[][],
  h = 1e-6,
): Promise<number[]> {
  const plus = await evalAt(f, xs, vs, h);
  const minus = await evalAt(f, xs, vs, -h);
  return plus.map((p, i) => (p - minus[i]) / (2 * h));
}

export function assertNear(
  actual: number[],
  expected: number[],
  rtol: number,
  atol: number,
  what: string,
) {
  assert.equal(actual.length, expected.length, `${what}: length`);
  const scale = Math.max(...expected.map(Math.abs), 1e-30);
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    if (!(err <= atol + rtol * Math.max(Math.abs(expected[i]), scale * 1e-3))) {
      throw new Error(
        `${what}: element ${i} is ${actual[i]}, expected ${
          expected[i]
        } (rtol ${rtol}, atol ${atol})`,
      );
    }
  }
}

export const CONV = { stride: 2, padding: 1 } as const;

export type Act = "sigmoid" | "tanh" | "relu";
const ACT: Record<Act, (x: Tensor) => Tensor> = { sigmoid: o.sigmoid, tanh: o.tanh, relu: o.relu };

/** An MLP as a function of its parameter list [W1, b1, W2, b2, ...]. */
export function mlp(x: Tensor, act: Act) {
  return (...p: Tensor[]) => {
    let h = x;
    for (let i = 0; i < p.length; i += 2) {
      h = o.add(o.matmul(h, p[i]), p[i + 1]);
      if (i + 2 < p.length) h = ACT[act](h);
    }
    return h;
  };
}

export function mlpParams(be: Backend, sizes: number[], rng: Random, dtype: Dtype): Tensor[] {
  const p: Tensor[] = [];
  for (let i = 0; i + 1 < sizes.length; i++) {
    p.push(rand(be, [sizes[i], sizes[i + 1]], rng, dtype));
    p.push(rand(be, [sizes[i + 1]], rng, dtype, -0.1, 0.1));
  }
  return p;
}

/** conv 4@3x3 - relu - pool 2 - conv 4@3x3 - relu - dense 3. */
export function convNet(x: Tensor) {
  return (w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, w3: Tensor, b3: Tensor) => {
    let h = o.relu(o.add(o.conv2d(x, w1), o.reshape(b1, [1, -1, 1, 1])));
    h = o.maxPool2d(h, 2);
    h = o.relu(o.add(o.conv2d(h, w2), o.reshape(b2, [1, -1, 1, 1])));
    return o.add(o.matmul(o.flatten(h), w3), b3);
  };
}

export function convParams(be: Backend, rng: Random, dtype: Dtype): Tensor[] {
  return [
    rand(be, [4, 2, 3, 3], rng, dtype),
    rand(be, [4], rng, dtype, -0.1, 0.1),
    rand(be, [4, 4, 3, 3], rng, dtype),
    rand(be, [4], rng, dtype, -0.1, 0.1),
    rand(be, [4 * 2 * 2, 3], rng, dtype),
    rand(be, [3], rng, dtype, -0.1, 0.1),
  ];
}
