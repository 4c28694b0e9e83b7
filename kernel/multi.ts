/**
 * Several pending arrays computed by one kernel of several outputs (kernel/ir.ts,
 * `Kernel.more`): reductions over one reduced index space (CG's dot products and max|r|), or
 * element-wise maps of one shape (two vector updates). One pass reads the inputs once for all of
 * them, and on WebGPU it is one dispatch instead of one per array.
 *
 * {@link realizeTogether} takes the arrays, computes them into one buffer, and hands back each as
 * a view of its part of that buffer; kernels that read a view afterwards load it in place. A
 * product and the column sums of its second operand among them (a dense layer's weight and bias
 * gradients) are one product whose last row is the sums. {@link computeTogether} makes arrays
 * made together (a loss and its gradients) computed together when a reader first needs one.
 *
 * @module
 */

import {
  constant,
  contiguous,
  type Expr,
  type Kernel,
  type KernelOutput,
  load,
  MAX_OUTPUTS,
} from "./ir.ts";
import { Lazy, type Recipe } from "./lazy.ts";
import { realizing } from "./realization.ts";
import { MAX_INPUTS, readWindows } from "./recipe.ts";
import { sumsPairs } from "./matmul.ts";
import { type Fragment, join, reshape, slice } from "./graph.ts";
import { activeRecorder, type Launch, launch } from "./record.ts";
import { sizeOf } from "./shape.ts";

/** A pending array as one output of a multi-output kernel, its expressions over `srcs`. */
interface Part {
  x: Lazy;
  /** The reduced shape (a reduction), or undefined (a map). */
  red: readonly number[] | undefined;
  output: (exprs: Expr[]) => KernelOutput;
  fragments: Fragment[];
}

/** `x` as an output of a kernel of its shape: its expressions and how to put them back. */
function partOf(x: Lazy, r: Recipe & { kind: "map" | "reduce" }): Part {
  const of = (e: Expr): Fragment => ({ expr: e, srcs: r.srcs.map((s) => s.retain()) });
  if (r.kind === "map") {
    return { x, red: undefined, output: ([body]) => ({ body }), fragments: [of(r.expr)] };
  }
  const epilogue = r.epilogue;
  return {
    x,
    red: r.redShape,
    output: ([body, epi]) => ({ body, op: r.op, ...(epilogue ? { epilogue: epi } : {}) }),
    fragments: epilogue ? [of(r.body), of(epilogue)] : [of(r.body)],
  };
}

function release(parts: readonly Part[]): void {
  for (const p of parts) for (const f of p.fragments) for (const s of f.srcs) s.release();
}

const sameShape = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * Computes pending arrays with as few kernels as it can. Each array that was pending becomes a
 * view of its part of the buffer its kernel wrote (the same value; consumers load it in place,
 * and those that had fused its work read the view instead).
 *
 * Reductions of one output shape over one reduced shape run as one kernel of several outputs,
 * and element-wise maps of that shape join them (an output whose epilogue is the map, its
 * reduction of zeros unused); maps of a shape without such reductions run as one map kernel of
 * several outputs. An array that reads another one of the list still to compute, one that is
 * not a map or reduction, and whatever does not fit (at most {@link MAX_OUTPUTS} outputs and
 * {@link MAX_INPUTS} input buffers a kernel) is computed on its own afterwards.
 *
 * @example
 * ```ts
 * import { CpuBackend } from "../cpu/oracle.ts";
 * import { Lazy } from "./lazy.ts";
 * import { reduce, unary } from "./graph.ts";
 * import { realizeTogether } from "./multi.ts";
 * const cpu = new CpuBackend();
 * const x = Lazy.of(cpu, cpu.upload(new Float32Array([1, -4, 2])), [3]);
 * const a = unary("abs", x);
 * const [sum, max] = [reduce("sum", x, [0]), reduce("max", a, [0])];
 * realizeTogether([sum, max]); // one kernel of two outputs
 * console.log(await cpu.read(sum.realize()), await cpu.read(max.realize())); // [ -1 ] [ 4 ]
 * for (const l of [x, a, sum, max]) l.release();
 * ```
 */
export function realizeTogether(xs: readonly Lazy[]): void {
  // A product and the sums that fold into it (a dense layer's weight and bias gradients) are
  // computed as one product first; the rest are computed in the same realization.
  const pairs = sumsPairs(xs);
  const paired = new Set(pairs.flatMap((p) => [p.w, p.b]));
  const roots = [...xs.filter((x) => !x.computed && !paired.has(x)), ...pairs.map((p) => p.both)];
  realizing(roots, () => {
    splitRows(pairs);
    computeAll(xs);
  });
}

/**
 * Computes the routines that give the weight gradients `w` and their bias gradients `b` after
 * them (a product's last row, or a conv weight gradient's sums per filter) and makes each a view
 * of its part. Each is a view first, before any routine runs, where no consumer fused its work, so
 * that it no longer holds the routine's operands (an operand then held by products alone may be
 * computed in their loads: Backend.prologues); the others once their routine is computed. The
 * routines run last layer first, as a backward pass does: each layer's gradient needs those above
 * it, so the forward pass they share is computed whole before a lower layer's masks (fused
 * consumers of the same hosts as the forward's activations) would compute a host again.
 */
