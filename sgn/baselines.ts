/**
 * First-order baselines sharing the {@link Optimizer} interface with SGN: the seed's SGD (heavy
 * ball, learning-rate schedules; SGN-ALGORITHM.md "The SGD baseline") and Adam. Both work on one
 * flat parameter vector and read back only the loss, once per step.
 *
 * @module
 */

import { SgnError } from "../errors.ts";
import {
  checkKnownOptions,
  checkOptions,
  interval,
  oneOf,
  type OptionRule,
  STEP_NUMBER,
} from "./options.ts";
import { scope, type Tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import { type OutputLoss, valueAndGrad, vjp } from "../autodiff/transforms.ts";
import { checkParams, concatFlat, splitFlat } from "./vectors.ts";
import { type ModelFn, type Optimizer, StepGuard } from "./optimizer.ts";

/** Learning-rate schedules of the seed's SGD. */
export type LrSchedule = "const" | "linear" | "cos" | "step";

/** Every {@link LrSchedule}. */
export const LR_SCHEDULES: readonly LrSchedule[] = ["const", "linear", "cos", "step"];

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

/** A learning rate: any positive number. */
const LEARNING_RATE = interval({ min: 0, minOpen: true });
/** A decay rate of a running average: in [0, 1) (1 would never forget). */
const DECAY_RATE = interval({ min: 0, max: 1, maxOpen: true });

/** Every SGD option's rule: the one check of each, for {@link SGD} and for train's settings. */
export const SGD_RULES: { readonly [K in keyof SgdOptions]-?: OptionRule } = {
  lr: { rule: LEARNING_RATE },
  momentum: { rule: DECAY_RATE },
  schedule: { rule: oneOf(LR_SCHEDULES) },
  lrFinal: { rule: interval({ min: 0 }) },
  k: { rule: interval(STEP_NUMBER) },
  decay: { rule: interval({ min: 0, minOpen: true, max: 1 }) },
  step: { rule: interval(STEP_NUMBER) },
};

/** SGD's defaults. */
const SGD_DEFAULTS: Required<SgdOptions> = {
  lr: 0.01,
  momentum: 0,
  schedule: "const",
  lrFinal: 0,
  k: 10,
  decay: 0.5,
  step: 10,
};

/** Fills in SGD's defaults and validates; throws an SgnError naming the first bad option. */
export function resolveSgdOptions(options: SgdOptions = {}): Required<SgdOptions> {
  checkKnownOptions(options, Object.keys(SGD_RULES), "SGD");
  const opt = { ...SGD_DEFAULTS, ...options };
  checkOptions("SGD", SGD_RULES, opt);
  return opt;
}

/** Every Adam option's rule: the one check of each, for {@link Adam} and for train's settings. */
export const ADAM_RULES: { readonly [K in keyof AdamOptions]-?: OptionRule } = {
  lr: { rule: LEARNING_RATE },
  beta1: { rule: DECAY_RATE },
  beta2: { rule: DECAY_RATE },
  eps: { rule: interval({ min: 0, minOpen: true }) },
};

/** Fills in Adam's defaults and validates; throws an SgnError naming the first bad option. */
export function resolveAdamOptions(options: AdamOptions = {}): Required<AdamOptions> {
  checkKnownOptions(options, Object.keys(ADAM_RULES), "Adam");
  const opt = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, ...options };
  checkOptions("Adam", ADAM_RULES, opt);
  return opt;
}

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
    this.options = resolveSgdOptions(options);
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
    this.options = resolveAdamOptions(options);
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
