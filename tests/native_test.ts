/**
 * The native CPU backend beyond the conformance suite: OpenBLAS's kernel choice, memory reuse
 * (pooled arrays and the pooling argmax cache), and the fallbacks when BLAS cannot be loaded
 * (no FFI permission, a library that is not there, SGN_BLAS=none), each run in a subprocess so
 * that the library really is unavailable there, and `train` honouring SGN_BACKEND.
 */
import assert from "node:assert/strict";
import { openblasCoreType } from "../cpu/blas.ts";
import { assertClose, cpu, native, put, Random, take } from "./harness.ts";

const nat = await native();
const root = new URL("..", import.meta.url).pathname;

Deno.test("openblasCoreType: kernels from the CPU flags (AVX-512, AVX2 + FMA, else OpenBLAS's own)", () => {
  assert.equal(
    openblasCoreType("fpu sse2 avx avx2 fma avx512f avx512dq avx512cd avx512bw avx512vl"),
    "SkylakeX",
  );
  assert.equal(openblasCoreType("fpu sse2 avx avx2 fma avx512f"), "Haswell");
  assert.equal(openblasCoreType("fpu sse2 avx avx2 fma"), "Haswell");
  assert.equal(openblasCoreType("fpu sse2 avx avx2"), undefined);
  assert.equal(openblasCoreType("fpu sse2 sse4_2"), undefined);
});

Deno.test({
  name: "native: released memory is reused, and pooling recomputes the argmax of a new input",
  ignore: !nat,
  fn: async () => {
    const be = nat!;
    const s = { n: 2, c: 3, h: 6, w: 6, kh: 2, kw: 2, strideH: 2, strideW: 2 };
    const rng = new Random(11);
    const start = be.liveBuffers();
    for (let round = 0; round < 3; round++) {
      // Same size every round: the pool hands back the previous round's arrays.
      const x = rng.array(2 * 3 * 6 * 6, (r) => Math.round(r.range(-3, 3)));
      const dy = rng.array(2 * 3 * 3 * 3);
      const xb = put(be, x), db = put(be, dy);
      const got = await take(be, be.maxPool2d(xb, s));
      const back = await take(be, be.maxPool2dBackward(xb, db, s));
      be.release(xb);
      be.release(db);
      const cx = put(cpu, x), cd = put(cpu, dy);
      assertClose(got, await take(cpu, cpu.maxPool2d(cx, s)), { rtol: 0, what: `pool ${round}` });
      assertClose(back, await take(cpu, cpu.maxPool2dBackward(cx, cd, s)), {
        rtol: 0,
        what: `pool backward ${round}`,
      });
      cpu.release(cx);
      cpu.release(cd);
    }
    assert.equal(be.liveBuffers(), start, "every buffer released");
    // A reused array must not leak old values into kernels that accumulate.
    const a = put(be, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const spec = { n: 1, c: 1, h: 3, w: 3, f: 1, kh: 2, kw: 2, strideH: 1, strideW: 1 };
    const conv = { ...spec, padH: 0, padW: 0 };
    for (let i = 0; i < 3; i++) {
      const dy = put(be, [1, 1, 1, 1]);
      const dw = await take(be, be.conv2dWeightGrad(a, dy, conv));
      assertClose(dw, [12, 16, 24, 28], { rtol: 0, what: `weight grad, round ${i}` });
      be.release(dy);
    }
    be.release(a);
  },
});

/** Runs a Deno program with the given flags and environment; returns its exit code and output. */
async function run(
  flags: string[],
  script: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; out: string; err: string }> {
  const p = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...flags, ...script],
    env: { NO_COLOR: "1", ...env },
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: p.code, out: dec.decode(p.stdout), err: dec.decode(p.stderr) };
}

const PROBE = `
import { init } from "./autodiff/device.ts";
const choice = Deno.args[0] || undefined;
try {
  const be = await init({ backend: choice, onNotice: (m) => console.log("notice: " + m) });
  console.log("chosen: " + be.name);
} catch (e) {
  console.log("error: " + e.name + ": " + e.message);
}
`;

async function probe(flags: string[], env: Record<string, string>, choice = "") {
  const dir = await Deno.makeTempDir({ dir: root, prefix: ".probe-" });
  try {
    await Deno.writeTextFile(`${dir}/probe.ts`, PROBE.replaceAll("./autodiff", "../autodiff"));
    return await run(flags, [`${dir}/probe.ts`, choice], env);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const noBlasCases: [string, string[], Record<string, string>, RegExp][] = [
  ["no FFI permission", ["--allow-read", "--allow-env"], {}, /no FFI permission/],
  ["a library that is not there", ["-A"], { SGN_BLAS: "/nonexistent/libblas.so" }, /SGN_BLAS=/],
  ["SGN_BLAS=none", ["-A"], { SGN_BLAS: "none" }, /SGN_BLAS=none/],
];

for (const [what, flags, env, reason] of noBlasCases) {
  Deno.test(`fallback without BLAS (${what}): auto says why in one line; native is a clear error`, async () => {
    const auto = await probe(flags, env);
    assert.equal(auto.code, 0, auto.err);
    const lines = auto.out.trim().split("\n");
    assert.equal(lines.length, 2, auto.out);
    assert.match(lines[0], /^notice: sgn: using the (webgpu|cpu) backend: /);
    assert.match(lines[0], /native CPU backend is unavailable/);
    assert.match(lines[0], reason);
    assert.match(lines[1], /^chosen: (webgpu|cpu)$/);
    assert.doesNotMatch(auto.err, /\n\s+at /, "no stack trace");
    const explicit = await probe(flags, env, "native");
    assert.match(explicit.out, /^error: SgnError: the native CPU backend is unavailable: /);
    assert.match(explicit.out, reason);
  });
}

Deno.test({
  name: "train honours SGN_BACKEND, and falls back with one line when BLAS is missing",
  ignore: !nat,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const args = (f: string) => [
        "cli.ts",
        "train",
        ...["--dataset", "sine_10", "--layers", "4", "--epochs", "1", "--batch_size", "500"],
        ...["--cg_max_iter", "2", "--path", dir, "--f", f],
      ];
      for (
        const [f, env, want] of [
          ["env_cpu", { SGN_BACKEND: "cpu" }, "cpu"],
          ["env_native", { SGN_BACKEND: "native" }, "native"],
          ["no_blas", { SGN_BLAS: "none", SGN_BACKEND: "auto" }, undefined],
        ] as const
      ) {
        const r = await run(["-A"], args(f), env);
        assert.equal(r.code, 0, r.err);
        const config = JSON.parse(await Deno.readTextFile(`${dir}/${f}/config.json`));
        if (want) assert.equal(config.backend, want, `${f}: config.json's backend`);
        else {
          assert.notEqual(config.backend, "native");
          const notices = r.err.split("\n").filter((l) => l.startsWith("sgn: using the"));
          assert.equal(notices.length, 1, r.err);
          assert.match(notices[0], /SGN_BLAS=none/);
        }
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
