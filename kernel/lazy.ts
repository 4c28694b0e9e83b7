/**
 * Lazy arrays: ops build a graph and kernels run only when a value is needed (read back, or
 * handed to a routine such as matmul). Until then, element-wise ops and views compose into one
 * expression, so a chain of them becomes one kernel:
 *
 * - element-wise ops and views (reshape, transpose, broadcast, slice) inline their operands'
 *   expressions; a view moves the strides of the loads beneath it, so it never copies, and a
 *   contiguous view of a computed buffer shares that buffer;
 * - a reduction takes its operand's expression as its body (a reduction of a reduction of the
 *   same kind merges into one);
 * - an element-wise op on the result of a reduction, or of a routine that takes an epilogue
 *   (matmul), becomes that kernel's epilogue (bias, activation, masks and scalings fuse into the
 *   matmul that produces them);
 * - on a backend that takes prologues (`Backend.prologues`: WebGPU with products together), an
 *   element-wise map that only the products about to run read is computed in their loads and
 *   never stored (the softmax cross-entropy's gradient, read by a dense layer's two backward
 *   products).
 *
 * Memory is reference counted: a {@link Lazy} is held by its tensor and by the pending arrays
 * that read it; its buffer goes back to the backend when the last holder lets go. A pending array
 * no one realizes never runs.
 *
 * Fusing a reduction or a routine into a consumer means its own value is not stored: if it is
 * needed later on its own, it is computed again ({@link lazyStats}.recomputed counts these, and
 * tests keep the training workloads at zero).
 *
 * @module
 */

import type { Backend, DeviceBuffer } from "./backend.ts";

import { type DType, sizeOf } from "./shape.ts";

import { SgnError } from "../errors.ts";
import type { Kernel } from "./ir.ts";
import { isIdentity } from "./loads.ts";
import {
  dropRecipe,
  inlinePendingMaps,
  readWindows,
  type Recipe as RecipeOf,
  type Source,
  windowOf,
} from "./recipe.ts";
import { choosePrologues } from "./prologues.ts";
import { MAX_TOGETHER, passedAsWindow } from "./routines.ts";
import { demandedProducts, realizationUnderWay, realizing } from "./realization.ts";
import {
  activeRecorder,
  type Holder,
  launch,
  type LaunchOperand,
  lazyStats,
  productCall,
  type ReadyLaunch,
  routineLaunch,
} from "./record.ts";

export { lazyStats };

/** How a pending lazy array is computed (kernel/recipe.ts), over lazy arrays. */
export type Recipe = RecipeOf<Lazy>;

/**
 * An n-dimensional array on a backend: computed (it has a buffer), or pending (a recipe over
 * other arrays). See the module documentation.
 */
export class Lazy {
  #refs = 1;
  #buffer: DeviceBuffer | undefined;
  /** The array whose buffer this one shares (a contiguous view). */
  #base: Lazy | undefined;
  #recipe: Recipe | undefined;
  /** Pending consumers that fused this array's work into theirs (see {@link Lazy.absorb}). */
  #absorbers: Lazy[] = [];
  /**
   * For a consumer that fused its operand's work: rebuilds it over the operand's buffer, once
   * that buffer exists (then fusing would compute the operand twice). Holds its operands.
   */
  #unfused: { host: Lazy; operands: Lazy[]; build: () => Lazy } | undefined;
  /** Whether a consumer has computed this array's work inside its own kernel. */
  #fusedDone = false;
  /**
   * Run when a reader first needs this array on its own, before computing it: computes it with
   * the arrays it was made with (kernel/multi.ts `computeTogether`).
   */
  #onRead: (() => void) | undefined;
  /** How many computations of this array are under way (realize re-enters for a rebuild). */
  #computing = 0;

  private constructor(
    readonly backend: Backend,
    readonly shape: readonly number[],
    readonly dtype: DType,
  ) {}

