/**
 * The max-pool backward as a kernel of the IR, where the windows tile the plane: a gather (each
 * input position keeps dy where its cell's window has its argmax) rather than the scatter the
 * routine's name suggests. WebGPU lowers the routine through it (wgsl/pool.ts), and the graph
 * builds it as a node of its own on backends that say so (`Backend.poolBackwardInIr`), so that
 * dy's element-wise work fuses into its loads and consumers into its epilogue.
 *
 * @module
 */

import type { Pool2dSpec } from "./backend.ts";
import { ACC, binary, constant, index, type Kernel, load, where } from "./ir.ts";

/**
 * Whether the windows tile the plane: they do not overlap, and the cells of stride size that hold
 * them cover it exactly (ho sh = h, wo sw = w), so that [n, c, h, w] is [n, c, ho, sh, wo, sw].
 */
export function tiles(s: Pool2dSpec, ho: number, wo: number): boolean {
  return s.strideH >= s.kh && s.strideW >= s.kw && ho * s.strideH === s.h &&
    wo * s.strideW === s.w;
}

/**
 * The max-pool backward as a kernel of the IR, for windows that {@link tiles} the plane: inputs
 * x and dy, output dx [n, c, h, w] as [n, c, ho, sh, wo, sw]. Each element reduces its cell's
 * window to the argmax (the forward's rule: the first NaN, else the first maximum) and keeps
 * dy where that is its own position r kw + t (and t < kw: a column of the cell right of the
 * window holds no position). A dy of -0 gives +0, as a sum into zeros does.
 */
export function poolBackwardKernel(s: Pool2dSpec, ho: number, wo: number): Kernel {
  const { c, h, w, kw } = s;
  const sh = s.strideH, sw = s.strideW;
  const x = load(0, [c * h * w, h * w, sh * w, 0, sw, 0, w, 1]);
  const dy = load(1, [c * ho * wo, ho * wo, wo, 0, 1, 0]);
  let keep = binary(
    "mul",
    binary("eq", ACC, index([0, 0, 0, kw, 0, 1])),
    binary("ne", dy, constant(0)),
  );
  if (kw < sw) keep = binary("mul", keep, binary("lt", index([0, 0, 0, 0, 0, 1]), constant(kw)));
  return {
    shape: [s.n, c, ho, sh, wo, sw],
    inputs: 2,
    body: x,
    reduce: { op: "argmax", shape: [s.kh, kw] },
    epilogue: where(keep, dy, constant(0)),
  };
}
