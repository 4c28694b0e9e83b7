/**
 * Networks, losses and the first-order baselines against hand computations.
 */
import assert from "node:assert/strict";
import { type Tensor, tensor } from "../autodiff/tensor.ts";
import { valueAndGrad } from "../autodiff/transforms.ts";
import { ARCHITECTURES, convNet, mlp } from "../models/networks.ts";
import { accuracy, meanSquaredError, oneHot, softmaxCrossEntropy } from "../models/losses.ts";
import { Adam, SGD } from "../sgn/baselines.ts";
import { NumpyRandomState, PythonRandom } from "../random.ts";
import * as o from "../autodiff/ops.ts";
import { backends, cpu } from "./harness.ts";

// The seed's architecture files, byte for byte as its scripts/architectures folder has them.
const SEED_FILES: Record<string, string> = {
  architecture_1:
    `{"conv_layers": {"layer0": {"type": "CONV", "num_filters": 6, "filter_size": 5}, "layer1": {"type": "ACT", "activation": "relu"}, "layer2": {"type": "POOL"}, "layer3": {"type": "CONV", "num_filters": 16, "filter_size": 5}, "layer4": {"type": "ACT", "activation": "relu"}, "layer5": {"type": "POOL"}}, "mlp_layers": {"layer0": {"type": "FC", "output_size": 120, "activation": "relu"}, "layer1": {"type": "FC", "output_size": 84, "activation": "relu"}}}`,
  architecture_2:
    `{"conv_layers": {"layer0": {"type": "CONV", "num_filters": 5, "filter_size": 3}, "layer1": {"type": "ACT", "activation": "relu"}, "layer2": {"type": "CONV", "num_filters": 5, "filter_size": 3}, "layer3": {"type": "ACT", "activation": "relu"}, "layer4": {"type": "POOL"}, "layer5": {"type": "CONV", "num_filters": 5, "filter_size": 3}, "layer6": {"type": "ACT", "activation": "relu"}, "layer7": {"type": "CONV", "num_filters": 5, "filter_size": 3}, "layer8": {"type": "ACT", "activation": "relu"}, "layer9": {"type": "POOL"}}, "mlp_layers": {"layer0": {"type": "FC", "output_size": 120, "activation": "relu"}, "layer1": {"type": "FC", "output_size": 120, "activation": "relu"}, "layer2": {"type": "FC", "output_size": 84, "activation": "relu"}}}`,
  architecture_3:
    `{"conv_layers": {"layer0": {"type": "CONV", "num_filters": 64, "filter_size": 3}, "layer1": {"type": "ACT", "activation": "relu"}, "layer2": {"type": "CONV", "num_filters": 64, "filter_size": 3}, "layer3": {"type": "ACT", "activation": "relu"}, "layer4": {"type": "POOL"}, "layer5": {"type": "CONV", "num_filters": 128, "filter_size": 3}, "layer6": {"type": "ACT", "activation": "relu"}, "layer7": {"type": "CONV", "num_filters": 128, "filter_size": 3}, "layer8": {"type": "ACT", "activation": "relu"}, "layer9": {"type": "POOL"}, "layer10": {"type": "CONV", "num_filters": 256, "filter_size": 3}, "layer11": {"type": "ACT", "activation": "relu"}, "layer12": {"type": "CONV", "num_filters": 256, "filter_size": 3}, "layer13": {"type": "ACT", "activation": "relu"}, "layer14": {"type": "CONV", "num_filters": 256, "filter_size": 3}, "layer15": {"type": "ACT", "activation": "relu"}, "layer16": {"type": "POOL"}}, "mlp_layers": {"layer0": {"type": "FC", "output_size": 128, "activation": "relu"}, "layer1": {"type": "FC", "output_size": 128, "activation": "relu"}, "layer2": {"type": "FC", "output_size": 64, "activation": "relu"}}}`,
  architecture_4:
    `{"conv_layers": {"layer0": {"type": "CONV", "num_filters": 32, "filter_size": 3, "padding": 0, "stride": 1}, "layer1": {"type": "ACT", "activation": "relu"}, "layer2": {"type": "POOL", "pool_size": 2, "stride": 2}, "layer3": {"type": "CONV", "num_filters": 64, "filter_size": 3, "padding": 0, "stride": 1}, "layer4": {"type": "ACT", "activation": "relu"}, "layer5": {"type": "POOL", "pool_size": 2, "stride": 2}, "layer6": {"type": "CONV", "num_filters": 64, "filter_size": 3, "padding": 0, "stride": 1}, "layer7": {"type": "ACT", "activation": "relu"}}, "mlp_layers": {"layer0": {"type": "FC", "output_size": 64, "activation": "relu"}}}`,
};

