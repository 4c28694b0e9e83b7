/**
 * Record once, replay many times: a function of tensors whose launches (kernels of the IR and
 * routines) are recorded on its first call and rerun on later calls with new inputs, with no
 * tracing, graph building, fusion or kernel choice in between (kernel/record.ts). CG's G v is
 * the use it was built for.
 *
 * @module
 */

import { SgnError } from "../errors.ts";
import type { DeviceBuffer } from "../kernel/backend.ts";
import { type Recording, startRecording } from "../kernel/record.ts";
import { Tracer } from "./core.ts";
import { checkTensor, Tensor } from "./tensor.ts";

/** A function made replayable by {@link replayable}. */
export interface Replayable {
  (...inputs: Tensor[]): Tensor[];
  /** Whether calls replay a recording (false until the first call, or when it cannot). */
  readonly replaying: boolean;
  /** Frees what the recording holds; later calls run the function as usual. */
  dispose(): void;
}

/** Where each input lives: which of the distinct buffers, at what offset, with what shape. */
interface Placement {
  buffers: DeviceBuffer[];
  key: string;
}

function placement(inputs: readonly Tensor[]): Placement {
  const buffers: DeviceBuffer[] = [];
  const parts = inputs.map((x) => {
    const w = x.lazy.realizeWindow();
    let i = buffers.indexOf(w.buffer);
    if (i < 0) i = buffers.push(w.buffer) - 1;
    return `${i}@${w.offset}:${x.shape.join("x")}:${x.dtype}`;
  });
  return { buffers, key: `${parts.join(",")}|${buffers.map((b) => b.size).join(",")}` };
}

/**
 * `fn` recorded on its first call and replayed on later ones. `fn` must be a pure function of
 * its inputs (what it closes over stays fixed while the replayable lives) whose results all
 * depend on the inputs; otherwise, and whenever a later call's inputs differ in shape, dtype or
 * layout, or a call is traced (inside jvp, grad, ...), the function simply runs. Call `dispose`
 * when done: the recording holds the values it reads that do not depend on the inputs.
 *
 * @example
 * ```ts
 * import { init, ops, replayable, tensor } from "../mod.ts";
 * await init({ backend: "cpu" });
 * const w = tensor([[1, 2], [3, 4]]);
 * const f = replayable((v) => [ops.sigmoid(ops.matmul(w, v))]);
 * f(tensor([[1], [0]])); // recorded
 * const [y] = f(tensor([[0], [1]])); // replayed
 * console.log(f.replaying, await y.data());
 * f.dispose();
 * ```
 */
export function replayable(fn: (...inputs: Tensor[]) => Tensor[]): Replayable {
  if (typeof fn !== "function") {
    throw new SgnError("replayable: give a function of tensors that returns a list of tensors");
  }
  let state: "new" | "recorded" | "plain" | "disposed" = "new";
  let recording: Recording | undefined;
  let key = "";
  let outs: { shape: readonly number[]; dtype: Tensor["dtype"] }[] = [];
  const call = (...inputs: Tensor[]): Tensor[] => {
    if (state === "disposed") throw new SgnError("replayable: called after dispose()");
    inputs.forEach((x, i) => checkTensor(x, `replayable: input ${i + 1}`));
    const traced = inputs.some((x) => x instanceof Tracer);
    if (state === "recorded" && !traced) {
      const p = placement(inputs);
      if (p.key === key) {
        const be = recording!.backend;
        return recording!.replay(p.buffers).map((b, i) =>
          new Tensor(be, b, outs[i].shape, outs[i].dtype)
        );
      }
    }
    if (state !== "new" || traced || inputs.length === 0) return fn(...inputs);
    const p = placement(inputs);
    const rec = startRecording(inputs[0].backend, p.buffers);
    if (!rec) return fn(...inputs);
    try {
      const results = fn(...inputs);
      if (!Array.isArray(results) || results.some((t) => !(t instanceof Tensor))) {
        throw new SgnError("replayable: the function must return a list of tensors");
      }
      const plain = results.every((t) => !(t instanceof Tracer) && t.backend === rec.backend);
      recording = plain ? rec.finish(results.map((t) => t.lazy.realize())) : undefined;
      state = recording ? "recorded" : "plain";
      key = p.key;
      outs = results.map((t) => ({ shape: t.shape, dtype: t.dtype }));
      return results;
    } finally {
      rec.dispose();
    }
  };
  Object.defineProperty(call, "replaying", { get: () => state === "recorded" });
  return Object.assign(call, {
    dispose: () => {
      recording?.dispose();
      recording = undefined;
      state = "disposed";
    },
  }) as Replayable;
}
