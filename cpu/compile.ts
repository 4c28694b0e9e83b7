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
  constSlots,
  type Expr,
  jsFunction,
  type Kernel,
  kernelKey,
  outputsOf,
  UNARY,
  walk,
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
  const outputs = outputsOf(kernel);
  const lines: string[] = [];
  for (let i = 0; i < kernel.inputs; i++) lines.push(`const in${i} = inputs[${i}];`);
  // Distinct loads and index leaves, each with an address register per loop level (an index
  // leaf's value is its register).
  type View = Expr & { k: "load" | "index" };
  const loads = new Map<string, View>();
  const keyOf = (l: View) => `${l.k === "load" ? l.input : "i"}|${l.strides}|${l.offset}`;
  const visit = (e: Expr | undefined, fn: (l: View) => void) =>
    e && walk(e, (x) => (x.k === "load" || x.k === "index") && fn(x));
  for (const o of outputs) {
    visit(o.body, (l) => loads.set(keyOf(l), l));
    visit(o.epilogue, (l) => loads.set(keyOf(l), l));
  }
  const ids = new Map([...loads.keys()].map((k, i) => [k, i]));
  const bodyLoads = new Set<number>();
  for (const o of outputs) visit(o.body, (l) => bodyLoads.add(ids.get(keyOf(l))!));
  const all = [...loads.values()];
  // Straight-line code for an expression; returns the name holding its value (`acc` names the
  // reduced value an epilogue reads).
  let tmp = 0;
  const emit = (e: Expr, out: string[], level: number, acc = "acc"): string => {
    switch (e.k) {
      case "load":
        return `in${e.input}[p${ids.get(keyOf(e))!}_${level}]`;
      case "index":
        return `p${ids.get(keyOf(e))!}_${level}`;
      case "const":
        return `c[${constSlot++}]`;
      case "acc":
        return acc;
      case "unary": {
        const x = emit(e.x, out, level, acc);
        const t = `t${tmp++}`;
        out.push(`const ${t} = ${substitute(UNARY[e.op].js, { x })};`);
        return t;
      }
      case "cast": {
        const x = emit(e.x, out, level, acc);
        return e.to === "float32" ? `Math.fround(${x})` : x;
      }
      case "binary": {
        const a = emit(e.a, out, level, acc);
        const b = emit(e.b, out, level, acc);
        const t = `t${tmp++}`;
        out.push(`const ${t} = ${substitute(BINARY[e.op].js, { a, b })};`);
        return t;
      }
      case "where": {
        const c = emit(e.c, out, level, acc);
        const a = emit(e.a, out, level, acc);
        const b = emit(e.b, out, level, acc);
        const t = `t${tmp++}`;
        out.push(`const ${t} = ${c} !== 0 ? ${a} : ${b};`);
        return t;
      }
    }
  };
  // Constants are numbered in kernelStructure's order (each output's body, then its epilogue),
  // whatever order the code emits them in.
  let constSlot = 0;
  const slots = constSlots(kernel);
  // Output j is stored `size` elements after output j - 1.
  const size = kernel.shape.reduce((a, b) => a * b, 1);
  const store = (j: number, v: string) => `out[w${j ? ` + ${j * size}` : ""}] = ${v};`;
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
    const vs = outputs.map((o, j) => ((constSlot = slots[j].body), emit(o.body, body, levelOut)));
    lines.push(...body, ...vs.map((v, j) => store(j, v)), "w++;");
  } else {
    // One accumulator (and argument) per output, each in the loops' order.
    const acc = (j: number) => (outputs.length > 1 ? `acc${j}` : "acc");
    const arg = (j: number) => (outputs.length > 1 ? `arg${j}` : "arg");
    for (const [j, o] of outputs.entries()) {
      lines.push(
        o.op === "sum" ? `let ${acc(j)} = 0;` : `let ${acc(j)} = -Infinity, ${arg(j)} = 0;`,
      );
    }
    lines.push("let r = 0;");
    open(redShape, rankOut, (id) => bodyLoads.has(id));
    const body: string[] = [];
    const vs = outputs.map((o, j) => (
      (constSlot = slots[j].body), emit(o.body, body, rankOut + redShape.length)
    ));
    lines.push(...body);
    for (const [j, o] of outputs.entries()) {
      const [a, g] = [acc(j), arg(j)];
      lines.push(
        o.op === "sum"
          ? `${a} += ${vs[j]};`
          : `{ const v = ${
            vs[j]
          }; if (r === 0 || (${a} === ${a} && (v > ${a} || v !== v))) { ${a} = v; ${g} = r; } }`,
      );
    }
    lines.push("r++;", "}".repeat(redShape.length));
    for (const [j, o] of outputs.entries()) {
      if (o.op === "argmax") lines.push(`${acc(j)} = ${arg(j)};`);
    }
    for (const [j, o] of outputs.entries()) {
      if (!o.epilogue) {
        lines.push(store(j, acc(j)));
        continue;
      }
      const epi: string[] = [];
      constSlot = slots[j].epilogue;
      const e = emit(o.epilogue, epi, levelOut, acc(j));
      lines.push(...epi, store(j, e));
    }
    lines.push("w++;");
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
