/**
 * oneDNN through FFI (`cpu/dnnl.ts`), called directly, on generated specs: every convolution
 * product and both pooling passes must run (the backend would otherwise fall back to im2col +
 * BLAS in silence, and the conformance suite could not tell) and equal the float64 oracle within
 * float32 rounding. Also the loader's one-line reasons, and the backend's description.
 */
import assert from "node:assert/strict";
import {
  type Backend,
  conv2dOutSize,
  type Conv2dSpec,
  pool2dOutSize,
  type Pool2dSpec,
} from "../kernel/backend.ts";
import { CpuBackend } from "../cpu/oracle.ts";
import { type ConvKind, convLayout, dnnlCandidates, loadDnnl } from "../cpu/dnnl.ts";
import { native, nativeVariants, skipped, take } from "./harness.ts";
import * as ir from "../kernel/ir.ts";
import { fc, property } from "./property.ts";
import { fitKernel } from "./conv_specs.ts";

const r = loadDnnl();
const d = r.dnnl;
if (!d) skipped("oneDNN tests", r.reason);
const cpu = new CpuBackend();

/** Small dyadic values (exact products), from a seed. */
function data(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = (seed * 2654435761 + 7) >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    out[i] = (((s >>> 16) % 17) - 8) / 4;
  }
  return out;
}

async function oracle(buf: ReturnType<CpuBackend["upload"]>): Promise<Float64Array> {
  return Float64Array.from(await cpu.read(buf));
}

/** |got - want| within float32 rounding of a sum of `terms` products of values up to 2 in size. */
function close(got: Float32Array, want: Float64Array, terms: number, what: string): void {
  assert.equal(got.length, want.length, what);
  const tol = 4 * terms * 4 * 2 ** -24 + 1e-30;
  for (let i = 0; i < got.length; i++) {
    if (!(Math.abs(got[i] - want[i]) <= tol * Math.max(1, Math.abs(want[i])))) {
      assert.fail(`${what}: [${i}] ${got[i]} against ${want[i]}`);
    }
  }
}

// Channel counts on both sides of convLayout's rule (4) and of oneDNN's 8- and 16-channel blocks,
// so that padded blocks and every reorder direction are met.
const convArb = fc.record({
  n: fc.integer({ min: 1, max: 3 }),
  c: fc.oneof(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 5, max: 18 })),
  h: fc.integer({ min: 1, max: 12 }),
  w: fc.integer({ min: 1, max: 12 }),
  f: fc.oneof(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 6, max: 33 })),
  kh: fc.integer({ min: 1, max: 5 }),
  kw: fc.integer({ min: 1, max: 5 }),
  strideH: fc.integer({ min: 1, max: 3 }),
  strideW: fc.integer({ min: 1, max: 3 }),
  padH: fc.integer({ min: 0, max: 2 }),
  padW: fc.integer({ min: 0, max: 2 }),
  seed: fc.nat(1000),
}).map(fitKernel);

property(
  "oneDNN runs every convolution product of generated specs, equal to the oracle",
  convArb,
  60,
  async ({ seed, ...s }: Conv2dSpec & { seed: number }) => {
    const [ho, wo] = conv2dOutSize(s);
    const x = data(s.n * s.c * s.h * s.w, seed);
    const w = data(s.f * s.c * s.kh * s.kw, seed + 1);
    const dy = data(s.n * s.f * ho * wo, seed + 2);
    const [X, W, DY] = [x, w, dy].map((a) => cpu.upload(Float64Array.from(a)));
    const what = JSON.stringify(s);
    const y = new Float32Array(dy.length);
    d!.conv("forward", s, x, w, y);
    const yW = await oracle(cpu.conv2d(X, W, s));
    close(y, yW, s.c * s.kh * s.kw, `forward ${what}`);
    const bias = data(s.f, seed + 3);
    d!.convBias(s, x, w, bias, y);
    const per = ho * wo;
    const yb = yW.map((v, i) => v + bias[Math.floor(i / per) % s.f]);
    close(y, yb, s.c * s.kh * s.kw + 1, `forward with bias ${what}`);
    const dxW = await oracle(cpu.conv2dInputGrad(DY, W, s));
    const dwW = await oracle(cpu.conv2dWeightGrad(X, DY, s));
    // Each product in the layouts convLayout picks, then in the other ones.
    for (const pick of [true, false]) {
      const layout = (kind: ConvKind) =>
        pick ? undefined : convLayout(kind, s) === "plain" ? "preferred" : "plain";
      const at = `${what}${pick ? "" : " in the layouts not picked"}`;
      d!.conv("forward", s, x, w, y, layout("forward"));
      close(y, yW, s.c * s.kh * s.kw, `forward ${at}`);
      const dx = new Float32Array(x.length);
      d!.conv("backwardData", s, dy, w, dx, layout("backwardData"));
      close(dx, dxW, s.f * s.kh * s.kw, `data ${at}`);
      const dw = new Float32Array(w.length);
      d!.conv("backwardWeights", s, x, dy, dw, layout("backwardWeights"));
      close(dw, dwW, s.n * ho * wo, `weights ${at}`);
    }
    for (const b of [X, W, DY]) cpu.release(b);
  },
  { ignore: !d },
);

