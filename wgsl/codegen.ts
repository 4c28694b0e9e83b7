/**
 * The WGSL lowering of the kernel IR: one code generator, whose kernels take their head
 * (parameter block, bindings, entry point) from routine.ts's builder as every routine does, and
 * the helper functions a kernel's expressions use (pruned from prelude.ts). An element-wise kernel
 * runs one invocation per output element; a reduction runs one invocation per output when the
 * reduced extent is small, else a workgroup of {@link REDUCE_WG} per output with a tree in
 * workgroup memory. Shapes and strides are compiled in (the index arithmetic folds to constants);
 * constants travel in the uniform block, so one pipeline serves every value.
 *
 * @module
 */

import { SgnError } from "../errors.ts";
import {
  BINARY,
  collapse,
  constSlots,
  contiguous,
  type Expr,
  type Kernel,
  kernelKey,
  load,
  outputsOf,
  UNARY,
} from "../kernel/ir.ts";
import { KernelCache } from "../kernel/cache.ts";
import { type Entry, routineSource } from "./routine.ts";
import { type GpuBuffer, type GpuRuntime, grid, Params } from "./runtime.ts";

/** Invocations per workgroup of element-wise kernels and of thread-per-output reductions. */
export const MAP_WG = 64;
/** Invocations per workgroup of a workgroup-per-output reduction. */
export const REDUCE_WG = 256;
/** Reductions over more elements than this use a workgroup per output. */
const SERIAL_MAX = 64;
/** Constants a kernel may carry in its uniform block (15 vec4s after the 16-byte head). */
export const MAX_CONSTS = 60;

/** How a compiled kernel is dispatched. */
export interface KernelPlan {
  code: string;
  /** "map": one invocation per output; "group": one workgroup per output. */
  layout: "map" | "group";
  /** Elements of one output (the kernel's shape). */
  count: number;
  /** Outputs, one after the other in the output buffer. */
  outputs: number;
}

/** Plans by kernel structure; a miss collapses the kernel and generates its code. */
const plans = new KernelCache((kernel: Kernel): KernelPlan => {
  // The number of constants is structural: a kernel with too many never gets a plan.
  const { consts } = kernelKey(kernel, "float32");
  if (consts.length > MAX_CONSTS) {
    throw new SgnError(`a kernel carries ${consts.length} constants, more than ${MAX_CONSTS}`);
  }
  return generate(collapse(kernel));
});

/** The WGSL source and dispatch layout of a kernel (collapsed first), cached by structure. */
export function wgslKernel(kernel: Kernel): { plan: KernelPlan; consts: number[] } {
  const { value, consts } = plans.get(kernel, "float32");
  return { plan: value, consts };
}

/**
 * Records one kernel of the IR on `inputs` (bound after the output, in order) and returns its
 * new output buffer; `compiled` is the kernel's {@link wgslKernel} when the caller has it.
 */
export function dispatchKernel(
  rt: GpuRuntime,
  kernel: Kernel,
  inputs: readonly GpuBuffer[],
  compiled: { plan: KernelPlan; consts: number[] } = wgslKernel(kernel),
): GpuBuffer {
  const { plan, consts } = compiled;
  const out = rt.alloc(plan.count * plan.outputs);
  const map = plan.layout === "map";
  const [gx, gy] = grid(map ? Math.ceil(plan.count / MAP_WG) : plan.count);
  const params = new Params().u32(map ? gx * MAP_WG : gx, 0, 0, 0).f32(...consts);
  rt.dispatch(plan.code, params, [out, ...inputs], [gx, gy]);
  return out;
}

/** WGSL statements decomposing `flat` into `names` over `shape` (row-major). */
function decompose(flat: string, names: string[], shape: readonly number[]): string {
  const strides = contiguous(shape);
  return shape.map((d, i) => {
    const q = strides[i] === 1 ? flat : `(${flat} / ${strides[i]}u)`;
    return `let ${names[i]} = ${i === 0 ? q : `${q} % ${d}u`};`;
  }).join(" ");
}

