/**
 * The routines of the graph: the ops the IR does not write as one expression (matrix products,
 * the convolutions and their gradients, max pooling and its gradient, softmax, concatenation).
 * Each is data, a {@link Routine}: its op and its spec, so that the lazy graph can see it, fuse
 * element-wise consumers into it as its epilogue, record it and replay it. {@link runRoutine}
 * lowers one on a backend, as `Backend.run` does a kernel of the IR.
 *
 * @module
 */

import type {
  Backend,
  Conv2dSpec,
  DeviceBuffer,
  Epilogue,
  MatmulCall,
  MatmulSpec,
  Pool2dSpec,
  Prologue,
} from "./backend.ts";

/**
 * A routine node of the graph. Operands, in order: matmul (a, b); conv2d (x, w); conv2dInputGrad
 * (dy, w); conv2dWeightGrad (x, dy); maxPool2d (x, or x and the values to pick); maxPool2dBackward
 * (x, dy); softmax (x); concat (the parts).
 */
export type Routine =
  | { readonly op: "matmul"; readonly spec: MatmulSpec }
  | { readonly op: "conv2d"; readonly spec: Conv2dSpec }
  | { readonly op: "conv2dInputGrad"; readonly spec: Conv2dSpec }
  | { readonly op: "conv2dWeightGrad"; readonly spec: Conv2dSpec }
  | { readonly op: "maxPool2d"; readonly spec: Pool2dSpec }
  | { readonly op: "maxPool2dBackward"; readonly spec: Pool2dSpec }
  | { readonly op: "softmax"; readonly rows: number; readonly cols: number; readonly log: boolean }
  | { readonly op: "concat"; readonly outer: number; readonly widths: readonly number[] };

/** A routine's name. */
export type RoutineOp = Routine["op"];

/**
 * What the graph may do around each routine: `fusable`, it applies an epilogue itself, so
 * element-wise consumers fuse into it; `windows`, the operands (by position) it reads at an
 * offset, so that a slice of a larger buffer is passed in place (a product's two operands, a
 * convolution's weights: a layer's part of a flat parameter vector or of CG's direction).
 */
export const ROUTINES: Readonly<
  Record<RoutineOp, { readonly fusable: boolean; readonly windows: readonly number[] }>
> = {
  matmul: { fusable: true, windows: [0, 1] },
  conv2d: { fusable: true, windows: [1] },
  conv2dInputGrad: { fusable: false, windows: [1] },
  conv2dWeightGrad: { fusable: false, windows: [] },
  maxPool2d: { fusable: false, windows: [] },
  maxPool2dBackward: { fusable: false, windows: [] },
  softmax: { fusable: false, windows: [] },
  concat: { fusable: false, windows: [] },
};

/**
 * Whether `x` may be passed to routine `r` as a window: every position it takes among `args` is
 * one the routine reads at an offset ({@link ROUTINES}).
 */
export function passedAsWindow(r: Routine, args: readonly unknown[], x: unknown): boolean {
  const windows = ROUTINES[r.op].windows;
  let seen = false;
  for (let i = 0; i < args.length; i++) {
    if (args[i] !== x) continue;
    if (!windows.includes(i)) return false;
    seen = true;
  }
  return seen;
}

/**
 * Most products run together in one launch (`Backend.matmuls`), by the lazy graph and by
 * replays. Pairs: a dense layer's backward pass is a pair (its weight and input gradients), and
 * every distinct group is a pipeline of its own, compiled once (each part a full product kernel,
 * so slow to compile on a software adapter): groups of any size made the pipelines of a training
 * run many (the line search's speculative forward passes come in twos, threes and fours).
 */
export const MAX_TOGETHER = 2;

/**
 * Runs a routine on `backend` over its operands' buffers, with its epilogue (fusable routines)
 * and the operands' offsets (routines that take windows), giving a new buffer.
 *
 * @example
 * ```ts
 * import { CpuBackend } from "../cpu/oracle.ts";
 * import { runRoutine } from "./routines.ts";
 * const be = new CpuBackend();
 * const a = be.upload(new Float64Array([1, 2, 3, 4]));
 * const out = runRoutine(be, { op: "matmul", spec: { m: 2, k: 2, n: 2 } }, [a, a]);
 * console.log(await be.read(out)); // [7, 10, 15, 22]
 * ```
 */
export function runRoutine(
  backend: Backend,
  r: Routine,
  bufs: readonly DeviceBuffer[],
  epilogue?: Epilogue,
  offsets?: readonly number[],
): DeviceBuffer {
  const [a, b] = bufs;
  switch (r.op) {
    case "matmul":
      return backend.matmul(a, b, matmulSpecAt(r.spec, offsets), epilogue);
    case "conv2d":
      return backend.conv2d(a, b, convSpec(r.spec, offsets), epilogue);
    case "conv2dInputGrad":
      return backend.conv2dInputGrad(a, b, convSpec(r.spec, offsets));
    case "conv2dWeightGrad":
      return backend.conv2dWeightGrad(a, b, r.spec);
    case "maxPool2d":
      return backend.maxPool2d(a, r.spec, b);
    case "maxPool2dBackward":
      return backend.maxPool2dBackward(a, b, r.spec);
    case "softmax":
      return backend.softmax(a, r.rows, r.cols, r.log);
    case "concat":
      return backend.concat(bufs, r.outer, r.widths);
  }
}

/** A convolution's spec with its weights' offset (the second operand's), when it is a window. */
function convSpec(spec: Conv2dSpec, offsets?: readonly number[]): Conv2dSpec {
  return offsets ? { ...spec, offsetW: offsets[1] } : spec;
}

/**
 * A product's call over its operands' buffers (a, b), its epilogue and the operands' offsets
 * (`Backend.matmul`'s arguments, or one item of `Backend.matmuls`).
 */
export function matmulCall(
  spec: MatmulSpec,
  [a, b]: readonly (DeviceBuffer | Prologue)[],
  epilogue?: Epilogue,
  offsets?: readonly number[],
): MatmulCall {
  return { a, b, spec: matmulSpecAt(spec, offsets), ...(epilogue ? { epilogue } : {}) };
}

/** A product's spec with its operands' offsets (when they are windows). */
function matmulSpecAt(spec: MatmulSpec, offsets?: readonly number[]): MatmulSpec {
  return offsets ? { ...spec, offsetA: offsets[0], offsetB: offsets[1] } : spec;
}
