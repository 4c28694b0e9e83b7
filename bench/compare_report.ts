/**
 * Old code against new, in one run on one machine: loads the product and SGN-step workloads
 * from each checkout given (`--root DIR`, repeatable; default this one), and prints, per
 * checkout, ms and WebGPU dispatches per product (W1, W3, W4) and per W1 SGN step with 3 CG
 * iterations. Only modules that every checkout since the native backend has are used
 (models, losses, transforms, tensors, bench/sgn_step_cases.ts, sgn/sgn.ts), so a
 * checkout of an older commit (`git worktree add /tmp/old <commit>`) runs unchanged.
 *
 *     deno run -A bench/compare_report.ts --root /tmp/old --root . [--only W1] [--rounds 3]
 *       [--backend webgpu|native] [--together]
 *
 * `--together` runs WebGPU's products together (`hardwareSchedule`), as on a hardware GPU, where a
 * software adapter runs them one by one by default.
 *
 * Rounds alternate between the checkouts (old, new, old, new, ...), and each figure is the
 * median over the rounds, so a machine whose speed drifts during the run favours neither.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

/**
 * Dispatches counted at the WebGPU API itself (every device in the process), so that both
 * checkouts are counted the same way whatever their own counters.
 */
let dispatches = 0;
const pass = (globalThis as { GPUComputePassEncoder?: { prototype: GPUComputePassEncoder } })
  .GPUComputePassEncoder?.prototype;
if (pass) {
  const original = pass.dispatchWorkgroups;
  pass.dispatchWorkgroups = function (this: GPUComputePassEncoder, ...args) {
    dispatches++;
    return original.apply(this, args);
  };
}

const { values } = parseArgs({
  options: {
    root: { type: "string", multiple: true },
    only: { type: "string", default: "" },
    rounds: { type: "string", default: "3" },
    backend: { type: "string", default: "webgpu" },
    together: { type: "boolean", default: false },
  },
});
const roots = (values.root ?? ["."]).map((r) => resolve(r));
const rounds = Number(values.rounds);
const url = (root: string, path: string) => pathToFileURL(`${root}/${path}`).href;

/** The products compared: each runs `reps` times, every output computed, the last one read. */
const PRODUCTS = ["loss+grad", "J v", "G v (cached)", "H v"] as const;

/** One checkout's modules, workloads and WebGPU backend. */
async function load(root: string) {
  const mod = async (path: string) => await import(url(root, path));
  const device = await mod("autodiff/device.ts");
  const tensors = await mod("autodiff/tensor.ts");
  const tf = await mod("autodiff/transforms.ts");
  const nets = await mod("models/networks.ts");
  const losses = await mod("models/losses.ts");
  const { Random } = await mod("random.ts");
  const step = await mod("bench/sgn_step_cases.ts");
  const sgn = await mod("sgn/sgn.ts");
  // The registry's findBackend; before it, one getter per backend.
  const be = device.findBackend
    ? (await device.findBackend(values.backend)).backend
    : values.backend === "native"
    ? device.nativeBackend().backend
    : await device.webgpuBackend();
  if (!be) throw new Error(`${root}: no ${values.backend} backend`);
  if (values.together) {
    // hardwareSchedule sets both switches; a tree from before it has groupProducts alone.
    if ("hardwareSchedule" in be) be.hardwareSchedule = true;
    else if ("groupProducts" in be) be.groupProducts = true;
    else throw new Error(`${root}: --together needs WebGPU`);
  }
  type T = {
    dispose(): void;
    data(): Promise<ArrayLike<number>>;
    realize?: () => unknown;
    size: number;
    shape: number[];
  };
  const workloads: [string, unknown, number][] = [
    ["W1", nets.mlp({ inputs: 784, hidden: [20, 20, 20], outputs: 10 }), 1000],
    ["W3", nets.convNet(nets.ARCHITECTURE_4, [3, 32, 32], 10), 128],
    ["W4", nets.convNet(nets.ARCHITECTURE_1, [1, 28, 28], 10), 1000],
  ];
  const cases = workloads.filter(([l]) => l.includes(values.only)).map(([label, netAny, batch]) => {
    // deno-lint-ignore no-explicit-any
    const net = netAny as any;
    const rng = new Random(1);
    const size = batch * net.inputShape.reduce((a: number, b: number) => a * b, 1);
    const x = tensors.tensor(
      rng.array(size, (r: { range(a: number, b: number): number }) => r.range(0, 1)),
      [batch, ...net.inputShape],
      { backend: be },
    );
    const y = losses.oneHot(Array.from({ length: batch }, (_, i) => i % 10), 10, { backend: be });
    const params: T[] = net.init({ seed: 1, backend: be });
    const v = params.map((p) =>
      tensors.tensor(rng.array(p.size, (r: { normal(): number }) => r.normal()), p.shape, {
        backend: be,
      })
    );
    const loss = losses.softmaxCrossEntropy(y);
    const model = (...p: T[]) => net.forward(p, x);
    const objective = (...p: T[]) => loss.value(model(...p));
    const cached = tf.ggnLinearize(model, loss, params);
    const reps = label === "W1" ? 10 : 3;
    /**
     * New weights and a new direction for each product (copies in new buffers, made before the
     * timing), as each training step and CG iteration has them: what a backend keeps while an
     * array lives (WebGPU's weights in its convolution kernels' layout) then counts only where
     * it also pays in training. The cached G v keeps its linearization's weights.
     */
    let sets: { p: T[]; v: T[] }[] = [];
    const copy = (ts: T[]) =>
      Promise.all(
        ts.map(async (t) => tensors.tensor(await t.data(), t.shape, { backend: be }) as T),
      );
    const prepare = async () => {
      for (const s of sets) for (const t of [...s.p, ...s.v]) t.dispose();
      sets = [];
      for (let i = 0; i < reps; i++) sets.push({ p: await copy(params), v: await copy(v) });
    };
    /** Runs `product` reps times; every output is computed (realized), the last read back. */
    const timed = (product: (s: { p: T[]; v: T[] }) => T[]) => async () => {
      let last: T[] = [];
      for (let i = 0; i < reps; i++) {
        for (const t of last) t.dispose();
        last = tensors.scope(() => product(sets[i]));
        for (const t of last) t.realize?.();
      }
      await last[0].data();
      for (const t of last) t.dispose();
    };
    const run: Record<(typeof PRODUCTS)[number], () => Promise<void>> = {
      "loss+grad": timed((s) => tf.valueAndGrad(objective)(...s.p)[1]),
      "J v": timed((s) => [tf.jvp(model, s.p, s.v)[1]].flat()),
      "G v (cached)": timed((s) => cached.apply(...s.v)),
      "H v": timed((s) => tf.hvp(objective, s.p, s.v)),
    };
    const dispose = () => {
      cached.dispose();
      for (const s of sets) for (const t of [...s.p, ...s.v]) t.dispose();
      for (const t of [x, y, ...params, ...v]) t.dispose();
    };
    return { label, reps, run, prepare, dispose };
  });
  return { root, be, stats: () => ({ dispatches }), cases, step, sgn };
}