const poolArb = fc.record({
  n: fc.integer({ min: 1, max: 3 }),
  c: fc.integer({ min: 1, max: 4 }),
  h: fc.integer({ min: 1, max: 12 }),
  w: fc.integer({ min: 1, max: 12 }),
  kh: fc.integer({ min: 1, max: 4 }),
  kw: fc.integer({ min: 1, max: 4 }),
  strideH: fc.integer({ min: 1, max: 4 }),
  strideW: fc.integer({ min: 1, max: 4 }),
  seed: fc.nat(1000),
}).map((s) => ({ ...s, kh: Math.min(s.kh, s.h), kw: Math.min(s.kw, s.w) }));

property(
  "oneDNN max pooling of generated specs (ties included): values and gradients equal the oracle",
  poolArb,
  60,
  async ({ seed, ...s }: Pool2dSpec & { seed: number }) => {
    const [ho, wo] = pool2dOutSize(s);
    const x = data(s.n * s.c * s.h * s.w, seed);
    const dy = data(s.n * s.c * ho * wo, seed + 1);
    const X = cpu.upload(Float64Array.from(x)), DY = cpu.upload(Float64Array.from(dy));
    const what = JSON.stringify(s);
    const ws = new Uint8Array(d!.poolWorkspaceBytes(s));
    const y = new Float32Array(dy.length);
    d!.maxPool(s, x, y, ws);
    close(y, await oracle(cpu.maxPool2d(X, s)), 1, `forward ${what}`);
    const dx = new Float32Array(x.length);
    d!.maxPoolBackward(s, dy, ws, dx);
    close(dx, await oracle(cpu.maxPool2dBackward(X, DY, s)), s.kh * s.kw, `backward ${what}`);
    cpu.release(X);
    cpu.release(DY);
  },
  { ignore: !d },
);

Deno.test({
  name: "oneDNN: one primitive per spec, created once; the implementation is reported",
  ignore: !d,
  fn: () => {
    const s = {
      n: 2,
      c: 3,
      h: 9,
      w: 8,
      f: 4,
      kh: 3,
      kw: 3,
      strideH: 1,
      strideW: 2,
      padH: 1,
      padW: 0,
    };
    const [ho, wo] = conv2dOutSize(s);
    const x = data(2 * 3 * 9 * 8, 1), w = data(4 * 3 * 9, 2), y = new Float32Array(2 * 4 * ho * wo);
    d!.conv("forward", s, x, w, y);
    const before = d!.primitives;
    d!.conv("forward", s, x, w, y);
    d!.conv("forward", s, x, w, y);
    assert.equal(d!.primitives, before, "cached");
    d!.conv("forward", { ...s, padW: 1 }, x, w, new Float32Array(2 * 4 * ho * (wo + 1)));
    assert.equal(d!.primitives, before + 1, "a spec that differs in one field is a new primitive");
    assert.match(d!.implementation("forward", s), /\S/);
  },
});

