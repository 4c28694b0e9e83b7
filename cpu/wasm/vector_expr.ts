/**
 * The expressions of a kernel as WebAssembly SIMD code: each IR expression pushes a vector of the
 * kernel's type, float64 in two lanes (f64x2) for both dtypes, or float32 in four lanes (f32x4)
 * for the maps cpu/wasm/codegen.ts's float32Exact allows. exp, log, tanh, sigmoid and softplus
 * are cpu/wasm/math.ts's float32 functions in float32 kernels; in float64 kernels they, erf and pow
 * are the op table's own scalar functions, imported (cpu/wasm/imports.ts) and called lane by lane
 * (sigmoid from the imported exp), so that float64 kernels give the JavaScript loops' bits. The
 * loops around them (cpu/wasm/loops.ts) fill the loads' and constants' locals that the
 * expressions read.
 *
 * @module
 */

import type { DType } from "../../kernel/shape.ts";
import { type Expr, type Kernel, walk } from "../../kernel/ir.ts";
import { type MathFns, type MathOp, sigmoidBody } from "./math.ts";
import type { Fn, PlainOp } from "./module.ts";
import type { ImportedOp } from "./imports.ts";

/** cpu/wasm/math.ts's functions, which float32 kernels apply to the argument rounded to float32. */
export const MATH: readonly string[] = ["exp", "log", "tanh", "sigmoid", "softplus"];

/** Lowers a kernel's expressions (see the module documentation); the loops extend it. */
export class VectorExpr {
  readonly V: "f32x4" | "f64x2";
  readonly S: "f32" | "f64";
  /** The id of each distinct load, by input, strides and offset. */
  readonly ids = new Map<string, number>();
  /** The local that holds each load's current value. */
  readonly val: number[] = [];
  /** The local that holds each constant, splatted. */
  readonly constLocal: number[] = [];

  constructor(
    readonly k: Kernel,
    readonly dtype: DType,
    readonly f: Fn,
    readonly lib: MathFns,
    /** The function index of each imported op (cpu/wasm/imports.ts, importsOf). */
    readonly imports: ReadonlyMap<ImportedOp, number>,
    /** Four float32 lanes, else two float64. */
    readonly lanes4 = false,
  ) {
    this.V = lanes4 ? "f32x4" : "f64x2";
    this.S = dtype === "float32" ? "f32" : "f64";
  }

  /** Emits a plain instruction by name. */
  op(name: string): Fn {
    return this.f.op(name as PlainOp);
  }

  #tmps: number[] = [];
  /** A free v128 local (back with {@link free}). */
  tmp(): number {
    return this.#tmps.pop() ?? this.f.local("v128");
  }
  free(t: number): void {
    this.#tmps.push(t);
  }

  /** The local that holds the reduced value, which an epilogue's `acc` reads. */
  acc = -1;

  /** A vector of the kernel's type with every lane `v`. */
  splat(v: number): Fn {
    return this.lanes4 ? this.f.f32x4(v) : this.f.f64x2(v);
  }

