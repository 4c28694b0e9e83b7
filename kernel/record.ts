/**
 * Launches and their record: what the lazy graph hands a backend (a kernel of the IR, or a routine
 * with its epilogue), as data, and a {@link Recorder} that keeps the launches a computation makes
 * so that it can be replayed on new inputs with no graph building, fusion or lookups in between
 * ({@link Recording.replay}). The CG iteration's G v is the use it was built for: the same
 * products on a new vector, once per iteration.
 *
 * A launch is recorded when it reads, directly or through earlier recorded launches, one of the
 * recording's inputs; a launch that does not (a derivative factor computed once from the primal
 * values, say, even one that reads only buffers the recording already holds as constants) is run
 * as usual and its result kept as a constant of the recording.
 *
 * A replay runs each launch as its backend prepared it ({@link prepareLaunchesWith}: the native
 * backend resolves kernel functions and product specs once, cpu/native_replay.ts), else through
 * {@link launch}.
 *
 * @module
 */

import type { Backend, DeviceBuffer, MatmulCall, Prologue } from "./backend.ts";
import { SgnError } from "../errors.ts";
import type { Expr, Kernel } from "./ir.ts";
import type { DType } from "./shape.ts";
import { matmulCall, MAX_TOGETHER, type Routine, ROUTINES, runRoutine } from "./routines.ts";

/** Counters of the lazy layer, on every backend (tests and benchmarks read them). */
export const lazyStats = {
  /** IR kernels run (element-wise and reductions), replays included. */
  kernels: 0,
  /** Routines run (matmul, convolutions, pooling, softmax, concat), replays included. */
  routines: 0,
  /** Reductions or routines computed again after being fused into another kernel. */
  recomputed: 0,
  /** Launches run by replays (a part of `kernels` + `routines`). */
  replayed: 0,
};

/**
 * A product's operand computed as the product reads it (kernel/backend.ts `Prologue`), as a
 * launch holds it: its expression over `shape`, reading the launch's next `inputs` buffers, in
 * the operand's place among the operands' buffers.
 */
export interface LaunchPrologue {
  readonly shape: readonly number[];
  readonly body: Expr;
  readonly inputs: number;
}

/**
 * One launch: a kernel of the IR over its inputs, or a routine over the buffers of its operands
 * (`args` of them: one per operand, or a prologue's inputs) followed by its epilogue's inputs
 * (with the operands' offsets, for routines that read windows, and a product's prologues, one
 * entry per operand, on backends that take them).
 */
export type Launch =
  | { readonly kind: "kernel"; readonly kernel: Kernel; readonly dtype: DType }
  | {
    readonly kind: "routine";
    readonly routine: Routine;
    readonly args: number;
    readonly epilogue?: Expr;
    readonly offsets?: readonly number[];
    readonly prologues?: readonly (LaunchPrologue | undefined)[];
  };

/** An input buffer of a launch, with what holds it (a recording keeps a constant's holder). */
export interface LaunchInput {
  buffer: DeviceBuffer;
  holder: Holder;
}

/** A launch ready to run: what it is, and its input buffers with the arrays that hold them. */
export interface ReadyLaunch {
  l: Launch;
  ins: LaunchInput[];
}

/** An operand of a routine's launch: a buffer read at an offset, or a prologue over its inputs. */
export type LaunchOperand =
  | LaunchInput & { offset: number }
  | { prologue: { shape: readonly number[]; body: Expr; inputs: LaunchInput[] } };

/**
 * A routine's launch over its operands and its epilogue's inputs: the operands' buffers (a
 * prologue's inputs in its place), then the epilogue's; the operands' offsets for a routine that
 * reads windows.
 */
export function routineLaunch(
  routine: Routine,
  operands: readonly LaunchOperand[],
  epilogue: Expr | undefined,
  epilogueInputs: readonly LaunchInput[],
): ReadyLaunch {
  const ins = operands.flatMap((o) =>
    "prologue" in o ? o.prologue.inputs : [{ buffer: o.buffer, holder: o.holder }]
  );
  const args = ins.length;
  ins.push(...epilogueInputs);
  const prologues = operands.map((o) =>
    "prologue" in o
      ? { shape: o.prologue.shape, body: o.prologue.body, inputs: o.prologue.inputs.length }
      : undefined
  );
  const l: Launch = {
    kind: "routine",
    routine,
    args,
    ...(epilogue ? { epilogue } : {}),
    ...(ROUTINES[routine.op].windows.length
      ? { offsets: operands.map((o) => ("prologue" in o ? 0 : o.offset)) }
      : {}),
    ...(prologues.some((p) => p) ? { prologues } : {}),
  };
  return { l, ins };
}