Deno.test({
  name: "oneDNN: products run in the layouts convLayout names, with reorders around them",
  ignore: !d,
  fn: () => {
    const s = {
      n: 2,
      c: 2,
      h: 10,
      w: 9,
      f: 20,
      kh: 3,
      kw: 2,
      strideH: 1,
      strideW: 1,
      padH: 0,
      padW: 1,
    };
    const [ho, wo] = conv2dOutSize(s);
    const x = data(s.n * s.c * s.h * s.w, 3), w = data(s.f * s.c * s.kh * s.kw, 4);
    const dy = data(s.n * s.f * ho * wo, 5);
    assert.equal(convLayout("backwardData", s), "plain");
    let before = d!.reorders;
    d!.conv("backwardData", s, dy, w, new Float32Array(x.length));
    assert.equal(d!.reorders, before, "a first layer's input gradient stays in NCHW");
    for (const kind of ["forward", "backwardWeights"] as const) {
      assert.equal(convLayout(kind, s), "preferred");
      before = d!.reorders;
      d!.conv(
        kind,
        s,
        x,
        kind === "forward" ? w : dy,
        new Float32Array(kind === "forward" ? dy.length : w.length),
      );
      // oneDNN's direct (jit) kernels work in blocked layouts: 20 filters are not a whole block.
      if (/^jit:/.test(d!.implementation(kind, s))) {
        assert.ok(d!.reorders > before, `${kind}: ${d!.implementation(kind, s)} without reorders`);
      }
    }
    assert.equal(convLayout("backwardData", { ...s, c: 4 }), "preferred");
  },
});

Deno.test("oneDNN loader: SGN_DNNL=none and a missing library give one-line reasons", async () => {
  const probe = `const { loadDnnl } = await import(${
    JSON.stringify(
      new URL("../cpu/dnnl.ts", import.meta.url).href,
    )
  }); console.log(loadDnnl().reason ?? "loaded");`;
  const cases: [Record<string, string>, RegExp][] = [
    [{ SGN_DNNL: "none" }, /^SGN_DNNL=none$/],
    [
      { SGN_DNNL: "/nonexistent/libdnnl.so" },
      /^SGN_DNNL=\/nonexistent\/libdnnl\.so did not load/,
    ],
    // A library that opens but has no oneDNN 2 functions (glibc's libm stands in for oneDNN 3).
    ...(Deno.build.os === "linux"
      ? [[{ SGN_DNNL: "libm.so.6" }, /did not load .*oneDNN 3 is not supported yet\)$/]] as [
        Record<string, string>,
        RegExp,
      ][]
      : []),
  ];
  for (const [env, want] of cases) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", probe],
      env,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout).trim();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.equal(text.split("\n").length, 1, text);
    assert.match(text, want);
  }
  assert.ok(dnnlCandidates("linux").includes("libdnnl.so.2"));
  assert.ok(dnnlCandidates("darwin").some((p) => p.includes("onednn")));
});

