import * as K from "../kernel/kernels.ts";
import assert from "node:assert/strict";
import { full, keep, scope, type Tensor, tensor, zeros } from "../autodiff/tensor.ts";
import { getBackend, init, setBackend } from "../autodiff/device.ts";
import { SgnError } from "../errors.ts";
import { backends, cpu, native, webgpu } from "./harness.ts";

const all = await backends();

for (const be of all) {
  Deno.test(`tensor (${be.name}): values in, values out, in every creation form`, async () => {
    const a = tensor([[1, 2, 3], [4, 5, 6]], undefined, { backend: be });
    assert.deepEqual(a.shape, [2, 3]);
    assert.deepEqual(Array.from(await a.data()), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(await a.array(), [[1, 2, 3], [4, 5, 6]]);
    const b = tensor(new Float32Array([1, 2, 3, 4]), [2, 1, 2], { backend: be });
    assert.deepEqual(await b.array(), [[[1, 2]], [[3, 4]]]);
    const s = tensor(2.5, undefined, { backend: be });
    assert.deepEqual(s.shape, []);
    assert.equal(await s.array(), 2.5);
    const z = zeros([3, 0], { backend: be });
    assert.equal((await z.data()).length, 0);
    const f = full([2, 2], -1.5, { backend: be });
    assert.deepEqual(Array.from(await f.data()), [-1.5, -1.5, -1.5, -1.5]);
    // Non-finite values are stored as given.
    const nf = tensor([NaN, Infinity, -Infinity], undefined, { backend: be });
    const got = await nf.data();
    assert.ok(Number.isNaN(got[0]) && got[1] === Infinity && got[2] === -Infinity);
    for (const t of [a, b, s, z, f, nf]) t.dispose();
  });

  Deno.test(`tensor (${be.name}): bad input gets a clear error`, () => {
    assert.throws(
      () => tensor([1, 2, 3], [2, 2], { backend: be }),
      /3 values cannot have shape \[2, 2\]/,
    );
    assert.throws(() => tensor([[1, 2], [3]], undefined, { backend: be }), /ragged/);
    assert.throws(() => tensor([1, 2], [2.5], { backend: be }), /non-negative integers/);
    if (be.name === "webgpu") {
      assert.throws(
        () => tensor([1], undefined, { backend: be, dtype: "float64" }),
        /does not support float64/,
      );
    }
  });

  Deno.test(`tensor (${be.name}): a disposed tensor used again says so`, async () => {
    const t = tensor([1, 2], undefined, { backend: be });
    t.dispose();
    t.dispose(); // harmless
    assert.throws(
      () => t.buffer,
      (e: Error) => e instanceof SgnError && /disposed tensor/.test(e.message),
    );
    await assert.rejects(() => t.data(), /disposed tensor/);
  });

  Deno.test(`tensor (${be.name}): scope frees temporaries, keeps results, and using works`, () => {
    const start = be.liveBuffers();
    let inner: Tensor | undefined;
    const kept = scope(() => {
      const tmp = tensor([1, 2], undefined, { backend: be });
      inner = scope(() => tensor([5], undefined, { backend: be }));
      const out = { x: tensor([3], undefined, { backend: be }), list: [inner] };
      assert.equal(tmp.disposed, false);
      return out;
    });
    assert.equal(kept.x.disposed, false);
    assert.equal(inner!.disposed, false);
    assert.equal(be.liveBuffers(), start + 2);
    kept.x.dispose();
    inner!.dispose();
    const outlives = scope(() => keep(tensor([1], undefined, { backend: be })) && 1);
    assert.equal(outlives, 1);
    assert.equal(be.liveBuffers(), start + 1);
    {
      using _t = tensor([1, 2, 3], undefined, { backend: be });
      assert.equal(be.liveBuffers(), start + 2);
    }
    assert.equal(be.liveBuffers(), start + 1);
    assert.throws(() =>
      scope(() => {
        tensor([1], undefined, { backend: be });
        throw new Error("boom");
      }), /boom/);
    assert.equal(be.liveBuffers(), start + 1, "a throwing scope still frees its tensors");
  });

  Deno.test(`memory (${be.name}): 10,000 create-use-release cycles leave the buffer count flat`, async () => {
    const start = be.liveBuffers();
    const x = tensor(new Float32Array(1000).fill(1), [1000], { backend: be });
    let pooledAfterWarmup = -1;
    for (let i = 0; i < 10_000; i++) {
      scope(() => {
        const y = K.unary(be, "exp", x.buffer);
        const z = K.binary(be, "mul", y, [1000], x.buffer, [1000]);
        const d = K.dot(be, z, x.buffer);
        for (const b of [y, z, d]) be.release(b);
      });
      if (i === 100 && "rt" in be) {
        pooledAfterWarmup = (be as { rt: { pooledBuffers(): number } }).rt.pooledBuffers();
      }
    }
    assert.equal(be.liveBuffers(), start + 1, "live buffers after 10,000 cycles");
    if (pooledAfterWarmup >= 0) {
      const pooled = (be as unknown as { rt: { pooledBuffers(): number } }).rt.pooledBuffers();
      assert.equal(pooled, pooledAfterWarmup, "the pool stops growing once warm");
    }
    // The results are still right after all that reuse.
    const y = K.unary(be, "exp", x.buffer);
    const out = await be.read(y);
    be.release(y);
    assert.ok(Math.abs(out[999] - Math.E) < 1e-6);
    x.dispose();
    assert.equal(be.liveBuffers(), start);
  });
}

Deno.test("device: init and getBackend select backends, SGN_BACKEND is validated", async () => {
  const cpuBe = await init({ backend: "cpu" });
  assert.equal(cpuBe.name, "cpu");
  assert.equal(getBackend(), cpuBe);
  const t = tensor([1]);
  assert.equal(t.backend.name, "cpu");
  t.dispose();
  const gpu = await webgpu();
  const nat = await native();
  if (gpu) {
    const be = await init({ backend: "webgpu" });
    assert.equal(be.name, "webgpu");
    assert.equal(await init({ backend: "webgpu" }), be, "one device per process");
    await assert.rejects(
      () => init({ backend: "webgpu", dtype: "float64" }),
      /float64 needs a CPU backend/,
    );
  }
  if (nat) assert.equal((await init({ backend: "native" })).name, "native");
  // The auto rule: a hardware GPU, else native (BLAS), else a software adapter, else cpu; the
  // one line says which and why.
  const lines: string[] = [];
  const auto = await init({ backend: "auto", onNotice: (m) => lines.push(m) });
  const expected = gpu && !gpu.software ? "webgpu" : nat ? "native" : gpu ? "webgpu" : "cpu";
  assert.equal(auto.name, expected);
  assert.equal(lines.length, 1);
  assert.match(lines[0], new RegExp(`^sgn: using the ${expected} backend: `));
  if (gpu?.software && nat) assert.match(lines[0], /the only WebGPU adapter is a software one/);
  const lines64: string[] = [];
  const auto64 = await init({ dtype: "float64", onNotice: (m) => lines64.push(m) });
  assert.equal(auto64.name, nat ? "native" : "cpu");
  assert.match(lines64[0], /float64 needs a CPU backend/);
  const prev = Deno.env.get("SGN_BACKEND");
  Deno.env.set("SGN_BACKEND", "tpu");
  try {
    await assert.rejects(
      () => init(),
      /SGN_BACKEND must be one of auto, webgpu, native, cpu, not "tpu"/,
    );
    Deno.env.set("SGN_BACKEND", "cpu");
    assert.equal((await init()).name, "cpu", "SGN_BACKEND wins over auto");
  } finally {
    if (prev === undefined) Deno.env.delete("SGN_BACKEND");
    else Deno.env.set("SGN_BACKEND", prev);
  }
  setBackend(cpu);
});