  /** Wraps a buffer (the new array owns it). */
  static of(backend: Backend, buffer: DeviceBuffer, shape: readonly number[]): Lazy {
    if (buffer.size !== sizeOf(shape)) {
      throw new SgnError(
        `a buffer of ${buffer.size} elements cannot have shape [${shape.join(", ")}]`,
      );
    }
    const l = new Lazy(backend, shape, buffer.dtype);
    l.#buffer = buffer;
    return l;
  }

  /** A pending array (takes over the references its recipe holds). */
  static pending(backend: Backend, shape: readonly number[], dtype: DType, recipe: Recipe): Lazy {
    const l = new Lazy(backend, shape, dtype);
    l.#recipe = recipe;
    return l;
  }

  /** Number of elements. */
  get size(): number {
    return sizeOf(this.shape);
  }

  /** Whether the array has been computed. */
  get computed(): boolean {
    return this.#buffer !== undefined || this.#base !== undefined;
  }

  /** The pending recipe, if any (for the builders below). */
  get recipe(): Recipe | undefined {
    return this.#recipe;
  }

  /** Whether a pending consumer fused this array's work into its own kernel. */
  get absorbed(): boolean {
    return this.#absorbers.length > 0;
  }

  /** Whether the array still has a holder (it has not been released for good). */
  get alive(): boolean {
    return this.#refs > 0;
  }

  /**
   * `run` is called (once) when a reader outside any computation first needs this array while
   * it is pending: the first of arrays made together to be read computes them all, in one pass
   * (kernel/multi.ts `computeTogether`).
   */
  onFirstRead(run: () => void): void {
    this.#onRead = run;
  }

