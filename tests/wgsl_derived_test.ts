/**
 * WebGPU's derived buffers (wgsl/runtime.ts `derived`): convolution weights kept in the kernels'
 * layout while the weights live (wgsl/conv.ts). Generated programs convolve with weights that are
 * reused, released and replaced (their pooled memory handed out again with other values), under
 * specs and block sizes that ask for other layouts of the same weights, with the cache's limit
 * lowered so that it evicts: every result equals the oracle's, and in the end no buffer is left
 * live or held. A hand case pins what the cache saves: the transpose runs once per weights and
 * layout.
 */
import assert from "node:assert/strict";
import { conv2dOutSize, type Conv2dSpec } from "../kernel/backend.ts";
import * as conv from "../wgsl/conv.ts";
import { DERIVED_BYTES, type GpuBuffer } from "../wgsl/runtime.ts";
import { cpu, put, take, webgpu } from "./harness.ts";
import { fc, property } from "./property.ts";

const gpu = await webgpu();
const int = (min: number, max: number) => fc.integer({ min, max });

/** Weights [f, c, kh, kw] and specs that convolve with them (images of other sizes and strides). */
const programArb = fc.record({
  f: int(1, 9),
  c: int(1, 5),
  kh: int(1, 3),
  kw: int(1, 3),
  specs: fc.array(
    fc.record({
      n: int(1, 2),
      h: int(3, 8),
      w: int(3, 8),
      strideH: fc.constantFrom(1, 1, 2),
      strideW: fc.constantFrom(1, 1, 2),
      padH: int(0, 1),
      padW: int(0, 1),
      // Forced block sizes change the layout's padding (coutPad).
      cf: fc.option(int(1, 2)),
      v: fc.constantFrom(1 as const, 4 as const),
    }),
    { minLength: 1, maxLength: 3 },
  ),
  steps: fc.array(
    fc.oneof(
      fc.record({ op: fc.constantFrom("forward", "inputGrad"), slot: int(0, 2), spec: int(0, 2) }),
      fc.record({ op: fc.constant("replace"), slot: int(0, 2) }),
    ),
    { minLength: 1, maxLength: 14 },
  ),
  // Bytes the cache may hold: none to speak of (every insertion evicts the others), or plenty.
  limit: fc.constantFrom(0, 256, DERIVED_BYTES),
  seed: fc.nat(1000),
});

property(
  "WebGPU: convolutions with weights reused, replaced and asked for in other layouts, the cache evicting or not, equal the oracle; nothing is left live or held",
  programArb,
  25,
  async (p) => {
    if (!gpu) return;
    const rt = gpu.rt;
    const live = rt.liveBuffers(), held = rt.heldDerivedBytes();
    rt.derivedLimit = p.limit;
    let salt = p.seed;
    const data = (n: number) => {
      salt++;
      return Array.from({ length: n }, (_, i) => Math.sin(i * 0.7 + salt * 1.3) * 2);
    };
    const wSize = p.f * p.c * p.kh * p.kw;
    const slots = [0, 1, 2].map(() => {
      const values = data(wSize);
      return { values, buf: rt.check(put(gpu, values), "test") };
    });
    try {
      for (const step of p.steps) {
        const slot = slots[step.slot];
        if (step.op === "replace") {
          // Released, then new values of the same size: the pool hands the memory out again.
          gpu.release(slot.buf);
          slot.values = data(wSize);
          slot.buf = rt.check(put(gpu, slot.values), "test");
          continue;
        }
        const g = p.specs[step.spec % p.specs.length];
        const s: Conv2dSpec = {
          n: g.n,
          c: p.c,
          f: p.f,
          h: g.h,
          w: g.w,
          kh: Math.min(p.kh, g.h + 2 * g.padH),
          kw: Math.min(p.kw, g.w + 2 * g.padW),
          strideH: g.strideH,
          strideW: g.strideW,
          padH: g.padH,
          padW: g.padW,
        };
        if (s.kh !== p.kh || s.kw !== p.kw) continue; // the weights' shape is fixed
        const plans = g.cf === null ? {} : {
          direct: { th: 1, tw: 2, cf: g.cf, v: g.v, unrollKy: false },
          gather: { tw: 2, cf: g.cf },
        };
        const [ho, wo] = conv2dOutSize(s);
        const input = data(step.op === "forward" ? s.n * s.c * s.h * s.w : s.n * s.f * ho * wo);
        const inG = rt.check(put(gpu, input), "test");
        const out = step.op === "forward"
          ? conv.conv2d(rt, inG, slot.buf, s, undefined, plans)
          : conv.conv2dInputGrad(rt, inG, slot.buf, s, plans);
        gpu.release(inG);
        const got = await take(gpu, out);
        const [ic, wc] = [input, slot.values].map((d) => put(cpu, d));
        const want = await take(
          cpu,
          step.op === "forward" ? cpu.conv2d(ic, wc, s) : cpu.conv2dInputGrad(ic, wc, s),
        );
        const scale = 4 * s.c * s.f * s.kh * s.kw;
        cpu.release(ic);
        cpu.release(wc);
        assert.equal(got.length, want.length);
        for (let i = 0; i < got.length; i++) {
          if (!(Math.abs(got[i] - want[i]) <= 1e-5 * scale)) {
            assert.fail(
              `${step.op} ${JSON.stringify({ s, plans })} at step ${p.steps.indexOf(step)}: ` +
                `[${i}] ${got[i]}, the oracle's ${want[i]}`,
            );
          }
        }
      }
    } finally {
      for (const slot of slots) gpu.release(slot.buf);
      rt.derivedLimit = DERIVED_BYTES;
    }
    assert.equal(rt.liveBuffers(), live, "no buffer left live");
    assert.equal(rt.heldDerivedBytes(), held, "no derived buffer held past its weights");
  },
);

