/**
 * Single IR kernels over buffers, one per classic operation (unary and broadcasting binary maps,
 * select, strided views, reductions along an axis, and the optimizer's vector operations), run
 * eagerly on a backend. The conformance tests and kernel benchmarks run each lowering through
 * these; the tensor API builds the same kernels lazily (`kernel/lazy.ts`).
 *
 * @example
 * ```ts
 * import { CpuBackend } from "../backends.ts";
 * import * as K from "./kernels.ts";
 * const cpu = new CpuBackend();
 * const x = cpu.upload(new Float32Array([1, -2, 3]));
 * console.log(await cpu.read(K.unary(cpu, "abs", x))); // [1, 2, 3]
 * ```
 *
 * @module
 */

import type { Backend, DeviceBuffer } from "./backend.ts";

import type { BinaryOp, UnaryOp } from "./ir.ts";

import { broadcastShapes, broadcastStrides, sizeOf } from "./shape.ts";

import { SgnError } from "../errors.ts";
import * as ir from "./ir.ts";
import type { ReduceOp } from "./ir.ts";

const flat = (_size: number) => ir.load(0, [1]);

/** `op(x)` element-wise. */
export function unary(be: Backend, op: UnaryOp, x: DeviceBuffer): DeviceBuffer {
  if (!(op in ir.UNARY)) throw new SgnError(`unknown unary op ${JSON.stringify(op)}`);
  return be.run({ shape: [x.size], inputs: 1, body: ir.unary(op, flat(x.size)) }, [x], x.dtype);
}

/** `op(a, b)` with NumPy broadcasting of `aShape` against `bShape`. */
export function binary(
  be: Backend,
  op: BinaryOp,
  a: DeviceBuffer,
  aShape: readonly number[],
  b: DeviceBuffer,
  bShape: readonly number[],
): DeviceBuffer {
  if (!(op in ir.BINARY)) throw new SgnError(`unknown binary op ${JSON.stringify(op)}`);
  const shape = broadcastShapes(aShape, bShape);
  if (!shape) throw new SgnError(`${op}: shapes [${aShape}] and [${bShape}] do not broadcast`);
  if (sizeOf(aShape) !== a.size || sizeOf(bShape) !== b.size) {
    throw new SgnError(
      `${op}: buffers of ${a.size} and ${b.size} elements for [${aShape}], [${bShape}]`,
    );
  }
  const body = ir.binary(
    op,
    ir.load(0, broadcastStrides(aShape, shape)),
    ir.load(1, broadcastStrides(bShape, shape)),
  );
  return be.run({ shape, inputs: 2, body }, [a, b], a.dtype);
}

/** `c != 0 ? a : b`, all of one size. */
export function where(
  be: Backend,
  c: DeviceBuffer,
  a: DeviceBuffer,
  b: DeviceBuffer,
): DeviceBuffer {
  if (c.size !== a.size || a.size !== b.size) {
    throw new SgnError(`where: sizes ${c.size}, ${a.size} and ${b.size} differ`);
  }
  const body = ir.where(ir.load(0, [1]), ir.load(1, [1]), ir.load(2, [1]));
  return be.run({ shape: [a.size], inputs: 3, body }, [c, a, b], a.dtype);
}

/** `out[idx] = x[offset + sum_i idx_i * strides[i]]` over `outShape`. */
export function strided(
  be: Backend,
  x: DeviceBuffer,
  outShape: readonly number[],
  strides: readonly number[],
  offset: number,
): DeviceBuffer {
  if (strides.length !== outShape.length) {
    throw new SgnError(`strided: ${strides.length} strides for a shape of rank ${outShape.length}`);
  }
  let last = offset;
  outShape.forEach((d, i) => (last += d > 0 ? (d - 1) * strides[i] : 0));
  if (sizeOf(outShape) > 0 && (offset < 0 || last >= x.size || strides.some((s) => s < 0))) {
    throw new SgnError(
      `strided: the view [${outShape}] with strides [${strides}] at offset ${offset} ` +
        `reads outside a buffer of ${x.size} elements`,
    );
  }
  return be.run({ shape: outShape, inputs: 1, body: ir.load(0, strides, offset) }, [x], x.dtype);
}

