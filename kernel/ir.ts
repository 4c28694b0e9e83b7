/**
 * The kernel IR: every element-wise map, reduction and layout copy is one {@link Kernel}, data
 * that each backend lowers (WGSL in `wgsl/codegen.ts`, the CPU interpreter in
 * `kernel/interpret.ts`, compiled JavaScript loops in `cpu/native.ts`).
 *
 * A kernel computes an output of `shape` (row-major, contiguous). Its `body` is an expression
 * over the loop index: the output index, followed by the reduced index when the kernel reduces.
 * Inputs are read by `load`s, each through a view of its buffer: an offset plus one stride per
 * loop dimension (a broadcast dimension has stride 0, a transpose permutes strides, a slice moves
 * the offset). An `index` leaf is the address such a view computes, as a number, with no buffer
 * read: what a kernel compares positions with (the max-pool gradient's "is this input the
 * window's argmax"). Routines build it; the lazy graph's fragments never hold one (their views
 * move loads only: {@link mapLoads}).
 *
 * A load may address past its buffer (a negative offset, a row beyond the last) only where a
 * `where` whose condition, made of index leaves, discards what it reads: the max-pool gather
 * reads the windows around each position, some beyond the map's edges. Every lowering reads
 * there without faulting: WGSL through robust buffer access (addresses wrap in u32), JavaScript
 * as a typed array's `undefined`, and WebAssembly declines kernels with index leaves.
 *
 * A reduction combines the body over its reduced dimensions; its `epilogue`, an expression over
 * the output index in which `acc` is the reduced value, then maps the result.
 *
 * A kernel may have several outputs of one shape ({@link Kernel.more}), written one after the other
 * into its one output buffer: one pass over the inputs gives them all (CG's dot products and
 * max|r| as one reduction kernel, two vector updates as one map kernel).
 *
 * Constants are not part of a kernel's structure: {@link kernelStructure} replaces them by slots,
 * so one compiled kernel serves every value (a scheduled learning rate does not compile anew).
 *
 * One table ({@link UNARY}, {@link BINARY}, in `kernel/op_table.ts`, re-exported here) defines
 * each element-wise op for every backend: its JavaScript expression and its WGSL expression, side
 * by side.
 *
 * @module
 */

import { type DType, sizeOf, stridesOf } from "./shape.ts";

/** A reduction: `sum`, `max` (NaN wins) or `argmax` (first index of the maximum, as a float). */
export type ReduceOp = "sum" | "max" | "argmax";

/** An expression of the IR. */
export type Expr =
  | {
    readonly k: "load";
    readonly input: number;
    readonly strides: readonly number[];
    readonly offset: number;
  }
  | { readonly k: "const"; readonly value: number }
  | {
    readonly k: "index";
    readonly strides: readonly number[];
    readonly offset: number;
  }
  | { readonly k: "unary"; readonly op: UnaryOp; readonly x: Expr }
  | { readonly k: "binary"; readonly op: BinaryOp; readonly a: Expr; readonly b: Expr }
  | { readonly k: "where"; readonly c: Expr; readonly a: Expr; readonly b: Expr }
  | { readonly k: "cast"; readonly to: DType; readonly x: Expr }
  | { readonly k: "acc" };

/** A kernel of the IR; see the module documentation. */
export interface Kernel {
  /** The output shape. */
  readonly shape: readonly number[];
  /** Number of input buffers (loads name them 0..inputs-1). */
  readonly inputs: number;
  /** The value at each loop index (output index, then the reduced index). */
  readonly body: Expr;
  /** The reduction, if any: its op and the shape of the reduced dimensions. */
  readonly reduce?: { readonly op: ReduceOp; readonly shape: readonly number[] };
  /** With a reduction: the output value from `acc` (the reduced value) and loads by output index. */
  readonly epilogue?: Expr;
  /**
   * More outputs of the same shape, over the same loop index (and reduced index space): output
   * j + 1 is written after output j in the one output buffer, `size` elements further on. Each
   * has its own body; in a reduction its own reduce op and epilogue too. At most
   * {@link MAX_OUTPUTS} outputs in all; see {@link outputsOf}.
   */
  readonly more?: readonly KernelOutput[];
}

/** Most outputs of one kernel (a WGSL reduction keeps 2 KiB per output in workgroup memory). */
export const MAX_OUTPUTS = 8;

/** One output of a kernel (a map's outputs have a body only). */
export interface KernelOutput {
  /** The value at each loop index. */
  readonly body: Expr;
  /** In a reduction: how this output reduces its body. */
  readonly op?: ReduceOp;
  /** In a reduction: the stored value from `acc` (this output's reduced value). */
  readonly epilogue?: Expr;
}