Deno.test("mlp: the MNIST net 784-20-20-20-10 has 16,750 parameters in the seed's order", () => {
  const net = mlp({ inputs: 784, hidden: [20, 20, 20], outputs: 10 });
  assert.equal(net.paramCount, 16750);
  assert.deepEqual(net.paramShapes, [[784, 20], [20], [20, 20], [20], [20, 20], [20], [20, 10], [
    10,
  ]]);
});

Deno.test("mlp: seeded initialization N(0, 1) weights and zero biases, repeatable", async () => {
  const net = mlp({ inputs: 200, hidden: [100], outputs: 10 });
  const a = net.init({ seed: 3, backend: cpu });
  const b = net.init({ seed: 3, backend: cpu });
  const c = net.init({ seed: 4, backend: cpu });
  const w = Array.from(await a[0].data());
  assert.deepEqual(w, Array.from(await b[0].data()), "same seed, same weights");
  assert.notDeepEqual(w, Array.from(await c[0].data()), "another seed, other weights");
  const mean = w.reduce((s, v) => s + v, 0) / w.length;
  const sd = Math.sqrt(w.reduce((s, v) => s + (v - mean) ** 2, 0) / w.length);
  assert.ok(
    Math.abs(mean) < 0.03 && Math.abs(sd - 1) < 0.03,
    `mean ${mean}, sd ${sd} over ${w.length}`,
  );
  assert.ok((await a[1].data()).every((v) => v === 0), "biases start at 0");
});

Deno.test("mlp: numpySeed 10 reproduces the seed's initial weights (numpy.random.seed(10); randn)", async () => {
  // numpy 2.4: np.random.seed(10); np.random.randn(5)
  const want = [
    1.331586504129518,
    0.7152789743984055,
    -1.5454002921112682,
    -0.008383849928522256,
    0.6213359738904805,
  ];
  const net = mlp({ inputs: 784, hidden: [20, 20, 20], outputs: 10 });
  const p = net.init({ numpySeed: 10, backend: cpu, dtype: "float64" });
  assert.deepEqual(Array.from((await p[0].data()).subarray(0, 5)), want);
  // After the first layer's 15,680 draws and 400 more (the second layer), continuing the stream:
  // np.random.seed(10); np.random.randn(16080); np.random.randn(3)
  const w2 = await p[2].data();
  assert.equal(w2.length, 400);
  const w3 = await p[4].data();
  assert.deepEqual(Array.from(w3.subarray(0, 3)), [
    -0.5812626766090091,
    0.21916190580464037,
    -0.2005442357719002,
  ]);
  assert.ok((await p[1].data()).every((v) => v === 0));
});