function splitRows(pairs: readonly { w: Lazy; b: Lazy; both: Lazy }[]): void {
  const done = new Set<Lazy>();
  const split = ({ w, b, both }: { w: Lazy; b: Lazy; both: Lazy }, all: boolean) => {
    // w's values, then b's: rows of a product, or a weight gradient and its sums.
    const flat = reshape(both, [both.size]);
    let at = 0;
    for (const x of [w, b]) {
      if (!done.has(x) && (all || !x.absorbed)) {
        const piece = slice(flat, [at], [x.size]);
        const view = reshape(piece, x.shape);
        x.replaceBy(view);
        for (const l of [piece, view]) l.release();
        done.add(x);
      }
      at += x.size;
    }
    flat.release();
  };
  try {
    for (const p of pairs) split(p, false);
    for (const p of [...pairs].reverse()) {
      p.both.realize();
      split(p, true);
    }
  } finally {
    for (const p of pairs) p.both.release();
  }
}

/**
 * Arrays made together (the results of one transformation: a loss and its gradients): the first
 * time a reader outside any computation needs one of them while it is pending, those of them
 * still pending and held are computed together ({@link realizeTogether}), in one realization.
 * Arrays a kernel reads as part of its own computation are computed as usual (a consumer that
 * fused a gradient into its kernel keeps doing so).
 *
 * @example
 * ```ts
 * import { CpuBackend } from "../cpu/oracle.ts";
 * import { Lazy } from "./lazy.ts";
 * import { reduce } from "./graph.ts";
 * import { computeTogether } from "./multi.ts";
 * const cpu = new CpuBackend();
 * const x = Lazy.of(cpu, cpu.upload(new Float32Array([1, -4, 2])), [3]);
 * const [sum, max] = [reduce("sum", x, [0]), reduce("max", x, [0])];
 * computeTogether([sum, max]);
 * // Reading one computes both, in one kernel of two outputs.
 * console.log(await cpu.read(sum.realize()), await cpu.read(max.realize())); // [ -1 ] [ 2 ]
 * for (const l of [x, sum, max]) l.release();
 * ```
 */
export function computeTogether(xs: readonly Lazy[]): void {
  const group = xs.filter((x) => !x.computed);
  if (group.length < 2) return;
  let done = false;
  const run = () => {
    if (done) return;
    done = true;
    realizeTogether(group.filter((x) => x.alive && !x.computed));
  };
  for (const x of group) x.onFirstRead(run);
}

function computeAll(xs: readonly Lazy[]): void {
  const pending = new Set(xs.filter((x) => !x.computed));
  // Held meanwhile: computing one may rebuild a consumer that fused a host (Lazy.#unfuse), whose
  // operands it then lets go, and one of those may be another of the arrays, held by nothing
  // else (an intermediate of the transformation).
  for (const x of pending) x.retain();
  try {
    computePending(pending);
  } finally {
    for (const x of pending) x.release();
  }
}

function computePending(pending: ReadonlySet<Lazy>): void {
  const alone: Lazy[] = [];
  const candidates: Part[] = [];
  // What the arrays read is computed first (that may compute some of them, a host they fused),
  // and windows of computed buffers are read in place, as realizing each would.
  // Computing one source may compute a host x fused, rebuilding x over fewer sources (and
  // releasing the others): its sources are read afresh after each.
  const next = (x: Lazy) =>
    x.recipe?.srcs.find((s) => !s.computed && s.recipe?.kind !== "map" && !pending.has(s));
  for (const x of pending) for (let s = next(x); s; s = next(x)) s.realize();
  for (const x of pending) {
    const r = x.recipe;
    if (x.computed) continue;
    if (r && r.kind !== "routine") readWindows(r);
    // Already a view of a computed buffer: nothing to do.
    if (r?.kind === "map" && r.srcs.every((s) => s.computed) && x.window()) continue;
    if (!r || r.kind === "routine" || r.srcs.some((s) => pending.has(s))) alone.push(x);
    else candidates.push(partOf(x, r));
  }
  // Reductions first, by (shape, reduced shape); then each map joins a reduction of its shape,
  // or the maps of its shape.
  const groups: Part[][] = [];
  const order = [...candidates.filter((p) => p.red), ...candidates.filter((p) => !p.red)];
  for (const p of order) {
    const g = groups.find((g) =>
      sameShape(g[0].x.shape, p.x.shape) &&
      (!p.red || (g[0].red !== undefined && sameShape(g[0].red, p.red)))
    );
    if (g) g.push(p);
    else groups.push([p]);
  }
  for (const g of groups) {
    for (const chunk of fit(g)) {
      if (chunk.length === 1) {
        release(chunk);
        alone.push(chunk[0].x);
      } else run(chunk);
    }
  }
  for (const x of alone) x.realize();
}