/**
 * Every output of a kernel in buffer order: the kernel's own (body, reduce op, epilogue) first,
 * then {@link Kernel.more}.
 *
 * @example
 * ```ts
 * import { type Kernel, load, outputsOf, outputSize, unary } from "./ir.ts";
 * const x = load(0, [1]);
 * const k: Kernel = { shape: [], inputs: 1, body: x, reduce: { op: "sum", shape: [8] } };
 * const both: Kernel = { ...k, more: [{ body: unary("abs", x), op: "max" }] };
 * console.log(outputsOf(both).map((o) => o.op), outputSize(both)); // [ "sum", "max" ] 2
 * ```
 */
export function outputsOf(kernel: Kernel): KernelOutput[] {
  const first: KernelOutput = {
    body: kernel.body,
    ...(kernel.reduce ? { op: kernel.reduce.op } : {}),
    ...(kernel.epilogue ? { epilogue: kernel.epilogue } : {}),
  };
  return [first, ...(kernel.more ?? [])];
}

/**
 * Each output of a kernel as a kernel of its own, reading the same inputs: what a lowering
 * without multi-output code runs, one output after the other, `size` elements apart.
 */
export function singleOutputs(kernel: Kernel): Kernel[] {
  return outputsOf(kernel).map((o) => ({
    shape: kernel.shape,
    inputs: kernel.inputs,
    body: o.body,
    ...(kernel.reduce && o.op ? { reduce: { op: o.op, shape: kernel.reduce.shape } } : {}),
    ...(o.epilogue ? { epilogue: o.epilogue } : {}),
  }));
}

/** Elements of a kernel's output buffer: its shape's size times its number of outputs. */
export function outputSize(kernel: Kernel): number {
  return sizeOf(kernel.shape) * (1 + (kernel.more?.length ?? 0));
}

// The op table lives in op_table.ts (one row per element-wise op); the IR's users import it here.
export {
  BINARY,
  BINARY_FN,
  BINARY_OPS,
  type BinaryOp,
  JS_LIB,
  jsFunction,
  type OpText,
  UNARY,
  UNARY_FN,
  UNARY_OPS,
  type UnaryOp,
} from "./op_table.ts";
import { BINARY, type BinaryOp, UNARY, type UnaryOp } from "./op_table.ts";

// --- building expressions ---------------------------------------------------------------------

/** A load of input `input` through (strides, offset). */
export const load = (input: number, strides: readonly number[], offset = 0): Expr => ({
  k: "load",
  input,
  strides,
  offset,
});
/**
 * The loop index through a view, `offset + sum of i[d] strides[d]`, as a number (strides may be
 * negative). See the module documentation.
 */
export const index = (strides: readonly number[], offset = 0): Expr => ({
  k: "index",
  strides,
  offset,
});
/** A constant. */
export const constant = (value: number): Expr => ({ k: "const", value });
/** A unary op. */
export const unary = (op: UnaryOp, x: Expr): Expr => ({ k: "unary", op, x });
/** A binary op. */
export const binary = (op: BinaryOp, a: Expr, b: Expr): Expr => ({ k: "binary", op, a, b });
/** `c != 0 ? a : b`. */
export const where = (c: Expr, a: Expr, b: Expr): Expr => ({ k: "where", c, a, b });
/** The reduced value, inside an epilogue. */
export const ACC: Expr = { k: "acc" };

/** A leaf that names a position: a load, an index, or `acc`. */
type Leaf = Expr & { k: "load" | "acc" | "index" };

/**
 * Rebuilds an expression bottom-up, with `fn` applied to every load (and `acc`). Index leaves
 * stay as they are: callers move loads from one buffer to another, which leaves the loop index
 * alone. A transformation of the loop index itself (collapse, splitReduction) moves them too.
 */
export function mapLoads(e: Expr, fn: (leaf: Expr & { k: "load" | "acc" }) => Expr): Expr {
  return mapLeaves(e, (l) => (l.k === "index" ? l : fn(l)));
}

/** Rebuilds an expression bottom-up, with `fn` applied to every leaf but constants. */
function mapLeaves(e: Expr, fn: (leaf: Leaf) => Expr): Expr {
  switch (e.k) {
    case "load":
    case "acc":
    case "index":
      return fn(e);
    case "const":
      return e;
    case "unary":
      return { k: "unary", op: e.op, x: mapLeaves(e.x, fn) };
    case "cast":
      return { k: "cast", to: e.to, x: mapLeaves(e.x, fn) };
    case "binary":
      return { k: "binary", op: e.op, a: mapLeaves(e.a, fn), b: mapLeaves(e.b, fn) };
    case "where":
      return { k: "where", c: mapLeaves(e.c, fn), a: mapLeaves(e.a, fn), b: mapLeaves(e.b, fn) };
  }
}

