/**
 * First-order baselines sharing the {@link Optimizer} interface with SGN: the seed's SGD (heavy
 * ball, learning-rate schedules; SGN-ALGORITHM.md "The SGD baseline") and Adam. Both work on one
 * flat parameter vector and read back only the loss, once per step.
 *
 * @module
 */

import { SgnError, showValue } from "../errors.ts";
import { checkKnownOptions } from "./options.ts";
import { scope, type Tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import { type OutputLoss, valueAndGrad, vjp } from "../autodiff/transforms.ts";
import { checkParams, concatFlat, splitFlat } from "./vectors.ts";
import { type ModelFn, type Optimizer, StepGuard } from "./optimizer.ts";

/** Learning-rate schedules of the seed's SGD. */
export type LrSchedule = "const" | "linear" | "cos" | "step";

/** Options of {@link SGD}. */
export interface SgdOptions {
  /** Initial learning rate (the seed's --lr). 0.01. */
  lr?: number;
  /** Heavy-ball momentum mu in [0, 1) (--mom). 0. */
  momentum?: number;
  /** Schedule (--scheduler). "const". */
  schedule?: LrSchedule;
  /** Final learning rate LR_K (--lr_final). 0. */
  lrFinal?: number;
  /** Step K at which linear and cos reach lrFinal (--K). 10. */
  k?: number;
  /** Step decay: factor (--r) applied every `step` steps (--step). 0.5 and 10. */
  decay?: number;
  /** Steps between two decays of the "step" schedule (--step). 10. */
  step?: number;
}

function need(ok: boolean, what: string, range: string, v: unknown): void {
  if (!ok) throw new SgnError(`${what} must be ${range}, got ${showValue(v)}`);
}

const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/** The learning rate at step t (from 1). */
export function scheduledLr(opts: Required<SgdOptions>, t: number): number {
  switch (opts.schedule) {
    case "const":
      return opts.lr;
    case "linear":
      return t >= opts.k
        ? opts.lrFinal
        : opts.lr + (opts.lrFinal - opts.lr) * (t - 1) / Math.max(1, opts.k - 1);
    case "cos": {
      const lr = opts.lr * Math.cos((Math.PI / 2) * t / opts.k);
      return t > opts.k || lr < opts.lrFinal ? opts.lrFinal : lr;
    }
    case "step":
      return Math.max(opts.lr * opts.decay ** Math.floor(t / opts.step), opts.lrFinal);
  }
}

/**
 * Loss, flat gradient and the loss's metric (if any) at the current parameters, from one
 * forward pass; the caller reads loss and metric back together (one readback).
 */
function lossAndGrad(params: readonly Tensor[], model: ModelFn, loss: OutputLoss) {
  return scope(() => {
    const [[z], pullback] = vjp((...p: Tensor[]) => [model(...p)], [...params]);
    try {
      const [l, [gz]] = valueAndGrad((out: Tensor) => loss.value(out))(z);
      const scalars = loss.metric ? concatFlat([l, loss.metric(z)]) : concatFlat([l]);
      return { scalars, g: concatFlat(pullback(gz)), theta: concatFlat(params) };
    } finally {
      pullback.dispose();
    }
  });
}

/** Reads loss and metric; a non-finite loss is an error naming the optimizer and step. */
async function readLoss(scalars: Tensor, what: string): Promise<{ loss: number; metric?: number }> {
  const [value, metric] = Array.from(await scalars.data());
  if (!Number.isFinite(value)) {
    throw new SgnError(`${what}: the loss is ${value}; the parameters were left unchanged`);
  }
  return metric === undefined ? { loss: value } : { loss: value, metric };
}

/**
 * Stochastic gradient descent with heavy-ball momentum, as the seed runs it:
 * v = mu v + lr g; theta = theta - v.
 *
 * @example
 * ```ts
 * import { init, meanSquaredError, mlp, SGD, tensor } from "../mod.ts";
 * await init({ backend: "cpu" });
 * const net = mlp({ inputs: 1, hidden: [4], outputs: 1 });
 * const opt = new SGD(net.init(), { lr: 0.1, momentum: 0.9 });
 * const x = tensor([[0.5]]);
 * const { loss } = await opt.step((...p) => net.forward(p, x), meanSquaredError(tensor([[1]])));
 * ```
 */
export class SGD implements Optimizer {
  readonly #guard = new StepGuard("SGD");
  /** The options in force: those given, checked, with the defaults for the rest. */
  readonly options: Required<SgdOptions>;
  #params: Tensor[];
  #shapes: number[][];
  #velocity: Tensor | undefined;
  /** Steps taken (the schedules count t from 1). */
  t = 0;

  /** Takes ownership of `params` (a list of tensors on one backend); checks the options. */
  constructor(params: Tensor[], options: SgdOptions = {}) {
    checkKnownOptions(
      options,
      ["lr", "momentum", "schedule", "lrFinal", "k", "decay", "step"],
      "SGD",
    );
    const opt = {
      lr: 0.01,
      momentum: 0,
      schedule: "const" as LrSchedule,
      lrFinal: 0,
      k: 10,
      decay: 0.5,
      step: 10,
      ...options,
    };
    need(isNum(opt.lr) && opt.lr > 0, "SGD lr", "a number > 0", opt.lr);
    need(
      isNum(opt.momentum) && opt.momentum >= 0 && opt.momentum < 1,
      "SGD momentum",
      "in [0, 1)",
      opt.momentum,
    );
    need(
      ["const", "linear", "cos", "step"].includes(opt.schedule),
      "SGD schedule",
      '"const", "linear", "cos" or "step"',
      opt.schedule,
    );
    need(isNum(opt.lrFinal) && opt.lrFinal >= 0, "SGD lrFinal", "a number >= 0", opt.lrFinal);
    need(Number.isInteger(opt.k) && opt.k >= 1, "SGD k", "an integer >= 1", opt.k);
    need(isNum(opt.decay) && opt.decay > 0 && opt.decay <= 1, "SGD decay", "in (0, 1]", opt.decay);
    need(Number.isInteger(opt.step) && opt.step >= 1, "SGD step", "an integer >= 1", opt.step);
    this.options = opt;
    this.#params = checkParams(params, "SGD");
    this.#shapes = params.map((p) => [...p.shape]);
  }

  get params(): readonly Tensor[] {
    return this.#params;
  }

  /** The learning rate the next step will use. */
  get lr(): number {
    return scheduledLr(this.options, this.t + 1);
  }

  /** One step on a mini-batch; a second call before this one's promise settles is refused. */
  step(model: ModelFn, loss: OutputLoss): Promise<{ loss: number; metric?: number; lr: number }> {
    return this.#guard.run(() => this.#step(model, loss), model, loss);
  }

  async #step(
    model: ModelFn,
    loss: OutputLoss,
  ): Promise<{ loss: number; metric?: number; lr: number }> {
    const t = this.t + 1;
    const lr = scheduledLr(this.options, t);
    const { scalars, g, theta } = lossAndGrad(this.#params, model, loss);
    try {
      const read = await readLoss(scalars, `SGD step ${t}`);
      const next = scope(() => {
        const v = this.#velocity
          ? o.add(o.mul(this.#velocity, this.options.momentum), o.mul(g, lr))
          : o.mul(g, lr);
        return { v, params: splitFlat(o.sub(theta, v), this.#shapes) };
      });
      for (const p of this.#params) p.dispose();
      this.#params = next.params;
      this.#velocity?.dispose();
      this.#velocity = next.v.realize();
      this.t = t;
      return { ...read, lr };
    } finally {
      for (const x of [scalars, g, theta]) x.dispose();
    }
  }

  dispose(): void {
    for (const p of this.#params) p.dispose();
    this.#velocity?.dispose();
  }
}

/** Options of {@link Adam}. */
export interface AdamOptions {
  /** Learning rate (--lr). 0.001. */
  lr?: number;
  /** Decay of the first-moment (mean) estimate, in [0, 1). 0.9. */
  beta1?: number;
  /** Decay of the second-moment (uncentred variance) estimate, in [0, 1). 0.999. */
  beta2?: number;
  /** Added to the square root of the second moment to keep the division finite. 1e-8. */
  eps?: number;
}

/**
 * Adam (Kingma and Ba) with bias correction.
 *
 * @example
 * ```ts
 * import { Adam, init, mlp } from "../mod.ts";
 * await init({ backend: "cpu" });
 * const opt = new Adam(mlp({ inputs: 2, hidden: [4], outputs: 1 }).init(), { lr: 1e-3 });
 * ```
 */
export class Adam implements Optimizer {
  readonly #guard = new StepGuard("Adam");
  /** The options in force: those given, checked, with the defaults for the rest. */
  readonly options: Required<AdamOptions>;
  #params: Tensor[];
  #shapes: number[][];
  #m: Tensor | undefined;
  #v: Tensor | undefined;
  /** Steps taken (bias correction counts t from 1). */
  t = 0;

  /** Takes ownership of `params` (a list of tensors on one backend); checks the options. */
  constructor(params: Tensor[], options: AdamOptions = {}) {
    checkKnownOptions(options, ["lr", "beta1", "beta2", "eps"], "Adam");
    const opt = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, ...options };
    need(isNum(opt.lr) && opt.lr > 0, "Adam lr", "a number > 0", opt.lr);
    need(isNum(opt.beta1) && opt.beta1 >= 0 && opt.beta1 < 1, "Adam beta1", "in [0, 1)", opt.beta1);
    need(isNum(opt.beta2) && opt.beta2 >= 0 && opt.beta2 < 1, "Adam beta2", "in [0, 1)", opt.beta2);
    need(isNum(opt.eps) && opt.eps > 0, "Adam eps", "a number > 0", opt.eps);
    this.options = opt;
    this.#params = checkParams(params, "Adam");
    this.#shapes = params.map((p) => [...p.shape]);
  }

  get params(): readonly Tensor[] {
    return this.#params;
  }

  /** One step on a mini-batch; a second call before this one's promise settles is refused. */
  step(model: ModelFn, loss: OutputLoss): Promise<{ loss: number; metric?: number }> {
    return this.#guard.run(() => this.#step(model, loss), model, loss);
  }

  async #step(model: ModelFn, loss: OutputLoss): Promise<{ loss: number; metric?: number }> {
    const t = this.t + 1;
    const { lr, beta1, beta2, eps } = this.options;
    const { scalars, g, theta } = lossAndGrad(this.#params, model, loss);
    try {
      const read = await readLoss(scalars, `Adam step ${t}`);
      const next = scope(() => {
        const m = this.#m ? o.add(o.mul(this.#m, beta1), o.mul(g, 1 - beta1)) : o.mul(g, 1 - beta1);
        const g2 = o.square(g);
        const v = this.#v
          ? o.add(o.mul(this.#v, beta2), o.mul(g2, 1 - beta2))
          : o.mul(g2, 1 - beta2);
        const mHat = o.div(m, 1 - beta1 ** t);
        const vHat = o.div(v, 1 - beta2 ** t);
        const update = o.div(o.mul(mHat, lr), o.add(o.sqrt(vHat), eps));
        return { m, v, params: splitFlat(o.sub(theta, update), this.#shapes) };
      });
      for (const p of this.#params) p.dispose();
      this.#params = next.params;
      this.#m?.dispose();
      this.#v?.dispose();
      this.#m = next.m.realize();
      this.#v = next.v.realize();
      this.t = t;
      return read;
    } finally {
      for (const x of [scalars, g, theta]) x.dispose();
    }
  }

  dispose(): void {
    for (const p of this.#params) p.dispose();
    this.#m?.dispose();
    this.#v?.dispose();
  }
}