/**
 * The flat index a load (or a store view) reads at the loop index named `idx`, in u32. A negative
 * stride or offset is added as its two's complement (`bitcast<u32>(-3i)`): u32 arithmetic wraps,
 * so an address inside the buffer comes out right, and one before it (a masked load: see
 * kernel/ir.ts) comes out huge, which robust buffer access keeps inside the binding.
 */
function indexText(l: Expr & { k: "load" }, idx: readonly string[]): string {
  const u32 = (v: number) => (v < 0 ? `bitcast<u32>(${v}i)` : `${v}u`);
  const terms = l.strides.map((s, i) => (s === 0 ? "" : s === 1 ? idx[i] : `${idx[i]} * ${u32(s)}`))
    .filter(Boolean);
  if (l.offset) terms.push(u32(l.offset));
  return terms.length ? terms.join(" + ") : "0u";
}

/**
 * An index leaf's value at the loop index named `idx`: its address in i32 (strides and the
 * offset may be negative), as f32.
 */
function indexValue(l: Expr & { k: "index" }, idx: readonly string[]): string {
  const terms = l.strides.map((s, i) => (s === 0 ? "" : `i32(${idx[i]}) * (${s})`))
    .filter(Boolean);
  return `f32(${[...terms, `(${l.offset})`].join(" + ")})`;
}

/**
 * The WGSL of a load (from the buffers `${prefix}0, ${prefix}1, ...`, or those `prefix` names)
 * or an index leaf at the loop index named `idx`.
 */
const leafAt =
  (prefix: string | ((i: number) => string), idx: readonly string[]) =>
  (l: Expr & { k: "load" | "index" }) => {
    if (l.k === "index") return indexValue(l, idx);
    const name = typeof prefix === "string" ? `${prefix}${l.input}` : prefix(l.input);
    return `${name}[${indexText(l, idx)}]`;
  };

/**
 * An expression emitter: `emit(e, out, leafAt, acc)` appends straight-line WGSL for `e` to `out`
 * and returns the name of its value (`leafAt` gives a load's or an index's text, `acc` names the
 * reduced value an epilogue reads). Constants take uniform slots in visiting order, which is
 * kernelKey's order, across every expression one emitter emits.
 */
function makeEmitter(params = "p") {
  let slot = 0;
  let tmp = 0;
  // Loads already bound, per list of statements (one scope): a value read twice is read once.
  const loaded = new WeakMap<string[], Map<string, string>>();
  /** Numbers the next constant `s` (see kernel/ir.ts, constSlots). */
  const at = (s: number) => {
    slot = s;
  };
  const emit = (
    e: Expr,
    out: string[],
    loadAt: (l: Expr & { k: "load" | "index" }) => string,
    acc = "acc",
  ): string => {
    const bind = (text: string) => {
      const t = `t${tmp++}`;
      out.push(`let ${t} = ${text};`);
      return t;
    };
    switch (e.k) {
      case "load":
      case "index": {
        const text = loadAt(e);
        let seen = loaded.get(out);
        if (!seen) loaded.set(out, seen = new Map());
        let t = seen.get(text);
        if (!t) seen.set(text, t = bind(text));
        return t;
      }
      case "const": {
        const j = slot++;
        return `${params}.c[${j >> 2}][${j & 3}]`;
      }
      case "acc":
        return acc;
      case "cast":
        return emit(e.x, out, loadAt, acc);
      case "unary":
        return bind(UNARY[e.op].wgsl.replace(/\bx\b/g, emit(e.x, out, loadAt, acc)));
      case "binary": {
        const a = emit(e.a, out, loadAt, acc);
        const b = emit(e.b, out, loadAt, acc);
        return bind(BINARY[e.op].wgsl.replace(/\b[ab]\b/g, (v) => (v === "a" ? a : b)));
      }
      case "where": {
        const c = emit(e.c, out, loadAt, acc);
        const a = emit(e.a, out, loadAt, acc);
        const b = emit(e.b, out, loadAt, acc);
        return bind(`select(${b}, ${a}, ${c} != 0.0)`);
      }
    }
  };
  return Object.assign(emit, { at });
}

