/**
 * The WebAssembly SIMD lowering of the kernel IR: a kernel (collapsed first, as in
 * `cpu/compile.ts`) becomes one function over a shared memory, `(in0, ..., out, c0, ...)`, with
 * the inputs and the output as byte addresses and the constants as float64 parameters (so one
 * compiled module per structural key serves every constant value).
 *
 * Loops run over the collapsed dimensions with one address per distinct load and loop level,
 * advanced by its strides. Arithmetic is float64 in two lanes (f64x2) for both dtypes, as in the
 * JavaScript loops: float32 inputs are promoted as they load and results rounded once at the
 * store, so a float32 kernel gives the loops' value (no intermediate float32 rounding or
 * overflow), save exp, log, tanh, sigmoid and softplus, which are `cpu/wasm/math.ts`'s float32
 * functions (of the argument rounded to float32; errors stated there), and the order of partial
 * sums below. A float64 kernel gives the loops' (and the float64 oracle's) bits: exp, log, tanh,
 * softplus, erf and pow are the op table's own functions, imported (cpu/wasm/imports.ts), sigmoid
 * the table's formula on that exp, and its sums run in the loops' order. Which path runs a
 * float64 kernel (the arena or the JavaScript heap, a kernel of several outputs split or not)
 * then never changes a result.
 * - Float32 maps whose float32 evaluation is provably the same ({@link float32Exact}: every
 *   arithmetic result rounded once, by the store or as a math function's argument, e.g.
 *   sigmoid(x + b), relu(x) * y) run in four float32 lanes instead, the math functions inline.
 * - Maps: the innermost output dimension (contiguous in the output) runs two outputs a step; a
 *   load with stride 1 there is one vector load, stride 0 a splat (hoisted out of the loop), any
 *   other stride two scalar loads into lanes. A last odd output runs alone in lane 0.
 * - Reductions: two neighbouring outputs reduce side by side, each lane in the JavaScript loops'
 *   order, so sums, max and argmax (first index, NaN wins) are exactly theirs. A float32 sum whose
 *   loads have stride 0 or 1 along the innermost reduced dimension, when the output's innermost
 *   dimension does not vectorize that way, instead runs two reduced elements a step into two
 *   partial sums (added up at the end: another order of addition than the loops', in float64,
 *   about twice as fast on a long dot product; a float64 sum keeps the loops' order).
 * - Epilogues run on the two results (the reduced value in float64, as in the loops), loads by
 *   output index as in maps.
 *
 * Without a vector form, a kernel has no WebAssembly function ({@link wasmSupport} says why) and
 * runs as compiled JavaScript loops: that is only a kernel of several outputs, which the native
 * backend runs here one output at a time. erf and pow (in either dtype) call the imported
 * functions lane by lane.
 *
 * Here: the compiled kernels and their caches; the loops are cpu/wasm/loops.ts, the expressions
 * cpu/wasm/vector_expr.ts.
 *
 * @example
 * ```ts
 * import { compileWasmKernel } from "./codegen.ts";
 * import * as ir from "../../kernel/ir.ts";
 * const memory = new WebAssembly.Memory({ initial: 1 });
 * const k = ir.unary("exp", ir.load(0, [1]));
 * const c = compileWasmKernel({ shape: [4], inputs: 1, body: k }, "float32", memory)!;
 * const view = new Float32Array(memory.buffer);
 * view.set([0, 1, 2, 3]);
 * c.run([0], 16, c.consts);
 * console.log(view.slice(4, 8)); // exp of 0..3
 * ```
 *
 * @module
 */

import type { DType } from "../../kernel/shape.ts";
import { collapse, type Expr, type Kernel, kernelKey, walk } from "../../kernel/ir.ts";
import { MathFns } from "./math.ts";
import { IMPORT_MODULE, IMPORTS, importsOf } from "./imports.ts";
import { WasmModule } from "./module.ts";
import { Gen } from "./loops.ts";
import { MATH } from "./vector_expr.ts";

/** A compiled kernel: byte addresses of the inputs and the output, and the constants. */
export interface WasmKernel {
  /** Runs the kernel. */
  run(inputs: readonly number[], out: number, consts: readonly number[]): void;
  /** The kernel's constants in slot order (for `run`). */
  consts: number[];
  /** The function `run` calls, `(in0, ..., out, c0, ...)` (for callers that hold its arguments). */
  fn: (...args: number[]) => void;
}

/** Undefined when the kernel has a WebAssembly form (in either dtype), else why not. */
export function wasmSupport(kernel: Kernel): string | undefined {
  let why: string | undefined;
  const check = (e: Expr) => {
    if (e.k === "index") why ??= "an index leaf has no vector form";
  };
  walk(kernel.body, check);
  if (kernel.epilogue) walk(kernel.epilogue, check);
  // Several outputs: each runs as a kernel of its own (kernel/ir.ts, singleOutputs).
  if (kernel.more?.length) why ??= "a kernel of several outputs has no single function";
  return why;
}