  /** Pushes the value of an expression (a vector of the kernel's type). */
  expr(e: Expr): void {
    const { f, V } = this;
    const o = (name: string) => this.op(`${V}.${name}`);
    switch (e.k) {
      case "load":
        f.get(this.val[this.ids.get(`${e.input}|${e.strides}|${e.offset}`)!]);
        return;
      case "const":
        f.get(this.constLocal[this.constSlot++]);
        return;
      case "acc":
        f.get(this.acc);
        return;
      case "index":
        // wasmSupport declines kernels with an index leaf: they run as JavaScript loops.
        throw new Error("an index leaf has no vector form");
      case "cast":
        this.expr(e.x);
        if (e.to === "float32" && !this.lanes4) {
          f.op("f32x4.demote_f64x2_zero").op("f64x2.promote_low_f32x4");
        }
        return;
      case "where": {
        const c = this.tmp();
        this.expr(e.c);
        f.set(c);
        this.expr(e.a);
        this.expr(e.b);
        f.get(c);
        this.splat(0);
        o("ne");
        f.op("v128.bitselect");
        this.free(c);
        return;
      }
      case "unary": {
        if (MATH.includes(e.op) && this.S === "f32") {
          // float32 vector functions, of the argument rounded to float32.
          this.expr(e.x);
          if (this.lanes4) this.lib.inline(f, e.op as MathOp);
          else {
            f.op("f32x4.demote_f64x2_zero").call(this.lib.index(e.op as MathOp));
            f.op("f64x2.promote_low_f32x4");
          }
          return;
        }
        if (e.op === "sigmoid") {
          // The table's formula, with its exp imported.
          const x = this.tmp();
          this.expr(e.x);
          f.set(x);
          sigmoidBody(f, x, () => this.callLanes("exp", [this.pop()]), "f64x2");
          this.free(x);
          return;
        }
        if (this.imports.has(e.op as ImportedOp)) {
          this.expr(e.x);
          this.callLanes(e.op as ImportedOp, [this.pop()]);
          return;
        }
        const x = this.tmp();
        this.expr(e.x);
        f.set(x);
        switch (e.op) {
          case "neg":
          case "abs":
          case "sqrt":
            f.get(x);
            o(e.op);
            break;
          case "relu": // x <= 0 ? 0 : x (NaN stays)
            f.get(x).get(x);
            this.splat(0);
            o("le");
            f.op("v128.andnot");
            break;
          case "square":
            f.get(x).get(x);
            o("mul");
            break;
          case "reciprocal":
            this.splat(1);
            f.get(x);
            o("div");
            break;
          case "sign": // +-1 with x's sign where x is a nonzero number; else x (+-0, NaN)
            this.splat(1);
            f.get(x);
            this.splat(-0);
            f.op("v128.and").op("v128.or");
            f.get(x);
            f.get(x);
            this.splat(0);
            o("lt");
            f.get(x);
            this.splat(0);
            o("gt");
            f.op("v128.or").op("v128.bitselect");
            break;
          case "step":
            f.get(x);
            this.splat(0);
            o("gt");
            this.splat(1);
            f.op("v128.and");
            break;
          default:
            throw new Error(`wasm codegen: unary ${e.op} has no vector form`);
        }
        this.free(x);
        return;
      }
      case "binary": {
        const a = this.tmp();
        this.expr(e.a);
        f.set(a);
        const b = this.tmp();
        this.expr(e.b);
        f.set(b);
        switch (e.op) {
          case "add":
          case "sub":
          case "mul":
          case "div":
            f.get(a).get(b);
            o(e.op);
            break;
          case "max": // a > b ? a : b, NaN if either is
          case "min":
            f.get(a).get(b).get(a).get(b);
            o(e.op === "max" ? "gt" : "lt");
            f.get(a).get(a);
            o("ne");
            f.op("v128.or").op("v128.bitselect");
            break;
          case "eq":
          case "ne":
          case "lt":
          case "le":
          case "gt":
          case "ge":
            f.get(a).get(b);
            o(e.op);
            this.splat(1);
            f.op("v128.and");
            break;
          case "pow":
            this.callLanes("pow", [a, b]);
            break;
          default:
            throw new Error(`wasm codegen: binary ${(e as { op: string }).op} has no vector form`);
        }
        this.free(a);
        this.free(b);
        return;
      }
    }
  }

  /** The vector on the stack into a temporary local, freed again (read it before the next tmp). */
  pop(): number {
    const t = this.tmp();
    this.f.set(t);
    this.free(t);
    return t;
  }

  /**
   * Pushes the imported scalar function of `op` applied lane by lane to the float64 vectors in
   * the locals `args` (its arguments in order).
   */
  callLanes(op: ImportedOp, args: readonly number[]): void {
    const { f } = this;
    const fn = this.imports.get(op);
    if (fn === undefined) throw new Error(`wasm codegen: ${op} was not imported`);
    for (const lane of [0, 1]) {
      for (const v of args) f.get(v).lane("f64x2.extract_lane", lane);
      f.call(fn);
      if (lane === 0) f.op("f64x2.splat");
      else f.lane("f64x2.replace_lane", 1);
    }
  }

  /** Constants are numbered in kernelKey's order: body first, then the epilogue. */
  constSlot = 0;

  /** Pushes the body's value. */
  body(): void {
    this.constSlot = 0;
    this.expr(this.k.body);
  }

  /** Pushes the epilogue's value. */
  epilogue(): void {
    let n = 0;
    walk(this.k.body, (e) => e.k === "const" && n++);
    this.constSlot = n;
    this.expr(this.k.epilogue!);
  }
}