const checkouts = [];
for (const r of roots) checkouts.push(await load(r));
const results = new Map<string, number[]>();
const record = (key: string, v: number) => results.set(key, [...(results.get(key) ?? []), v]);

for (let round = 0; round < rounds; round++) {
  for (const c of checkouts) {
    for (const pc of c.cases) {
      for (const [product, run] of Object.entries(pc.run)) {
        await pc.prepare();
        await run(); // warm-up: pipelines compiled, pools filled
        await pc.prepare();
        const d0 = c.stats().dispatches;
        const t0 = performance.now();
        await run();
        const ms = (performance.now() - t0) / pc.reps;
        record(`${c.root}|${pc.label} ${product}|ms`, ms);
        record(
          `${c.root}|${pc.label} ${product}|dispatches`,
          (c.stats().dispatches - d0) / pc.reps,
        );
      }
    }
    if (!values.only || "W1".includes(values.only)) {
      const p = c.step.w1(c.be);
      const opt = new c.sgn.SGN(p.net.init({ seed: 1, backend: c.be }), {
        dampRho: 1e-4,
        dampRhoMin: 1e-6,
        trustRegion: true,
        lineSearch: true,
        cgMaxIters: 3,
        cgMinIters: 3,
      });
      await opt.step(p.model, p.loss);
      const steps = 5;
      let tries = 0;
      const d0 = c.stats().dispatches;
      const t0 = performance.now();
      for (let i = 0; i < steps; i++) tries += (await opt.step(p.model, p.loss)).lsTries;
      record(`${c.root}|W1 SGN step (3 CG)|ms`, (performance.now() - t0) / steps);
      record(`${c.root}|W1 SGN step (3 CG)|dispatches`, (c.stats().dispatches - d0) / steps);
      record(`${c.root}|W1 SGN step (3 CG)|tries`, tries / steps);
      opt.dispose();
    }
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows = new Map<string, Record<string, string>>();
for (const [key, xs] of results) {
  const [root, what, unit] = key.split("|");
  const row = rows.get(what) ?? {};
  const v = median(xs);
  row[`${root.split("/").pop()} ${unit}`] = unit === "ms" ? v.toFixed(2) : v.toFixed(1);
  rows.set(what, row);
}
console.log(
  `${values.backend} on ${checkouts[0].be.description}; medians over ${rounds} alternating rounds`,
);
console.table(Object.fromEntries(rows));
for (const c of checkouts) c.cases.forEach((pc) => pc.dispose());
