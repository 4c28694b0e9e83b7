/**
 * The native CPU lowering of the kernel IR: a kernel becomes one JavaScript function with nested
 * loops over its (collapsed) dimensions, an address per distinct load advanced by strides, and
 * the expression as straight-line code. Compiled once per structural key and dtype, so V8's type
 * feedback for each function stays monomorphic.
 *
 * @module
 */

import type { DType, TypedArray } from "../kernel/shape.ts";
import {
  BINARY,
  collapse,
  type Expr,
  jsFunction,
  type Kernel,
  kernelKey,
  UNARY,
} from "../kernel/ir.ts";
import { KernelCache } from "../kernel/cache.ts";

/** A compiled kernel: fills `out` from `inputs`, with the constants in slot order. */
export type CompiledKernel = (
  inputs: readonly TypedArray[],
  out: TypedArray,
  consts: readonly number[],
) => void;

/** Compiled functions by the structure of the collapsed kernel (kernels that collapse alike share one). */
const compiled = new Map<string, CompiledKernel>();

/** The compiled function of each kernel structure (a miss collapses, then compiles or shares). */
const cache = new KernelCache((kernel: Kernel, dtype: DType): CompiledKernel => {
  const flat = collapse(kernel);
  const { key } = kernelKey(flat, dtype);
  let run = compiled.get(key);
  if (!run) {
    run = jsFunction(["inputs", "out", "consts"], source(flat)) as CompiledKernel;
    compiled.set(key, run);
    compileStats.compilations++;
  }
  return run;
});

/**
 * Counters of the native lowering: kernel lookups (one per launch), structures seen for the
 * first time, and JavaScript functions compiled. Benchmarks read them (bench/overhead_report.ts).
 */
export const compileStats: { lookups: number; structures: number; compilations: number } = {
  get lookups() {
    return cache.stats.lookups;
  },
  get structures() {
    return cache.stats.builds;
  },
  compilations: 0,
};

/** Replaces the whole-word variables of an op's JavaScript text by operand names. */
function substitute(text: string, vars: Record<string, string>): string {
  return text.replace(/\b[abx]\b/g, (v) => vars[v] ?? v);
}

/** The JavaScript source of a (collapsed) kernel's function body. */
function source(kernel: Kernel): string {
  const rankOut = kernel.shape.length;
  const redShape = kernel.reduce?.shape ?? [];
  const lines: string[] = [];
  for (let i = 0; i < kernel.inputs; i++) lines.push(`const in${i} = inputs[${i}];`);
  // Distinct loads, each with an address register per loop level.
  const loads = new Map<string, Expr & { k: "load" }>();
  const keyOf = (l: Expr & { k: "load" }) => `${l.input}|${l.strides}|${l.offset}`;
  const collect = (e: Expr | undefined) => {
    if (!e) return;
    const visit = (x: Expr): void => {
      if (x.k === "load") loads.set(keyOf(x), x);
      else if (x.k === "unary" || x.k === "cast") visit(x.x);
      else if (x.k === "binary") (visit(x.a), visit(x.b));
      else if (x.k === "where") (visit(x.c), visit(x.a), visit(x.b));
    };
    visit(e);
  };
  collect(kernel.body);
  collect(kernel.epilogue);
  const ids = new Map([...loads.keys()].map((k, i) => [k, i]));
  const bodyLoads = new Set<number>();
  kernel.body && (() => {
    const visit = (x: Expr): void => {
      if (x.k === "load") bodyLoads.add(ids.get(keyOf(x))!);
      else if (x.k === "unary" || x.k === "cast") visit(x.x);
      else if (x.k === "binary") (visit(x.a), visit(x.b));
      else if (x.k === "where") (visit(x.c), visit(x.a), visit(x.b));
    };
    visit(kernel.body);
  })();
  const all = [...loads.values()];
  // Straight-line code for an expression; returns the name holding its value.
  let tmp = 0;
  const emit = (e: Expr, out: string[], level: number): string => {
    switch (e.k) {
      case "load": {
        const id = ids.get(keyOf(e))!;
        return `in${e.input}[p${id}_${level}]`;
      }
      case "const":
        return `c[${constSlot++}]`;
      case "acc":
        return "acc";
      case "unary": {
        const x = emit(e.x, out, level);
        const t = `t${tmp++}`;
        out.push(`const ${t} = ${substitute(UNARY[e.op].js, { x })};`);
        return t;
      }
      case "cast": {
        const x = emit(e.x, out, level);
        return e.to === "float32" ? `Math.fround(${x})` : x;
      }
      case "binary": {
        const a = emit(e.a, out, level);
        const b = emit(e.b, out, level);
        const t = `t${tmp++}`;
        out.push(`const ${t} = ${substitute(BINARY[e.op].js, { a, b })};`);
        return t;
      }
      case "where": {
        const c = emit(e.c, out, level);
        const a = emit(e.a, out, level);
        const b = emit(e.b, out, level);
        const t = `t${tmp++}`;
        out.push(`const ${t} = ${c} !== 0 ? ${a} : ${b};`);
        return t;
      }
    }
  };
  // Constants are numbered in kernelStructure's order: body first, then the epilogue.
  let constSlot = 0;
  lines.push("const c = consts;", "let w = 0;");
  for (const [id, l] of all.entries()) lines.push(`const p${id}_0 = ${l.offset};`);
  const open = (dims: readonly number[], base: number, which: (id: number) => boolean) => {
    dims.forEach((n, d) => {
      const v = `i${base + d}`;
      lines.push(`for (let ${v} = 0; ${v} < ${n}; ${v}++) {`);
      for (const [id, l] of all.entries()) {
        if (!which(id)) continue;
        lines.push(
          `const p${id}_${base + d + 1} = p${id}_${base + d} + ${v} * ${l.strides[base + d]};`,
        );
      }
    });
  };
  const levelOut = rankOut;
  open(kernel.shape, 0, () => true);
  if (!kernel.reduce) {
    const body: string[] = [];
    const v = emit(kernel.body, body, levelOut);
    lines.push(...body, `out[w++] = ${v};`);
  } else {
    const op = kernel.reduce.op;
    lines.push(op === "sum" ? "let acc = 0;" : "let acc = -Infinity, arg = 0;", "let r = 0;");
    open(redShape, rankOut, (id) => bodyLoads.has(id));
    const body: string[] = [];
    const v = emit(kernel.body, body, rankOut + redShape.length);
    lines.push(...body);
    lines.push(
      op === "sum"
        ? `acc += ${v};`
        : `{ const v = ${v}; if (r === 0 || (acc === acc && (v > acc || v !== v))) { acc = v; arg = r; } }`,
      "r++;",
    );
    lines.push("}".repeat(redShape.length));
    if (op === "argmax") lines.push("acc = arg;");
    if (kernel.epilogue) {
      const epi: string[] = [];
      const e = emit(kernel.epilogue, epi, levelOut);
      lines.push(...epi, `out[w++] = ${e};`);
    } else {
      lines.push("out[w++] = acc;");
    }
  }
  lines.push("}".repeat(kernel.shape.length));
  return lines.join("\n");
}

/**
 * The compiled function of a kernel for a dtype (collapsed first), cached by structure, and the
 * kernel's constants in the order the function reads them (collapsing keeps that order).
 */
export function compileKernel(
  kernel: Kernel,
  dtype: DType,
): { run: CompiledKernel; consts: number[] } {
  const { value, consts } = cache.get(kernel, dtype);
  return { run: value, consts };
}

/** The JavaScript source a kernel compiles to (for tests and debugging). */
export function kernelSource(kernel: Kernel): string {
  return source(collapse(kernel));
}