  /** Adds a holder. */
  retain(): this {
    if (this.#refs <= 0) throw new SgnError("a released array was used (a disposed tensor?)");
    this.#refs++;
    return this;
  }

  /** Drops a holder; the last one frees the buffer (or the recipe's references). */
  release(): void {
    if (--this.#refs > 0) return;
    if (this.#refs < 0) throw new SgnError("an array was released twice");
    if (this.#buffer) {
      activeRecorder()?.forget(this.#buffer);
      this.backend.release(this.#buffer);
    }
    this.#base?.release();
    if (this.#recipe) dropRecipe(this.#recipe);
    this.#dropUnfused();
    this.#buffer = undefined;
    this.#base = undefined;
    this.#recipe = undefined;
  }

  /** Computes the array if it is pending, and returns its buffer. */
  realize(): DeviceBuffer {
    if (realizationUnderWay() || this.computed) return this.#realize();
    this.#firstRead();
    return realizing([this], () => this.#realize());
  }

  /**
   * Computes the array unless it is, or becomes by the computation of the arrays it was made
   * with, a window of a computed array (readers load that in place; copying it out would be one
   * more kernel): what an explicit flush of the graph beneath it needs.
   */
  flush(): void {
    if (!realizationUnderWay()) this.#firstRead();
    if (this.computed || this.window()?.src.computed) return;
    this.realize();
  }

  #firstRead(): void {
    const read = this.#onRead;
    this.#onRead = undefined;
    read?.();
  }

  #realize(): DeviceBuffer {
    if (this.#refs <= 0) throw new SgnError("a released array was used (a disposed tensor?)");
    if (this.#base) return this.#base.realize();
    if (this.#buffer) return this.#buffer;
    this.#computing++;
    try {
      return this.#compute();
    } finally {
      this.#computing--;
    }
  }

  /** Computes this pending array ({@link Lazy.realize}'s work once it has no buffer). */
  #compute(): DeviceBuffer {
    const r = this.#recipe!;
    const inputs = () => (r.kind === "routine" ? [...r.args, ...r.srcs] : [...r.srcs]);
    // A source or argument that fused a kernel whose host someone else holds: compute the host
    // first (it is needed anyway, and the source becomes a map over its buffer, which
    // inlinePendingMaps may inline), whatever reads the source: a map, an epilogue, a
    // reduction's body or a routine. Otherwise the host would be computed twice.
    for (const s of inputs()) {
      if (this.#recipe !== r) break;
      if (!s.computed && s.recipe?.kind !== "map") s.settle();
    }
    // That host may be this array's own: it was then rebuilt over the host's buffer (and `r`
    // dropped), so compute what it is now.
    if (this.#recipe !== r) return this.realize();
    if (r.kind === "map" && isIdentity(r.expr, this.shape) && r.srcs[0].size === this.size) {
      // A contiguous view of a whole array: share its buffer.
      const base = r.srcs[0];
      base.realize();
      this.#base = base;
      this.#recipe = undefined;
      return base.realize();
    }
    readWindows(r);
    inlinePendingMaps(r, this.shape);
    // Operands a product may compute in its loads: their sources are computed instead, last.
    const early = this.#prologueCandidates(r);
    // Computing an input may compute the host this array fused (an input that reads it, as in
    // x - sum(x) of a matmul x): this array is then rebuilt over the host's buffer, as above.
    // The input is held meanwhile: that rebuild drops the recipe that held it, and may drop its
    // last holder while it is being computed.
    const compute = (s: Lazy) => {
      s.retain();
      try {
        if (r.kind === "routine" && passedAsWindow(r.routine, r.args, s)) {
          s.realizeWindow();
        } else s.realize();
      } finally {
        s.release();
      }
      return this.#recipe === r;
    };
    for (const s of inputs()) {
      if (!early.includes(s) && !compute(s)) return this.realize();
    }
    for (const a of early) {
      const srcs = a.#recipe?.kind === "map" ? [...a.#recipe.srcs] : []; // as they are now
      if (srcs.some((s) => a.#recipe?.srcs.includes(s) && !compute(s))) return this.realize();
    }
    // A host up this array's chain was rebuilt (before, or while the inputs were computed): this
    // one is rebuilt over it rather than compute that host's old work again.
    if (this.#refresh()) return this.realize();
    const ready = r.kind === "routine" && r.routine.op === "matmul" ? this.#mates() : [];
    const prologues = r.kind === "routine" && this.backend.prologues
      ? this.#prologuesOf([{ x: this, r }, ...ready])
      : undefined;
    if (this.#recipe !== r) return this.realize();
    const me = this.#launchOf(r, prologues);
    const mates = ready.filter((m) => m.x.#recipe === m.r)
      .map((m) => ({ x: m.x, launch: m.x.#launchOf(m.r, prologues) }));
    let outs: DeviceBuffer[];
    if (mates.length || me.l.kind === "routine" && me.l.prologues) {
      // Products whose operands are all ready run with this one (one dispatch on WebGPU).
      const all = [me, ...mates.map((m) => m.launch)];
      outs = this.backend.matmuls!(
        all.map(({ l, ins }) => productCall(l, ins.map((x) => x.buffer))!),
      );
      lazyStats.routines += all.length;
    } else outs = [launch(this.backend, me.l, me.ins.map((x) => x.buffer))];
    mates.forEach((m, i) => m.x.#done(m.launch, outs[i + 1]));
    return this.#done(me, outs[0]);
  }

  /**
   * A product's operands that may be computed in its loads ({@link Backend.prologues}): pending
   * maps, not windows (made with others or not: kernel/multi.ts skips one let go); maps inlined.
   */
  #prologueCandidates(r: Recipe): Lazy[] {
    if (r.kind !== "routine" || r.routine.op !== "matmul" || !this.backend.prologues) return [];
    const out: Lazy[] = [];
    for (const a of r.args) {
      const ar = a.#recipe;
      const fit = !a.computed && ar?.kind === "map" && !a.#unfused &&
        !a.#computing && !a.window() && !out.includes(a);
      if (!fit) continue;
      readWindows(ar);
      inlinePendingMaps(ar, a.shape);
      out.push(a);
    }
    return out;
  }

  /**
   * Of the products about to run together (their other inputs computed), the operands computed
   * in their loads (kernel/prologues.ts); the other candidates are computed now.
   */
  #prologuesOf(group: readonly { x: Lazy; r: Recipe }[]): ReadonlySet<Source> {
    const members = group.map((m) => m.x);
    const runs = group.flatMap(({ x, r }) =>
      r.kind === "routine"
        ? [{
          recipe: r,
          candidates: x.#prologueCandidates(r),
          held: [...r.args, ...x.#fusedHolds(members)],
        }]
        : []
    );
    const chosen = choosePrologues(runs, (a) => (a as Lazy).#refs);
    for (const a of runs.flatMap((p) => p.candidates as Lazy[])) {
      if (!chosen.has(a)) a.#realizeHeld();
    }
    return chosen;
  }

  /**
   * What this fused consumer holds through its fusion and lets go when done, per reference: the
   * operands it rebuilds from, and the inputs of hosts down its chain that only `members` hold.
   */
  #fusedHolds(members: readonly Lazy[]): Lazy[] {
    const out: Lazy[] = [];
    for (let u = this.#unfused; u; u = u.host.#unfused) {
      out.push(...u.operands);
      const h = u.host, hr = h.#recipe;
      const alone = !h.computed && hr && !h.#heldElsewhere() &&
        h.#absorbers.every((y) => members.includes(y));
      if (!alone) break;
      out.push(...hr.srcs, ...(hr.kind === "routine" ? hr.args : []));
    }
    return out;
  }

  /** The launch of this array's recipe, its inputs computed (`prologues` in its loads). */
  #launchOf(r: Recipe, prologues?: ReadonlySet<Source>): ReadyLaunch {
    // A host computed after this fused consumer runs (#fusedDone) is computed twice; so is one
    // computed before, here or further up a chain of fused consumers (a host now a map over
    // buffers had its own work computed elsewhere, and this array still carries the old work).
    let twice = this.#fusedDone;
    for (let h = this.#unfused?.host; h; h = h.#unfused?.host) {
      h.#fusedDone = true;
      twice ||= h.#rebuilt();
    }
    if (twice && r.kind !== "map") lazyStats.recomputed++;
    const own = (x: Lazy) => ({ buffer: x.realize(), holder: x as Holder });
    if (r.kind === "routine") {
      const operands = r.args.map((a): LaunchOperand => {
        const map = prologues?.has(a) ? a.#recipe : undefined;
        if (map?.kind === "map") {
          return { prologue: { shape: a.shape, body: map.expr, inputs: map.srcs.map(own) } };
        }
        return passedAsWindow(r.routine, r.args, a) ? a.realizeWindow() : { ...own(a), offset: 0 };
      });
      return routineLaunch(r.routine, operands, r.epilogue, r.srcs.map(own));
    }
    const ins = r.srcs.map(own);
    const kernel: Kernel = r.kind === "map"
      ? { shape: this.shape, inputs: ins.length, body: r.expr }
      : {
        shape: this.shape,
        inputs: ins.length,
        body: r.body,
        reduce: { op: r.op, shape: r.redShape },
        ...(r.epilogue ? { epilogue: r.epilogue } : {}),
      };
    return { l: { kind: "kernel", kernel, dtype: this.dtype }, ins };
  }

  /** Takes `out`, the result of this array's launch `p`, as its buffer. */
  #done(p: ReadyLaunch, out: DeviceBuffer): DeviceBuffer {
    activeRecorder()?.note(p.l, p.ins, out);
    // The products still to compute are those #mates looks among.
    demandedProducts()?.delete(this);
    // The recipe dropped is the one this array has now: should another product of the same
    // launch, done first, have rebuilt it (#unfuse), the launch's result is its value all the
    // same, and the recipe it was made from is gone.
    const r = this.#recipe;
    this.#buffer = out;
    this.#recipe = undefined;
    if (r) dropRecipe(r);
    this.#dropUnfused();
    // Consumers that fused this work and are still pending now read the buffer instead.
    for (const c of this.#absorbers.splice(0)) c.#unfuse();
    return out;
  }

  /**
   * Pending products of the current realization that can run now, with no other computation
   * first, to run with this one: at most {@link MAX_TOGETHER} - 1.
   */
  #mates(): { x: Lazy; r: Recipe }[] {
    const out: { x: Lazy; r: Recipe }[] = [];
    // Not a product whose work one of the group fused, or that fused one of the group's: its
    // computation would rebuild that one (Lazy.#unfuse) while its launch is under way.
    const group: Lazy[] = [this];
    const tangled = (y: Lazy) =>
      group.some((x) => x.#absorbers.includes(y) || y.#absorbers.includes(x));
    for (const y of demandedProducts() ?? []) {
      if (!(y instanceof Lazy)) continue;
      if (out.length === MAX_TOGETHER - 1) break;
      // Not one being computed (this one, or one further up that waits for its inputs, which
      // this computation is part of): #readyProduct rewrites its recipe (readWindows,
      // inlinePendingMaps) under the loop that computes that recipe's inputs.
      const ready = !y.#computing && y.backend === this.backend && y.dtype === this.dtype &&
        !tangled(y) && y.#readyProduct();
      if (!ready) continue;
      out.push({ x: y, r: ready });
      group.push(y);
    }
    return out;
  }

  /**
   * This array's recipe when it is a pending product that is needed and ready: its operands and
   * its epilogue's inputs computed (or windows of computed arrays), not held only by consumers
   * that fused it, and not fused over a host that someone else holds (that host is computed
   * first, as realize does; see settle).
   */
  #readyProduct(): Recipe | undefined {
    const r = this.#recipe;
    if (this.#refs <= 0 || this.computed || r?.kind !== "routine") return undefined;
    if (r.routine.op !== "matmul") return undefined;
    if (this.#absorbers.length && !this.#heldElsewhere()) return undefined;
    if (this.#stale()) return undefined;
    const host = this.#unfused?.host;
    if (host && !host.computed && host.#heldElsewhere()) return undefined;
    const candidates = this.#prologueCandidates(r);
    const stored = (a: Lazy) =>
      a.computed || a.window()?.src.computed ||
      (candidates.includes(a) && a.#recipe!.srcs.every((s) => s.computed));
    if (!r.args.every(stored)) return undefined;
    readWindows(r);
    inlinePendingMaps(r, this.shape);
    return r.srcs.every((s) => s.computed) ? r : undefined;
  }

  /**
   * When this array is a contiguous window of another one's memory (a slice or reshape of it, no
   * copy made yet): that array and where the window starts. Routines that take an offset read
   * it in place.
   */
  window(): { src: Lazy; offset: number } | undefined {
    return windowOf(this.shape, this.#recipe);
  }

  /**
   * The buffer and offset a routine reads this array from: its window, or its own buffer (with
   * the array that holds it).
   */
  realizeWindow(): { buffer: DeviceBuffer; offset: number; holder: Lazy } {
    const w = this.#buffer || this.#base ? undefined : this.window();
    if (w) return { buffer: w.src.realize(), offset: w.offset, holder: w.src };
    return { buffer: this.realize(), offset: 0, holder: this };
  }

  /**
   * Records that `consumer` fused this array's reduction or routine into its own kernel;
   * `build` rebuilds the consumer from `operands` (which it retains) without fusing.
   */
  absorb(consumer: Lazy, operands: Lazy[], build: () => Lazy): void {
    this.#absorbers.push(consumer);
    consumer.#unfused = { host: this, operands: operands.map((x) => x.retain()), build };
  }

  /**
   * Makes this pending array `view`, a map over computed arrays (its value computed elsewhere:
   * one output of a kernel of several, kernel/multi.ts). Consumers that fused its work now read
   * the view instead, as they would its buffer. An array no consumer fused may take a map over
   * pending arrays too (rows of a product about to run: it then no longer holds what it was
   * computed from).
   */
  replaceBy(view: Lazy): void {
    const r = view.#recipe;
    const over = r?.srcs.every((s) => s.computed) || !this.#absorbers.length;
    if (r?.kind !== "map" || !over || !this.#recipe) {
      throw new SgnError(
        "replaceBy: a pending array takes a map over computed arrays (over pending ones, only " +
          "when no consumer fused its work)",
      );
    }
    const old = this.#recipe;
    this.#recipe = { kind: "map", expr: r.expr, srcs: r.srcs.map((s) => s.retain()) };
    dropRecipe(old);
    this.#dropUnfused();
    for (const c of this.#absorbers.splice(0)) c.#unfuse();
  }

  /** Rebuilds a pending consumer over its operands' buffers (see {@link Lazy.absorb}). */
  #unfuse(): void {
    const u = this.#unfused;
    if (!u || this.#refs <= 0 || !this.#recipe) return;
    // Detached first: the build may compute an operand, and with it the host, whose completion
    // would rebuild this array again in the middle of this rebuild.
    const operands = this.#detach();
    const old = this.#recipe;
    const plain = u.build();
    // Computing that operand may have computed this array too (with the arrays it was made
    // with, kernel/multi.ts): what it is now stands.
    const moot = this.#recipe !== old;
    if (!moot) {
      this.#recipe = plain.#recipe;
      this.#base = plain.#base?.retain();
      plain.#recipe = undefined;
      dropRecipe(old);
    }
    plain.release();
    for (const x of operands) x.release();
  }

  /**
   * Whether a host up this fused consumer's chain has been rebuilt since this one fused its work:
   * a consumer fused over a consumer (the relu's mask over a max pool, times dy) whose own host
   * was computed, which made it a map over that buffer. The work this one carries would compute
   * the first host's work again.
   */
  #stale(): boolean {
    for (let h = this.#unfused?.host; h; h = h.#unfused?.host) if (h.#rebuilt()) return true;
    return false;
  }

  /** Whether this host's work was computed, or rebuilt as a map, since a consumer fused it. */
  #rebuilt(): boolean {
    return this.computed || this.#recipe?.kind === "map";
  }

  /** Rebuilds this consumer if {@link Lazy.#stale}, its host first; whether it did. */
  #refresh(): boolean {
    const host = this.#unfused?.host;
    if (!host || !(host.#refresh() || host.#rebuilt())) return false;
    this.#unfuse();
    return true;
  }

  /**
   * For a fused consumer about to be read element for element by another kernel: if its host is
   * held by anyone else (so will be computed anyway), compute the host now; this array then
   * becomes a map over the host's buffer, which its reader inlines. One whose host has been
   * rebuilt is rebuilt first.
   */
  settle(): void {
    this.#refresh();
    const host = this.#unfused?.host;
    if (!host || host.computed || !host.#heldElsewhere()) return;
    host.#realizeHeld();
  }

  /** Computes this array, held meanwhile: that may rebuild a consumer that held it last. */
  #realizeHeld(): void {
    this.retain();
    try {
      this.realize();
    } finally {
      this.release();
    }
  }

  /**
   * Whether anyone but the consumers that fused this host's work holds it. Those hold it as an
   * operand, or through a view of it they fused through (a reshape, graph.ts fuseThroughReshape):
   * such a view held by anyone else (a concat of it) holds the host for them too.
   */
  #heldElsewhere(): boolean {
    let theirs = 0;
    const views = new Map<Lazy, number>();
    for (const c of this.#absorbers) {
      for (const x of c.#unfused?.operands ?? []) {
        if (x === this) theirs++;
        else if (x.#recipe?.kind === "map" && x.#recipe.srcs.includes(this)) {
          views.set(x, (views.get(x) ?? 0) + 1);
        }
      }
    }
    for (const [v, n] of views) {
      if (v.#refs <= n) theirs += v.#recipe!.srcs.filter((x) => x === this).length;
    }
    return this.#refs > theirs;
  }

  #dropUnfused(): void {
    for (const x of this.#detach()) x.release();
  }

  /** Ends this array's record as a fused consumer; returns its operands, still held. */
  #detach(): Lazy[] {
    const u = this.#unfused;
    this.#unfused = undefined;
    if (!u) return [];
    // No longer an absorber of the host: settle() counts the live ones.
    const list = u.host.#absorbers;
    const i = list.indexOf(this);
    if (i >= 0) list.splice(i, 1);
    return u.operands;
  }
}