/**
 * The module of a generated kernel, through the one routine head builder (routine.ts): the
 * block holds the grid's row stride and the constants; `out` is bound first, then the inputs
 * `in0, in1, ...`. Every input stays bound even where the body does not read it (automatic
 * layouts drop unused bindings, and the bind group would then not match).
 */
function kernelSource(inputs: number, entry: Entry, body: readonly string[], decls = ""): string {
  const ins = Array.from({ length: inputs }, (_, i) => ({ name: `in${i}` }));
  return routineSource({
    params: ["stride"],
    consts: true,
    storage: [{ name: "out", write: true }, ...ins],
    decls,
    entry,
    body: [...ins.map((b) => `_ = arrayLength(&${b.name});`), ...body].join("\n  "),
  });
}

function generate(kernel: Kernel): KernelPlan {
  const count = kernel.shape.reduce((a, b) => a * b, 1);
  const red = kernel.reduce;
  const outputs = outputsOf(kernel);
  // Constants are numbered in kernelStructure's order, whatever order the code emits them in.
  const slots = constSlots(kernel);
  const redSize = red ? red.shape.reduce((a, b) => a * b, 1) : 0;
  const outIdx = kernel.shape.map((_, i) => `o${i}`);
  const redIdx = (red?.shape ?? []).map((_, i) => `r${i}`);
  const emitter = makeEmitter();
  const emit = (e: Expr, out: string[], idx: string[]) => emitter(e, out, leafAt("in", idx));
  // Output j is stored `count` elements after output j - 1.
  const store = (j: number, v: string) => `out[i${j ? ` + ${j * count}u` : ""}] = ${v};`;
  // Module-scope declarations after the bindings (a group reduction's workgroup memory).
  const decls: string[] = [];
  const lines: string[] = [];
  // One invocation per output: the index math of map kernels and of serial reductions.
  const mapStart = [decompose("i", outIdx, kernel.shape)];
  let entry: Entry = { kind: "flat", wg: MAP_WG, count: `${count}u` };
  if (!red) {
    lines.push(...mapStart);
    const body: string[] = [];
    const vs = outputs.map((o, j) => (emitter.at(slots[j].body), emit(o.body, body, outIdx)));
    lines.push(...body, ...vs.map((v, j) => store(j, v)));
  } else {
    const group = redSize > SERIAL_MAX;
    // One accumulator (and argument) per output; a single output keeps the plain names.
    const one = outputs.length === 1;
    const acc = (j: number) => (one ? "acc" : `acc${j}`);
    const arg = (j: number) => (one ? "arg" : `arg${j}`);
    const sv = (j: number) => (one ? "sv" : `sv${j}`);
    const si = (j: number) => (one ? "si" : `si${j}`);
    const body: string[] = [];
    const vs = outputs.map((o, j) => (
      emitter.at(slots[j].body), emit(o.body, body, [...outIdx, ...redIdx])
    ));
    const loop = [
      decompose("r", redIdx, red.shape),
      ...body,
      ...outputs.map((o, j) =>
        o.op === "sum"
          ? `${acc(j)} += ${vs[j]};`
          : `if (takesMax(${acc(j)}, ${arg(j)}, ${vs[j]}, r)) { ${acc(j)} = ${vs[j]}; ${
            arg(j)
          } = r; }`
      ),
    ];
    const init = outputs.map((o, j) =>
      `var ${acc(j)} = 0.0; var ${arg(j)} = ${o.op === "sum" ? "0u" : "0xffffffffu"};`
    );
    if (group) {
      for (const j of outputs.keys()) {
        decls.push(
          `var<workgroup> ${sv(j)}: array<f32, ${REDUCE_WG}>;`,
          `var<workgroup> ${si(j)}: array<u32, ${REDUCE_WG}>;`,
        );
      }
      entry = { kind: "workgroup", wg: REDUCE_WG };
      lines.push(
        "let i = wid.x + wid.y * p.stride;",
        `let valid = i < ${count}u;`,
        decompose("i", outIdx, kernel.shape),
        ...init,
        `if (valid) { for (var r = lid; r < ${redSize}u; r += ${REDUCE_WG}u) {`,
        ...loop,
        "} }",
        ...outputs.map((_, j) => `${sv(j)}[lid] = ${acc(j)}; ${si(j)}[lid] = ${arg(j)};`),
        "workgroupBarrier();",
        `for (var s = ${REDUCE_WG / 2}u; s > 0u; s >>= 1u) {`,
        "  if (lid < s) {",
        ...outputs.map((o, j) => {
          const [v, x] = [sv(j), si(j)];
          return o.op === "sum"
            ? `    ${v}[lid] += ${v}[lid + s];`
            : `    if (takesMax(${v}[lid], ${x}[lid], ${v}[lid + s], ${x}[lid + s])) { ${v}[lid] = ${v}[lid + s]; ${x}[lid] = ${x}[lid + s]; }`;
        }),
        "  }",
        "  workgroupBarrier();",
        "}",
        "if (lid != 0u || !valid) { return; }",
        ...outputs.map((_, j) => `${acc(j)} = ${sv(j)}[0]; ${arg(j)} = ${si(j)}[0];`),
      );
    } else {
      lines.push(
        ...mapStart,
        ...init,
        `for (var r = 0u; r < ${redSize}u; r++) {`,
        ...loop,
        "}",
      );
    }
    for (const [j, o] of outputs.entries()) {
      const [a, g] = [acc(j), arg(j)];
      if (o.op === "argmax") lines.push(`${a} = f32(select(${g}, 0u, ${g} == 0xffffffffu));`);
      else if (o.op === "max") lines.push(`if (${g} == 0xffffffffu) { ${a} = -infF32(); }`);
    }
    for (const [j, o] of outputs.entries()) {
      if (!o.epilogue) {
        lines.push(store(j, acc(j)));
        continue;
      }
      const epi: string[] = [];
      emitter.at(slots[j].epilogue);
      const e = emitter(o.epilogue, epi, leafAt("in", outIdx), acc(j));
      lines.push(...epi, store(j, e));
    }
  }
  const code = kernelSource(kernel.inputs, entry, lines, decls.join("\n"));
  const layout: KernelPlan["layout"] = entry.kind === "workgroup" ? "group" : "map";
  return { code, layout, count, outputs: outputs.length };
}

