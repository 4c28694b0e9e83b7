/**
 * Concatenation and splitting. A piece that is contiguous on both sides (every part of a split,
 * every part of a concatenation of whole buffers) is one copy command (runtime.ts's `copy`), not
 * a dispatch: on a GPU it is what a copy engine is for, on lavapipe a memcpy, and it needs no
 * kernel. Parts placed side by side in rows (`outer` > 1) are one map kernel of the IR each,
 * a contiguous load stored through a view of the output (codegen.ts's `dispatchKernelInto`).
 *
 * @module
 */

import { SgnError } from "../errors.ts";
import { contiguous, load } from "../kernel/ir.ts";
import { dispatchKernelInto } from "./codegen.ts";
import type { GpuBuffer, GpuRuntime } from "./runtime.ts";

/** Splits x into consecutive pieces of `sizes` elements: one copy command per piece. */
export function split(rt: GpuRuntime, x: GpuBuffer, sizes: readonly number[]): GpuBuffer[] {
  const total = sizes.reduce((s, n) => s + n, 0);
  if (total !== x.size) {
    throw new SgnError(`split: sizes add up to ${total}, the buffer has ${x.size}`);
  }
  let at = 0;
  return sizes.map((n) => {
    const part = rt.alloc(n);
    rt.copy(x, at, part, 0, n);
    at += n;
    return part;
  });
}

/** Places parts viewed as [outer, widths[i]] side by side: [outer, sum(widths)]. */
export function concat(
  rt: GpuRuntime,
  parts: readonly GpuBuffer[],
  outer: number,
  widths: readonly number[],
): GpuBuffer {
  if (parts.length !== widths.length) {
    throw new SgnError(`concat: ${parts.length} parts but ${widths.length} widths`);
  }
  parts.forEach((part, i) => {
    if (part.size !== outer * widths[i]) {
      throw new SgnError(
        `concat: part ${i} has ${part.size} elements, expected ${outer} x ${widths[i]}`,
      );
    }
  });
  const total = widths.reduce((s, w) => s + w, 0);
  const out = rt.alloc(outer * total);
  let col = 0;
  parts.forEach((part, i) => {
    const w = widths[i];
    if (outer === 1) rt.copy(part, 0, out, col, w);
    else if (part.size > 0) {
      const shape = [outer, w];
      const kernel = { shape, inputs: 1, body: load(0, contiguous(shape)) };
      dispatchKernelInto(rt, kernel, [part], out, { strides: [total, 1], offset: col });
    }
    col += w;
  });
  return out;
}
