/**
 * The seed's four conv-net architectures (its scripts/architectures files), as specifications
 * for {@link convNet}, by the names its --architecture flag uses.
 *
 * @module
 */

import type { ConvNetSpec } from "./conv_net.ts";

/** The seed's `architecture_1` (fashion-MNIST), as in its scripts/architectures file. */
export const ARCHITECTURE_1: ConvNetSpec = {
  conv_layers: {
    layer0: { type: "CONV", num_filters: 6, filter_size: 5 },
    layer1: { type: "ACT", activation: "relu" },
    layer2: { type: "POOL" },
    layer3: { type: "CONV", num_filters: 16, filter_size: 5 },
    layer4: { type: "ACT", activation: "relu" },
    layer5: { type: "POOL" },
  },
  mlp_layers: {
    layer0: { type: "FC", output_size: 120, activation: "relu" },
    layer1: { type: "FC", output_size: 84, activation: "relu" },
  },
};

/** The seed's `architecture_2`: two pairs of CONV 5@3x3, each pair followed by a pool. */
export const ARCHITECTURE_2: ConvNetSpec = {
  conv_layers: {
    layer0: { type: "CONV", num_filters: 5, filter_size: 3 },
    layer1: { type: "ACT", activation: "relu" },
    layer2: { type: "CONV", num_filters: 5, filter_size: 3 },
    layer3: { type: "ACT", activation: "relu" },
    layer4: { type: "POOL" },
    layer5: { type: "CONV", num_filters: 5, filter_size: 3 },
    layer6: { type: "ACT", activation: "relu" },
    layer7: { type: "CONV", num_filters: 5, filter_size: 3 },
    layer8: { type: "ACT", activation: "relu" },
    layer9: { type: "POOL" },
  },
  mlp_layers: {
    layer0: { type: "FC", output_size: 120, activation: "relu" },
    layer1: { type: "FC", output_size: 120, activation: "relu" },
    layer2: { type: "FC", output_size: 84, activation: "relu" },
  },
};

/** The seed's `architecture_3` (VGG-like: 64, 64, pool, 128, 128, pool, 256 x 3, pool). */
export const ARCHITECTURE_3: ConvNetSpec = {
  conv_layers: {
    layer0: { type: "CONV", num_filters: 64, filter_size: 3 },
    layer1: { type: "ACT", activation: "relu" },
    layer2: { type: "CONV", num_filters: 64, filter_size: 3 },
    layer3: { type: "ACT", activation: "relu" },
    layer4: { type: "POOL" },
    layer5: { type: "CONV", num_filters: 128, filter_size: 3 },
    layer6: { type: "ACT", activation: "relu" },
    layer7: { type: "CONV", num_filters: 128, filter_size: 3 },
    layer8: { type: "ACT", activation: "relu" },
    layer9: { type: "POOL" },
    layer10: { type: "CONV", num_filters: 256, filter_size: 3 },
    layer11: { type: "ACT", activation: "relu" },
    layer12: { type: "CONV", num_filters: 256, filter_size: 3 },
    layer13: { type: "ACT", activation: "relu" },
    layer14: { type: "CONV", num_filters: 256, filter_size: 3 },
    layer15: { type: "ACT", activation: "relu" },
    layer16: { type: "POOL" },
  },
  mlp_layers: {
    layer0: { type: "FC", output_size: 128, activation: "relu" },
    layer1: { type: "FC", output_size: 128, activation: "relu" },
    layer2: { type: "FC", output_size: 64, activation: "relu" },
  },
};

/** The seed's `architecture_4` (CIFAR-10). */
export const ARCHITECTURE_4: ConvNetSpec = {
  conv_layers: {
    layer0: { type: "CONV", num_filters: 32, filter_size: 3, padding: 0, stride: 1 },
    layer1: { type: "ACT", activation: "relu" },
    layer2: { type: "POOL", pool_size: 2, stride: 2 },
    layer3: { type: "CONV", num_filters: 64, filter_size: 3, padding: 0, stride: 1 },
    layer4: { type: "ACT", activation: "relu" },
    layer5: { type: "POOL", pool_size: 2, stride: 2 },
    layer6: { type: "CONV", num_filters: 64, filter_size: 3, padding: 0, stride: 1 },
    layer7: { type: "ACT", activation: "relu" },
  },
  mlp_layers: {
    layer0: { type: "FC", output_size: 64, activation: "relu" },
  },
};

/** The seed's four architectures by the names its --architecture flag uses. */
export const ARCHITECTURES: Record<string, ConvNetSpec> = {
  architecture_1: ARCHITECTURE_1,
  architecture_2: ARCHITECTURE_2,
  architecture_3: ARCHITECTURE_3,
  architecture_4: ARCHITECTURE_4,
};
