/**
 * bench/torch_port.py, the PyTorch port the benchmarks compare with, against our float64 oracle
 * (CpuBackend) on the same weights and inputs: every product by every method the port times (J v,
 * J^T u, G v, cached G v, H v, loss and gradient) on a small MLP and a small conv net with
 * padding, strides and both pooling and activation layers, and SGN steps with the trust
 * region, the line search and the CG budget switching from cgMinIters to cgMaxIters. So a
 * comparison figure is one of two programs that compute the same thing.
 *
 * Needs a python3 that imports torch (Debian: apt-get install python3-torch); skipped otherwise,
 * as tests/expected_skips.txt lists (CI does not install PyTorch).
 */
import assert from "node:assert/strict";
import { type Tensor, tensor } from "../autodiff/tensor.ts";
import { ggnLinearize, ggnvp, hvp, jvp, valueAndGrad, vjp } from "../autodiff/transforms.ts";
import {
  ARCHITECTURE_1,
  ARCHITECTURE_4,
  convNet,
  type ConvNetSpec,
  mlp,
  type Network,
} from "../models/networks.ts";
import { oneHot, softmaxCrossEntropy } from "../models/losses.ts";
import { SGN } from "../sgn/sgn.ts";
import { TORCH_PORT } from "../bench/torch.ts";
import { assertClose, cpu, Random, skipped } from "./harness.ts";

/** The first interpreter that imports torch, or undefined. */
async function findPython(): Promise<string | undefined> {
  for (const python of ["/usr/bin/python3", "python3"]) {
    try {
      const p = await new Deno.Command(python, {
        args: ["-c", "import torch, functorch, numpy"],
        stdout: "null",
        stderr: "null",
      }).output();
      if (p.success) return python;
    } catch {
      // not installed
    }
  }
  return undefined;
}

const python = await findPython();
if (!python) {
  skipped(
    "torch port",
    "no python3 here imports torch (Debian: apt-get install python3-torch)",
  );
}