/** Calls `fn` on every node of an expression. */
export function walk(e: Expr, fn: (e: Expr) => void): void {
  fn(e);
  switch (e.k) {
    case "unary":
    case "cast":
      walk(e.x, fn);
      break;
    case "binary":
      walk(e.a, fn);
      walk(e.b, fn);
      break;
    case "where":
      walk(e.c, fn);
      walk(e.a, fn);
      walk(e.b, fn);
  }
}

/** Number of nodes in an expression (loads and constants count). */
export function exprSize(e: Expr): number {
  let n = 0;
  walk(e, () => n++);
  return n;
}

// --- structure and constants ------------------------------------------------------------------

/** Codes of the structural tape (see {@link kernelStructure}). */
const TAG = {
  load: 1,
  const: 2,
  acc: 3,
  unary: 4,
  binary: 5,
  where: 6,
  cast: 7,
  index: 8,
} as const;
const DTYPE_CODE: Readonly<Record<DType, number>> = { float32: 1, float64: 2 };
const UNARY_CODE = Object.fromEntries(Object.keys(UNARY).map((op, i) => [op, i])) as Readonly<
  Record<UnaryOp, number>
>;
const BINARY_CODE = Object.fromEntries(Object.keys(BINARY).map((op, i) => [op, i])) as Readonly<
  Record<BinaryOp, number>
>;
const REDUCE_CODE: Readonly<Record<ReduceOp, number>> = { sum: 1, max: 2, argmax: 3 };

/**
 * Writes the structure of a kernel for a dtype into `tape` from index 0 (every field that
 * shapes the generated code: dtype, shape, input count, each node's kind and op, each load's
 * input, strides and offset, each index's strides and offset, the reduction, the epilogue and the further outputs; constants as
 * slots) and pushes its constants onto `consts` in slot order (each output's body, then its
 * epilogue, outputs in buffer order: {@link constSlots}). Returns the tape's
 * length. Two kernels compile to the same code exactly when their tapes are equal: the encoding
 * is prefix-free (every list carries its length), so equal tapes mean equal fields. Numbers
 * only, written into a reused array, so a lookup builds no strings and, with a reused tape,
 * allocates nothing but the constants.
 *
 * @example
 * ```ts
 * import { binary, constant, kernelStructure, load } from "./ir.ts";
 * const k = { shape: [4], inputs: 1, body: binary("mul", load(0, [1]), constant(2)) };
 * const tape: number[] = [], consts: number[] = [];
 * const n = kernelStructure(k, "float32", tape, consts);
 * console.log(n > 0, consts); // true [ 2 ]
 * ```
 */
export function kernelStructure(
  kernel: Kernel,
  dtype: DType,
  tape: number[],
  consts: number[],
): number {
  let n = 0;
  const list = (xs: readonly number[]) => {
    tape[n++] = xs.length;
    for (let i = 0; i < xs.length; i++) tape[n++] = xs[i];
  };
  const expr = (e: Expr): void => {
    tape[n++] = TAG[e.k];
    switch (e.k) {
      case "load":
        tape[n++] = e.input;
        list(e.strides);
        tape[n++] = e.offset;
        return;
      case "index":
        tape[n++] = e.offset;
        list(e.strides);
        return;
      case "const":
        consts.push(e.value);
        return;
      case "acc":
        return;
      case "unary":
        tape[n++] = UNARY_CODE[e.op];
        return expr(e.x);
      case "cast":
        tape[n++] = DTYPE_CODE[e.to];
        return expr(e.x);
      case "binary":
        tape[n++] = BINARY_CODE[e.op];
        expr(e.a);
        return expr(e.b);
      case "where":
        expr(e.c);
        expr(e.a);
        return expr(e.b);
    }
  };
  const epilogue = (e: Expr | undefined) => {
    tape[n++] = e ? 1 : 0;
    if (e) expr(e);
  };
  tape[n++] = DTYPE_CODE[dtype];
  list(kernel.shape);
  tape[n++] = kernel.inputs;
  expr(kernel.body);
  if (kernel.reduce) {
    tape[n++] = REDUCE_CODE[kernel.reduce.op];
    list(kernel.reduce.shape);
  } else tape[n++] = 0;
  epilogue(kernel.epilogue);
  // Further outputs only when there are some, so a kernel of one output keeps its tape.
  if (kernel.more?.length) {
    tape[n++] = kernel.more.length;
    for (const o of kernel.more) {
      tape[n++] = o.op ? REDUCE_CODE[o.op] : 0;
      expr(o.body);
      epilogue(o.epilogue);
    }
  }
  return n;
}