Deno.test({
  name: "native backend: the description says whether oneDNN serves convolutions",
  fn: async () => {
    const be = await native();
    if (!be) return skipped("native description test", "no native backend");
    assert.match(
      be.description,
      be.dnnl
        ? /oneDNN \d+\.\d+\.\d+ convolutions and pooling/
        : /im2col convolutions \(no oneDNN: /,
    );
  },
});

Deno.test({
  name:
    "native: each pooling spec of one input has its own workspace (forward of one, backward of another)",
  fn: async () => {
    const be = await native();
    if (!be?.dnnl) return skipped("native pooling workspace test", "no oneDNN");
    const x = data(2 * 3 * 8 * 9, 5);
    const a = { n: 2, c: 3, h: 8, w: 9, kh: 2, kw: 2, strideH: 2, strideW: 2 };
    const b = { ...a, kh: 3, strideW: 3 };
    const X = be.upload(x), Xc = cpu.upload(Float64Array.from(x));
    for (const [first, second] of [[a, b], [b, a]]) {
      be.release(be.maxPool2d(X, first));
      const [ho, wo] = pool2dOutSize(second);
      const dy = data(2 * 3 * ho * wo, 9);
      const DY = be.upload(dy);
      const got = await take(be, be.maxPool2dBackward(X, DY, second)) as Float32Array;
      be.release(DY);
      const want = await oracle(
        cpu.maxPool2dBackward(Xc, cpu.upload(Float64Array.from(dy)), second),
      );
      close(
        got,
        want,
        9,
        `backward of ${JSON.stringify(second)} after forward of ${JSON.stringify(first)}`,
      );
    }
    be.release(X);
    cpu.release(Xc);
  },
});

const epiArb = fc.record({
  spec: convArb,
  offset: fc.nat(3),
  strides: fc.constantFrom(
    [0, 1, 0, 0], // a bias per filter: oneDNN's bias argument
    [0, 0, 0, 1], // one value per column: not a bias
    [0, 0, 1, 0], // one per row
    [1, 0, 0, 0], // one per image
  ),
  swap: fc.boolean(),
});

property(
  "native conv2d with an epilogue that adds a load (a bias at any offset, or not a bias) equals the oracle",
  epiArb,
  30,
  async ({ spec: { seed, ...s }, offset, strides, swap }) => {
    const [ho, wo] = conv2dOutSize(s);
    const sizes = [s.n, s.f, ho, wo];
    const extent = sizes.reduce((a, n, i) => a + (n - 1) * strides[i], 0) + 1;
    const x = data(s.n * s.c * s.h * s.w, seed), w = data(s.f * s.c * s.kh * s.kw, seed + 1);
    const b = data(offset + extent, seed + 2);
    const l = ir.load(0, strides, offset);
    const body = swap ? ir.binary("add", l, ir.ACC) : ir.binary("add", ir.ACC, l);
    const run = async (be: Backend) => {
      const [X, W, Bb] = [x, w, b].map((a) => be.upload(a));
      const y = await take(be, be.conv2d(X, W, s, { body, inputs: [Bb] }));
      for (const t of [X, W, Bb]) be.release(t);
      return y;
    };
    const want = Float64Array.from(await run(cpu));
    for (const { label, be } of await nativeVariants()) {
      const got = await run(be) as Float32Array;
      close(got, want, s.c * s.kh * s.kw + 1, `${label} ${JSON.stringify({ s, offset, strides })}`);
    }
  },
);

const jvpArb = fc.record({
  spec: poolArb,
  nanAt: fc.array(fc.nat(10000), { maxLength: 2 }),
  tieLevels: fc.integer({ min: 1, max: 5 }),
});

property(
  "native max-pool JVP (the tangent at each window's argmax, read from oneDNN's workspace) equals the oracle exactly, ties and NaN included",
  jvpArb,
  40,
  async ({ spec: { seed, ...s }, nanAt, tieLevels }) => {
    const size = s.n * s.c * s.h * s.w;
    // Few distinct values: many windows with tied maxima (the first one wins).
    const x = Array.from(data(size, seed), (v) => Math.round(v * tieLevels) / tieLevels);
    for (const i of nanAt) if (i < size) x[i] = NaN;
    const v = Array.from(data(size, seed + 7));
    const run = async (be: Backend) => {
      const X = be.upload(Float32Array.from(x)), V = be.upload(Float32Array.from(v));
      const y = await take(be, be.maxPool2d(X, s, V));
      be.release(X);
      be.release(V);
      return [...y].map(String);
    };
    const want = await run(cpu);
    for (const { label, be } of await nativeVariants()) {
      assert.deepEqual(await run(be), want, `${label} ${JSON.stringify(s)}`);
    }
  },
);

Deno.test({
  name: "oneDNN 2: the max-pooling workspace's argmax format is verified for the seed's pools",
  ignore: !d?.version.startsWith("2."),
  fn: () => {
    for (const [n, c, h] of [[1000, 6, 24], [1000, 16, 8], [128, 32, 30], [3, 2, 7]]) {
      const s = { n, c, h, w: h, kh: 2, kw: 2, strideH: 2, strideW: 2 };
      assert.ok(d!.argmaxFormat(s), `no verified format for ${JSON.stringify(s)}`);
    }
  },
});