const modules = new Map<string, WebAssembly.Module | null>();
const instances = new WeakMap<WebAssembly.Memory, Map<string, Omit<WasmKernel, "consts">>>();

/**
 * The WebAssembly function of a kernel for a dtype over `memory`, cached by structure (the
 * module) and memory (its instance); undefined when the kernel has no vector form.
 */
export function compileWasmKernel(
  kernel: Kernel,
  dtype: DType,
  memory: WebAssembly.Memory,
): WasmKernel | undefined {
  const flat = collapse(kernel);
  const { key: structure, consts } = kernelKey(flat, dtype);
  const lanes4 = dtype === "float32" &&
    float32Exact(flat, consts.every((c) => c === Math.fround(c) || c !== c));
  const key = lanes4 ? `${structure}|f32x4` : structure;
  let perMemory = instances.get(memory);
  if (!perMemory) instances.set(memory, perMemory = new Map());
  const hit = perMemory.get(key);
  if (hit) return { run: hit.run, fn: hit.fn, consts };
  let mod = modules.get(key);
  if (mod === undefined) {
    mod = wasmSupport(flat) ? null : new WebAssembly.Module(kernelModule(flat, dtype, lanes4));
    modules.set(key, mod);
  }
  if (!mod) return undefined;
  const inst = new WebAssembly.Instance(mod, { env: { memory }, [IMPORT_MODULE]: IMPORTS });
  const fn = inst.exports.kernel as (...args: number[]) => void;
  const run = (inputs: readonly number[], out: number, c: readonly number[]) =>
    fn(...inputs, out, ...c);
  perMemory.set(key, { run, fn });
  return { run, fn, consts };
}

/** The WebAssembly module of a kernel (for tests and debugging). */
export function wasmKernelBytes(kernel: Kernel, dtype: DType): Uint8Array<ArrayBuffer> {
  return kernelModule(collapse(kernel), dtype, false);
}

const EXACT_UNARY = new Set(["neg", "abs", "relu", "sign", "step"]);
const ROUNDED_UNARY = new Set(["square", "sqrt", "reciprocal"]);
const ROUNDED_BINARY = new Set(["add", "sub", "mul", "div"]);

/**
 * Whether a float32 map computes the same in float32 lanes as in float64 (then rounded): its
 * value must be `rounded` (one correctly rounded +, -, *, /, sqrt of exact operands, or exact),
 * every operand of an arithmetic op, comparison, max, min and where exact (a float32 value:
 * a load, a constant that is a float32 number, an exact op of exact operands, a math function
 * of a rounded argument, which the float64 path rounds to float32 as well).
 */
export function float32Exact(kernel: Kernel, constsAreFloat32: boolean): boolean {
  if (kernel.reduce) return false;
  const exact = (e: Expr): boolean => {
    switch (e.k) {
      case "load":
        return true;
      case "const":
        return constsAreFloat32;
      case "acc":
      case "index":
        return false;
      case "cast":
        return e.to === "float32" ? rounded(e.x) : exact(e.x);
      case "unary":
        if (MATH.includes(e.op)) return rounded(e.x);
        return EXACT_UNARY.has(e.op) && exact(e.x);
      case "binary":
        return !ROUNDED_BINARY.has(e.op) && e.op !== "pow" && exact(e.a) && exact(e.b);
      case "where":
        return exact(e.c) && exact(e.a) && exact(e.b);
    }
  };
  const rounded = (e: Expr): boolean => {
    if (exact(e)) return true;
    if (e.k === "cast" && e.to === "float64") return rounded(e.x);
    if (e.k === "unary") return ROUNDED_UNARY.has(e.op) && exact(e.x);
    if (e.k === "binary") return ROUNDED_BINARY.has(e.op) && exact(e.a) && exact(e.b);
    return false;
  };
  return rounded(kernel.body);
}

/** The module of a collapsed kernel: one exported function `kernel`. */
function kernelModule(kernel: Kernel, dtype: DType, lanes4: boolean): Uint8Array<ArrayBuffer> {
  const m = new WasmModule().importMemory("env", "memory");
  // Imported functions first: they precede the module's own in the function index space.
  const imports = new Map(
    importsOf(kernel, dtype, lanes4).map((op) => [
      op,
      m.importFunc(IMPORT_MODULE, op, op === "pow" ? ["f64", "f64"] : ["f64"], ["f64"]),
    ]),
  );
  const lib = new MathFns(m);
  const nConsts = kernelKey(kernel, dtype).consts.length;
  const params = [
    ...new Array<"i32">(kernel.inputs + 1).fill("i32"),
    ...new Array<"f64">(nConsts).fill("f64"),
  ];
  m.func(
    params,
    [],
    (f) => new Gen(kernel, dtype, f, lib, imports, nConsts, lanes4).emit(),
    "kernel",
  );
  return m.bytes();
}