/** Runs a launch on `backend` over its input buffers, giving a new buffer. */
export function launch(backend: Backend, l: Launch, inputs: readonly DeviceBuffer[]): DeviceBuffer {
  if (l.kind === "kernel") lazyStats.kernels++;
  else lazyStats.routines++;
  return runLaunch(backend, l, inputs);
}

/** {@link launch} without counting it (a replay counts its launches at once). */
export function runLaunch(
  backend: Backend,
  l: Launch,
  inputs: readonly DeviceBuffer[],
): DeviceBuffer {
  if (l.kind === "kernel") return backend.run(l.kernel, inputs, l.dtype);
  if (l.prologues) {
    if (!backend.prologues || !backend.matmuls) {
      throw new SgnError(
        `the ${backend.name} backend computes no product operand in its loads: a launch with a ` +
          "prologue was made for another backend",
      );
    }
    return backend.matmuls([productCall(l, inputs)!])[0];
  }
  const epilogue = l.epilogue ? { body: l.epilogue, inputs: inputs.slice(l.args) } : undefined;
  return runRoutine(backend, l.routine, inputs.slice(0, l.args), epilogue, l.offsets);
}

/**
 * A product's launch over its input buffers as one item of `Backend.matmuls` (undefined for any
 * other launch): products run together, by the lazy graph or by a replay.
 */
export function productCall(l: Launch, inputs: readonly DeviceBuffer[]): MatmulCall | undefined {
  if (l.kind !== "routine" || l.routine.op !== "matmul") return undefined;
  const epilogue = l.epilogue ? { body: l.epilogue, inputs: inputs.slice(l.args) } : undefined;
  return matmulCall(l.routine.spec, operandsOf(l, inputs), epilogue, l.offsets);
}

/** A routine launch's operands: buffers, and prologues over their inputs. */
function operandsOf(
  l: Launch & { kind: "routine" },
  inputs: readonly DeviceBuffer[],
): (DeviceBuffer | Prologue)[] {
  if (!l.prologues) return inputs.slice(0, l.args);
  let at = 0;
  return l.prologues.map((p) =>
    p ? { shape: p.shape, body: p.body, inputs: inputs.slice(at, at += p.inputs) } : inputs[at++]
  );
}

/**
 * A launch resolved once for replays: runs it over its input buffers (of the recorded sizes)
 * giving a new buffer, to the bit what {@link launch} gives, with every lookup it would make
 * (kernel functions, checked specs, epilogue kernels) done beforehand.
 */
export type PreparedLaunch = (inputs: readonly DeviceBuffer[]) => DeviceBuffer;

/** Per backend, how its launches are prepared for replays (the backends that do). */
const preparers = new WeakMap<Backend, (l: Launch) => PreparedLaunch | undefined>();

/**
 * Lets recordings on `backend` replay each launch as `prepare` makes it (undefined: through
 * {@link launch}). Optional: cpu/native.ts registers its arena's launches; a backend that
 * does not replays every launch through {@link launch}.
 */
export function prepareLaunchesWith(
  backend: Backend,
  prepare: (l: Launch) => PreparedLaunch | undefined,
): void {
  preparers.set(backend, prepare);
}

/**
 * The preparer {@link prepareLaunchesWith} registered for `backend`, if any: for tools that wrap
 * it (bench/replay_report.ts `--launches` times each launch of a replay).
 */
export function launchPreparer(
  backend: Backend,
): ((l: Launch) => PreparedLaunch | undefined) | undefined {
  return preparers.get(backend);
}

/** What keeps a buffer alive (a lazy array): the recording holds the constants it reads. */
export interface Holder {
  retain(): unknown;
  release(): void;
}

