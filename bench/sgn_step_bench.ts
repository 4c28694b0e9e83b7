/**
 * deno bench: one SGN step on W1 with 3 and 10 CG iterations (see sgn_step_cases.ts).
 */
import { w1 } from "./sgn_step_cases.ts";
import { WebGpuBackend } from "../wgsl/backend.ts";
import { SGN } from "../sgn/sgn.ts";

const gpu = await WebGpuBackend.create();
if (gpu) {
  for (const iters of [3, 10]) {
    const p = w1(gpu);
    const opt = new SGN(p.net.init({ seed: 1, backend: gpu }), {
      dampRho: 1e-4,
      trustRegion: true,
      cgMaxIters: iters,
      cgMinIters: iters,
    });
    Deno.bench({
      name: `SGN step, W1, ${iters} CG iterations [webgpu]`,
      group: "sgn step",
      n: 10,
      warmup: 2,
      fn: async () => {
        await opt.step(p.model, p.loss);
      },
    });
  }
}