async function port(args: string[], stdin?: unknown): Promise<unknown> {
  const child = new Deno.Command(python!, {
    args: [TORCH_PORT, ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(stdin === undefined ? "" : JSON.stringify(stdin)));
  await w.close();
  const out = await child.output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

const f64 = (values: ArrayLike<number>, shape: readonly number[]) =>
  tensor(Array.from(values), shape, { backend: cpu, dtype: "float64" });
const read = async (ts: Tensor | Tensor[]) => {
  const list = [ts].flat();
  const out = await Promise.all(list.map(async (t) => Array.from(await t.data())));
  for (const t of list) t.dispose();
  return out;
};

interface Case {
  net: Network;
  /** What the port needs to build the same network. */
  describe: Record<string, unknown>;
  batch: number;
}

/** Our products on the case, and the port's, compared method by method. */
async function compareProducts(
  { net, describe, batch }: Case,
  sgnSteps: number,
  dampRho: number,
) {
  const rng = new Random(7);
  const draw = (n: number, s = 1) => Array.from(rng.array(n, (r) => s * r.normal()));
  const values = net.paramShapes.map((sh) => draw(sh.reduce((a, b) => a * b, 1), 0.5));
  const vs = net.paramShapes.map((sh) => draw(sh.reduce((a, b) => a * b, 1)));
  const size = net.inputShape.reduce((a, b) => a * b, 1);
  const x = draw(batch * size);
  const labels = Array.from({ length: batch }, (_, i) => (i * 7) % net.outputs);
  const u = draw(batch * net.outputs);
  const sgnOptions = { rho: dampRho, rho_min: 1e-6, cg_min_iter: 10, cg_max_iter: 3, k_cg: 2 };
  const theirs = await port(["check"], {
    ...describe,
    input_shape: net.inputShape,
    params: values,
    v: vs,
    x,
    labels,
    u,
    sgn_retained: sgnOptions,
    sgn_forward: sgnOptions,
    sgn_steps: sgnSteps,
  }) as Record<string, unknown>;

  const params = values.map((p, i) => f64(p, net.paramShapes[i]));
  const v = vs.map((p, i) => f64(p, net.paramShapes[i]));
  const xt = f64(x, [batch, ...net.inputShape]);
  const y = oneHot(labels, net.outputs, { backend: cpu, dtype: "float64" });
  const ut = f64(u, [batch, net.outputs]);
  const loss = softmaxCrossEntropy(y);
  const model = (...p: Tensor[]) => net.forward(p, xt);
  const objective = (...p: Tensor[]) => loss.value(model(...p));
  const [l, g] = valueAndGrad(objective)(...params);
  const [[z], [jv]] = jvp(model, params, v);
  const [[z2], pullback] = vjp(model, params);
  const jtu = pullback(ut);
  pullback.dispose();
  const G = ggnLinearize(model, loss, params);
  const ours: Record<string, number[][]> = {
    "loss": await read(l),
    "grad": await read(g),
    "forward": await read(z),
    "J v": await read(jv),
    "J^T u": await read(jtu),
    "G v": await read(ggnvp(model, loss, params, v)),
    "G v (cached)": await read(G.apply(...v)),
    "H v": await read(hvp(objective, params, v)),
  };
  G.dispose();
  z2.dispose();
  const flatList = (a: unknown): number[][] =>
    Array.isArray(a) && Array.isArray(a[0]) ? a as number[][] : [a as number[]];
  for (const [name, expected] of Object.entries(ours)) {
    const got = theirs[name];
    // A product the port computes several ways holds one result per method.
    const methods = Array.isArray(got) ? { "": got } : got as Record<string, unknown>;
    assert.ok(Object.keys(methods).length > 0, `${name}: the port returned nothing`);
    for (const [method, result] of Object.entries(methods)) {
      const list = flatList(result);
      assert.equal(list.length, expected.length, `${name} ${method}: number of tensors`);
      list.forEach((t, i) =>
        assertClose(t, expected[i], { rtol: 1e-9, atol: 1e-12, what: `${name} ${method} #${i}` })
      );
    }
  }

  // SGN steps from the same start, with the options the port's check was given.
  const opt = new SGN(params, {
    dampRho,
    dampRhoMin: 1e-6,
    trustRegion: true,
    lineSearch: true,
    cgMinIters: 10,
    cgMaxIters: 3,
    kCg: 2,
  });
  const records = [];
  for (let s = 0; s < sgnSteps; s++) records.push(await opt.step(model, loss));
  const after = await Promise.all(opt.params.map(async (p) => Array.from(await p.data())));
  // SGN trajectories are chaotic in floating point (SGN-ALGORITHM.md): two correct programs
  // agree on every decision and on the losses to a few digits, and their parameters drift
  // apart by far less than the steps move them (the port's own two G v methods differ by ~1e-4
  // after two MLP steps). A wrong rule (damping, Armijo, CG budget) changes decisions or moves
  // the parameters by about as much as a step.
  const maxDiff = (a: number[], b: number[]) =>
    a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
  const moved = maxDiff(after.flat(), values.flat());
  assert.ok(moved > 0.01, `the steps barely moved the parameters (${moved})`);
  for (const gv of ["retained", "forward"]) {
    const run = theirs[`sgn_${gv}`] as {
      records: { loss: number; rho: number; alpha: number; cg_iters: number }[];
      params: number[][];
    };
    records.forEach((r, s) => {
      const p = run.records[s];
      const what = `SGN (${gv}) step ${s + 1}`;
      assert.equal(p.cg_iters, r.cgIters, `${what}: CG iterations`);
      assert.equal(p.alpha, r.alpha, `${what}: step size`);
      assertClose([p.rho], [r.rho], { rtol: 1e-9, what: `${what}: rho` });
      assertClose([p.loss], [r.loss], { rtol: 1e-5, what: `${what}: loss` });
    });
    const apart = maxDiff(run.params.flat(), after.flat());
    assert.ok(
      apart < Math.min(1e-3, moved / 100),
      `SGN (${gv}): the port's parameters are ${apart} from ours (the steps moved them ${moved})`,
    );
  }
  opt.dispose();
  for (const t of [...v, xt, y, ut]) t.dispose();
  return records;
}

Deno.test({
  name: "torch port: every product and two SGN steps match the oracle (MLP, float64)",
  ignore: !python,
  async fn() {
    const sizes = [4, 5, 3];
    const net = mlp({ inputs: 4, hidden: [5], outputs: 3 });
    const records = await compareProducts({ net, describe: { sizes }, batch: 30 }, 2, 1e-2);
    // The case exercises what it claims: the CG budget switches and the trust region moves rho.
    assert.equal(records[0].cgIters, 10);
    assert.equal(records[1].cgIters, 3);
    assert.ok(records[1].rho !== records[0].rho, "the trust region never changed rho");
  },
});

Deno.test({
  name: "torch port: every product and one SGN step match the oracle (conv net, float64)",
  ignore: !python,
  async fn() {
    const spec: ConvNetSpec = {
      conv_layers: {
        layer0: { type: "CONV", num_filters: 3, filter_size: 3, padding: 1 },
        layer1: { type: "ACT", activation: "relu" },
        layer2: { type: "POOL", pool_size: 2 },
        layer3: { type: "CONV", num_filters: 2, filter_size: 2, stride: 2 },
        layer4: { type: "ACT", activation: "sigmoid" },
      },
      mlp_layers: { layer0: { type: "FC", output_size: 5, activation: "relu" } },
    };
    const net = convNet(spec, [2, 9, 9], 3);
    await compareProducts({ net, describe: { spec, classes: 3 }, batch: 5 }, 1, 1e-2);
  },
});

Deno.test({
  name: "torch port: its conv-net specs are models/networks.ts's",
  ignore: !python,
  async fn() {
    for (
      const [name, spec] of [["architecture_1", ARCHITECTURE_1], ["architecture_4", ARCHITECTURE_4]]
    ) {
      assert.deepEqual(await port(["spec", name as string]), spec, name as string);
    }
  },
});
