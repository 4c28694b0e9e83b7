/**
 * The reference interpreter of the kernel IR: it walks the expression tree for every element, in
 * JavaScript doubles, and stores into the output's type (float32 rounds once, at the store).
 * Slow and plain on purpose: it is the oracle the compiled lowerings are checked against.
 *
 * @module
 */

import { sizeOf, type TypedArray } from "./shape.ts";
import { BINARY_FN, contiguous, type Expr, type Kernel, outputsOf, UNARY_FN } from "./ir.ts";

/** Evaluates `e` at the loop index `idx` (acc = the reduced value, in epilogues). */
function evaluate(
  e: Expr,
  idx: readonly number[],
  inputs: readonly TypedArray[],
  acc: number,
): number {
  switch (e.k) {
    case "load":
    case "index": {
      let at = e.offset;
      for (let d = 0; d < e.strides.length; d++) at += idx[d] * e.strides[d];
      return e.k === "index" ? at : inputs[e.input][at];
    }
    case "const":
      return e.value;
    case "acc":
      return acc;
    case "unary":
      return UNARY_FN[e.op](evaluate(e.x, idx, inputs, acc));
    case "cast": {
      const x = evaluate(e.x, idx, inputs, acc);
      return e.to === "float32" ? Math.fround(x) : x;
    }
    case "binary":
      return BINARY_FN[e.op](evaluate(e.a, idx, inputs, acc), evaluate(e.b, idx, inputs, acc));
    case "where":
      return evaluate(e.c, idx, inputs, acc) !== 0
        ? evaluate(e.a, idx, inputs, acc)
        : evaluate(e.b, idx, inputs, acc);
  }
}

/** The multi-index of flat position `i` in `shape`. */
function unflat(i: number, shape: readonly number[], strides: readonly number[]): number[] {
  return shape.map((d, k) => Math.floor(i / strides[k]) % d);
}

/**
 * Runs `kernel` on `inputs`, writing every element of `out` (each output of the kernel in turn,
 * {@link outputsOf}'s order).
 */
export function interpret(kernel: Kernel, inputs: readonly TypedArray[], out: TypedArray): void {
  const outStrides = contiguous(kernel.shape);
  const red = kernel.reduce;
  const redStrides = red ? contiguous(red.shape) : [];
  const redSize = red ? red.shape.reduce((a, b) => a * b, 1) : 0;
  const size = sizeOf(kernel.shape);
  outputsOf(kernel).forEach(({ body, op, epilogue }, j) => {
    for (let o = 0; o < size; o++) {
      const idx = unflat(o, kernel.shape, outStrides);
      if (!red || !op) {
        out[j * size + o] = evaluate(body, idx, inputs, 0);
        continue;
      }
      let acc = op === "sum" ? 0 : -Infinity;
      let arg = 0;
      for (let r = 0; r < redSize; r++) {
        const v = evaluate(body, [...idx, ...unflat(r, red.shape, redStrides)], inputs, 0);
        if (op === "sum") acc += v;
        // The first maximum wins, and the first NaN wins over everything.
        else if (r === 0 || (acc === acc && (v > acc || v !== v))) {
          acc = v;
          arg = r;
        }
      }
      if (op === "argmax") acc = arg;
      out[j * size + o] = epilogue ? evaluate(epilogue, idx, inputs, acc) : acc;
    }
  });
}