/** Splits a group into kernels that fit: the outputs and input buffers one kernel may have. */
function fit(group: Part[]): Part[][] {
  const chunks: Part[][] = [];
  let chunk: Part[] = [];
  let srcs = new Set<Lazy>();
  for (const p of group) {
    const mine = p.fragments.flatMap((f) => f.srcs);
    const joined = new Set([...srcs, ...mine]);
    if (chunk.length && (chunk.length === MAX_OUTPUTS || joined.size > MAX_INPUTS)) {
      chunks.push(chunk);
      chunk = [];
      srcs = new Set(mine);
    } else srcs = joined;
    chunk.push(p);
  }
  if (chunk.length) chunks.push(chunk);
  return chunks;
}

/** Runs one kernel for the parts (two or more); each part becomes a view of its output. */
function run(parts: Part[]): void {
  const first = parts[0].x;
  const shape = first.shape;
  const red = parts.find((p) => p.red)?.red;
  // With a reduction, a map is an output whose epilogue is the map, over a sum of zeros.
  const pieces = parts.map((p) =>
    red && !p.red ? [{ expr: constant(0), srcs: [] }, ...p.fragments] : p.fragments
  );
  const { exprs, srcs } = join(pieces.flat());
  let at = 0;
  const outputs = parts.map((p, i) => {
    const e = exprs.slice(at, at += pieces[i].length);
    return red && !p.red ? { body: e[0], op: "sum" as const, epilogue: e[1] } : p.output(e);
  });
  const [head, ...more] = outputs;
  const kernel: Kernel = {
    shape,
    inputs: srcs.length,
    body: head.body,
    ...(red ? { reduce: { op: head.op!, shape: red } } : {}),
    ...(head.epilogue ? { epilogue: head.epilogue } : {}),
    more,
  };
  let all: Lazy;
  try {
    all = runKernel(kernel, srcs, first);
  } finally {
    for (const s of srcs) s.release();
  }
  const size = sizeOf(shape);
  parts.forEach((p, j) => {
    const piece = slice(all, [j * size], [size]);
    const view = reshape(piece, shape);
    p.x.replaceBy(view);
    for (const l of [piece, view]) l.release();
  });
  all.release();
}

/**
 * Arrays of one shape side by side in one new array [n, ...shape]: computed together
 * ({@link realizeTogether}), then gathered by one map kernel of n outputs that reads each in
 * place (the scalars a step reads back: one kernel, where copying out each window would be one
 * each). Undefined, with nothing computed, when they differ in shape, backend or dtype or are
 * more than {@link MAX_OUTPUTS}; `concat` is for those.
 *
 * @example
 * ```ts
 * import { CpuBackend } from "../cpu/oracle.ts";
 * import { Lazy } from "./lazy.ts";
 * import { reduce } from "./graph.ts";
 * import { stack } from "./multi.ts";
 * const cpu = new CpuBackend();
 * const x = Lazy.of(cpu, cpu.upload(new Float32Array([1, -4, 2])), [3]);
 * const [sum, max] = [reduce("sum", x, [0]), reduce("max", x, [0])];
 * const both = stack([sum, max])!; // two kernels: the reductions, then the gather
 * console.log(both.shape, await cpu.read(both.realize())); // [ 2 ] [ -1, 2 ]
 * for (const l of [x, sum, max, both]) l.release();
 * ```
 */
export function stack(xs: readonly Lazy[]): Lazy | undefined {
  const first = xs[0];
  const alike = xs.every((x) =>
    sameShape(x.shape, first.shape) && x.backend === first.backend && x.dtype === first.dtype
  );
  if (!first || !alike || xs.length > MAX_OUTPUTS) return undefined;
  realizeTogether(xs);
  const { exprs, srcs } = join(xs.map((x): Fragment => {
    const r = x.recipe;
    return r?.kind === "map"
      ? { expr: r.expr, srcs: r.srcs.map((s) => s.retain()) }
      : { expr: load(0, contiguous(x.shape)), srcs: [x.retain()] };
  }));
  const shape = [xs.length, ...first.shape];
  try {
    // More buffers than one kernel binds: concat copies them instead.
    if (srcs.length > MAX_INPUTS) return undefined;
    const [body, ...more] = exprs;
    const kernel: Kernel = {
      shape: first.shape,
      inputs: srcs.length,
      body,
      ...(more.length ? { more: more.map((e) => ({ body: e })) } : {}),
    };
    const all = runKernel(kernel, srcs, first);
    const out = reshape(all, shape);
    all.release();
    return out;
  } finally {
    for (const s of srcs) s.release();
  }
}

/**
 * Launches `kernel` over the arrays `srcs` (computed first) as the graph launches its own (a
 * recording on notes it), giving its output as a flat computed array.
 */
function runKernel(kernel: Kernel, srcs: readonly Lazy[], like: Lazy): Lazy {
  const ins = srcs.map((s) => ({ buffer: s.realize(), holder: s }));
  const l: Launch = { kind: "kernel", kernel, dtype: like.dtype };
  const out = launch(like.backend, l, ins.map((x) => x.buffer));
  activeRecorder()?.note(l, ins, out);
  return Lazy.of(like.backend, out, [out.size]);
}
