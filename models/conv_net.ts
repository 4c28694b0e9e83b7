/**
 * The seed's convolutional nets as plain functions of (parameters, input), built from its layer
 * specification (CONV, ACT, POOL, FC) and ours (AVGPOOL, GAP, LN, RES), each layer checked where
 * it is read with errors that name it. Parameters follow the layers' order, initialized as the
 * seed does (SGN-ALGORITHM.md, "Networks and data").
 *
 * @module
 */

import { checkInt, SgnError, showValue } from "../errors.ts";
import type { Tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import {
  type Activation,
  activation,
  count,
  initParams,
  listed,
  type Network,
  onlyFields,
  type ParamInit,
} from "./network_base.ts";

/** One layer of a conv-net specification: the seed's CONV, ACT, POOL and FC, and ours. */
export type LayerSpec =
  | { type: "CONV"; num_filters: number; filter_size: number; padding?: number; stride?: number }
  | { type: "ACT"; activation: Activation }
  | { type: "POOL"; pool_size?: number; stride?: number }
  | { type: "AVGPOOL"; pool_size?: number; stride?: number }
  | { type: "GAP" }
  | { type: "LN" }
  | { type: "RES"; layers: Record<string, LayerSpec> }
  | { type: "FC"; output_size: number; activation?: Activation };

/** The seed's conv-net specification (its architecture files' JSON), with our layer types. */
export interface ConvNetSpec {
  /**
   * The convolutional part: CONV, ACT, POOL, AVGPOOL, GAP, LN and RES layers keyed layer0,
   * layer1, ... in order.
   */
  conv_layers: Record<string, LayerSpec>;
  /**
   * Layers after the flattened features (FC, ACT, LN and RES), keyed layer0, layer1, ...; the
   * output layer follows.
   */
  mlp_layers?: Record<string, LayerSpec>;
}

/** The fields each layer type takes (anything else in a spec is an error that names it). */
const LAYER_FIELDS: Record<LayerSpec["type"], readonly string[]> = {
  CONV: ["type", "num_filters", "filter_size", "padding", "stride"],
  ACT: ["type", "activation"],
  POOL: ["type", "pool_size", "stride"],
  AVGPOOL: ["type", "pool_size", "stride"],
  GAP: ["type"],
  LN: ["type"],
  RES: ["type", "layers"],
  FC: ["type", "output_size", "activation"],
};

/** The layer types each part of a spec takes (a RES block takes those of its part). */
const PART_TYPES: Record<"conv_layers" | "mlp_layers", readonly LayerSpec["type"][]> = {
  conv_layers: ["CONV", "ACT", "POOL", "AVGPOOL", "GAP", "LN", "RES"],
  mlp_layers: ["FC", "ACT", "LN", "RES"],
};

/** Layers of a spec group in order layer0, layer1, ... (the seed's key order). */
function ordered(
  group: Record<string, LayerSpec> | undefined,
  what: string,
): [string, LayerSpec][] {
  if (group === undefined) return [];
  if (typeof group !== "object" || group === null || Array.isArray(group)) {
    throw new SgnError(`conv net spec: ${what} must be an object of layers (layer0, layer1, ...)`);
  }
  const entries = Object.entries(group);
  const index = (k: string) => Number(/^layer(\d+)$/.exec(k)?.[1] ?? NaN);
  for (const [k, layer] of entries) {
    if (Number.isNaN(index(k))) {
      throw new SgnError(`conv net spec: ${what}.${k}: layer names must be layer0, layer1, ...`);
    }
    const fields = typeof layer === "object" && layer !== null && !Array.isArray(layer) &&
        Object.hasOwn(LAYER_FIELDS, layer.type)
      ? LAYER_FIELDS[layer.type]
      : undefined;
    if (fields) onlyFields(layer, fields, `conv net spec: ${what}.${k}`);
  }
  return entries.sort((a, b) => index(a[0]) - index(b[0]));
}

/** A pooling layer's window and stride, checked against the feature map. */
function poolWindow(
  layer: { pool_size?: number; stride?: number },
  [h, w]: number[],
  where: string,
): { size: number; stride: number; ho: number; wo: number } {
  // The seed's files often give no pool_size: 2 x 2 by default, as Theano's pool_2d did there.
  const size = checkInt(layer.pool_size ?? 2, `${where}: pool_size`, 1);
  const stride = checkInt(layer.stride ?? size, `${where}: stride`, 1);
  const ho = Math.floor((h - size) / stride) + 1;
  const wo = Math.floor((w - size) / stride) + 1;
  if (ho < 1 || wo < 1) {
    throw new SgnError(`${where}: a ${size}x${size} pool does not fit the ${h}x${w} feature map`);
  }
  return { size, stride, ho, wo };
}

/**
 * A convolutional net from the seed's specification: CONV layers (valid cross-correlation with
 * bias, stride 1 and no padding unless given), ACT, POOL (max-pool, border dropped), then
 * flatten, FC layers, and a final linear layer to the classes. Init as the seed: conv weights
 * U(+-sqrt(6 / (filters * in_channels * k * k))), FC weights U(+-sqrt(6 / (fan_in + classes))),
 * biases 0.
 *
 * Beyond the seed's layer types:
 * - `{ "type": "AVGPOOL", "pool_size"?, "stride"? }`: average pooling (default 2 x 2, stride the
 *   window; the border no whole window covers is dropped, as POOL does);
 * - `{ "type": "GAP" }`: global average pooling, the mean over height and width of each channel
 *   (the map becomes c x 1 x 1);
 * - `{ "type": "LN" }` (in either part): layer normalization over all the features of each
 *   example (c x h x w in the convolutional part), epsilon 1e-5, with a learned gain (starting
 *   at 1) and bias (at 0) of the features' shape, as PyTorch's `nn.LayerNorm`;
 * - `{ "type": "RES", "layers": { "layer0": ..., ... } }` (in either part): a residual block,
 *   x + f(x), f its layers (those its part takes), whose output must have its input's shape;
 * - ACT layers in mlp_layers, and the activations softplus and gelu (exact, erf form) in ACT and
 *   FC layers.
 * Parameters follow the layers' order: weights then bias for CONV and FC, gain then bias for LN.
 *
 * @example
 * ```ts
 * import { convNet, init } from "../mod.ts";
 * await init({ backend: "cpu" });
 * const net = convNet({
 *   conv_layers: {
 *     layer0: { type: "CONV", num_filters: 6, filter_size: 5 },
 *     layer1: { type: "ACT", activation: "relu" },
 *     layer2: { type: "POOL", pool_size: 2 },
 *   },
 *   mlp_layers: { layer0: { type: "FC", output_size: 84, activation: "relu" } },
 * }, [1, 28, 28], 10);
 * const resnet = convNet({
 *   conv_layers: {
 *     layer0: { type: "CONV", num_filters: 8, filter_size: 3, padding: 1 },
 *     layer1: {
 *       type: "RES",
 *       layers: {
 *         layer0: { type: "LN" },
 *         layer1: { type: "ACT", activation: "gelu" },
 *         layer2: { type: "CONV", num_filters: 8, filter_size: 3, padding: 1 },
 *       },
 *     },
 *     layer2: { type: "GAP" },
 *   },
 * }, [1, 28, 28], 10);
 * console.log(resnet.name);
 * ```
 */
export function convNet(
  spec: ConvNetSpec,
  inputShape: readonly number[],
  classes: number,
): Network {
  if (!spec || typeof spec !== "object" || Array.isArray(spec)) {
    throw new SgnError(
      'conv net spec must be an object { "conv_layers": {...}, "mlp_layers": {...} }, got ' +
        showValue(spec),
    );
  }
  onlyFields(spec, ["conv_layers", "mlp_layers"], "conv net spec");
  if (
    typeof spec.conv_layers !== "object" || spec.conv_layers === null ||
    Object.keys(spec.conv_layers).length === 0
  ) {
    throw new SgnError(
      "conv net spec: conv_layers must name at least one layer (layer0, layer1, ...); for a " +
        "network without convolutions use an MLP (--layers)",
    );
  }
  if (inputShape.length !== 3) {
    throw new SgnError(
      `convNet: inputShape must be [channels, height, width], got [${inputShape}]`,
    );
  }
  checkInt(classes, "convNet: classes", 1);
  type Step = (params: readonly Tensor[], x: Tensor) => Tensor;
  const paramShapes: number[][] = [];
  const inits: ParamInit[] = [];
  const layerSizes: number[] = [];
  /**
   * The steps of one group of layers (a part of the spec, or a RES block's layers) from a
   * feature shape ([c, h, w] in the convolutional part, [features] after it), which it updates.
   */
  const group = (
    layers: Record<string, LayerSpec> | undefined,
    part: "conv_layers" | "mlp_layers",
    path: string,
    shape: number[],
    names: string[],
  ): Step[] => {
    const steps: Step[] = [];
    // A relu followed by a max pool runs after the pool: max and relu commute exactly
    // (max(relu(a), relu(b)) = relu(max(a, b))), so outputs and derivatives are the seed's, while
    // the relu and its derivative masks touch a quarter of the values (a 2 x 2 pool). Fusion does
    // not replace this: with the relu in the convolution's epilogue, the pool's backward output
    // still needs its mask at full size; Fashion's loss + gradient measured 20% slower on the
    // native backend that way (bench/README.md).
    let pendingRelu = false;
    const flushRelu = () => {
      if (pendingRelu) steps.push((_, x) => o.relu(x));
      pendingRelu = false;
    };
    const size = () => shape.reduce((a, b) => a * b, 1);
    for (const [key, layer] of ordered(layers, path)) {
      const where = `conv net spec: ${path}.${key}`;
      const type = (layer as { type?: unknown })?.type;
      if (!PART_TYPES[part].includes(type as LayerSpec["type"])) {
        throw new SgnError(
          `${where}: unknown layer type ${JSON.stringify(type)} (${part} take ${
            listed(PART_TYPES[part], "and")
          })`,
        );
      }
      if (layer.type !== "POOL") flushRelu();
      switch (layer.type) {
        case "CONV": {
          const [c, h, w] = shape;
          const f = checkInt(layer.num_filters, `${where}: num_filters`, 1);
          const k = checkInt(layer.filter_size, `${where}: filter_size`, 1);
          const stride = checkInt(layer.stride ?? 1, `${where}: stride`, 1);
          const pad = checkInt(layer.padding ?? 0, `${where}: padding`, 0);
          const ho = Math.floor((h + 2 * pad - k) / stride) + 1;
          const wo = Math.floor((w + 2 * pad - k) / stride) + 1;
          if (ho < 1 || wo < 1) {
            throw new SgnError(
              `${where}: a ${k}x${k} filter does not fit the ${h}x${w} feature map`,
            );
          }
          const wi = paramShapes.length;
          paramShapes.push([f, c, k, k], [f]);
          inits.push({ uniform: Math.sqrt(6 / (f * c * k * k)) }, "zeros");
          steps.push((p, x) =>
            o.add(
              o.conv2d(x, p[wi], { stride, padding: pad }),
              o.reshape(p[wi + 1], [1, f, 1, 1]),
            )
          );
          names.push(`conv${f}@${k}x${k}`);
          shape.splice(0, 3, f, ho, wo);
          layerSizes.push(size());
          break;
        }
        case "ACT": {
          const act = activation(layer.activation, where);
          // Only in the convolutional part may a pool follow the relu.
          if (layer.activation === "relu" && part === "conv_layers") pendingRelu = true;
          else steps.push((_, x) => act(x));
          names.push(layer.activation);
          break;
        }
        case "POOL": {
          const { size: k, stride, ho, wo } = poolWindow(layer, shape.slice(1), where);
          steps.push((_, x) => o.maxPool2d(x, k, stride));
          flushRelu();
          names.push(`pool${k}`);
          shape.splice(1, 2, ho, wo);
          layerSizes.push(size());
          break;
        }
        case "AVGPOOL": {
          const { size: k, stride, ho, wo } = poolWindow(layer, shape.slice(1), where);
          steps.push((_, x) => o.avgPool2d(x, k, stride));
          names.push(`avgpool${k}${stride === k ? "" : `/${stride}`}`);
          shape.splice(1, 2, ho, wo);
          layerSizes.push(size());
          break;
        }
        case "GAP": {
          // Kept as c x 1 x 1, so that any layer of the part may follow; flatten makes it [n, c].
          steps.push((_, x) => o.mean(x, [2, 3], true));
          names.push("gap");
          shape.splice(1, 2, 1, 1);
          layerSizes.push(size());
          break;
        }
        case "LN": {
          const gi = paramShapes.length;
          paramShapes.push([...shape], [...shape]);
          inits.push("ones", "zeros");
          steps.push((p, x) => o.add(o.mul(o.layerNorm(x), p[gi]), p[gi + 1]));
          names.push("ln");
          layerSizes.push(size());
          break;
        }
        case "RES": {
          if (
            typeof layer.layers !== "object" || layer.layers === null ||
            Object.keys(layer.layers).length === 0
          ) {
            throw new SgnError(
              `${where}: a RES block needs its layers, e.g. "layers": { "layer0": {...} }, got ${
                showValue(layer.layers)
              }`,
            );
          }
          const before = [...shape];
          const inner: string[] = [];
          const body = group(layer.layers, part, `${path}.${key}.layers`, shape, inner);
          if (shape.length !== before.length || shape.some((d, i) => d !== before[i])) {
            throw new SgnError(
              `${where}: a RES block's layers must keep the shape of its input, ` +
                `${before.join("x")}, but give ${shape.join("x")}`,
            );
          }
          steps.push((p, x) => {
            let y = x;
            for (const step of body) y = step(p, y);
            return o.add(x, y);
          });
          names.push(`res(${inner.join(", ")})`);
          layerSizes.push(size());
          break;
        }
        case "FC": {
          const outSize = checkInt(layer.output_size, `${where}: output_size`, 1);
          const act = layer.activation ? activation(layer.activation, where) : undefined;
          steps.push(dense(shape[0], outSize, act));
          names.push(`fc${outSize}${layer.activation ? " " + layer.activation : ""}`);
          shape.splice(0, 1, outSize);
          break;
        }
      }
    }
    flushRelu();
    return steps;
  };
  /** A fully connected layer from `inSize` features, with its nonlinearity if any. */
  const dense = (inSize: number, outSize: number, act?: (x: Tensor) => Tensor): Step => {
    const wi = paramShapes.length;
    paramShapes.push([inSize, outSize], [outSize]);
    inits.push({ uniform: Math.sqrt(6 / (inSize + classes)) }, "zeros");
    layerSizes.push(outSize);
    return (p, x) => {
      const y = o.add(o.matmul(x, p[wi]), p[wi + 1]);
      return act ? act(y) : y;
    };
  };
  const shape = inputShape.map((d, i) => checkInt(d, `convNet: inputShape[${i}]`, 1));
  const names: string[] = [];
  const steps = group(spec.conv_layers, "conv_layers", "conv_layers", shape, names);
  steps.push((_, x) => o.flatten(x));
  const features = [shape.reduce((a, b) => a * b, 1)];
  steps.push(...group(spec.mlp_layers, "mlp_layers", "mlp_layers", features, names));
  steps.push(dense(features[0], classes));
  names.push(`fc${classes}`);
  return {
    name: `ConvNet ${inputShape.join("x")}: ${names.join(", ")}`,
    inputShape: [...inputShape],
    outputs: classes,
    paramShapes,
    paramCount: count(paramShapes),
    layerSizes,
    init: (opts = {}) => initParams(paramShapes, inits, opts),
    forward(params, x) {
      let y = x;
      for (const step of steps) y = step(params, y);
      return y;
    },
  };
}