/**
 * The module-scope names an epilogue function uses: its own name, its parameter block (whose
 * `c` holds its constants) and its inputs' storage buffers. A kernel of several parts
 * (routine.ts's `groupedSource`) gives each part its own.
 */
export interface EpilogueNames {
  readonly fn: string;
  readonly params: string;
  readonly input: (i: number) => string;
}

const EPILOGUE_NAMES: EpilogueNames = { fn: "epi", params: "p", input: (i) => `e${i}` };

/**
 * An epilogue as a WGSL function `epi(i, acc) -> f32` of the flat output index, for routines
 * that apply one in their store (matmul): its inputs bound from `binding0` on as `e0, e1, ...`,
 * its constants read from `p.c` starting at slot `slot0` (other names with `names`). A
 * product's operand prologue (kernel/backend.ts `Prologue`) is one too, called with acc 0. Returns the
 * declarations of the inputs' bindings, the function and the constants.
 */
export function epilogueSource(
  shape: readonly number[],
  body: Expr,
  inputs: number,
  binding0: number,
  names: EpilogueNames = EPILOGUE_NAMES,
  slot0 = 0,
): { decls: string; fn: string; consts: number[] } {
  const kernel = collapse({ shape, inputs, body });
  const { consts } = kernelKey(kernel, "float32");
  const idx = kernel.shape.map((_, i) => `o${i}`);
  const decls = Array.from(
    { length: inputs },
    (_, i) =>
      `@group(0) @binding(${binding0 + i}) var<storage, read> ${names.input(i)}: array<f32>;`,
  ).join("\n");
  const out: string[] = [];
  const emitter = makeEmitter(names.params);
  emitter.at(slot0);
  const emit = (e: Expr) => emitter(e, out, leafAt(names.input, idx));
  const v = emit(kernel.body);
  const fn = `fn ${names.fn}(i: u32, acc: f32) -> f32 {\n${decompose("i", idx, kernel.shape)}\n${
    out.join("\n")
  }\nreturn ${v};\n}`;
  return { decls, fn, consts };
}

