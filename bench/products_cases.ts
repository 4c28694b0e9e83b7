/**
 * Workloads of the products benchmark (issue: autodiff): forward, loss + gradient, J v, J^T u,
 * G v from scratch, G v through the cached linearization, that G v recorded once and replayed
 * (as inside CG: autodiff/replay.ts), and H v, on
 * W1 = MLP 784-20-20-20-10 sigmoid (batch 1000), W2 = MLP 784-512-512-10 sigmoid (batch 1000),
 * W3 = the seed's CIFAR-10 architecture_4 on 3x32x32 (batch 128), W4 = the seed's Fashion-MNIST
 * architecture_1 on 1x28x28 (batch 1000, as the seed trains it), softmax cross-entropy.
 * A case runs a product n times and reads the last result back once; the bench runs `reps`
 * products per iteration, a number that depends on the workload only, so the same on every
 * backend.
 */
import type { Backend } from "../kernel/backend.ts";
import { benchBackends } from "./devices.ts";
import { Random } from "../random.ts";
import { scope, type Tensor, tensor } from "../autodiff/tensor.ts";
import { ggnLinearize, ggnvp, hvp, jvp, valueAndGrad, vjp } from "../autodiff/transforms.ts";
import { ARCHITECTURE_1, ARCHITECTURE_4, convNet, mlp, type Network } from "../models/networks.ts";
import { oneHot, softmaxCrossEntropy } from "../models/losses.ts";
import { type Replayable, replayable } from "../autodiff/replay.ts";

/** The products measured, in table order. */
export const PRODUCTS = [
  "forward",
  "loss+grad",
  "J v",
  "J^T u",
  "G v",
  "G v (cached)",
  "G v (replayed)",
  "H v",
] as const;

/** One of {@link PRODUCTS}. */
export type Product = (typeof PRODUCTS)[number];

/** One workload on one backend, with a runner per product. */
export interface ProductCase {
  workload: string;
  backend: Backend;
  /** Products per `deno bench` iteration: 10 on W1 and W2, 3 on W3 and W4, on every backend. */
  reps: number;
  /** Runs the product n times and reads the last result back once. */
  runN: Record<Product, (n: number) => Promise<void>>;
  dispose(): void;
}

function workloads(): [string, Network, number][] {
  return [
    [
      "W1 MLP 784-20-20-20-10, batch 1000",
      mlp({ inputs: 784, hidden: [20, 20, 20], outputs: 10 }),
      1000,
    ],
    [
      "W2 MLP 784-512-512-10, batch 1000",
      mlp({ inputs: 784, hidden: [512, 512], outputs: 10 }),
      1000,
    ],
    ["W3 CIFAR-10 architecture_4, batch 128", convNet(ARCHITECTURE_4, [3, 32, 32], 10), 128],
    ["W4 Fashion architecture_1, batch 1000", convNet(ARCHITECTURE_1, [1, 28, 28], 10), 1000],
  ];
}

/**
 * Builds every (workload, backend) case; WebGPU first when an adapter exists. `only` keeps the
 * workloads whose label contains it (e.g. "W4").
 */
export async function productCases(withCpu = true, only = ""): Promise<ProductCase[]> {
  const out: ProductCase[] = [];
  for (const be of await benchBackends({ cpu: withCpu })) {
    for (const [label, net, batch] of workloads().filter(([l]) => l.includes(only))) {
      // W4 on the CPU backend takes minutes per product: the CPU backend is the oracle, not a
      // speed target.
      if (be.name === "cpu" && label.startsWith("W4")) continue;
      const rng = new Random(1);
      const size = batch * net.inputShape.reduce((a, b) => a * b, 1);
      const x = tensor(rng.array(size, (r) => r.range(0, 1)), [batch, ...net.inputShape], {
        backend: be,
      });
      const y = oneHot(Array.from({ length: batch }, (_, i) => i % 10), 10, { backend: be });
      const params = net.init({ seed: 1, backend: be });
      const v = params.map((p) =>
        tensor(rng.array(p.size, (r) => r.normal()), p.shape, { backend: be })
      );
      const u = tensor(rng.array(batch * 10, (r) => r.normal()), [batch, 10], { backend: be });
      const loss = softmaxCrossEntropy(y);
      const model = (...p: Tensor[]) => net.forward(p, x);
      const objective = (...p: Tensor[]) => loss.value(model(...p));
      const reps = /^W[34]/.test(label) ? 3 : 10;
      let cached: ReturnType<typeof ggnLinearize> | undefined;
      let replayed: Replayable | undefined;
      /**
       * Runs `product` n times, every output computed (tensors are lazy: an output no one reads
       * would never run), and reads the last product's first output back (the only sync).
       */
      const timed = (product: () => Tensor | Tensor[]) => async (n: number) => {
        let last: Tensor[] = [];
        for (let i = 0; i < n; i++) {
          for (const t of last) t.dispose();
          last = [product()].flat();
          for (const t of last) t.realize();
        }
        await last[0].data();
        for (const t of last) t.dispose();
      };
      out.push({
        workload: label,
        backend: be,
        reps,
        runN: {
          "forward": timed(() => scope(() => model(...params))),
          "loss+grad": timed(() => scope(() => valueAndGrad(objective)(...params)[1])),
          "J v": timed(() => scope(() => jvp(model, params, v)[1][0])),
          "J^T u": timed(() =>
            scope(() => {
              const [, pullback] = vjp(model, params);
              const g = pullback(u);
              pullback.dispose();
              return g;
            })
          ),
          "G v": timed(() => scope(() => ggnvp(model, loss, params, v))),
          "G v (cached)": async (n) => {
            cached ??= ggnLinearize(model, loss, params);
            await timed(() => scope(() => cached!.apply(...v)))(n);
          },
          "G v (replayed)": async (n) => {
            cached ??= ggnLinearize(model, loss, params);
            replayed ??= replayable((...w) => cached!.apply(...w));
            await timed(() => scope(() => replayed!(...v)))(n);
          },
          "H v": timed(() => scope(() => hvp(objective, params, v))),
        },
        dispose() {
          replayed?.dispose();
          cached?.dispose();
          for (const t of [x, y, u, ...params, ...v]) t.dispose();
        },
      });
    }
  }
  return out;
}
