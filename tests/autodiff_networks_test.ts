/**
 * Autodiff of whole networks against central finite differences (tests/autodiff_support.ts):
 * an MLP and a conv net written as functions of their parameter lists, on the CPU backend in
 * float64 and on WebGPU in float32, and the library's networks (mlp, convNet) on the float64
 * backends.
 */

import assert from "node:assert/strict";
import { type Tensor, tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import { jvp, linearize, valueAndGrad } from "../autodiff/transforms.ts";
import { oneHot, softmaxCrossEntropy } from "../models/losses.ts";
import { cpu, native, Random } from "./harness.ts";
import { convNet as libConvNet, mlp as libMlp, type Network } from "../models/networks.ts";
import {
  type Act,
  convNet,
  convParams,
  dotHost,
  type Dtype,
  gpu,
  host,
  mlp,
  mlpParams,
  rand,
} from "./autodiff_support.ts";

for (const be of [cpu, gpu].filter((b): b is NonNullable<typeof b> => !!b)) {
  const dtype: Dtype = be.dtypes.includes("float64") ? "float64" : "float32";
  const tol = dtype === "float64" ? 1e-10 : 2e-5;
  const nets: [string, () => [(...p: Tensor[]) => Tensor, Tensor[]]][] = [
    ...(["sigmoid", "tanh", "relu"] as Act[]).map((
      act,
    ): [string, () => [(...p: Tensor[]) => Tensor, Tensor[]]] => [
      `MLP 6-5-4-3 ${act}`,
      () => {
        const rng = new Random(20);
        const x = rand(be, [8, 6], rng, dtype);
        return [mlp(x, act), mlpParams(be, [6, 5, 4, 3], rng, dtype)];
      },
    ]),
    ["conv net (conv, relu, pool, conv, relu, dense)", () => {
      const rng = new Random(21);
      const x = rand(be, [2, 2, 10, 10], rng, dtype);
      return [convNet(x) as (...p: Tensor[]) => Tensor, convParams(be, rng, dtype)];
    }],
  ];
  for (const [name, make] of nets) {
    Deno.test({
      name: `autodiff (${be.name}): ${name}: adjoint identity for the whole network`,
      fn: async () => {
        const [f, params] = make();
        const rng = new Random(22);
        const v = params.map((p) => rand(be, [...p.shape], rng, dtype));
        const lin = linearize(f, params);
        const u = rand(be, [...lin.outputs[0].shape], rng, dtype);
        const [jv] = lin.jvp(...v);
        const jtu = lin.vjp(u);
        const lhs = dotHost(await host(u), await host(jv));
        let rhs = 0;
        let scale = 0;
        for (let i = 0; i < v.length; i++) {
          const a = await host(jtu[i]);
          const b = await host(v[i]);
          rhs += dotHost(a, b);
          scale += a.reduce((s, x, j) => s + Math.abs(x * b[j]), 0);
        }
        assert.ok(Math.abs(lhs - rhs) <= tol * scale, `<u,Jv>=${lhs} <J^T u,v>=${rhs}`);
        lin.dispose();
      },
    });
  }
}

const float64Backends = [cpu, await native()].filter((b): b is NonNullable<typeof b> => !!b);

for (const be of float64Backends) {
  const nets: [string, Network, number[]][] = [
    ["mlp 6-5-4-3 (sigmoid)", libMlp({ inputs: 6, hidden: [5, 4], outputs: 3 }), [6]],
    [
      "convNet (conv, relu, pool, conv, tanh, fc relu, dense)",
      libConvNet(
        {
          conv_layers: {
            layer0: { type: "CONV", num_filters: 3, filter_size: 3 },
            layer1: { type: "ACT", activation: "relu" },
            layer2: { type: "POOL", pool_size: 2 },
            layer3: { type: "CONV", num_filters: 4, filter_size: 2, padding: 1 },
            layer4: { type: "ACT", activation: "tanh" },
          },
          mlp_layers: { layer0: { type: "FC", output_size: 5, activation: "relu" } },
        },
        [2, 9, 8],
        3,
      ),
      [2, 9, 8],
    ],
  ];
  for (const [name, net, inputShape] of nets) {
    Deno.test(`autodiff (${be.name}): ${name}: loss gradient and J v match central differences`, async () => {
      const rng = new Random(31);
      const batch = 4;
      const x = rand(be, [batch, ...inputShape], rng);
      const labels = Array.from({ length: batch }, (_, i) => i % 3);
      const loss = softmaxCrossEntropy(oneHot(labels, 3, { backend: be, dtype: "float64" }));
      const params = net.init({ seed: 5, backend: be, dtype: "float64" });
      const f = (...p: Tensor[]) => net.forward(p, x);
      const objective = (...p: Tensor[]) => loss.value(f(...p));
      const [, grads] = valueAndGrad(objective)(...params);
      const g = (await Promise.all(grads.map(host))).flat();
      const h = 1e-5;
      for (let trial = 0; trial < 3; trial++) {
        const v = params.map((p) => rng.array(p.size, (r) => r.normal()));
        const shifted = (s: number) =>
          params.map((p, i) =>
            o.add(p, o.mul(tensor(v[i], [...p.shape], { backend: be, dtype: "float64" }), s))
          );
        const [plus, minus] = [shifted(h), shifted(-h)];
        const lp = (await host(objective(...plus)))[0];
        const lm = (await host(objective(...minus)))[0];
        const fd = (lp - lm) / (2 * h);
        const dir = dotHost(g, v.flatMap((vi) => Array.from(vi)));
        assert.ok(Math.abs(fd - dir) <= 1e-6 * (Math.abs(dir) + 1e-3), `<g, v> ${dir}, FD ${fd}`);
        const vt = v.map((vi, i) =>
          tensor(vi, [...params[i].shape], { backend: be, dtype: "float64" })
        );
        const [, [jv]] = jvp(f, params, vt);
        const zp = await host(f(...plus));
        const zm = await host(f(...minus));
        const jvh = await host(jv);
        jvh.forEach((val, i) => {
          const fdi = (zp[i] - zm[i]) / (2 * h);
          assert.ok(
            Math.abs(val - fdi) <= 1e-6 * (Math.abs(fdi) + 1e-3),
            `J v[${i}] ${val}, FD ${fdi}`,
          );
        });
      }
    });
  }
}
