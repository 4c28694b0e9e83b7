/**
 * The networks with the layers beyond the seed's (layer normalization, average and global-average
 * pooling, residual blocks; mlp()'s layerNorm and residual): parameter shapes, initialization
 * (weights as without the new layers, gains 1), names and layer sizes, outputs, SGN steps that
 * lower the loss on every backend, and every spec error of the new fields. The float64 properties
 * of tests/property_networks_test.ts check whole generated networks with these layers.
 */

import assert from "node:assert/strict";
import { type Tensor, tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import { ACTIVATION_NAMES, convNet, type LayerSpec, mlp } from "../models/networks.ts";
import { meanSquaredError } from "../models/losses.ts";
import { SGN } from "../sgn/sgn.ts";
import { backendLabel, cpu, Random } from "./harness.ts";
import { ALL, dtypeOf, near } from "./layers_checks.ts";

Deno.test("mlp: layerNorm and residual: parameters in order, weights as without them, gains 1", async () => {
  const plain = mlp({ inputs: 3, hidden: [4, 4, 2], outputs: 2 });
  const net = mlp({ inputs: 3, hidden: [4, 4, 2], outputs: 2, layerNorm: true, residual: true });
  assert.equal(net.name, "MLP 3-4-4-2-2 sigmoid, layer norm, residual");
  assert.deepEqual(net.paramShapes, [
    [3, 4],
    [4],
    [4],
    [4], // W, b, gain, LN bias
    [4, 4],
    [4],
    [4],
    [4],
    [4, 2],
    [2],
    [2],
    [2],
    [2, 2],
    [2],
  ]);
  assert.equal(net.paramCount, plain.paramCount + 2 * (4 + 4 + 2));
  // Hidden outputs, their normalized copies, the one skip's sum (4 -> 4), then the outputs.
  assert.deepEqual(net.layerSizes, [4, 4, 4, 4, 4, 2, 2, 2]);
  const p = net.init({ seed: 7, backend: cpu, dtype: "float64" });
  const q = plain.init({ seed: 7, backend: cpu, dtype: "float64" });
  const weights = [0, 4, 8, 12];
  for (const [i, j] of weights.map((w, k) => [w, 2 * k])) {
    assert.deepEqual(await p[i].data(), await q[j].data(), `weights ${j / 2} as without`);
  }
  for (const i of [2, 6, 10]) assert.ok((await p[i].data()).every((v) => v === 1), `gain ${i}`);
  for (const i of [3, 7, 11]) assert.ok((await p[i].data()).every((v) => v === 0), `bias ${i}`);
  // The forward pass written out with ops: affine, normalize, scale and shift, sigmoid; the
  // second layer (4 -> 4) adds its input.
  const x = tensor([[0.5, -1, 2], [1, 0.25, -0.5]], undefined, { backend: cpu, dtype: "float64" });
  const layer = (h: Tensor, i: number) =>
    o.sigmoid(o.add(o.mul(o.layerNorm(o.add(o.matmul(h, p[i]), p[i + 1])), p[i + 2]), p[i + 3]));
  const h1 = layer(x, 0);
  const h2 = o.add(h1, layer(h1, 4));
  const h3 = layer(h2, 8);
  const want = o.add(o.matmul(h3, p[12]), p[13]);
  assert.deepEqual(await net.forward(p, x).data(), await want.data());
});

Deno.test("convNet: AVGPOOL, GAP, LN and nested RES blocks: shapes, counts, names, outputs", async () => {
  const spec = {
    conv_layers: {
      layer0: { type: "CONV", num_filters: 2, filter_size: 3, padding: 1 },
      layer1: {
        type: "RES",
        layers: {
          layer0: { type: "LN" },
          layer1: { type: "ACT", activation: "relu" },
          layer2: {
            type: "RES",
            layers: { layer0: { type: "CONV", num_filters: 2, filter_size: 1 } },
          },
        },
      },
      layer2: { type: "AVGPOOL", pool_size: 3, stride: 2 },
      layer3: { type: "ACT", activation: "gelu" },
      layer4: { type: "GAP" },
    },
    mlp_layers: {
      layer0: { type: "FC", output_size: 3, activation: "softplus" },
      layer1: { type: "RES", layers: { layer0: { type: "FC", output_size: 3 } } },
      layer2: { type: "LN" },
      layer3: { type: "ACT", activation: "tanh" },
    },
  } as const;
  const net = convNet(spec as never, [1, 6, 6], 2);
  assert.equal(
    net.name,
    "ConvNet 1x6x6: conv2@3x3, res(ln, relu, res(conv2@1x1)), avgpool3/2, gelu, gap, " +
      "fc3 softplus, res(fc3), ln, tanh, fc2",
  );
  assert.deepEqual(net.paramShapes, [
    [2, 1, 3, 3],
    [2], // conv
    [2, 6, 6],
    [2, 6, 6], // LN over c x h x w
    [2, 2, 1, 1],
    [2], // the inner block's conv
    [2, 3],
    [3], // FC from the 2 pooled channels
    [3, 3],
    [3], // the block's FC
    [3],
    [3], // LN
    [3, 2],
    [2], // output
  ]);
  assert.deepEqual(net.layerSizes, [72, 72, 72, 72, 72, 8, 2, 3, 3, 3, 3, 2]);
  const p = net.init({ seed: 2, backend: cpu, dtype: "float64" });
  assert.ok((await p[2].data()).every((v) => v === 1) && (await p[3].data()).every((v) => v === 0));
  const rng = new Random(5);
  const x = tensor(Array.from({ length: 72 }, () => rng.range(-1, 1)), [2, 1, 6, 6], {
    backend: cpu,
    dtype: "float64",
  });
  // The same network with ops, in the spec's order.
  let y = o.add(o.conv2d(x, p[0], { padding: 1 }), o.reshape(p[1], [1, 2, 1, 1]));
  const inner = o.relu(o.add(o.mul(o.layerNorm(y), p[2]), p[3]));
  const innermost = o.add(o.conv2d(inner, p[4]), o.reshape(p[5], [1, 2, 1, 1]));
  y = o.add(y, o.add(inner, innermost));
  y = o.globalAvgPool2d(o.gelu(o.avgPool2d(y, 3, 2)));
  let z = o.softplus(o.add(o.matmul(y, p[6]), p[7]));
  z = o.add(z, o.add(o.matmul(z, p[8]), p[9]));
  z = o.tanh(o.add(o.mul(o.layerNorm(z), p[10]), p[11]));
  const want = o.add(o.matmul(z, p[12]), p[13]);
  const got = await net.forward(p, x).data();
  near(got, await want.data(), 1e-14, 0, "outputs against the ops written out", 0);
});

for (const be of ALL) {
  Deno.test(`SGN (${backendLabel(be)}): steps on a net of every new layer lower the loss`, async () => {
    const net = convNet(
      {
        conv_layers: {
          layer0: { type: "CONV", num_filters: 3, filter_size: 3, padding: 1 },
          layer1: {
            type: "RES",
            layers: {
              layer0: { type: "LN" },
              layer1: { type: "ACT", activation: "gelu" },
              layer2: { type: "CONV", num_filters: 3, filter_size: 3, padding: 1 },
            },
          },
          layer2: { type: "AVGPOOL" },
          layer3: { type: "ACT", activation: "softplus" },
          layer4: { type: "GAP" },
        },
        mlp_layers: { layer0: { type: "FC", output_size: 4, activation: "gelu" } },
      },
      [1, 6, 6],
      2,
    );
    const dtype = dtypeOf(be);
    const rng = new Random(9);
    const x = tensor(Array.from({ length: 8 * 36 }, () => rng.range(-1, 1)), [8, 1, 6, 6], {
      backend: be,
      dtype,
    });
    const targets = tensor(Array.from({ length: 16 }, () => rng.range(-1, 1)), [8, 2], {
      backend: be,
      dtype,
    });
    const opt = new SGN(net.init({ seed: 3, backend: be, dtype }), { cgMaxIters: 5 });
    const loss = meanSquaredError(targets);
    const first = await opt.step((...p) => net.forward(p, x), loss);
    let last = first;
    for (let i = 0; i < 3; i++) last = await opt.step((...p) => net.forward(p, x), loss);
    assert.ok(Number.isFinite(last.loss), `loss ${last.loss}`);
    assert.ok(last.loss < 0.9 * first.loss, `the loss went from ${first.loss} to ${last.loss}`);
    opt.dispose();
    x.dispose();
    targets.dispose();
  });
}

Deno.test("convNet and mlp: the new fields are checked, and errors name the layer and what to do", () => {
  const bad = (conv: unknown, mlpLayers: unknown = undefined) => () =>
    convNet({ conv_layers: conv, mlp_layers: mlpLayers } as never, [2, 6, 6], 3);
  const cases: [() => unknown, RegExp][] = [
    [
      bad({ layer0: { type: "LN", eps: 1e-3 } }),
      /conv_layers\.layer0: unknown field "eps" \(it takes type\)/,
    ],
    [bad({ layer0: { type: "GAP", keepdims: true } }), /layer0: unknown field "keepdims"/],
    [
      bad({ layer0: { type: "AVGPOOL", pool_size: 0 } }),
      /layer0: pool_size must be a positive integer, got 0/,
    ],
    [
      bad({ layer0: { type: "AVGPOOL", stride: 1.5 } }),
      /layer0: stride must be a positive integer/,
    ],
    [
      bad({ layer0: { type: "AVGPOOL", pool_size: 7 } }),
      /a 7x7 pool does not fit the 6x6 feature map/,
    ],
    [
      bad({ layer0: { type: "AVGPOOL", pool_size: 2, padding: 1 } }),
      /unknown field "padding" \(it takes type, pool_size, stride\)/,
    ],
    [bad({ layer0: { type: "RES" } }), /conv_layers\.layer0: a RES block needs its layers/],
    [bad({ layer0: { type: "RES", layers: {} } }), /a RES block needs its layers/],
    [
      bad({ layer0: { type: "RES", layers: { layer0: { type: "POOL" } } } }),
      /conv_layers\.layer0: a RES block's layers must keep the shape of its input, 2x6x6, but give 2x3x3/,
    ],
    [
      bad({
        layer0: {
          type: "RES",
          layers: { layer0: { type: "CONV", num_filters: 4, filter_size: 1 } },
        },
      }),
      /must keep the shape of its input, 2x6x6, but give 4x6x6/,
    ],
    [
      bad({ layer0: { type: "RES", layers: { layer0: { type: "FC", output_size: 2 } } } }),
      /conv_layers\.layer0\.layers\.layer0: unknown layer type "FC" \(conv_layers take CONV, ACT, POOL, AVGPOOL, GAP, LN and RES\)/,
    ],
    [
      bad({ layer0: { type: "RES", layers: { first: { type: "LN" } } } }),
      /conv_layers\.layer0\.layers\.first: layer names must be layer0, layer1/,
    ],
    [
      bad({ layer0: { type: "RES", layers: { layer0: { type: "LN", gain: 2 } } } }),
      /conv_layers\.layer0\.layers\.layer0: unknown field "gain"/,
    ],
    [
      bad({ layer0: { type: "LN" } }, { layer0: { type: "CONV", num_filters: 1, filter_size: 1 } }),
      /mlp_layers\.layer0: unknown layer type "CONV" \(mlp_layers take FC, ACT, LN and RES\)/,
    ],
    [
      bad({ layer0: { type: "GAP" } }, {
        layer0: { type: "RES", layers: { layer0: { type: "FC", output_size: 5 } } },
      }),
      /mlp_layers\.layer0: a RES block's layers must keep the shape of its input, 2, but give 5/,
    ],
    [
      bad({ layer0: { type: "GAP" } }, {
        layer0: { type: "FC", output_size: 2, activation: "elu" },
      }),
      /mlp_layers\.layer0: unknown activation "elu" \(use sigmoid, relu, tanh, softplus or gelu\)/,
    ],
    [
      () => mlp({ inputs: 3, hidden: [4], outputs: 2, layerNorm: "yes" as never }),
      /mlp: layerNorm must be true or false, got "yes"/,
    ],
    [
      () => mlp({ inputs: 3, hidden: [4, 5], outputs: 2, residual: true }),
      /mlp: residual needs a hidden layer as wide as its input, and 3-4-5-2 has none/,
    ],
    [
      () => mlp({ inputs: 3, hidden: [4], outputs: 2, layernorm: true } as never),
      /mlp: unknown field "layernorm" \(it takes inputs, hidden, outputs, activation, layerNorm, residual\)/,
    ],
  ];
  for (const [f, re] of cases) {
    assert.throws(f, (e: Error) => e.name === "SgnError" && re.test(e.message), String(re));
  }
  // Every activation name is taken where activations are.
  for (const a of ACTIVATION_NAMES) {
    mlp({ inputs: 2, hidden: [2], outputs: 1, activation: a });
    const l: LayerSpec = { type: "ACT", activation: a };
    convNet({ conv_layers: { layer0: l }, mlp_layers: { layer0: l } }, [1, 2, 2], 1);
  }
});
