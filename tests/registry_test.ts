/**
 * The backend registry (autodiff/device.ts `BACKENDS`): every row is reachable by its name through
 * `BACKEND_CHOICES`, `init`, the `--backend` setting, the test harness and the benchmarks' list;
 * and the "auto" rule, walked over every combination of what exists (stand-in backends, the real
 * rows), chooses and says what it said before the table existed, creating only what it must.
 */
import assert from "node:assert/strict";
import type { Backend } from "../kernel/backend.ts";
import {
  BACKEND_CHOICES,
  BACKEND_NAMES,
  type BackendName,
  backendNotice,
  type BackendRow,
  BACKENDS,
  checkBackendChoice,
  chooseAuto,
  findBackend,
  type Found,
  init,
  noFloat64,
  setBackend,
} from "../autodiff/device.ts";
import { SgnError } from "../errors.ts";
import { parseTrainArgs, trainHelp } from "../train/settings.ts";
import { benchBackends } from "../bench/devices.ts";
import { backends, cpu, registered } from "./harness.ts";

Deno.test("registry: the choices are auto and the table's names, in table order", () => {
  assert.deepEqual(BACKEND_NAMES, Object.keys(BACKENDS));
  assert.deepEqual(BACKEND_CHOICES, ["auto", ...Object.keys(BACKENDS)]);
  assert.ok(BACKEND_NAMES.length >= 3, "webgpu, native and cpu at least");
  assert.throws(() => checkBackendChoice("tpu", "--backend"), SgnError);
  assert.throws(() => findBackend("auto" as BackendName), /findBackend: the name must be one of/);
});

for (const name of BACKEND_NAMES) {
  const row: BackendRow<Backend> = BACKENDS[name];
  Deno.test(`registry (${name}): reachable by name through init, --backend, the harness and the bench`, async () => {
    const found = await findBackend(name);
    assert.equal((await findBackend(name)).backend, found.backend, "created once per process");
    assert.equal(checkBackendChoice(name, "--backend"), name);
    assert.equal(parseTrainArgs(["--backend", name]).backend, name);
    assert.match(trainHelp(), new RegExp(`\\| ${name}\\b|\\b${name} \\|`));
    assert.equal(await registered(name), found.backend, "the harness's backend is the library's");
    const listed = [await backends(), await benchBackends()];
    if (found.backend) {
      const be = found.backend;
      assert.equal(be.name, name, "Backend.name is the row's key");
      assert.equal(be.dtypes.includes("float64"), row.float64, "the row's float64 flag");
      assert.equal(await init({ backend: name }), be);
      assert.equal(backendNotice(), undefined, "a backend named explicitly needs no notice");
      for (const list of listed) assert.ok(list.includes(be), "in the harness's and bench's lists");
    } else {
      const reason = found.reason;
      await assert.rejects(
        () => init({ backend: name }),
        (e: Error) => e instanceof SgnError && e.message === row.unavailable(reason),
      );
      for (const list of listed) assert.ok(list.every((b) => b.name !== name));
    }
    if (!row.float64) {
      const words = noFloat64(name)!;
      assert.match(words, /^float64 needs a CPU backend \(.* computes in float32\)$/);
      await assert.rejects(() => init({ backend: name, dtype: "float64" }), SgnError);
      assert.throws(() => parseTrainArgs(["--backend", name, "--float64"]), /--float64 needs/);
    } else assert.equal(noFloat64(name), undefined);
    setBackend(cpu);
  });
}

/** A stand-in backend: the auto rule's words read only these fields. */
const fake = (name: string, description: string, software = false) =>
  ({ name, description, software }) as unknown as Backend;

Deno.test("registry: auto over every combination of adapter, BLAS and dtype says what it said before", async () => {
  const gpus: [string, Found][] = [
    ["hardware", { backend: fake("webgpu", "RTX") }],
    ["software", { backend: fake("webgpu", "lavapipe", true) }],
    ["none", { reason: "no WebGPU adapter was found" }],
  ];
  const natives: [string, Found][] = [
    ["BLAS", { backend: fake("native", "OpenBLAS") }],
    ["no BLAS", { reason: "SGN_BLAS=none" }],
  ];
  const plain = fake("cpu", "JavaScript loops");
  // The texts of the auto rule as written before the registry (autodiff/device.ts autoChoice).
  const slow = "the plain TypeScript backend is slow";
  const noNative = "the native CPU backend is unavailable (SGN_BLAS=none)";
  const expected: Record<string, [string, string]> = {
    "hardware BLAS float32": ["webgpu", "a hardware GPU (RTX)"],
    "hardware no BLAS float32": ["webgpu", "a hardware GPU (RTX)"],
    "software BLAS float32": [
      "native",
      "the only WebGPU adapter is a software one (lavapipe); BLAS loaded (OpenBLAS)",
    ],
    "software no BLAS float32": [
      "webgpu",
      `the only WebGPU adapter is a software one (lavapipe), and ${noNative}`,
    ],
    "none BLAS float32": ["native", "no WebGPU adapter was found; BLAS loaded (OpenBLAS)"],
    "none no BLAS float32": ["cpu", `no WebGPU adapter was found, and ${noNative}; ${slow}`],
    "BLAS float64": ["native", "float64 needs a CPU backend; BLAS loaded (OpenBLAS)"],
    "no BLAS float64": ["cpu", `float64 needs a CPU backend, and ${noNative}; ${slow}`],
  };
  let cases = 0;
  for (const [gpuLabel, gpu] of gpus) {
    for (const [natLabel, nat] of natives) {
      for (const float64 of [false, true]) {
        const asked: string[] = [];
        const find = (name: BackendName): Promise<Found> => {
          asked.push(name);
          const f = name === "webgpu" ? gpu : name === "native" ? nat : { backend: plain };
          return Promise.resolve(f);
        };
        const key = float64 ? `${natLabel} float64` : `${gpuLabel} ${natLabel} float32`;
        const [be, why] = await chooseAuto(float64, find);
        assert.deepEqual([be.name, why], expected[key], key);
        if (float64) assert.ok(!asked.includes("webgpu"), `${key}: no device requested`);
        if (gpuLabel === "hardware" && !float64) {
          assert.deepEqual(asked, ["webgpu"], `${key}: BLAS not loaded`);
        }
        cases++;
      }
    }
  }
  assert.equal(cases, 12);
});

Deno.test("registry: init's auto notice is the rule's choice and words", async () => {
  const lines: string[] = [];
  const be = await init({ backend: "auto", onNotice: (m) => lines.push(m) });
  const [want, why] = await chooseAuto(false);
  assert.equal(be, want);
  assert.deepEqual(lines, [`sgn: using the ${be.name} backend: ${why}`]);
  assert.equal(backendNotice(), lines[0]);
  setBackend(cpu);
});