/**
 * Where each output's constants start in a kernel's slot order ({@link kernelStructure}): its
 * body's first slot, then its epilogue's. Lowerings that emit every body before any epilogue
 * (a reduction's loop, then its stores) number constants from these.
 */
export function constSlots(kernel: Kernel): { body: number; epilogue: number }[] {
  let slot = 0;
  const count = (e: Expr | undefined) => {
    let n = 0;
    if (e) walk(e, (x) => x.k === "const" && n++);
    return n;
  };
  return outputsOf(kernel).map((o) => {
    const body = slot;
    slot += count(o.body);
    const epilogue = slot;
    slot += count(o.epilogue);
    return { body, epilogue };
  });
}

/**
 * The structural key of a kernel (its {@link kernelStructure} as text) and its constants in slot
 * order: kernels with equal keys compile to the same code. Backends look kernels up through
 * `kernel/cache.ts`, which compares the numbers without building this string.
 */
export function kernelKey(kernel: Kernel, dtype: DType): { key: string; consts: number[] } {
  const tape: number[] = [];
  const consts: number[] = [];
  tape.length = kernelStructure(kernel, dtype, tape, consts);
  return { key: tape.join(","), consts };
}

// --- views ------------------------------------------------------------------------------------

/** Row-major strides (one definition: shape.ts's `stridesOf`). */
export const contiguous: (shape: readonly number[]) => number[] = stridesOf;

/**
 * The strides that read a view of `shape` with `strides` as `newShape` (same element count), or
 * undefined when no strides can (merging dimensions that are not contiguous in memory).
 */
export function reshapeStrides(
  shape: readonly number[],
  strides: readonly number[],
  newShape: readonly number[],
): number[] | undefined {
  if (shape.some((d) => d === 0)) return contiguous(newShape);
  // Drop size-1 dimensions, then walk both shapes, matching groups of equal element counts.
  const dims: [number, number][] = [];
  shape.forEach((d, i) => d !== 1 && dims.push([d, strides[i]]));
  const out = new Array<number>(newShape.length).fill(0);
  let i = 0;
  let j = 0;
  while (j < newShape.length || i < dims.length) {
    if (j < newShape.length && newShape[j] === 1) {
      j++;
      continue;
    }
    if (i >= dims.length || j >= newShape.length) return undefined;
    // Take old dims [i, i2) and new dims [j, j2) of equal product.
    let pOld = dims[i][0];
    let pNew = newShape[j];
    let i2 = i + 1;
    let j2 = j + 1;
    while (pOld !== pNew) {
      if (pOld < pNew) {
        if (i2 >= dims.length) return undefined;
        pOld *= dims[i2++][0];
      } else {
        if (j2 >= newShape.length) return undefined;
        pNew *= newShape[j2++];
      }
    }
    // The old group must be contiguous among itself to be re-split.
    for (let a = i; a < i2 - 1; a++) {
      if (dims[a][1] !== dims[a + 1][1] * dims[a + 1][0]) return undefined;
    }
    let s = dims[i2 - 1][1];
    for (let b = j2 - 1; b >= j; b--) {
      out[b] = newShape[b] === 1 ? 0 : s;
      s *= newShape[b];
    }
    i = i2;
    j = j2;
  }
  return out;
}

/**
 * The same kernel over as few loop dimensions as possible: size-1 dimensions dropped, and
 * neighbours merged where every load (and the contiguous output) steps through them as one.
 * Lowerings work on the result, so a contiguous map runs as one flat loop.
 */