Deno.test("WebGPU: a convolution transposes its weights once per weights and layout while they live", async () => {
  if (!gpu) return;
  const rt = gpu.rt;
  const s: Conv2dSpec = {
    n: 1,
    c: 2,
    f: 3,
    h: 5,
    w: 5,
    kh: 3,
    kw: 3,
    strideH: 1,
    strideW: 1,
    padH: 1,
    padW: 1,
  };
  const w = rt.check(put(gpu, new Array(54).fill(0.5)), "test");
  const x = rt.check(put(gpu, new Array(50).fill(1)), "test");
  const dy = rt.check(put(gpu, new Array(75).fill(1)), "test");
  const dispatches = (run: () => GpuBuffer) => {
    const d0 = rt.stats.dispatches;
    gpu.release(run());
    return rt.stats.dispatches - d0;
  };
  const first = dispatches(() => conv.conv2d(rt, x, w, s));
  const again = dispatches(() => conv.conv2d(rt, x, w, s));
  assert.equal(first - again, 1, "the second forward pass reuses the transposed weights");
  // The input gradient wants another layout: transposed once, then reused.
  const grad = dispatches(() => conv.conv2dInputGrad(rt, dy, w, s));
  assert.equal(grad - dispatches(() => conv.conv2dInputGrad(rt, dy, w, s)), 1);
  // Released weights take their layouts with them; new weights are transposed again.
  assert.ok(rt.heldDerivedBytes() > 0);
  const held = rt.heldDerivedBytes();
  gpu.release(w);
  assert.ok(rt.heldDerivedBytes() < held);
  const w2 = rt.check(put(gpu, new Array(54).fill(-1)), "test");
  assert.equal(dispatches(() => conv.conv2d(rt, x, w2, s)), first);
  const y = await take(gpu, conv.conv2d(rt, x, w2, s));
  // Interior outputs sum 2 channels x 9 taps of -1 x 1.
  assert.equal(y[2 * 5 + 2], -18);
  gpu.release(w2);
  gpu.release(x);
  gpu.release(dy);
});

Deno.test("WebGPU: derived buffers past the limit evict other sources' (least recently used first), never the one just made", () => {
  if (!gpu) return;
  const rt = gpu.rt;
  const held = rt.heldDerivedBytes();
  const [a, b] = [[1, 2, 3], [4, 5, 6]].map((d) => rt.check(put(gpu, d), "test"));
  let made = 0;
  const make = () => (made++, rt.alloc(64));
  try {
    const da = rt.derived(a, "k", make);
    assert.equal(rt.derived(a, "k", make), da, "a hit");
    assert.equal(made, 1);
    rt.derivedLimit = 0;
    const db = rt.derived(b, "k", make);
    assert.equal(db.released, false, "the buffer just made is kept for the caller");
    assert.equal(da.released, true, "the other source's went back to the pool");
    const da2 = rt.derived(a, "k", make);
    assert.equal(made, 3, "a's was made again");
    assert.equal(da2.released, false);
    assert.equal(db.released, true);
  } finally {
    rt.derivedLimit = DERIVED_BYTES;
    gpu.release(a);
    gpu.release(b);
  }
  assert.equal(rt.heldDerivedBytes(), held);
});
