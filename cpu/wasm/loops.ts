/**
 * The loops of the WebAssembly SIMD lowering (cpu/wasm/codegen.ts): one function per collapsed
 * kernel, whose loops run over the output dimensions with one address per distinct load and loop
 * level, advanced by its strides. Maps run two (or four) outputs a step along the innermost output
 * dimension; reductions run two neighbouring outputs side by side, or two reduced elements a step
 * into partial sums (float32 sums only); a last odd output runs alone in lane 0. The expressions
 * at each step are lowered by cpu/wasm/vector_expr.ts.
 *
 * @module
 */

import type { DType } from "../../kernel/shape.ts";
import type { Expr, Kernel } from "../../kernel/ir.ts";
import { walk } from "../../kernel/ir.ts";
import type { MathFns } from "./math.ts";
import type { Fn } from "./module.ts";
import type { ImportedOp } from "./imports.ts";
import { VectorExpr } from "./vector_expr.ts";

type Load = Expr & { k: "load" };

/** Which lanes a load fills: W lanes along a loop level, or lane 0 (splat). */
type Mode = { vec: true; level: number } | { vec: false };

/**
 * The function body of one collapsed kernel: loop nests over the output (and reduced) dimensions
 * with one address per distinct load and loop level, the loads and stores of each step in two or
 * four lanes, and the reductions side by side or in partial sums; the expressions themselves are
 * lowered by {@link VectorExpr}.
 */
export class Gen extends VectorExpr {
  readonly W: number;
  readonly B: number;
  readonly R: number;
  readonly red: readonly number[];
  readonly loads: Load[] = [];
  readonly bodyLoads: number[];
  readonly epiLoads: number[];
  /** ptr[l][t]: the byte address of load l after t loop levels. */
  readonly ptr: number[][] = [];
  readonly out: number;
  w = 0;
  /** Loads held in a local for the whole innermost loop (stride 0 there). */
  hoisted = new Set<number>();

  constructor(
    k: Kernel,
    dtype: DType,
    f: Fn,
    lib: MathFns,
    imports: ReadonlyMap<ImportedOp, number>,
    readonly nConsts: number,
    /** Four float32 lanes (a map that {@link float32Exact} allows), else two float64. */
    lanes4 = false,
  ) {
    super(k, dtype, f, lib, imports, lanes4);
    const f32 = dtype === "float32";
    this.W = lanes4 ? 4 : 2;
    this.B = f32 ? 4 : 8;
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
    // Partial sums along the reduced dimension (float32 only: a float64 sum keeps the loops' and
    // the oracle's order, for their bits, at about twice the time of a long contiguous dot
    // product), or W outputs side by side.
    const S = this.red.length;
    const unit = (level: number, ids: number[]) =>
      ids.every((id) => {
        const s = this.loads[id].strides[level];
        return s === 0 || s === 1;
      });
    const outVec = R > 0 && this.k.shape[R - 1] >= this.W && unit(R - 1, all);
    const redVec = red.op === "sum" && this.S === "f32" && S > 0 && this.red[S - 1] >= this.W &&
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

  /** Scalar loops over the reduced levels (body loads only); body at the innermost. */
  reduceLoops(j: number, body: () => void): void {
    if (j >= this.red.length) return body();
    this.loop(this.R + j, this.red[j], 1, this.bodyLoads, () => this.reduceLoops(j + 1, body));
  }

  /** A float32 sum of one output, two reduced elements a step into partial sums. */
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
}