export function collapse(kernel: Kernel): Kernel {
  const rankOut = kernel.shape.length;
  // Index leaves step through the loop like loads: merged dimensions must keep them affine.
  const body: (Expr & { k: "load" | "index" })[] = [];
  const epi: (Expr & { k: "load" | "index" })[] = [];
  const views = (e: Expr): e is Expr & { k: "load" | "index" } => e.k === "load" || e.k === "index";
  for (const o of outputsOf(kernel)) {
    walk(o.body, (e) => views(e) && body.push(e));
    if (o.epilogue) walk(o.epilogue, (e) => views(e) && epi.push(e));
  }
  const plan = (
    shape: readonly number[],
    loads: readonly (readonly number[])[],
  ): { shape: number[]; groups: number[][] } => {
    const out: number[] = [];
    const groups: number[][] = [];
    for (let d = 0; d < shape.length; d++) {
      if (shape[d] === 1) continue;
      const last = groups.at(-1);
      const prev = last?.at(-1);
      if (
        last && prev !== undefined &&
        loads.every((s) => s[prev] === s[d] * shape[d])
      ) {
        last.push(d);
        out[out.length - 1] *= shape[d];
      } else {
        groups.push([d]);
        out.push(shape[d]);
      }
    }
    return { shape: out, groups };
  };
  const outStrides = contiguous(kernel.shape);
  const o = plan(kernel.shape, [
    outStrides,
    ...body.map((l) => l.strides.slice(0, rankOut)),
    ...epi.map((l) => l.strides),
  ]);
  const red = kernel.reduce
    ? plan(kernel.reduce.shape, body.map((l) => l.strides.slice(rankOut)))
    : undefined;
  const pick = (strides: readonly number[], groups: number[][], base: number) =>
    groups.map((g) => strides[base + g[g.length - 1]]);
  const remap = (withRed: boolean) => (leaf: Leaf): Expr =>
    leaf.k === "acc" ? leaf : {
      ...leaf,
      strides: [
        ...pick(leaf.strides, o.groups, 0),
        ...(withRed && red ? pick(leaf.strides, red.groups, rankOut) : []),
      ],
    };
  return {
    shape: o.shape,
    inputs: kernel.inputs,
    body: mapLeaves(kernel.body, remap(true)),
    ...(kernel.reduce && red ? { reduce: { op: kernel.reduce.op, shape: red.shape } } : {}),
    ...(kernel.epilogue ? { epilogue: mapLeaves(kernel.epilogue, remap(false)) } : {}),
    ...(kernel.more
      ? {
        more: kernel.more.map((o) => ({
          ...o,
          body: mapLeaves(o.body, remap(true)),
          ...(o.epilogue ? { epilogue: mapLeaves(o.epilogue, remap(false)) } : {}),
        })),
      }
      : {}),
  };
}

/**
 * A routine's epilogue as a kernel of its own: `acc` becomes a contiguous load of one more input
 * (the routine's raw result, passed last). For backends whose routine cannot apply it in place.
 */
export function epilogueKernel(shape: readonly number[], body: Expr, inputs: number): Kernel {
  const raw = load(inputs, contiguous(shape));
  return { shape, inputs: inputs + 1, body: mapLoads(body, (l) => (l.k === "acc" ? raw : l)) };
}

/**
 * A reduction with few outputs and a long reduced extent, as two kernels with more parallel
 * work: the first reduces `parts` chunks of the first reduced dimension to partial results
 * [...shape, parts] (per output, one after the other), the second combines the parts (and
 * applies the epilogues). The second reads the partials as one more input, after the original
 * ones. Undefined when the kernel does not split that way (argmax, or no divisor of the first
 * reduced dimension fits).
 */
export function splitReduction(kernel: Kernel, parts: number): [Kernel, Kernel] | undefined {
  const flat = collapse(kernel);
  const red = flat.reduce;
  const outputs = outputsOf(flat);
  if (!red || outputs.some((o) => o.op === "argmax") || red.shape.length === 0) return undefined;
  const r0 = red.shape[0];
  let s = parts;
  while (s > 1 && r0 % s !== 0) s--;
  if (s < 2) return undefined;
  const rank = flat.shape.length;
  const chunked = (e: Expr) =>
    mapLeaves(e, (l) => {
      if (l.k === "acc") return l;
      const st = l.strides;
      return {
        ...l,
        strides: [...st.slice(0, rank), st[rank] * (r0 / s), st[rank], ...st.slice(rank + 1)],
      };
    });
  const first: Kernel = {
    shape: [...flat.shape, s],
    inputs: flat.inputs,
    body: chunked(flat.body),
    reduce: { op: red.op, shape: [r0 / s, ...red.shape.slice(1)] },
    ...(flat.more ? { more: flat.more.map((o) => ({ op: o.op, body: chunked(o.body) })) } : {}),
  };
  // Output j's partials start j * size * s elements into the first kernel's buffer.
  const partials = (j: number) =>
    load(flat.inputs, [...contiguous([...flat.shape, s])], j * sizeOf(flat.shape) * s);
  const second: Kernel = {
    shape: flat.shape,
    inputs: flat.inputs + 1,
    body: partials(0),
    reduce: { op: red.op, shape: [s] },
    ...(flat.epilogue ? { epilogue: flat.epilogue } : {}),
    ...(flat.more ? { more: flat.more.map((o, j) => ({ ...o, body: partials(j + 1) })) } : {}),
  };
  return [first, second];
}
