/**
 * Property tests of the networks' derivatives against the float64 reference
 * (tests/network_reference.ts) on generated networks (tests/network_cases.ts). On the float64
 * backends (CPU oracle and native): outputs and loss equal the reference; J v, J^T u, the
 * gradient, G v (one-shot, and a linearized G applied several times) equal the explicit
 * finite-difference J and the closed-form H_L; H v equals central differences of the gradient;
 * <u, J v> = <J^T u, v> to rounding. Points near a kink are rejected: a case is skipped when any
 * finite-difference evaluation sees another relu sign or window argmax than the base point. On
 * WebGPU (float32) the same quantities against the float64 results, when no relu input or pooling
 * window is within 1e-4 of a kink. Also: a linearized conv net with tanh after the convolution
 * frees every buffer once (it threw). Why generated: hand-picked cases missed realistic one-line
 * bugs (a Hessian product scaled wrongly, a layer's nonlinearity dropped).
 */

import { tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import { linearize, valueAndGrad } from "../autodiff/transforms.ts";
import { fc, property } from "./property.ts";
import { cpu, Random } from "./harness.ts";
import {
  absDot,
  ALL,
  dot,
  dtypeOf,
  F64,
  gpu,
  hostAll,
  matTVec,
  matVec,
  maxAbs,
  near,
} from "./autodiff_checks.ts";
import type { Kinks } from "./network_reference.ts";
import {
  build,
  caseArb,
  convArb,
  direction,
  explicitJacobian,
  libraryDerivatives,
  mlpArb,
  mlpOptionsArb,
  type NetCase,
  newConvArb,
  onBackend,
  patternAt,
  refAt,
  seedStyleArb,
} from "./network_cases.ts";

/** Every check of one network case on the float64 backends; false when it sits on a kink. */
async function checkNetworkFloat64(c: NetCase): Promise<boolean> {
  const b = build(c);
  const base: Kinks = { pattern: [], margin: Infinity };
  const z0 = refAt(b, null, 0, base);
  const baseP = base.pattern.join(",");
  const J = explicitJacobian(b, baseP);
  if (!J) return false;
  const rng = new Random(c.seed ^ 0x5bd1e995);
  const total = J[0].length;
  const vs = [direction(rng, total), direction(rng, total)];
  const u = direction(rng, b.n * b.classes);
  // H v by central differences of the gradient needs the same kink pattern at x +- eps v.
  // (Richardson's extrapolation below: truncation EPS^4, rounding 1e-16 |g| / EPS. A layer norm
  // over nearly equal features curves so fast that EPS = 1e-5 was 4e-5 off an H v of 977.)
  const EPS = 1e-6;
  if ([EPS, -EPS, 2 * EPS, -2 * EPS].some((s) => patternAt(b, vs[0], s) !== baseP)) return false;
  const HL = b.ref.hessian(z0);
  const ggn = (v: number[]) => matTVec(J, matVec(HL, matVec(J, v)));
  const want = {
    jv: matVec(J, vs[0]),
    jv2: matVec(J, vs[1]),
    jtu: matTVec(J, u),
    grad: matTVec(J, b.ref.grad(z0)),
    gv1: ggn(vs[0]),
    gv2: ggn(vs[1]),
  };
  for (const be of F64) {
    const tag = `${be.name}, ${b.net.name}, ${c.loss}`;
    const got = await libraryDerivatives(b, be, vs, u);
    // The forward pass and the loss against the reference: rounding only.
    near(got.z, z0, 1e-12, 1e-12, `${tag}: outputs`);
    // The loss can be tiny after cancellation (squared error near a fit): absolute 1e-12, the
    // rounding of order-1 outputs.
    near([got.value], [b.ref.value(z0)], 1e-10, 1e-12, `${tag}: loss value`, 1);
    // Finite differences of the reference: truncation h^2 and rounding eps / h, both ~1e-10 of
    // the outputs' size, so a vector that is nearly zero is held to 1e-10 absolute (floor 1e-3).
    const [R, A] = [1e-6, 1e-7];
    near(got.jv, want.jv, R, A, `${tag}: J v`, 1e-3);
    near(got.linJv, want.jv, R, A, `${tag}: linearized J v`, 1e-3);
    near(got.gJv, want.jv2, R, A, `${tag}: GGN operator's J v`, 1e-3);
    near(got.jtu, want.jtu, R, A, `${tag}: J^T u`, 1e-3);
    near(got.gJtu, want.jtu, R, A, `${tag}: GGN operator's J^T u`, 1e-3);
    near(got.grad, want.grad, R, A, `${tag}: gradient`, 1e-3);
    near(got.gv1, want.gv1, R, A, `${tag}: G v`, 1e-3);
    near(got.gv2, want.gv2, R, A, `${tag}: G v (second vector)`, 1e-3);
    near(got.gv1again, want.gv1, R, A, `${tag}: G v (again)`, 1e-3);
    near(got.once, want.gv2, R, A, `${tag}: ggnvp`, 1e-3);
    // The adjoint identity of the library's own products holds to rounding.
    const lhs = dot(u, got.jv);
    const rhs = dot(got.jtu, vs[0]);
    const scale = absDot(u, got.jv) + absDot(got.jtu, vs[0]);
    // Where J is nearly zero, the products are rounding noise of order-1 terms: |u|_1 max|v|.
    const noise = 1e-12 * (absDot(u, u.map(() => 1)) * maxAbs(vs[0]));
    if (!(Math.abs(lhs - rhs) <= 1e-12 * scale + noise)) {
      throw new Error(`${tag}: <u, J v> = ${lhs} but <J^T u, v> = ${rhs}`);
    }
    // H v against central differences of the gradient along v.
    const L = onBackend(b, be);
    const g = async (s: number) => {
      const shifted = L.split(vs[0]).map((d, i) => o.add(L.params[i], o.mul(d, s)));
      return await hostAll(valueAndGrad(L.objective)(...shifted)[1]);
    };
    // Steps EPS and 2 EPS by Richardson's extrapolation, as explicitJacobian (truncation EPS^4).
    const [gp, gm, gp2, gm2] = [await g(EPS), await g(-EPS), await g(2 * EPS), await g(-2 * EPS)];
    const fd = gp.map((p, i) => (4 * (p - gm[i]) / (2 * EPS) - (gp2[i] - gm2[i]) / (4 * EPS)) / 3);
    near(got.hv, fd, 1e-5, 1e-6, `${tag}: H v`, 1e-3);
  }
  return true;
}

const NETWORK = "networks: outputs, J v, J^T u, gradient, G v and H v against a float64 reference";
property(
  `${NETWORK} (MLPs, cpu and native)`,
  caseArb(mlpArb),
  40,
  async (c) => {
    fc.pre(await checkNetworkFloat64(c));
  },
);
property(
  `${NETWORK} (conv nets with pooling, cpu and native)`,
  caseArb(convArb),
  40,
  async (c) => {
    fc.pre(await checkNetworkFloat64(c));
  },
);
property(
  `${NETWORK} (seed-style conv nets: conv, pool, conv, pool, dense, cpu and native)`,
  caseArb(seedStyleArb),
  12,
  async (c) => {
    fc.pre(await checkNetworkFloat64(c));
  },
);

property(
  `${NETWORK} (MLPs with layer normalization and skips, cpu and native)`,
  caseArb(mlpOptionsArb),
  20,
  async (c) => {
    fc.pre(await checkNetworkFloat64(c));
  },
);
property(
  `${NETWORK} (conv nets with average pooling, layer normalization, residual blocks, cpu and native)`,
  caseArb(newConvArb),
  30,
  async (c) => {
    fc.pre(await checkNetworkFloat64(c));
  },
);

property(
  "networks on WebGPU (float32): outputs and every derivative against the float64 oracle's",
  caseArb(fc.oneof(mlpArb, convArb, seedStyleArb, mlpOptionsArb, newConvArb)),
  24,
  async (c) => {
    const b = build(c);
    const base: Kinks = { pattern: [], margin: Infinity };
    refAt(b, null, 0, base);
    // float32 rounding moves a pre-activation (order 1, sums of tens of terms) by ~1e-6: a kink
    // closer than 1e-4 could flip, so those cases are left to the float64 properties.
    fc.pre(base.margin > 1e-4);
    const rng = new Random(c.seed ^ 0x5bd1e995);
    const total = b.params.reduce((s, p) => s + p.length, 0);
    const vs = [direction(rng, total), direction(rng, total)];
    const u = direction(rng, b.n * b.classes);
    // The oracle's float64 results are checked against the reference by the properties above.
    const want = await libraryDerivatives(b, cpu, vs, u);
    const got = await libraryDerivatives(b, gpu!, vs, u);
    const tag = `webgpu, ${b.net.name}, ${c.loss}`;
    // Sums of at most a few hundred float32 products of order-1 terms, through a few layers:
    // errors of ~1e-5 of the vector's scale; 1e-3 leaves room and still catches a wrong rule,
    // which moves entries by their own size. A vector nearly zero by cancellation is held to
    // 1e-6 absolute (floor 1e-2), float32 rounding of order-1 terms.
    const [R, A] = [1e-3, 1e-4];
    for (const key of Object.keys(want) as (keyof typeof want)[]) {
      const w = want[key];
      const g = got[key];
      near(
        typeof g === "number" ? [g] : g,
        typeof w === "number" ? [w] : w,
        R,
        A,
        `${tag}: ${key}`,
        1e-2,
      );
    }
  },
  { ignore: !gpu },
);

// A consumer fused into a convolution (tanh of conv) was unfused by its own operands' realization
// while it ran, and its recipe's references were then dropped twice: disposing a linearization
// of a conv net with tanh or sigmoid after J^T (J v) threw "an array was released twice".
Deno.test("linearize: conv then tanh, J^T (J v) read, then disposed: every buffer freed once", async () => {
  for (const be of ALL) {
    const dtype = dtypeOf(be);
    const t = (d: number[], s: number[]) => tensor(Float64Array.from(d), s, { backend: be, dtype });
    const x = t(Array.from({ length: 16 }, (_, i) => Math.sin(i)), [1, 1, 4, 4]);
    const w = t([0.1, 0.2, 0.3, 0.4], [4, 1]);
    const v = t([1, 0, 0, 0], [4, 1]);
    // The first round warms caches that live on (scalar constants); the second must leave none.
    for (const round of [0, 1]) {
      const start = be.liveBuffers();
      const lin = linearize(
        (w) => o.reshape(o.tanh(o.conv2d(x, o.reshape(w, [1, 1, 2, 2]))), [1, 9]),
        [w],
      );
      const [jv] = lin.jvp(v);
      const [g] = lin.vjp(jv);
      const values = await g.data();
      if (!values.every(Number.isFinite)) throw new Error(`${be.name}: J^T J v is ${values}`);
      jv.dispose();
      g.dispose();
      lin.dispose();
      lin.outputs[0].dispose();
      if (round === 1 && be.liveBuffers() !== start) {
        throw new Error(`${be.name}: ${be.liveBuffers() - start} buffers left behind`);
      }
    }
  }
});