/** A launch of the recording, over slots: inputs, then constants, then launch results. */
interface Step {
  launch: Launch;
  ins: number[];
  out: number;
  /** Result slots no later step reads: released after this step. */
  free: number[];
}

/** The recorder that is on, if any (one at a time). */
let active: Recorder | undefined;

/** The recorder the lazy graph reports its launches to, while one is on. */
export function activeRecorder(): Recorder | undefined {
  return active;
}

/**
 * Records the launches a computation makes from `inputs` (buffers the caller keeps); see the
 * module documentation. Returns undefined when a recording is already on (recordings do not
 * nest: the inner computation then runs as usual).
 */
export function startRecording(
  backend: Backend,
  inputs: readonly DeviceBuffer[],
): Recorder | undefined {
  if (active) return undefined;
  active = new Recorder(backend, inputs);
  return active;
}

/** Collects launches; {@link Recorder.finish} turns them into a {@link Recording}. */
export class Recorder {
  readonly #slot = new Map<DeviceBuffer, number>();
  readonly #steps: Step[] = [];
  readonly #constants: DeviceBuffer[] = [];
  readonly #holders: Holder[] = [];
  readonly #inputs: number;
  #slots: number;

  constructor(readonly backend: Backend, inputs: readonly DeviceBuffer[]) {
    inputs.forEach((b, i) => this.#slot.set(b, i));
    this.#inputs = inputs.length;
    this.#slots = inputs.length;
  }

  /**
   * Notes a launch the graph just ran: `ins` its input buffers with the arrays that hold them,
   * `out` its result. Kept when it reads a recorded buffer; else its result is a constant.
   */
  note(
    l: Launch,
    ins: readonly { buffer: DeviceBuffer; holder: Holder }[],
    out: DeviceBuffer,
  ): void {
    // Only inputs and recorded results (slots >= 0) make a launch depend on the inputs: one that
    // reads constants alone (a softmax of the primal outputs, computed lazily inside the first
    // call) runs once, here, and its result is a constant of the recording.
    if (!ins.some((x) => (this.#slot.get(x.buffer) ?? -1) >= 0)) return;
    const slots = ins.map((x) => {
      let s = this.#slot.get(x.buffer);
      if (s === undefined) {
        s = this.#constantSlot(x.buffer);
        this.#holders.push(x.holder);
        x.holder.retain();
      }
      return s;
    });
    const o = this.#slots++;
    this.#slot.set(out, o);
    this.#steps.push({ launch: l, ins: slots, out: o, free: [] });
  }

  /** Notes that a buffer went back to the backend (its memory, even its handle, may be reused). */
  forget(buffer: DeviceBuffer): void {
    const s = this.#slot.get(buffer);
    if (s !== undefined && s >= this.#inputs) this.#slot.delete(buffer);
  }

  #constantSlot(buffer: DeviceBuffer): number {
    // Constants are numbered after the inputs, in the order first read; results after them are
    // renumbered by finish().
    const s = -1 - this.#constants.length;
    this.#constants.push(buffer);
    this.#slot.set(buffer, s);
    return s;
  }

  /**
   * Ends the recording. `outputs` are the computation's results (computed): each must be the
   * fresh result of a recorded launch, distinct; otherwise (a result that does not depend on the
   * inputs, or one buffer twice) the computation cannot be replayed and undefined is returned.
   */
  finish(outputs: readonly DeviceBuffer[]): Recording | undefined {
    active = undefined;
    const outSlots = outputs.map((b) => this.#slot.get(b) ?? -Infinity);
    const ok = outSlots.every((s, i) => s >= this.#inputs && outSlots.indexOf(s) === i);
    if (!ok) {
      this.dispose();
      return undefined;
    }
    // Slots: inputs [0, n), constants [n, n + c), results after.
    const n = this.#inputs, c = this.#constants.length;
    const place = (s: number) => (s < 0 ? n - 1 - s : s < n ? s : s + c);
    const steps = this.#steps.map((st) => ({ ...st, ins: st.ins.map(place), out: place(st.out) }));
    const outs = outSlots.map(place);
    const lastUse = new Map<number, number>();
    steps.forEach((st, i) => st.ins.forEach((s) => lastUse.set(s, i)));
    for (const [s, i] of lastUse) {
      if (s >= n + c && !outs.includes(s)) steps[i].free.push(s);
    }
    // A result nothing reads and no one receives is freed at once.
    for (const st of steps) {
      if (!lastUse.has(st.out) && !outs.includes(st.out)) st.free.push(st.out);
    }
    return new Recording(
      this.backend,
      n,
      [...this.#constants],
      this.#holders.splice(0),
      steps,
      outs,
    );
  }

  /** Ends the recording without keeping it. */
  dispose(): void {
    if (active === this) active = undefined;
    for (const h of this.#holders.splice(0)) h.release();
  }
}

/** A recorded computation; see the module documentation. */
export class Recording {
  #holders: Holder[] | undefined;
  /** Each step's launch, prepared by the backend where it can (else through `launch`). */
  readonly #run: PreparedLaunch[];
  readonly #kernels: number;
  /**
   * For each step that starts a run, the length of the run: consecutive products that read none
   * of each other's results, run together where the backend can (`Backend.matmuls`); 1 else.
   */
  readonly #runs: number[];

  constructor(
    readonly backend: Backend,
    readonly inputs: number,
    readonly constants: readonly DeviceBuffer[],
    holders: Holder[],
    readonly steps: readonly Step[],
    readonly outputs: readonly number[],
  ) {
    this.#holders = holders;
    const prep = preparers.get(backend);
    this.#run = steps.map(({ launch: l }) =>
      prep?.(l) ?? ((ins: readonly DeviceBuffer[]) => runLaunch(backend, l, ins))
    );
    this.#kernels = steps.filter((st) => st.launch.kind === "kernel").length;
    this.#runs = backend.matmuls ? productRuns(steps) : steps.map(() => 1);
  }

  /** Number of launches a replay runs. */
  get launches(): number {
    return this.steps.length;
  }

  /**
   * Runs the recorded launches on new input buffers (as many, of the recorded sizes), giving new
   * output buffers that the caller owns.
   */
  replay(inputs: readonly DeviceBuffer[]): DeviceBuffer[] {
    if (!this.#holders) throw new Error("replay of a disposed recording");
    const be = this.backend, steps = this.steps, run = this.#run;
    const slots: (DeviceBuffer | undefined)[] = [...inputs, ...this.constants];
    for (let i = 0; i < steps.length; i += this.#runs[i]) {
      const n = this.#runs[i];
      if (n === 1) {
        const st = steps[i];
        slots[st.out] = run[i](st.ins.map((s) => slots[s]!));
        for (const s of st.free) be.release(slots[s]!);
        continue;
      }
      // A run of products: all launched, then what each step frees (none reads another's).
      const part = steps.slice(i, i + n);
      const outs = be.matmuls!(
        part.map((st) => productCall(st.launch, st.ins.map((s) => slots[s]!))!),
      );
      part.forEach((st, j) => (slots[st.out] = outs[j]));
      for (const st of part) for (const s of st.free) be.release(slots[s]!);
    }
    lazyStats.kernels += this.#kernels;
    lazyStats.routines += steps.length - this.#kernels;
    lazyStats.replayed += steps.length;
    return this.outputs.map((s) => slots[s]!);
  }

  /** Lets go of the constants the recording holds. */
  dispose(): void {
    for (const h of this.#holders?.splice(0) ?? []) h.release();
    this.#holders = undefined;
  }
}

/**
 * The runs of consecutive products that read none of each other's results (see
 * Recording's `#runs`): the products the lazy graph ran together were noted one after another.
 */
function productRuns(steps: readonly Step[]): number[] {
  const runs = steps.map(() => 1);
  let start = 0;
  for (let i = 1; i < steps.length; i++) {
    const st = steps[i];
    // A run grows only by products, so its first step says whether it is one.
    const group = steps.slice(start, i);
    const joins = i - start < MAX_TOGETHER && isProduct(st) && isProduct(steps[start]) &&
      !group.some((g) => st.ins.includes(g.out));
    if (joins) runs[start]++;
    else start = i;
  }
  return runs;
}

function isProduct(st: Step): boolean {
  return st.launch.kind === "routine" && st.launch.routine.op === "matmul";
}
