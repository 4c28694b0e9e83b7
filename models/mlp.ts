/**
 * The seed's multilayer perceptron as a plain function of (parameters, input), with optional
 * layer normalization and skip connections in its hidden layers. Parameters are a list of tensors
 * in the seed's order (per layer: weights, then bias; input to output), initialized as the seed
 * does (SGN-ALGORITHM.md, "Networks and data").
 *
 * @module
 */

import { checkInt, SgnError, showValue } from "../errors.ts";
import * as o from "../autodiff/ops.ts";
import {
  type Activation,
  activation,
  count,
  initParams,
  type Network,
  onlyFields,
  type ParamInit,
} from "./network_base.ts";

/** The options {@link mlp} takes. */
const MLP_FIELDS = ["inputs", "hidden", "outputs", "activation", "layerNorm", "residual"];

/** Options of {@link mlp}. */
export interface MlpOptions {
  /** Input features (784 for MNIST). */
  inputs: number;
  /** Hidden layer sizes (the seed's --layers). */
  hidden: readonly number[];
  /** Outputs (classes, or regression targets). */
  outputs: number;
  /** Hidden nonlinearity; the seed uses sigmoid. */
  activation?: Activation;
  /**
   * Layer normalization after each hidden affine layer, before its nonlinearity: over the
   * layer's features, with a learned gain (starting at 1) and bias (at 0), epsilon 1e-5
   * (`ops.layerNorm`). Each hidden layer's parameters are then weights, bias, gain, LN bias.
   * Default false.
   */
  layerNorm?: boolean;
  /**
   * Skip connections: each hidden layer whose input has its width adds that input to its
   * output, h + act(h W + b). At least one hidden layer must qualify. Default false.
   */
  residual?: boolean;
}

/** Checks an optional boolean option. */
function flag(v: unknown, what: string): boolean {
  if (v === undefined) return false;
  if (typeof v !== "boolean") {
    throw new SgnError(`${what} must be true or false, got ${showValue(v)}`);
  }
  return v;
}

/**
 * A multilayer perceptron: hidden layers x W + b with a nonlinearity, then a linear output
 * layer. Weights are initialized N(0, 1) and biases 0, as the seed does. Options add layer
 * normalization and skip connections to the hidden layers.
 *
 * @example
 * ```ts
 * import { init, mlp } from "../mod.ts";
 * await init({ backend: "cpu" });
 * const net = mlp({ inputs: 784, hidden: [20, 20, 20], outputs: 10 });
 * console.log(net.paramCount); // 16750
 * const params = net.init({ seed: 1 });
 * const deep = mlp({ inputs: 784, hidden: [64, 64, 64], outputs: 10, activation: "gelu",
 *   layerNorm: true, residual: true });
 * console.log(deep.name); // MLP 784-64-64-64-10 gelu, layer norm, residual
 * ```
 */
export function mlp(options: MlpOptions): Network {
  if (typeof options !== "object" || options === null) {
    throw new SgnError(
      `mlp: options must be an object such as { inputs: 784, hidden: [20], outputs: 10 }, got ${
        showValue(options)
      }`,
    );
  }
  onlyFields(options, MLP_FIELDS, "mlp");
  const inputs = checkInt(options.inputs, "mlp: inputs", 1);
  const outputs = checkInt(options.outputs, "mlp: outputs", 1);
  if (!Array.isArray(options.hidden)) {
    throw new SgnError(
      `mlp: hidden must be an array of layer sizes, e.g. [20, 20], got ${
        showValue(options.hidden)
      }`,
    );
  }
  const hidden = options.hidden.map((h, i) => checkInt(h, `mlp: hidden layer ${i} size`, 1));
  const actName = options.activation ?? "sigmoid";
  const act = activation(actName, "mlp");
  const norm = flag(options.layerNorm, "mlp: layerNorm");
  const residual = flag(options.residual, "mlp: residual");
  const sizes = [inputs, ...hidden, outputs];
  const paramShapes: number[][] = [];
  const inits: ParamInit[] = [];
  /** Per hidden layer: its first parameter's index and whether it adds its input. */
  const layers: { at: number; skip: boolean }[] = [];
  const layerSizes: number[] = [];
  for (let i = 0; i + 1 < sizes.length; i++) {
    const at = paramShapes.length;
    paramShapes.push([sizes[i], sizes[i + 1]], [sizes[i + 1]]);
    inits.push("normal", "zeros");
    if (i + 2 < sizes.length) {
      if (norm) (paramShapes.push([sizes[i + 1]], [sizes[i + 1]]), inits.push("ones", "zeros"));
      const skip = residual && sizes[i] === sizes[i + 1];
      layers.push({ at, skip });
      // The affine output, then the normalized one and the sum where they exist.
      layerSizes.push(...new Array(1 + (norm ? 1 : 0) + (skip ? 1 : 0)).fill(sizes[i + 1]));
    }
  }
  layerSizes.push(outputs);
  if (residual && !layers.some((l) => l.skip)) {
    throw new SgnError(
      `mlp: residual needs a hidden layer as wide as its input, and ${sizes.join("-")} has ` +
        "none (e.g. hidden: [64, 64] adds the first hidden layer's output to the second's)",
    );
  }
  const out = paramShapes.length - 2;
  const extras = [...(norm ? ["layer norm"] : []), ...(residual ? ["residual"] : [])];
  return {
    name: `MLP ${sizes.join("-")} ${[actName, ...extras].join(", ")}`,
    inputShape: [inputs],
    outputs,
    paramShapes,
    paramCount: count(paramShapes),
    layerSizes,
    init: (opts = {}) => initParams(paramShapes, inits, opts),
    forward(params, x) {
      let h = x.rank === 2 ? x : o.flatten(x);
      for (const { at, skip } of layers) {
        let z = o.add(o.matmul(h, params[at]), params[at + 1]);
        if (norm) z = o.add(o.mul(o.layerNorm(z), params[at + 2]), params[at + 3]);
        z = act(z);
        h = skip ? o.add(h, z) : z;
      }
      return o.add(o.matmul(h, params[out]), params[out + 1]);
    },
  };
}
