/**
 * The objective of one SGN step (the loss, and the metric when the loss has one) at candidate
 * parameters: the line search's tries and CG backtracking's iterates. Every evaluation runs the
 * same forward pass on a new point of the same shape, so after the first it is recorded once
 * (autodiff/replay.ts) and replayed: no graph building, fusion or lookups, the recorded launches
 * on the new point, to the bit what running the model gives.
 *
 * Recording costs a little on top of a plain evaluation and a step usually evaluates once (the
 * adaptive speculation's one try), so an evaluation is recorded only when another is known to
 * follow in the step (a speculative batch of two or more, backtracking's iterates), or when it is
 * the step's second. The model and the loss close over the batch: a recording lives one step.
 *
 * Not where products run together (`Backend.matmuls`: WebGPU on a hardware GPU): a replay runs one
 * evaluation at a time, so the products of tries built lazily side by side no longer pair, and a
 * W1 step took more dispatches there (3 CG, speculation "all": 156 -> 166; with backtracking 173
 * -> 185), where dispatches are what costs.
 *
 * @module
 */

import { scope, type Tensor } from "../autodiff/tensor.ts";
import { type Replayable, replayable } from "../autodiff/replay.ts";
import { splitFlat } from "./vectors.ts";

/**
 * Whether steps replay their evaluations (true); an internal switch, not an option: the tests
 * run the same steps with it off and compare them bit for bit.
 */
export const tryReplay = { enabled: true };

/**
 * The objective of one step at flat points, recorded and replayed as the module documentation
 * says; {@link StepObjective.dispose} when the step ends, however it ends.
 *
 * @example
 * ```ts
 * import { init, meanSquaredError, mlp, ops, scope, tensor } from "../mod.ts";
 * import { StepObjective } from "./objective.ts";
 * await init({ backend: "cpu" });
 * const net = mlp({ inputs: 1, hidden: [2], outputs: 1 });
 * const params = net.init({ seed: 1 });
 * const x = tensor([[0], [1]]);
 * const mse = meanSquaredError(tensor([[0], [1]]));
 * const f = new StepObjective((...p) => [mse.value(net.forward(p, x))], params.map((p) => p.shape));
 * const flat = tensor(new Array(7).fill(0.5));
 * const [l1] = f.at(flat, true); // recorded: another evaluation follows
 * const [l2] = scope(() => f.at(ops.mul(flat, 2), false)); // replayed
 * console.log(await l1.data(), await l2.data());
 * f.dispose();
 * ```
 */
export class StepObjective {
  readonly #objective: (...p: Tensor[]) => Tensor[];
  readonly #shapes: readonly (readonly number[])[];
  readonly #replay: Replayable;
  #calls = 0;

  /** `objective(...params)`: the loss (and metric) at the parameters, `shapes` theirs. */
  constructor(objective: (...p: Tensor[]) => Tensor[], shapes: readonly (readonly number[])[]) {
    this.#objective = objective;
    this.#shapes = shapes;
    // In a scope of its own, so that the recording is realized as a plain evaluation is (after
    // its scope): with the model's intermediate arrays released, their maps fuse into the
    // products' epilogues (W1: 9 launches instead of 13; a replay runs 8, the labels' argmax being
    // a constant of the recording).
    this.#replay = replayable((p: Tensor) => scope(() => this.#plain(p)));
  }

  #plain(p: Tensor): Tensor[] {
    return this.#objective(...splitFlat(p, this.#shapes));
  }

  /**
   * The loss (and metric) at the flat point `p` (in the caller's scope); `more`: another
   * evaluation is known to follow in this step, so this one is worth recording.
   */
  at(p: Tensor, more: boolean): Tensor[] {
    const first = this.#calls++ === 0;
    if (!tryReplay.enabled || (first && !more) || p.backend.matmuls) return this.#plain(p);
    return this.#replay(p);
  }

  /** Frees the recording (what it holds of the batch and the step). */
  dispose(): void {
    this.#replay.dispose();
  }
}