// --- map kernels that store through a view -----------------------------------------------------

/** Where a kernel's output index lands in a larger buffer: an offset and a stride per dimension. */
export interface StoreView {
  readonly strides: readonly number[];
  readonly offset: number;
}

/**
 * Plans of map kernels that store through a view. The view travels as the epilogue of the kernel
 * (a load of the output by output index), so that the structural key covers it and collapse()
 * merges only the dimensions that the store steps through as one, as it does for every load.
 */
const viewPlans = new KernelCache((carrier: Kernel): KernelPlan => {
  const { consts } = kernelKey(carrier, "float32");
  if (consts.length > MAX_CONSTS) {
    throw new SgnError(`a kernel carries ${consts.length} constants, more than ${MAX_CONSTS}`);
  }
  const kernel = collapse(carrier);
  const count = kernel.shape.reduce((a, b) => a * b, 1);
  const idx = kernel.shape.map((_, i) => `o${i}`);
  const view = kernel.epilogue as Expr & { k: "load" };
  const lines: string[] = [];
  const v = makeEmitter()(kernel.body, lines, leafAt("in", idx));
  const code = kernelSource(kernel.inputs, { kind: "flat", wg: MAP_WG, count: `${count}u` }, [
    decompose("i", idx, kernel.shape),
    ...lines,
    `out[${indexText(view, idx)}] = ${v};`,
  ]);
  return { code, layout: "map", count, outputs: 1 };
});

/**
 * Records a map kernel of the IR (no reduction) whose value at output index `o` is stored at
 * `out[view.offset + sum of o[d] view.strides[d]]` instead of into a new buffer: a part of a
 * concatenation, or a transposition into a padded layout. Elements of `out` outside the view
 * keep their contents.
 */
export function dispatchKernelInto(
  rt: GpuRuntime,
  kernel: Kernel,
  inputs: readonly GpuBuffer[],
  out: GpuBuffer,
  view: StoreView,
): void {
  if (kernel.reduce || kernel.epilogue || view.strides.length !== kernel.shape.length) {
    throw new SgnError(
      "dispatchKernelInto: give a map kernel (no reduction) and one view stride per dimension",
    );
  }
  const last = kernel.shape.reduce((at, d, i) => at + (d - 1) * view.strides[i], view.offset);
  if (view.offset < 0 || view.strides.some((s) => s < 0) || last >= out.size) {
    throw new SgnError(
      `dispatchKernelInto: the view ${JSON.stringify(view)} of [${kernel.shape}] reaches ` +
        `element ${last} of an output of ${out.size} (or steps backwards)`,
    );
  }
  const carrier = { ...kernel, epilogue: load(kernel.inputs, view.strides, view.offset) };
  const { value: plan, consts } = viewPlans.get(carrier, "float32");
  const [gx, gy] = grid(Math.ceil(plan.count / MAP_WG));
  rt.dispatch(plan.code, new Params().u32(gx * MAP_WG).consts(consts), [out, ...inputs], [gx, gy]);
}
