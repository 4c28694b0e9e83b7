/**
 * The seed's networks as plain functions of (parameters, input): a multilayer perceptron and a
 * convolutional net built from the seed's layer specification. Parameters are a list of tensors
 * in the seed's order (per layer: weights, then bias; input to output), initialized as the seed
 * does (SGN-ALGORITHM.md, "Networks and data") from a seeded generator, so runs repeat exactly.
 *
 * @module
 */

import { checkInt, checkShape, type DType, SgnError, showValue, sizeOf } from "../backend.ts";
import type { Backend } from "../backend.ts";
import { NumpyRandomState, Random } from "../random.ts";
import { type Tensor, tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";

/** Hidden-layer nonlinearities. */
export type Activation = "sigmoid" | "relu" | "tanh";

const ACTIVATIONS: Record<Activation, (x: Tensor) => Tensor> = {
  sigmoid: o.sigmoid,
  relu: o.relu,
  tanh: o.tanh,
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

function activation(name: string, where: string): (x: Tensor) => Tensor {
  // An own key only: "constructor" or "toString" must not find Object's methods.
  const f = typeof name === "string" && Object.hasOwn(ACTIVATIONS, name)
    ? ACTIVATIONS[name as Activation]
    : undefined;
  if (!f) {
    throw new SgnError(
      `${where}: unknown activation ${showValue(name)} (use sigmoid, relu or tanh)`,
    );
  }
  return f;
}

const count = (shapes: readonly (readonly number[])[]) =>
  shapes.reduce((s, sh) => s + sh.reduce((a, b) => a * b, 1), 0);

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
}

/**
 * A multilayer perceptron: hidden layers x W + b with a nonlinearity, then a linear output
 * layer. Weights are initialized N(0, 1) and biases 0, as the seed does.
 *
 * @example
 * ```ts
 * import { init, mlp } from "../mod.ts";
 * await init({ backend: "cpu" });
 * const net = mlp({ inputs: 784, hidden: [20, 20, 20], outputs: 10 });
 * console.log(net.paramCount); // 16750
 * const params = net.init({ seed: 1 });
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
  const sizes = [inputs, ...hidden, outputs];
  const paramShapes: number[][] = [];
  for (let i = 0; i + 1 < sizes.length; i++) {
    paramShapes.push([sizes[i], sizes[i + 1]], [sizes[i + 1]]);
  }
  return {
    name: `MLP ${sizes.join("-")} ${actName}`,
    inputShape: [inputs],
    outputs,
    paramShapes,
    paramCount: count(paramShapes),
    layerSizes: sizes.slice(1),
    init({ seed = 1, backend, dtype, numpySeed } = {}) {
      const rng = new Random(seed);
      const np = numpySeed === undefined ? undefined : new NumpyRandomState(numpySeed);
      const normal = () => (np ? np.randn() : rng.normal());
      return paramShapes.map((shape) => {
        const n = sizeOf(checkShape(shape, "init: a parameter"));
        const values = new Float64Array(n);
        if (shape.length === 2) { for (let i = 0; i < n; i++) values[i] = normal(); }
        return tensor(values, shape, { backend, dtype });
      });
    },
    forward(params, x) {
      let h = x.rank === 2 ? x : o.flatten(x);
      for (let i = 0; i < params.length; i += 2) {
        h = o.add(o.matmul(h, params[i]), params[i + 1]);
        if (i + 2 < params.length) h = act(h);
      }
      return h;
    },
  };
}

/** One layer of the seed's conv-net specification. */
export type LayerSpec =
  | { type: "CONV"; num_filters: number; filter_size: number; padding?: number; stride?: number }
  | { type: "ACT"; activation: Activation }
  | { type: "POOL"; pool_size?: number; stride?: number }
  | { type: "FC"; output_size: number; activation?: Activation };

/** The seed's conv-net specification (its architecture files' JSON). */
export interface ConvNetSpec {
  /** The convolutional part: CONV, ACT and POOL layers keyed layer0, layer1, ... in order. */
  conv_layers: Record<string, LayerSpec>;
  /** FC layers after the flattened features, keyed layer0, layer1, ...; the output layer follows. */
  mlp_layers?: Record<string, LayerSpec>;
}

/** The fields each layer type takes (anything else in a spec is an error that names it). */
const LAYER_FIELDS: Record<LayerSpec["type"], readonly string[]> = {
  CONV: ["type", "num_filters", "filter_size", "padding", "stride"],
  ACT: ["type", "activation"],
  POOL: ["type", "pool_size", "stride"],
  FC: ["type", "output_size", "activation"],
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

/**
 * A convolutional net from the seed's specification: CONV layers (valid cross-correlation with
 * bias, stride 1 and no padding unless given), ACT, POOL (max-pool, border dropped), then
 * flatten, FC layers, and a final linear layer to the classes. Init as the seed: conv weights
 * U(+-sqrt(6 / (filters * in_channels * k * k))), FC weights U(+-sqrt(6 / (fan_in + classes))),
 * biases 0.
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
  let [c, h, w] = inputShape.map((d, i) => checkInt(d, `convNet: inputShape[${i}]`, 1));
  type Step = (params: readonly Tensor[], x: Tensor) => Tensor;
  const steps: Step[] = [];
  const paramShapes: number[][] = [];
  const bounds: number[] = [];
  const names: string[] = [];
  const layerSizes: number[] = [];
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
  for (const [key, layer] of ordered(spec.conv_layers, "conv_layers")) {
    const where = `conv net spec: conv_layers.${key}`;
    if (layer?.type !== "POOL") flushRelu();
    switch (layer?.type) {
      case "CONV": {
        const f = checkInt(layer.num_filters, `${where}: num_filters`, 1);
        const k = checkInt(layer.filter_size, `${where}: filter_size`, 1);
        const stride = checkInt(layer.stride ?? 1, `${where}: stride`, 1);
        const pad = checkInt(layer.padding ?? 0, `${where}: padding`, 0);
        const ho = Math.floor((h + 2 * pad - k) / stride) + 1;
        const wo = Math.floor((w + 2 * pad - k) / stride) + 1;
        if (ho < 1 || wo < 1) {
          throw new SgnError(`${where}: a ${k}x${k} filter does not fit the ${h}x${w} feature map`);
        }
        const wi = paramShapes.length;
        paramShapes.push([f, c, k, k], [f]);
        bounds.push(Math.sqrt(6 / (f * c * k * k)), 0);
        steps.push((p, x) =>
          o.add(o.conv2d(x, p[wi], { stride, padding: pad }), o.reshape(p[wi + 1], [1, f, 1, 1]))
        );
        names.push(`conv${f}@${k}x${k}`);
        [c, h, w] = [f, ho, wo];
        layerSizes.push(c * h * w);
        break;
      }
      case "ACT": {
        const act = activation(layer.activation, where);
        if (layer.activation === "relu") pendingRelu = true;
        else steps.push((_, x) => act(x));
        names.push(layer.activation);
        break;
      }
      case "POOL": {
        // The seed's files often give no pool_size: 2 x 2 by default, as Theano's pool_2d did there.
        const size = checkInt(layer.pool_size ?? 2, `${where}: pool_size`, 1);
        const stride = checkInt(layer.stride ?? size, `${where}: stride`, 1);
        const ho = Math.floor((h - size) / stride) + 1;
        const wo = Math.floor((w - size) / stride) + 1;
        if (ho < 1 || wo < 1) {
          throw new SgnError(
            `${where}: a ${size}x${size} pool does not fit the ${h}x${w} feature map`,
          );
        }
        steps.push((_, x) => o.maxPool2d(x, size, stride));
        flushRelu();
        names.push(`pool${size}`);
        [h, w] = [ho, wo];
        layerSizes.push(c * h * w);
        break;
      }
      default:
        throw new SgnError(
          `${where}: unknown layer type ${JSON.stringify((layer as { type?: unknown })?.type)} ` +
            "(conv_layers take CONV, ACT and POOL)",
        );
    }
  }
  flushRelu();
  let features = c * h * w;
  steps.push((_, x) => o.flatten(x));
  const dense = (outSize: number, act?: (x: Tensor) => Tensor) => {
    const wi = paramShapes.length;
    paramShapes.push([features, outSize], [outSize]);
    bounds.push(Math.sqrt(6 / (features + classes)), 0);
    steps.push((p, x) => {
      const y = o.add(o.matmul(x, p[wi]), p[wi + 1]);
      return act ? act(y) : y;
    });
    features = outSize;
    layerSizes.push(outSize);
  };
  for (const [key, layer] of ordered(spec.mlp_layers, "mlp_layers")) {
    const where = `conv net spec: mlp_layers.${key}`;
    if (layer?.type !== "FC") {
      throw new SgnError(
        `${where}: unknown layer type ${JSON.stringify((layer as { type?: unknown })?.type)} ` +
          "(mlp_layers take FC)",
      );
    }
    const size = checkInt(layer.output_size, `${where}: output_size`, 1);
    dense(size, layer.activation ? activation(layer.activation, where) : undefined);
    names.push(`fc${size}${layer.activation ? " " + layer.activation : ""}`);
  }
  dense(classes);
  names.push(`fc${classes}`);
  return {
    name: `ConvNet ${inputShape.join("x")}: ${names.join(", ")}`,
    inputShape: [...inputShape],
    outputs: classes,
    paramShapes,
    paramCount: count(paramShapes),
    layerSizes,
    init({ seed = 1, backend, dtype, numpySeed } = {}) {
      const rng = new Random(seed);
      const np = numpySeed === undefined ? undefined : new NumpyRandomState(numpySeed);
      // numpy's uniform(low, high) is low + (high - low) * random_sample().
      const uniform = (b: number) => (np ? -b + 2 * b * np.random() : rng.range(-b, b));
      return paramShapes.map((shape, i) => {
        const n = sizeOf(checkShape(shape, "init: a parameter"));
        const b = bounds[i];
        const values = new Float64Array(n);
        if (b > 0) { for (let j = 0; j < n; j++) values[j] = uniform(b); }
        return tensor(values, shape, { backend, dtype });
      });
    },
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
