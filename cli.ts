/**
 * The command line of sgn. Until the training command exists, `deno run -A cli.ts` (or
 * `deno task demo`) runs a demonstration of the machinery SGN stands on: a linear least-squares
 * problem solved by one damped Gauss-Newton step, (G + rho I) d = -g with conjugate gradient,
 * where every G p is a matrix-free product J^T H_L J p from `ggnLinearize`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  type Backend,
  type BackendChoice,
  ggnLinearize,
  init,
  meanSquaredError,
  ops,
  Random,
  scope,
  type Tensor,
  tensor,
  valueAndGrad,
} from "./mod.ts";

const HELP = `Usage: deno run -A cli.ts [demo] [options]

Runs one damped Gauss-Newton step with conjugate gradient on a random linear least-squares
problem and shows that it reaches the minimizer (the Gauss-Newton model is exact there).

Options:
  --backend webgpu|cpu|auto   backend (default: auto, or SGN_BACKEND)
  --samples N                 rows of the problem (default 2000)
  --features N                unknowns (default 50)
  --cg-iters N                conjugate-gradient iterations (default 60)
  --seed N                    random seed (default 1)
  -h, --help                  this text`;

async function scalar(t: Tensor): Promise<number> {
  return (await t.data())[0];
}

async function demo(be: Backend, n: number, d: number, iters: number, seed: number) {
  const rng = new Random(seed);
  const X = tensor(rng.array(n * d, (r) => r.normal()), [n, d], { backend: be });
  const wTrue = rng.array(d, (r) => r.normal());
  const Xh = await X.data();
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += Xh[i * d + j] * wTrue[j];
    y[i] = s + 0.01 * rng.normal();
  }
  const Y = tensor(y, [n, 1], { backend: be });
  const w = tensor(new Float32Array(d), [d, 1], { backend: be });
  const loss = meanSquaredError(Y);
  const model = (w: Tensor) => ops.matmul(X, w);
  const [l0, [g]] = valueAndGrad((w) => loss.value(model(w)))(w);
  console.log(`backend: ${be.name} (${be.description})`);
  console.log(
    `problem: ${n} x ${d} least squares; loss at w = 0: ${(await scalar(l0)).toExponential(4)}`,
  );

  // CG on (G + rho I) d = -g, matrix-free: each G p is one tangent and one cotangent sweep.
  const rho = 1e-6;
  const G = ggnLinearize(model, loss, [w]);
  const t0 = performance.now();
  let dir = ops.zerosLike(w);
  let r = g;
  let p = ops.neg(g);
  let rr = await scalar(ops.dot(r, r));
  let k = 0;
  for (; k < iters && Math.sqrt(rr) > 1e-7; k++) {
    const next = scope(() => {
      const q = ops.add(G.apply(p)[0], ops.mul(p, rho));
      return { q, pq: ops.dot(p, q) };
    });
    const a = rr / (await scalar(next.pq));
    const nd = ops.add(dir, ops.mul(p, a));
    const nr = ops.add(r, ops.mul(next.q, a));
    const nrr = await scalar(ops.dot(nr, nr));
    const np = ops.add(ops.neg(nr), ops.mul(p, nrr / rr));
    for (const t of [dir, r, p, next.q, next.pq]) t.dispose();
    [dir, r, p, rr] = [nd, nr, np, nrr];
  }
  const ms = performance.now() - t0;
  G.dispose();
  const w1 = ops.add(w, dir);
  const l1 = await scalar(loss.value(model(w1)));
  const w1h = await w1.data();
  const err = Math.sqrt(wTrue.reduce((s, v, i) => s + (v - w1h[i]) ** 2, 0) / d);
  console.log(
    `conjugate gradient: ${k} iterations in ${ms.toFixed(1)} ms, residual ${
      Math.sqrt(rr).toExponential(2)
    }`,
  );
  console.log(`loss after one Gauss-Newton step: ${l1.toExponential(4)} (noise floor ~1e-4)`);
  console.log(`RMS distance to the true weights: ${err.toExponential(3)}`);
}

async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        backend: { type: "string", default: "" },
        samples: { type: "string", default: "2000" },
        features: { type: "string", default: "50" },
        "cg-iters": { type: "string", default: "60" },
        seed: { type: "string", default: "1" },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (e) {
    console.error(`error: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const command = positionals[0] ?? "demo";
  if (command !== "demo") {
    console.error(`error: unknown command "${command}" (available: demo)\n\n${HELP}`);
    return 2;
  }
  const ints: Record<string, number> = {};
  for (const key of ["samples", "features", "cg-iters", "seed"] as const) {
    const v = Number(values[key]);
    if (!Number.isInteger(v) || v < (key === "seed" ? 0 : 1)) {
      console.error(`error: --${key} must be a positive integer, got "${values[key]}"`);
      return 2;
    }
    ints[key] = v;
  }
  const choice = values.backend || undefined;
  if (choice && !["webgpu", "cpu", "auto"].includes(choice)) {
    console.error(`error: --backend must be webgpu, cpu or auto, got "${choice}"`);
    return 2;
  }
  const be = await init({ backend: choice as BackendChoice | undefined });
  await demo(be, ints.samples, ints.features, ints["cg-iters"], ints.seed);
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
