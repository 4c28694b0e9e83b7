/**
 * What every network builder (models/mlp.ts, models/conv_net.ts) shares: the {@link Network}
 * type, the hidden-layer nonlinearities by name, how parameters start (drawn weights, zero biases,
 * unit gains, from a seeded generator or NumPy's legacy one exactly as the seed does), and the
 * checks that name a spec's unknown fields.
 *
 * @module
 */

import { SgnError, showValue } from "../errors.ts";
import { checkShape, type DType, sizeOf } from "../kernel/shape.ts";
import type { Backend } from "../kernel/backend.ts";
import { NumpyRandomState, Random } from "../random.ts";
import { type Tensor, tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";

/**
 * The hidden-layer nonlinearities by the names `mlp()` and the specs take, in the order error
 * messages list them: the seed's sigmoid, relu and tanh, softplus log(1 + e^x), and GELU in its
 * exact (erf) form, x Phi(x), as PyTorch's default `nn.GELU()` (`ops.gelu`).
 */
export const ACTIVATION_NAMES = ["sigmoid", "relu", "tanh", "softplus", "gelu"] as const;

/** A hidden-layer nonlinearity: one of {@link ACTIVATION_NAMES}. */
export type Activation = (typeof ACTIVATION_NAMES)[number];

const ACTIVATIONS: Readonly<Record<Activation, (x: Tensor) => Tensor>> = {
  sigmoid: o.sigmoid,
  relu: o.relu,
  tanh: o.tanh,
  softplus: o.softplus,
  gelu: o.gelu,
};

/** A network: its initial parameters and its forward function (outputs before any softmax). */
export interface Network {
  /** A one-line description, e.g. "MLP 784-20-20-20-10 sigmoid". */
  readonly name: string;
  /** Shape of one input sample (e.g. [784] or [3, 32, 32]). */
  readonly inputShape: readonly number[];
  /** Number of outputs per sample. */
  readonly outputs: number;
  /** Freshly initialized parameters, in the seed's order. The caller owns them. */
  init(options?: InitOptions): Tensor[];
  /** Outputs [batch, outputs] for inputs [batch, ...inputShape]. */
  forward(params: readonly Tensor[], x: Tensor): Tensor;
  /** The shapes of the parameters, in order. */
  readonly paramShapes: readonly (readonly number[])[];
  /** Total number of scalar parameters. */
  readonly paramCount: number;
  /**
   * The values each layer's output holds for one sample, in order (for a conv layer channels x
   * height x width): what a step's activations cost, known before anything is allocated.
   */
  readonly layerSizes: readonly number[];
}

/** Where and how parameters are created. */
export interface InitOptions {
  /** Seed of the initialization (default 1). */
  seed?: number;
  /**
   * Draw the weights from NumPy's legacy generator seeded with this number, exactly as the seed
   * does, the same for every run: its MLP uses `np.random.seed(10); randn(n)` per layer, its conv
   * nets `RandomState(1).uniform(-bound, bound)` per layer. Overrides `seed`.
   */
  numpySeed?: number;
  /** Backend that holds the parameters; default the one selected by `init()`. */
  backend?: Backend;
  /** Element type of the parameters; default "float32". */
  dtype?: DType;
}

/** "a, b or c" (or "a, b and c"). */
export const listed = (xs: readonly string[], last = "or") =>
  xs.length < 2 ? xs.join("") : `${xs.slice(0, -1).join(", ")} ${last} ${xs[xs.length - 1]}`;

/** The nonlinearity named `name`, or an SgnError naming `where` and the names there are. */
export function activation(name: string, where: string): (x: Tensor) => Tensor {
  // An own key only: "constructor" or "toString" must not find Object's methods.
  const f = typeof name === "string" && Object.hasOwn(ACTIVATIONS, name)
    ? ACTIVATIONS[name as Activation]
    : undefined;
  if (!f) {
    throw new SgnError(
      `${where}: unknown activation ${showValue(name)} (use ${listed(ACTIVATION_NAMES)})`,
    );
  }
  return f;
}

/** The number of scalar parameters of these shapes. */
export const count = (shapes: readonly (readonly number[])[]) =>
  shapes.reduce((s, sh) => s + sh.reduce((a, b) => a * b, 1), 0);

/**
 * How a parameter starts: weights drawn (N(0, 1) in an MLP, U(+-bound) in a conv net), biases
 * zero, layer-normalization gains one. Only drawn weights consume the generator, so adding
 * layer normalization leaves every weight as it was.
 */
export type ParamInit = { uniform: number } | "normal" | "zeros" | "ones";

/** The parameters of {@link ParamInit}s, seeded as {@link InitOptions} say. */
export function initParams(
  shapes: readonly (readonly number[])[],
  inits: readonly ParamInit[],
  { seed = 1, backend, dtype, numpySeed }: InitOptions,
): Tensor[] {
  const rng = new Random(seed);
  const np = numpySeed === undefined ? undefined : new NumpyRandomState(numpySeed);
  const normal = () => (np ? np.randn() : rng.normal());
  // numpy's uniform(low, high) is low + (high - low) * random_sample().
  const uniform = (b: number) => (np ? -b + 2 * b * np.random() : rng.range(-b, b));
  return shapes.map((shape, i) => {
    const n = sizeOf(checkShape(shape, "init: a parameter"));
    const values = new Float64Array(n);
    const how = inits[i];
    if (how === "ones") values.fill(1);
    else if (how === "normal") { for (let j = 0; j < n; j++) values[j] = normal(); }
    else if (how !== "zeros" && how.uniform > 0) {
      for (let j = 0; j < n; j++) values[j] = uniform(how.uniform);
    }
    return tensor(values, shape, { backend, dtype });
  });
}

/** Rejects fields a spec object does not take, naming the first. */
export function onlyFields(obj: object, allowed: readonly string[], where: string): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) {
      throw new SgnError(`${where}: unknown field "${key}" (it takes ${allowed.join(", ")})`);
    }
  }
}
