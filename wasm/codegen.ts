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
 * overflow), save exp, log, tanh, sigmoid and softplus, which are `wasm/math.ts`'s float32
 * functions (of the argument rounded to float32; errors stated there), and the order of partial
 * sums below. Float64 kernels use `wasm/math.ts`'s float64 functions (within 1-4 ulps of `Math.*`
 * and the op table's formulas).
 * - Float32 maps whose float32 evaluation is provably the same ({@link float32Exact}: every
 *   arithmetic result rounded once, by the store or as a math function's argument, e.g.
 *   sigmoid(x + b), relu(x) * y) run in four float32 lanes instead, the math functions inline.
 * - Maps: the innermost output dimension (contiguous in the output) runs two outputs a step; a
 *   load with stride 1 there is one vector load, stride 0 a splat (hoisted out of the loop), any
 *   other stride two scalar loads into lanes. A last odd output runs alone in lane 0.
 * - Reductions: two neighbouring outputs reduce side by side, each lane in the JavaScript loops'
 *   order, so sums, max and argmax (first index, NaN wins) are exactly theirs. A sum whose loads
 *   have stride 0 or 1 along the innermost reduced dimension, when the output's innermost
 *   dimension does not vectorize that way, instead runs two reduced elements a step into two
 *   partial sums (added up at the end: another order of addition than the loops', in float64).
 * - Epilogues run on the two results (the reduced value in float64, as in the loops), loads by
 *   output index as in maps.
 *
 * Without a vector form, a kernel has no WebAssembly function ({@link wasmSupport} says why) and
 * runs as compiled JavaScript loops: that is a kernel with `pow` or `erf`, in either dtype.
 *
 * @example
 * ```ts
 * import { compileWasmKernel } from "./codegen.ts";
 * import * as ir from "../kernel/ir.ts";
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

import type { DType } from "../kernel/shape.ts";
import { collapse, type Expr, type Kernel, kernelKey, walk } from "../kernel/ir.ts";
import { MathFns, type MathOp } from "./math.ts";
import { type Fn, type PlainOp, WasmModule } from "./module.ts";

/** A compiled kernel: byte addresses of the inputs and the output, and the constants. */
export interface WasmKernel {
  /** Runs the kernel. */
  run(inputs: readonly number[], out: number, consts: readonly number[]): void;
  /** The kernel's constants in slot order (for `run`). */
  consts: number[];
}

type Load = Expr & { k: "load" };

const MATH: readonly string[] = ["exp", "log", "tanh", "sigmoid", "softplus"];

/** Undefined when the kernel has a WebAssembly form (in either dtype), else why not. */
export function wasmSupport(kernel: Kernel): string | undefined {
  let why: string | undefined;
  const check = (e: Expr) => {
    if (e.k === "binary" && e.op === "pow") why ??= "pow has no vector form";
    if (e.k === "unary" && e.op === "erf") why ??= "erf has no vector form";
  };
  walk(kernel.body, check);
  if (kernel.epilogue) walk(kernel.epilogue, check);
  // Several outputs: each runs as a kernel of its own (kernel/ir.ts, singleOutputs).
  if (kernel.more?.length) why ??= "a kernel of several outputs has no single function";
  return why;
}

const modules = new Map<string, WebAssembly.Module | null>();
const instances = new WeakMap<WebAssembly.Memory, Map<string, WasmKernel["run"]>>();

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
  if (hit) return { run: hit, consts };
  let mod = modules.get(key);
  if (mod === undefined) {
    mod = wasmSupport(flat) ? null : new WebAssembly.Module(kernelModule(flat, dtype, lanes4));
    modules.set(key, mod);
  }
  if (!mod) return undefined;
  const inst = new WebAssembly.Instance(mod, { env: { memory } });
  const fn = inst.exports.kernel as (...args: number[]) => void;
  const run = (inputs: readonly number[], out: number, c: readonly number[]) =>
    fn(...inputs, out, ...c);
  perMemory.set(key, run);
  return { run, consts };
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
  const lib = new MathFns(m);
  const nConsts = kernelKey(kernel, dtype).consts.length;
  const params = [
    ...new Array<"i32">(kernel.inputs + 1).fill("i32"),
    ...new Array<"f64">(nConsts).fill("f64"),
  ];
  const lib64 = new MathFns(m, "f64x2");
  m.func(
    params,
    [],
    (f) => new Gen(kernel, dtype, f, lib, lib64, nConsts, lanes4).emit(),
    "kernel",
  );
  return m.bytes();
}

/** Which lanes a load fills: W lanes along a loop level, or lane 0 (splat). */
type Mode = { vec: true; level: number } | { vec: false };

class Gen {
  readonly W: number;
  readonly B: number;
  readonly V: "f32x4" | "f64x2";
  readonly S: "f32" | "f64";
  readonly R: number;
  readonly red: readonly number[];
  readonly loads: Load[] = [];
  readonly ids = new Map<string, number>();
  readonly bodyLoads: number[];
  readonly epiLoads: number[];
  /** ptr[l][t]: the byte address of load l after t loop levels. */
  readonly ptr: number[][] = [];
  readonly val: number[] = [];
  readonly constLocal: number[] = [];
  readonly out: number;
  w = 0;
  /** Loads held in a local for the whole innermost loop (stride 0 there). */
  hoisted = new Set<number>();

  constructor(
    readonly k: Kernel,
    readonly dtype: DType,
    readonly f: Fn,
    readonly lib: MathFns,
    readonly lib64: MathFns,
    readonly nConsts: number,
    /** Four float32 lanes (a map that {@link float32Exact} allows), else two float64. */
    readonly lanes4 = false,
  ) {
    const f32 = dtype === "float32";
    this.W = lanes4 ? 4 : 2;
    this.B = f32 ? 4 : 8;
    this.V = lanes4 ? "f32x4" : "f64x2";
    this.S = f32 ? "f32" : "f64";
    this.R = k.shape.length;
    this.red = k.reduce?.shape ?? [];
    const collect = (e: Expr | undefined, into: Set<number>) => {
      if (!e) return;
      walk(e, (x) => {
        if (x.k !== "load") return;
        const key = `${x.input}|${x.strides}|${x.offset}`;
        let id = this.ids.get(key);
        if (id === undefined) {
          id = this.loads.push(x) - 1;
          this.ids.set(key, id);
        }
        into.add(id);
      });
    };
    const b = new Set<number>(), e = new Set<number>();
    collect(k.body, b);
    collect(k.epilogue, e);
    this.bodyLoads = [...b];
    this.epiLoads = [...e];
    this.out = k.inputs;
  }

  op(name: string): Fn {
    return this.f.op(name as PlainOp);
  }

  /** The whole function body. */
  emit(): void {
    const { f, B } = this;
    // Addresses at level 0, constants splatted once.
    this.loads.forEach((l, id) => {
      const p = f.local("i32");
      f.get(l.input).i32(l.offset * B).op("i32.add").set(p);
      this.ptr[id] = [p];
      this.val[id] = f.local("v128");
    });
    for (let c = 0; c < this.nConsts; c++) {
      const loc = f.local("v128");
      f.get(this.k.inputs + 1 + c);
      if (this.lanes4) f.op("f32.demote_f64").op("f32x4.splat");
      else f.op("f64x2.splat");
      f.set(loc);
      this.constLocal.push(loc);
    }
    this.w = f.local("i32");
    f.get(this.out).set(this.w);
    const { R } = this;
    const red = this.k.reduce;
    const all = this.loads.map((_, i) => i);
    if (!red) {
      this.outerLoops(0, all, () => this.mapInner());
      return;
    }
    // Partial sums along the reduced dimension, or W outputs side by side.
    const S = this.red.length;
    const unit = (level: number, ids: number[]) =>
      ids.every((id) => {
        const s = this.loads[id].strides[level];
        return s === 0 || s === 1;
      });
    const outVec = R > 0 && this.k.shape[R - 1] >= this.W && unit(R - 1, all);
    const redVec = red.op === "sum" && S > 0 && this.red[S - 1] >= this.W &&
      unit(R + S - 1, this.bodyLoads);
    if (redVec && !outVec) this.outerLoops(0, all, () => this.partialSums(), R);
    else this.outerLoops(0, all, () => this.sideBySide());
  }

  /** Scalar loops over output levels [level, upTo) (default: all but the innermost). */
  outerLoops(level: number, ids: number[], inner: () => void, upTo = this.R - 1): void {
    if (level >= upTo) return inner();
    this.loop(
      level,
      this.k.shape[level],
      1,
      ids,
      () => this.outerLoops(level + 1, ids, inner, upTo),
    );
  }

  /**
   * A counted loop at `level` of `count` iterations (none: no code), advancing the addresses of
   * `ids` by `step` elements of their stride at that level after each.
   */
  loop(level: number, count: number, step: number, ids: number[], body: () => void): void {
    const { f } = this;
    this.enter(level, ids);
    if (count <= 0) return;
    const i = f.local("i32");
    f.i32(0).set(i);
    f.loop();
    body();
    this.advance(level, ids, step);
    f.get(i).i32(1).op("i32.add").tee(i).i32(count).op("i32.lt_u").brIf(0);
    f.end();
  }

  /** ptr[l][level + 1] = ptr[l][level] for the loads `ids`. */
  enter(level: number, ids: number[]): void {
    for (const id of ids) {
      const p = this.ptr[id];
      if (p[level + 1] === undefined) p[level + 1] = this.f.local("i32");
      this.f.get(p[level]).set(p[level + 1]);
    }
  }

  advance(level: number, ids: number[], step: number): void {
    for (const id of ids) {
      const s = this.loads[id].strides[level];
      if (s === 0) continue;
      const p = this.ptr[id][level + 1];
      this.f.get(p).i32(s * step * this.B).op("i32.add").set(p);
    }
  }

  /** Loads `ids` at address level `depth` into their value locals, lanes as `mode`. */
  loadValues(ids: number[], depth: number, mode: Mode): void {
    const { f, B } = this;
    const f32 = this.S === "f32";
    for (const id of ids) {
      if (this.hoisted.has(id)) continue;
      const p = this.ptr[id][depth];
      const s = mode.vec ? this.loads[id].strides[mode.level] : 0;
      f.get(p);
      if (this.lanes4) this.loadLanes4(p, s);
      else if (s === 1) {
        if (f32) f.mem("v128.load64_zero").op("f64x2.promote_low_f32x4");
        else f.mem("v128.load");
      } else {
        this.scalarLoad(0);
        f.op("f64x2.splat");
        if (s !== 0) {
          const off = s * B;
          if (off >= 0) f.get(p);
          else f.get(p).i32(off).op("i32.add");
          this.scalarLoad(off >= 0 ? off : 0);
          f.lane("f64x2.replace_lane", 1);
        }
      }
      f.set(this.val[id]);
    }
  }

  /** Four float32 lanes from address local `p` (on the stack already), `s` elements apart. */
  loadLanes4(p: number, s: number): void {
    const { f } = this;
    if (s === 1) {
      f.mem("v128.load");
      return;
    }
    f.mem("f32.load").op("f32x4.splat");
    for (let j = 1; s !== 0 && j < 4; j++) {
      const off = j * s * 4;
      if (off >= 0) f.get(p).mem("f32.load", off);
      else f.get(p).i32(off).op("i32.add").mem("f32.load");
      f.lane("f32x4.replace_lane", j);
    }
  }

  /** A load of one element (address on the stack) as float64. */
  scalarLoad(offset: number): void {
    if (this.S === "f32") this.f.mem("f32.load", offset).op("f64.promote_f32");
    else this.f.mem("f64.load", offset);
  }

  /** Stores the vector on the stack: both lanes, or lane 0; advances the output address. */
  store(vec: boolean): void {
    const { f, B } = this;
    const t = this.tmp();
    f.set(t).get(this.w).get(t);
    if (this.lanes4) {
      if (vec) f.mem("v128.store");
      else f.lane("f32x4.extract_lane", 0).mem("f32.store");
    } else if (this.S === "f32") {
      if (vec) f.op("f32x4.demote_f64x2_zero").memLane("v128.store64_lane", 0);
      else f.lane("f64x2.extract_lane", 0).op("f32.demote_f64").mem("f32.store");
    } else {
      if (vec) f.mem("v128.store");
      else f.lane("f64x2.extract_lane", 0).mem("f64.store");
    }
    f.get(this.w).i32((vec ? this.W : 1) * B).op("i32.add").set(this.w);
    this.free(t);
  }

  #tmps: number[] = [];
  tmp(): number {
    return this.#tmps.pop() ?? this.f.local("v128");
  }
  free(t: number): void {
    this.#tmps.push(t);
  }

  /** The innermost output dimension of a map: W outputs a step, then one at a time. */
  mapInner(): void {
    const { R, W } = this;
    const ids = this.loads.map((_, i) => i);
    if (R === 0) {
      this.loadValues(ids, 0, { vec: false });
      this.body();
      this.store(false);
      return;
    }
    const n = this.k.shape[R - 1];
    const level = R - 1;
    this.enter(level, ids);
    // Loads with stride 0 along the vector dimension: loaded once.
    const still = ids.filter((id) => this.loads[id].strides[level] === 0);
    this.loadValues(still, R, { vec: false });
    still.forEach((id) => this.hoisted.add(id));
    const nv = Math.floor(n / W);
    this.counted(nv, () => {
      this.loadValues(ids, R, { vec: true, level });
      this.body();
      this.store(true);
      this.advance(level, ids, W);
    });
    this.counted(n - nv * W, () => {
      this.loadValues(ids, R, { vec: false });
      this.body();
      this.store(false);
      this.advance(level, ids, 1);
    });
    this.hoisted.clear();
  }

  /** A loop of `count` iterations of `body` (no code for none). */
  counted(count: number, body: () => void): void {
    if (count <= 0) return;
    const { f } = this;
    const i = f.local("i32");
    f.i32(0).set(i).loop();
    body();
    f.get(i).i32(1).op("i32.add").tee(i).i32(count).op("i32.lt_u").brIf(0).end();
  }

  /** Reductions, W outputs side by side along the innermost output dimension. */
  sideBySide(): void {
    const { R, W } = this;
    const all = this.loads.map((_, i) => i);
    if (R === 0) return this.reduceOutputs({ vec: false });
    const n = this.k.shape[R - 1];
    const level = R - 1;
    this.enter(level, all);
    const nv = Math.floor(n / W);
    this.counted(nv, () => {
      this.reduceOutputs({ vec: true, level });
      this.advance(level, all, W);
    });
    this.counted(n - nv * W, () => {
      this.reduceOutputs({ vec: false });
      this.advance(level, all, 1);
    });
  }

  /** Reduces the outputs at the current output address (lanes as `mode`) and stores them. */
  reduceOutputs(mode: Mode): void {
    const { f, R } = this;
    const op = this.k.reduce!.op;
    const acc = f.local("v128"), arg = f.local("v128");
    const r = f.local("i32");
    if (op === "sum") f.f64x2(0).set(acc);
    else f.f64x2(-Infinity).set(acc).f64x2(0).set(arg).i32(0).set(r);
    const body = () => {
      this.loadValues(this.bodyLoads, R + this.red.length, mode);
      this.body();
      const v = this.tmp();
      f.set(v);
      if (op === "sum") f.get(acc).get(v).op("f64x2.add").set(acc);
      else {
        // The first maximum wins; the first NaN wins and stays.
        const mask = this.tmp();
        f.get(acc).get(acc).op("f64x2.eq");
        f.get(v).get(acc).op("f64x2.gt").get(v).get(v).op("f64x2.ne");
        f.op("v128.or").op("v128.and").set(mask);
        f.get(v).get(acc).get(mask).op("v128.bitselect").set(acc);
        if (op === "argmax") {
          f.get(r).op("f64.convert_i32_s").op("f64x2.splat");
          f.get(arg).get(mask).op("v128.bitselect").set(arg);
          f.get(r).i32(1).op("i32.add").set(r);
        }
        this.free(mask);
      }
      this.free(v);
    };
    this.reduceLoops(0, body);
    this.finish(op === "argmax" ? arg : acc, mode);
  }

  /** The epilogue (or the reduced value) at the current output address, stored. */
  finish(acc: number, mode: Mode): void {
    if (this.k.epilogue) {
      this.loadValues(this.epiLoads, this.R, mode);
      this.acc = acc;
      this.epilogue();
    } else this.f.get(acc);
    this.store(mode.vec);
  }

  acc = -1;

  /** Scalar loops over the reduced levels (body loads only); body at the innermost. */
  reduceLoops(j: number, body: () => void): void {
    if (j >= this.red.length) return body();
    this.loop(this.R + j, this.red[j], 1, this.bodyLoads, () => this.reduceLoops(j + 1, body));
  }

  /** A sum of one output, two reduced elements a step into partial sums. */
  partialSums(): void {
    const { f, R, W } = this;
    const S = this.red.length;
    const acc = f.local("v128");
    f.f64x2(0).set(acc);
    const ids = this.bodyLoads;
    const level = R + S - 1;
    const n = this.red[S - 1];
    const inner = () => {
      this.enter(level, ids);
      const nv = Math.floor(n / W);
      this.counted(nv, () => {
        this.loadValues(ids, R + S, { vec: true, level });
        this.body();
        f.get(acc).op("f64x2.add").set(acc);
        this.advance(level, ids, W);
      });
      // An odd last element into lane 0 only.
      this.counted(n - nv * W, () => {
        this.loadValues(ids, R + S, { vec: false });
        f.get(acc);
        this.body();
        f.lane("f64x2.extract_lane", 0).get(acc).lane("f64x2.extract_lane", 0).op("f64.add");
        f.lane("f64x2.replace_lane", 0).set(acc);
        this.advance(level, ids, 1);
      });
    };
    const outer = (j: number): void => {
      if (j >= S - 1) return inner();
      this.loop(R + j, this.red[j], 1, ids, () => outer(j + 1));
    };
    outer(0);
    f.get(acc).lane("f64x2.extract_lane", 0).get(acc).lane("f64x2.extract_lane", 1);
    f.op("f64.add").op("f64x2.splat").set(acc);
    this.finish(acc, { vec: false });
  }

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
        if (MATH.includes(e.op)) {
          // float32 vector functions, of the argument rounded to float32.
          this.expr(e.x);
          if (this.lanes4) this.lib.inline(f, e.op as MathOp);
          else if (this.S === "f64") f.call(this.lib64.index(e.op as MathOp));
          else {
            f.op("f32x4.demote_f64x2_zero").call(this.lib.index(e.op as MathOp));
            f.op("f64x2.promote_low_f32x4");
          }
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
          default:
            throw new Error(`wasm codegen: binary ${e.op} has no vector form`);
        }
        this.free(a);
        this.free(b);
        return;
      }
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
