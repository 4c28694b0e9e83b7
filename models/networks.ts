/**
 * The seed's networks as plain functions of (parameters, input): a multilayer perceptron and a
 * convolutional net built from the seed's layer specification. Parameters are a list of tensors
 * in the seed's order (per layer: weights, then bias; input to output), initialized as the seed
 * does (SGN-ALGORITHM.md, "Networks and data") from a seeded generator, so runs repeat exactly.
 *
 * @module
 */

import { checkInt, SgnError, showValue } from "../errors.ts";

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
const listed = (xs: readonly string[], last = "or") =>
  xs.length < 2 ? xs.join("") : `${xs.slice(0, -1).join(", ")} ${last} ${xs[xs.length - 1]}`;

function activation(name: string, where: string): (x: Tensor) => Tensor {
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

const count = (shapes: readonly (readonly number[])[]) =>
  shapes.reduce((s, sh) => s + sh.reduce((a, b) => a * b, 1), 0);

/**
 * How a parameter starts: weights drawn (N(0, 1) in an MLP, U(+-bound) in a conv net), biases
 * zero, layer-normalization gains one. Only drawn weights consume the generator, so adding
 * layer normalization leaves every weight as it was.
 */
type ParamInit = { uniform: number } | "normal" | "zeros" | "ones";

/** The parameters of {@link ParamInit}s, seeded as {@link InitOptions} say. */
function initParams(
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

/** Rejects fields a spec object does not take, naming the first. */
function onlyFields(obj: object, allowed: readonly string[], where: string): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) {
      throw new SgnError(`${where}: unknown field "${key}" (it takes ${allowed.join(", ")})`);
    }
  }
}

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
