/**
 * The seed's networks as plain functions of (parameters, input): a multilayer perceptron
 * (models/mlp.ts) and a convolutional net built from the seed's layer specification
 * (models/conv_net.ts), with the seed's four architectures (models/architectures.ts) and what the
 * builders share (models/network_base.ts). Parameters are a list of tensors in the seed's order
 * (per layer: weights, then bias; input to output), initialized as the seed does
 * (SGN-ALGORITHM.md, "Networks and data") from a seeded generator, so runs repeat exactly. This
 * module is their one entry point.
 *
 * @module
 */

export {
  type Activation,
  ACTIVATION_NAMES,
  type InitOptions,
  type Network,
} from "./network_base.ts";
export { mlp, type MlpOptions } from "./mlp.ts";
export { convNet, type ConvNetSpec, type LayerSpec } from "./conv_net.ts";
export {
  ARCHITECTURE_1,
  ARCHITECTURE_2,
  ARCHITECTURE_3,
  ARCHITECTURE_4,
  ARCHITECTURES,
} from "./architectures.ts";