Deno.test("mlp: numpySeed 10 gives numpy's 16,680 weights bit for bit but for 3, each 1 ulp off", async () => {
  // What holds, exactly: numpy 2.4 `np.random.seed(10)` then randn per layer (15,680 + 400 +
  // 400 + 200 draws). Its legacy gauss takes log() from the C library, ours Math.log (V8's
  // fdlibm port); the two round differently for 3 of these inputs. SHA-256 of numpy's weights:
  const want = "393763125189434f4a73014733c3ef2feff45b3f61c1f0b64a93b4a0602a8e61";
  const numpyAt: Record<number, number> = {
    7106: 0.3692661017790763,
    8656: -0.26633811583042266,
    8657: 0.5190585722384227,
  };
  const net = mlp({ inputs: 784, hidden: [20, 20, 20], outputs: 10 });
  const p = net.init({ numpySeed: 10, backend: cpu, dtype: "float64" });
  const ours: number[] = [];
  for (const i of [0, 2, 4, 6]) ours.push(...await p[i].data());
  assert.equal(ours.length, 16680);
  for (const [i, v] of Object.entries(numpyAt)) {
    const ulp = Math.abs(v) * 2 ** -52;
    assert.ok(ours[+i] !== v && Math.abs(ours[+i] - v) <= ulp, `weight ${i}: ${ours[+i]} vs ${v}`);
    ours[+i] = v;
  }
  const bytes = new Uint8Array(Float64Array.from(ours).buffer);
  const hash = Array.from(
    new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  assert.equal(hash, want, "every other weight equals numpy's to the bit");
  p.forEach((t) => t.dispose());
});

Deno.test("NumpyRandomState.shuffle matches numpy's legacy shuffle (Keras's Boston split)", () => {
  const a = Array.from({ length: 506 }, (_, i) => i);
  new NumpyRandomState(113).shuffle(a);
  // numpy 2.4: np.random.seed(113); i = np.arange(506); np.random.shuffle(i)
  assert.deepEqual(a.slice(0, 8), [22, 202, 368, 335, 461, 323, 382, 143]);
  assert.deepEqual(a.slice(400, 406), [271, 332, 153, 194, 415, 112]);
});

Deno.test("PythonRandom matches CPython's random.seed, getrandbits and shuffle", () => {
  // Values printed by CPython 3.11 (random.seed(n); random.getrandbits(32) / random.shuffle(x)).
  const r3 = new PythonRandom(3);
  assert.deepEqual([r3.getrandbits(32), r3.getrandbits(32), r3.getrandbits(32)], [
    1022050301,
    2545373330,
    2337446730,
  ]);
  const r0 = new PythonRandom(0);
  assert.deepEqual([r0.getrandbits(32), r0.getrandbits(32)], [3626764237, 1654615998]);
  // A seed above 2^32 is keyed by two 32-bit words.
  const big = new PythonRandom(2 ** 40 + 5);
  assert.deepEqual([big.getrandbits(32), big.getrandbits(32)], [2166296868, 2220160828]);
  const x = Array.from({ length: 20 }, (_, i) => i);
  const r12 = new PythonRandom(12);
  r12.shuffle(x);
  r12.shuffle(x);
  assert.deepEqual(x, [4, 18, 13, 17, 1, 5, 7, 6, 2, 16, 11, 0, 10, 15, 3, 14, 8, 9, 12, 19]);
  // The seed's MNIST epochs: random.seed(1), then one shuffle of range(60000) per epoch.
  const idx = Uint32Array.from({ length: 60000 }, (_, i) => i);
  const r1 = new PythonRandom(1);
  r1.shuffle(idx);
  assert.deepEqual([...idx.subarray(0, 8)], [
    52957,
    39777,
    47855,
    45281,
    16581,
    34695,
    10052,
    29995,
  ]);
  assert.deepEqual([...idx.subarray(59997)], [55537, 37303, 8805]);
  r1.shuffle(idx);
  assert.deepEqual([...idx.subarray(0, 8)], [7258, 4128, 8469, 31178, 14148, 53336, 18776, 21038]);
  assert.throws(() => new PythonRandom(-1), /non-negative integer/);
  assert.throws(() => r1.getrandbits(33), /k must be in 1..32/);
});

Deno.test("convNet: the seed's four architecture files as they are; shapes and counts", async () => {
  // Parameter counts worked out by hand for architecture_1 on 1x28x28 (fashion-MNIST):
  // conv 6@5x5: 156; 24 -> pool 12; conv 16@5x5: 2,416; 8 -> pool 4; FC 256->120: 30,840;
  // FC 120->84: 10,164; FC 84->10: 850.
  const expected: Record<string, [number[], number]> = {
    architecture_1: [[1, 28, 28], 156 + 2416 + 30840 + 10164 + 850],
    architecture_2: [[1, 28, 28], 0],
    // architecture_3 has no padding: on 32x32 its 5th conv meets a 1x1 map (checked below).
    architecture_3: [[3, 48, 48], 0],
    architecture_4: [[3, 32, 32], 0],
  };
  for (const [name, text] of Object.entries(SEED_FILES)) {
    const spec = JSON.parse(text);
    assert.deepEqual(spec, JSON.parse(JSON.stringify(ARCHITECTURES[name])), `${name} built in`);
    const [shape, count] = expected[name];
    const net = convNet(spec, shape, 10);
    if (count) assert.equal(net.paramCount, count, name);
    const params = net.init({ seed: 1, backend: cpu });
    const x = tensor(new Float32Array(2 * shape.reduce((a, b) => a * b, 1)).fill(0.5), [
      2,
      ...shape,
    ], { backend: cpu });
    const z = net.forward(params, x);
    assert.deepEqual(z.shape, [2, 10], name);
    assert.ok((await z.data()).every(Number.isFinite), name);
  }
  assert.throws(
    () => convNet(ARCHITECTURES.architecture_3, [3, 32, 32], 10),
    /conv_layers\.layer14: a 3x3 filter does not fit the 1x1 feature map/,
  );
  // architecture_4 on 3x32x32: 896 + 18,496 + 36,928 + (1024*64 + 64) + 650 = 122,570.
  assert.equal(convNet(ARCHITECTURES.architecture_4, [3, 32, 32], 10).paramCount, 122570);
});

Deno.test("convNet: numpySeed 1 reproduces the seed's conv-net initialization (RandomState(1).uniform)", async () => {
  const net = convNet(ARCHITECTURES.architecture_1, [1, 28, 28], 10);
  const p = net.init({ numpySeed: 1, backend: cpu, dtype: "float64" });
  // numpy 2.4: rng = np.random.RandomState(1); rng.uniform(-b, b, size=(6, 1, 5, 5)), b = sqrt(6/150)
  const w1 = Array.from((await p[0].data()).subarray(0, 3));
  [-0.033191198118970394, 0.08812979737686322, -0.19995425007306206].forEach((v, i) =>
    assert.ok(Math.abs(w1[i] - v) < 1e-15, `w1[${i}] = ${w1[i]}, numpy ${v}`)
  );
  // then rng.uniform(-b2, b2, size=(16, 6, 5, 5)), b2 = sqrt(6/2400), from the same stream
  const w2 = Array.from((await p[2].data()).subarray(0, 2));
  [-0.042802572031051325, 0.046727633000027205].forEach((v, i) =>
    assert.ok(Math.abs(w2[i] - v) < 1e-15, `w2[${i}] = ${w2[i]}, numpy ${v}`)
  );
});

Deno.test("convNet: initialization bounds of the seed (conv and FC uniform ranges, zero biases)", async () => {
  const net = convNet(ARCHITECTURES.architecture_1, [1, 28, 28], 10);
  const params = net.init({ seed: 5, backend: cpu });
  const bounds = [
    Math.sqrt(6 / (6 * 1 * 25)),
    0,
    Math.sqrt(6 / (16 * 6 * 25)),
    0,
    Math.sqrt(6 / (256 + 10)),
    0,
  ];
  for (let i = 0; i < bounds.length; i++) {
    const v = Array.from(await params[i].data());
    if (bounds[i] === 0) assert.ok(v.every((x) => x === 0), `bias ${i}`);
    else {
      assert.ok(v.every((x) => Math.abs(x) <= bounds[i]), `weights ${i} within +-${bounds[i]}`);
      assert.ok(Math.max(...v.map(Math.abs)) > 0.8 * bounds[i], `weights ${i} use their range`);
    }
  }
});

Deno.test("convNet and mlp: spec errors name the layer and what is wrong", () => {
  const bad = (conv: unknown, mlpLayers: unknown = undefined) => () =>
    convNet({ conv_layers: conv, mlp_layers: mlpLayers } as never, [1, 8, 8], 10);
  assert.throws(
    bad({ layer0: { type: "DROPOUT" } }),
    /conv_layers\.layer0: unknown layer type "DROPOUT"/,
  );
  assert.throws(
    bad({ layer0: { type: "CONV", num_filters: 0, filter_size: 3 } }),
    /layer0: num_filters must be a positive integer, got 0/,
  );
  assert.throws(
    bad({ layer0: { type: "CONV", num_filters: 4, filter_size: 9 } }),
    /layer0: a 9x9 filter does not fit the 8x8 feature map/,
  );
  assert.throws(
    bad({
      layer0: { type: "POOL" },
      layer1: { type: "POOL" },
      layer2: { type: "POOL" },
      layer3: { type: "POOL" },
    }),
    /layer3: a 2x2 pool does not fit the 1x1 feature map/,
  );
  assert.throws(
    bad({ layer0: { type: "ACT", activation: "swish" } }),
    /layer0: unknown activation "swish" \(use sigmoid, relu, tanh, softplus or gelu\)/,
  );
  assert.throws(
    bad({ layer0: { type: "POOL" } }, { layer0: { type: "FC", output_size: -3 } }),
    /mlp_layers\.layer0: output_size must be a positive integer/,
  );
  // Specs that are not the seed's format, or fields it does not have, are errors too.
  assert.throws(bad({}), /conv_layers must name at least one layer/);
  assert.throws(
    () => convNet([1, 2] as never, [1, 8, 8], 10),
    /conv net spec must be an object \{ "conv_layers"/,
  );
  assert.throws(
    () =>
      convNet({ conv_layers: { layer0: { type: "POOL" } }, dropout: 0.5 } as never, [1, 8, 8], 10),
    /conv net spec: unknown field "dropout"/,
  );
  assert.throws(
    bad({ layer0: { type: "CONV", num_filters: 2, filter_size: 3, dilation: 2 } }),
    /conv_layers\.layer0: unknown field "dilation" \(it takes type, num_filters/,
  );
  assert.throws(bad({ first: { type: "POOL" } }), /layer names must be layer0, layer1/);
  assert.throws(
    () => mlp({ inputs: 784, hidden: [20, 0], outputs: 10 }),
    /hidden layer 1 size must be a positive integer, got 0/,
  );
});

for (const be of await backends()) {
  Deno.test(`losses (${be.name}): values, Hessian products and accuracy by hand`, async () => {
    const z = tensor([[2, 0, 0], [0, 0, 1]], undefined, { backend: be });
    const y = oneHot([0, 2], 3, { backend: be });
    const ce = softmaxCrossEntropy(y);
    const lse = (r: number[]) => Math.log(r.reduce((s, v) => s + Math.exp(v), 0));
    const want = ((lse([2, 0, 0]) - 2) + (lse([0, 0, 1]) - 1)) / 2;
    assert.ok(Math.abs((await ce.value(z).data())[0] - want) < 1e-6);
    // H u for u = e_0 on row 0: (s0 - s0^2, -s0 s1, -s0 s2) / N.
    const u = tensor([[1, 0, 0], [0, 0, 0]], undefined, { backend: be });
    const s = [Math.exp(2), 1, 1].map((v) => v / (Math.exp(2) + 2));
    const hu = Array.from(await ce.hessianProduct(z, u).data());
    const wantHu = [s[0] - s[0] * s[0], -s[0] * s[1], -s[0] * s[2]].map((v) => v / 2);
    hu.slice(0, 3).forEach((v, i) => assert.ok(Math.abs(v - wantHu[i]) < 1e-6, `H u [${i}]`));
    assert.deepEqual(hu.slice(3), [0, 0, 0]);
    assert.equal((await accuracy(z, y).data())[0], 1);
    assert.equal((await accuracy(z, oneHot([1, 2], 3, { backend: be })).data())[0], 0.5);
    const mse = meanSquaredError(tensor([[1], [2]], undefined, { backend: be }));
    assert.equal(
      (await mse.value(tensor([[1.5], [2]], undefined, { backend: be })).data())[0],
      0.125,
    );
    const z2 = tensor([[1.5], [2]], undefined, { backend: be });
    const mh = await mse.hessianProduct(z2, tensor([[1], [3]], undefined, { backend: be })).data();
    assert.deepEqual(Array.from(mh), [1, 3].map((v) => Math.fround((2 * v) / 2)));
    assert.throws(
      () => oneHot([0, 3], 3, { backend: be }),
      /label 3 at index 1 is not an integer in \[0, 3\)/,
    );
    assert.throws(
      () => ce.value(tensor([[1, 2]], undefined, { backend: be })),
      /outputs \[1, 2\] and targets \[2, 3\]/,
    );
  });
}

Deno.test("SGD: heavy-ball updates match v = mu v + lr g, theta = theta - v", async () => {
  // L(w) = mean((w - 3)^2) with one scalar: g = 2 (w - 3).
  const t = tensor([[3]], undefined, { backend: cpu, dtype: "float64" });
  const model = (w: ReturnType<typeof tensor>) => o.reshape(w, [1, 1]);
  const opt = new SGD([tensor([0], [1], { backend: cpu, dtype: "float64" })], {
    lr: 0.1,
    momentum: 0.5,
  });
  let w = 0;
  let v = 0;
  for (let i = 0; i < 4; i++) {
    await opt.step(model, meanSquaredError(t));
    v = 0.5 * v + 0.1 * 2 * (w - 3);
    w -= v;
    const got = (await opt.params[0].data())[0];
    assert.ok(Math.abs(got - w) < 1e-12, `step ${i + 1}: ${got} vs ${w}`);
  }
  opt.dispose();
});

Deno.test("Adam: bias-corrected first step moves each weight by lr against its gradient's sign", async () => {
  const t = tensor([[3, -1]], undefined, { backend: cpu, dtype: "float64" });
  const opt = new Adam([tensor([[0, 0]], undefined, { backend: cpu, dtype: "float64" })], {
    lr: 0.01,
  });
  await opt.step((w) => w, meanSquaredError(t));
  const got = Array.from(await opt.params[0].data());
  assert.ok(Math.abs(got[0] - 0.01) < 1e-9 && Math.abs(got[1] + 0.01) < 1e-9, `${got}`);
  for (let i = 0; i < 300; i++) await opt.step((w) => w, meanSquaredError(t));
  const end = Array.from(await opt.params[0].data());
  // About lr per step towards the minimum: 3 is ~300 steps away, -1 is reached and held.
  assert.ok(end[0] > 2 && Math.abs(end[1] + 1) < 0.05, `Adam approaches the minimum: ${end}`);
  opt.dispose();
});

for (const be of await backends()) {
  Deno.test(`convNet (${be.name}): relu before a pool runs after it, with the seed's outputs and gradients exactly`, async () => {
    const spec = {
      conv_layers: {
        layer0: { type: "CONV", num_filters: 3, filter_size: 3 },
        layer1: { type: "ACT", activation: "relu" },
        layer2: { type: "POOL" },
        layer3: { type: "CONV", num_filters: 4, filter_size: 3 },
        layer4: { type: "ACT", activation: "relu" },
        layer5: { type: "POOL" },
      },
      mlp_layers: { layer0: { type: "FC", output_size: 5, activation: "relu" } },
    } as const;
    const net = convNet(spec, [2, 14, 14], 3);
    const dtype = be.dtypes.includes("float64") ? "float64" : "float32";
    const params = net.init({ seed: 4, backend: be, dtype });
    const rng = new NumpyRandomState(3);
    const x = tensor(Array.from({ length: 2 * 2 * 14 * 14 }, () => rng.randn()), [2, 2, 14, 14], {
      backend: be,
      dtype,
    });
    const weights = tensor(Array.from({ length: 6 }, () => rng.randn()), [2, 3], {
      backend: be,
      dtype,
    });
    // The seed's order, written out: conv + bias, relu, pool, twice; flatten; FC relu; FC.
    const reference = (...p: Tensor[]) => {
      let y = x;
      for (const i of [0, 2]) {
        const f = p[i].shape[0];
        y = o.add(o.conv2d(y, p[i]), o.reshape(p[i + 1], [1, f, 1, 1]));
        y = o.maxPool2d(o.relu(y), 2, 2);
      }
      y = o.relu(o.add(o.matmul(o.flatten(y), p[4]), p[5]));
      return o.add(o.matmul(y, p[6]), p[7]);
    };
    const score = (model: (...p: Tensor[]) => Tensor) => (...p: Tensor[]) =>
      o.sum(o.mul(model(...p), weights));
    const [v1, g1] = valueAndGrad(score((...p) => net.forward(p, x)))(...params);
    const [v2, g2] = valueAndGrad(score(reference))(...params);
    assert.deepEqual(await net.forward(params, x).data(), await reference(...params).data());
    assert.equal((await v1.data())[0], (await v2.data())[0]);
    for (let i = 0; i < g1.length; i++) {
      assert.deepEqual(await g1[i].data(), await g2[i].data(), `gradient of parameter ${i}`);
    }
    assert.ok((await g1[0].data()).some((v) => v !== 0), "the first conv's gradient is not zero");
    for (const t of [...params, x, weights, v1, v2, ...g1, ...g2]) t.dispose();
  });
}