/** Reduces x viewed as [outer, axisSize, inner] along the middle axis: [outer, inner]. */
export function reduce(
  be: Backend,
  op: ReduceOp,
  x: DeviceBuffer,
  outer: number,
  axisSize: number,
  inner: number,
): DeviceBuffer {
  if (x.size !== outer * axisSize * inner) {
    throw new SgnError(
      `${op}: a buffer of ${x.size} elements cannot be viewed as [${outer}, ${axisSize}, ${inner}]`,
    );
  }
  const body = ir.load(0, [axisSize * inner, 1, inner]);
  return be.run(
    { shape: [outer, inner], inputs: 1, body, reduce: { op, shape: [axisSize] } },
    [x],
    x.dtype,
  );
}

/** A scalar operand: a number (a constant) or a one-element buffer (input `index`). */
function scalar(alpha: number | DeviceBuffer, index: number): ir.Expr {
  return typeof alpha === "number" ? ir.constant(alpha) : ir.load(index, [0]);
}

function same(op: string, x: DeviceBuffer, y: DeviceBuffer): void {
  if (x.size !== y.size) throw new SgnError(`${op}: sizes ${x.size} and ${y.size} differ`);
}

/** The inner product of two vectors, as a one-element buffer. */
export function dot(be: Backend, x: DeviceBuffer, y: DeviceBuffer): DeviceBuffer {
  same("dot", x, y);
  const body = ir.binary("mul", ir.load(0, [1]), ir.load(1, [1]));
  return be.run(
    { shape: [], inputs: 2, body, reduce: { op: "sum", shape: [x.size] } },
    [x, y],
    x.dtype,
  );
}

/** `max_i |x_i|` as a one-element buffer (NaN if any element is NaN). */
export function maxAbs(be: Backend, x: DeviceBuffer): DeviceBuffer {
  const body = ir.unary("abs", ir.load(0, [1]));
  return be.run(
    { shape: [], inputs: 1, body, reduce: { op: "max", shape: [x.size] } },
    [x],
    x.dtype,
  );
}

/** `alpha * x + y`. */
export function axpy(
  be: Backend,
  alpha: number | DeviceBuffer,
  x: DeviceBuffer,
  y: DeviceBuffer,
): DeviceBuffer {
  same("axpy", x, y);
  const inputs = typeof alpha === "number" ? [x, y] : [x, y, alpha];
  const body = ir.binary(
    "add",
    ir.binary("mul", scalar(alpha, 2), ir.load(0, [1])),
    ir.load(1, [1]),
  );
  return be.run({ shape: [x.size], inputs: inputs.length, body }, inputs, x.dtype);
}

/** `alpha * x`. */
export function scale(be: Backend, alpha: number | DeviceBuffer, x: DeviceBuffer): DeviceBuffer {
  const inputs = typeof alpha === "number" ? [x] : [x, alpha];
  const body = ir.binary("mul", scalar(alpha, 1), ir.load(0, [1]));
  return be.run({ shape: [x.size], inputs: inputs.length, body }, inputs, x.dtype);
}

/** `a / (b * b + c) ^ p`, element-wise: SGN's diagonal preconditioner. */
export function precond(
  be: Backend,
  a: DeviceBuffer,
  b: DeviceBuffer,
  c: number | DeviceBuffer,
  p: number,
): DeviceBuffer {
  same("precond", a, b);
  const inputs = typeof c === "number" ? [a, b] : [a, b, c];
  const bb = ir.load(1, [1]);
  const body = ir.binary(
    "div",
    ir.load(0, [1]),
    ir.binary("pow", ir.binary("add", ir.binary("mul", bb, bb), scalar(c, 2)), ir.constant(p)),
  );
  return be.run({ shape: [a.size], inputs: inputs.length, body }, inputs, a.dtype);
}

/** A buffer of `size` elements equal to `value`. */
export function fill(
  be: Backend,
  size: number,
  value: number,
  dtype: "float32" | "float64",
): DeviceBuffer {
  return be.run({ shape: [size], inputs: 0, body: ir.constant(value) }, [], dtype);
}
