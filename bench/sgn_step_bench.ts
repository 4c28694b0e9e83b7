/**
 * deno bench: one SGN step on W1 with 3 and 10 CG iterations (see sgn_step_cases.ts).
 */
import { w1 } from "./sgn_step_cases.ts";
import { benchBackends } from "./backends.ts";
import { SGN } from "../sgn/sgn.ts";

for (const be of await benchBackends({ cpu: false })) {
  for (const iters of [3, 10]) {
    const p = w1(be);
    const opt = new SGN(p.net.init({ seed: 1, backend: be }), {
      dampRho: 1e-4,
      trustRegion: true,
      cgMaxIters: iters,
      cgMinIters: iters,
    });
    Deno.bench({
      name: `SGN step, W1, ${iters} CG iterations [${be.name}]`,
      group: "sgn step",
      n: 10,
      warmup: 2,
      fn: async () => {
        await opt.step(p.model, p.loss);
      },
    });
  }
}
