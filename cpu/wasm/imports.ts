/**
 * The scalar functions a WebAssembly kernel imports for the ops it computes in float64 lanes and
 * that have no exact vector form: exp, log, tanh, softplus, erf and pow, each the very function
 * that the JavaScript loops (cpu/compile.ts) and the float64 oracle (kernel/interpret.ts) call for
 * that op (from the op table of kernel/ir.ts), so that a float64 kernel gives the same bits
 * whichever of the native paths runs it. sigmoid is built in the kernel from the imported exp
 * (cpu/wasm/math.ts, `sigmoidBody`: the table's formula, operation for operation).
 *
 * Where the table's text is `Math.f(x)` (or `Math.f(a, b)`) the import is `Math.f` itself, which
 * V8 may call from WebAssembly without entering JavaScript. Measured on a loaded 2-core machine,
 * per float64 value over 2^20 values: exp 7.1 ns imported (3.6 ns as the former f64x2
 * polynomial, 7.0 ns in a JavaScript loop), log 14.5 (6.1, 10.8), tanh 37 (7.0, 19), sigmoid
 * from the imported exp about 8 (4.9, 10.2): float64 pays for being the oracle's bits; float32
 * kernels keep cpu/wasm/math.ts's float32 functions.
 *
 * @example
 * ```ts
 * import { IMPORTS, importsOf } from "./imports.ts";
 * import * as ir from "../../kernel/ir.ts";
 * const k: ir.Kernel = { shape: [4], inputs: 1, body: ir.unary("sigmoid", ir.load(0, [1])) };
 * console.log(importsOf(k, "float64"), IMPORTS.exp === Math.exp); // [ "exp" ] true
 * ```
 *
 * @module
 */

import type { DType } from "../../kernel/shape.ts";
import {
  BINARY,
  BINARY_FN,
  type Expr,
  type Kernel,
  UNARY,
  UNARY_FN,
  walk,
} from "../../kernel/ir.ts";

/** The ops a kernel imports (pow binary, the others unary). */
export type ImportedOp = "exp" | "log" | "tanh" | "softplus" | "erf" | "pow";

/** The import module's name in a kernel's module. */
export const IMPORT_MODULE = "op";

/** Ops that cpu/wasm/math.ts computes in float32 for float32 kernels. */
const FLOAT32_MATH = new Set(["exp", "log", "tanh", "sigmoid", "softplus"]);

/** The op table's function of `op`: `Math.f` itself where its text is a plain call of it. */
function tableFunction(op: ImportedOp): (...xs: number[]) => number {
  const text = op === "pow" ? BINARY.pow.js : UNARY[op].js;
  const call = /^Math\.(\w+)\((x|a, b)\)$/.exec(text);
  const math = call && (Math as unknown as Record<string, unknown>)[call[1]];
  if (typeof math === "function") return math as (...xs: number[]) => number;
  return op === "pow" ? BINARY_FN.pow : UNARY_FN[op];
}

/** Every imported function, by op (the import object's {@link IMPORT_MODULE} entry). */
export const IMPORTS: Readonly<Record<ImportedOp, (...xs: number[]) => number>> = {
  exp: tableFunction("exp"),
  log: tableFunction("log"),
  tanh: tableFunction("tanh"),
  softplus: tableFunction("softplus"),
  erf: tableFunction("erf"),
  pow: tableFunction("pow"),
};

/**
 * The functions a (collapsed) kernel imports, in a fixed order: for float64 kernels every
 * imported op it uses (sigmoid needs exp); float32 kernels compute exp, log, tanh, sigmoid and
 * softplus in float32 (cpu/wasm/math.ts) and import only erf and pow. Maps in four float32 lanes
 * (codegen's float32Exact) use neither, so the list is empty for them.
 */
export function importsOf(kernel: Kernel, dtype: DType, lanes4 = false): ImportedOp[] {
  if (lanes4) return [];
  const used = new Set<string>();
  const spot = (e: Expr) => {
    if (e.k === "binary" && e.op === "pow") used.add("pow");
    if (e.k !== "unary") return;
    if (dtype === "float32" && FLOAT32_MATH.has(e.op)) return;
    used.add(e.op === "sigmoid" ? "exp" : e.op);
  };
  walk(kernel.body, spot);
  if (kernel.epilogue) walk(kernel.epilogue, spot);
  return (Object.keys(IMPORTS) as ImportedOp[]).filter((op) => used.has(op));
}
