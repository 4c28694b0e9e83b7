/**
 * Shared test helpers: the backends under test (the library's registry, autodiff/device.ts
 * `BACKENDS`, one process-wide instance each), seeded random data, and closeness checks that
 * report the worst element.
 */
import type { Backend, DeviceBuffer } from "../kernel/backend.ts";
import type { DType, TypedArray } from "../kernel/shape.ts";
import type { CpuBackend } from "../cpu/oracle.ts";
import { NativeBackend } from "../cpu/native.ts";
import type { WebGpuBackend } from "../wgsl/webgpu.ts";
import {
  BACKEND_NAMES,
  type BackendName,
  type BackendOf,
  findBackend,
} from "../autodiff/device.ts";
import { Random } from "../random.ts";

export { Random };

/**
 * Says on one line that a test (or a part of one) could not run here, and why. Every such line,
 * and every test Deno reports as ignored, must match tests/expected_skips.txt in CI
 * (tools/check_skips.ts), so that a skip nobody expected fails the build.
 */
export function skipped(test: string, why: string): void {
  console.log(`[sgn tests] SKIP ${test}: ${why}`);
}

/**
 * Whether a line on a child `deno`'s stderr is Deno's own notice that it fetched an npm package's
 * registry data (`Download https://registry.npmjs.org/...`), which it prints while its cache lacks
 * that data, not a line the program wrote.
 */
export function denoDownloadLine(line: string): boolean {
  // deno-lint-ignore no-control-regex
  return /^Download https?:\/\/\S+$/.test(line.replace(/\x1b\[[0-9;]*m/g, ""));
}

/** The switch that makes a missing backend an error: `SGN_REQUIRE_WEBGPU`, `SGN_REQUIRE_NATIVE`. */
export function requireVar(name: BackendName): string {
  return `SGN_REQUIRE_${name.toUpperCase()}`;
}

const tested = new Map<BackendName, Promise<Backend | undefined>>();

/**
 * The backend of that name (the library's process-wide one), or undefined when it is unavailable
 * here. Says once per test process which device runs the tests, or why the backend's tests are
 * skipped; when {@link requireVar} is set to 1, a missing backend is an error instead.
 */
export function registered<N extends BackendName>(name: N): Promise<BackendOf<N> | undefined> {
  let be = tested.get(name);
  if (!be) {
    be = findBackend(name).then((found) => {
      if (found.backend) {
        console.log(`[sgn tests] ${name} backend: ${found.backend.description}`);
        return found.backend;
      }
      const flag = requireVar(name);
      if (Deno.env.get(flag) === "1") {
        throw new Error(`${flag}=1 but the ${name} backend is unavailable: ${found.reason}`);
      }
      skipped(
        `${name} backend tests`,
        `unavailable: ${found.reason} (${flag}=1 makes this an error)`,
      );
      return undefined;
    });
    tested.set(name, be);
  }
  return be as Promise<BackendOf<N> | undefined>;
}

const oracle = await findBackend("cpu");
if (!oracle.backend) throw new Error(`the CPU oracle is unavailable: ${oracle.reason}`);

/** The CPU backend (float32 and float64): the oracle the others are checked against. */
export const cpu: CpuBackend = oracle.backend;

/** The WebGPU backend, or undefined without an adapter (see {@link registered}). */
export function webgpu(): Promise<WebGpuBackend | undefined> {
  return registered("webgpu");
}

/**
 * The native CPU backend (BLAS through FFI), or undefined without BLAS (see {@link registered});
 * SGN_BLAS=none makes it unavailable on purpose (the fallback tests).
 */
export function native(): Promise<NativeBackend | undefined> {
  return registered("native");
}

let nativeJsPromise: Promise<NativeBackend | undefined> | undefined;

/**
 * The native backend with every optional part off (`create({ wasm: false, dnnl: false })`: the
 * compiled JavaScript loops on JavaScript-heap buffers, im2col + BLAS convolutions, the
 * JavaScript argmax for pooling), created once per test process, so the fallbacks keep being
 * checked on machines that have WebAssembly SIMD and oneDNN; undefined where {@link native} is,
 * or where the default native backend already runs without both (nothing checked twice).
 */
export function nativeJs(): Promise<NativeBackend | undefined> {
  nativeJsPromise ??= (async () => {
    const nat = await native();
    if (!nat) return undefined;
    if (!nat.dnnl) skipped("native oneDNN variant", `oneDNN unavailable: ${nat.description}`);
    if (!nat.arena && !nat.dnnl) return undefined;
    const be = NativeBackend.create({ wasm: false, dnnl: false }).backend;
    if (be) console.log(`[sgn tests] native backend, second variant: ${be.description}`);
    return be;
  })();
  return nativeJsPromise;
}

/**
 * The native backend's variants under test, labelled: "native" as users get it, and
 * "native-js" with its optional parts off (see {@link nativeJs}).
 */
export async function nativeVariants(): Promise<{ label: string; be: NativeBackend }[]> {
  const [nat, js] = [await native(), await nativeJs()];
  return [
    ...(nat ? [{ label: "native", be: nat }] : []),
    ...(js ? [{ label: "native-js", be: js }] : []),
  ];
}

/**
 * Every backend of the registry available here: the CPU oracle first, then the others in table
 * order, and with `loops` the native variant with its optional parts off (see {@link nativeJs}).
 */
export async function backends({ loops = false } = {}): Promise<Backend[]> {
  const out: Backend[] = [cpu];
  for (const name of BACKEND_NAMES) {
    const be = name === "cpu" ? undefined : await registered(name);
    if (be) out.push(be);
  }
  const js = loops ? await nativeJs() : undefined;
  return js ? [...out, js] : out;
}

/**
 * Every backend in each dtype it stores, labelled: the oracle and the native variants in float32
 * and float64, WebGPU in float32 (where it exists).
 */
export async function backendTargets(): Promise<{ label: string; be: Backend; dtype: DType }[]> {
  const natives = await nativeVariants();
  const gpu = await webgpu();
  return [
    ...[cpu, ...natives.map((n) => n.be)].flatMap((be, i) =>
      (["float32", "float64"] as const).map((dtype) => ({
        label: `${i === 0 ? "cpu" : natives[i - 1].label} ${dtype}`,
        be: be as Backend,
        dtype,
      }))
    ),
    ...(gpu ? [{ label: "webgpu", be: gpu as Backend, dtype: "float32" as DType }] : []),
  ];
}

/** Uploads float64 data in the backend's working precision (float32 on WebGPU). */
export function put(
  be: Backend,
  data: ArrayLike<number>,
  dtype: "float32" | "float64" = "float32",
): DeviceBuffer {
  const arr: TypedArray = dtype === "float64" && be.dtypes.includes("float64")
    ? Float64Array.from(data)
    : Float32Array.from(data);
  return be.upload(arr);
}

/** Reads a buffer back and releases it. */
export async function take(be: Backend, b: DeviceBuffer): Promise<TypedArray> {
  const out = await be.read(b);
  be.release(b);
  return out;
}

/**
 * Asserts |a - e| <= atol + rtol * |e| element-wise (NaN matches NaN, infinities must be equal)
 * and that the lengths agree; the message names the worst element.
 */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  { rtol = 1e-5, atol = 0, what = "" }: { rtol?: number; atol?: number; what?: string } = {},
): void {
  if (actual.length !== expected.length) {
    throw new Error(`${what}: length ${actual.length}, expected ${expected.length}`);
  }
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(e) || Number.isNaN(a)) {
      if (Number.isNaN(e) !== Number.isNaN(a)) {
        throw new Error(`${what}: element ${i} is ${a}, expected ${e}`);
      }
      continue;
    }
    if (!Number.isFinite(e) || !Number.isFinite(a)) {
      if (a !== e) throw new Error(`${what}: element ${i} is ${a}, expected ${e}`);
      continue;
    }
    const excess = Math.abs(a - e) - (atol + rtol * Math.abs(e));
    if (excess > worstExcess) {
      worstExcess = excess;
      worst = i;
    }
  }
  if (worst >= 0) {
    throw new Error(
      `${what}: element ${worst} is ${actual[worst]}, expected ${expected[worst]} ` +
        `(rtol ${rtol}, atol ${atol})`,
    );
  }
}

/** A backend's name in test names: "native-js" for the native backend without WebAssembly. */
export function backendLabel(be: Backend): string {
  return be instanceof NativeBackend && !be.arena && !be.dnnl ? "native-js" : be.name;
}

/**
 * Runs `fn` with the graph's switches of `be` (Backend.poolInIr, poolArgmaxOnce, convBiasFold)
 * set as `flags` says, on any backend, and puts them back as they were (own property or none).
 */
export async function withSwitches<T>(
  be: Backend,
  flags: Partial<Pick<Backend, "poolInIr" | "poolArgmaxOnce" | "convBiasFold">>,
  fn: () => Promise<T>,
): Promise<T> {
  const keys = Object.keys(flags) as (keyof typeof flags)[];
  const had = keys.map((k) => Object.getOwnPropertyDescriptor(be, k));
  for (const k of keys) {
    Object.defineProperty(be, k, { value: flags[k], configurable: true, writable: true });
  }
  try {
    return await fn();
  } finally {
    keys.forEach((k, i) => {
      if (had[i]) Object.defineProperty(be, k, had[i]!);
      else delete (be as { [k in typeof k]?: boolean })[k];
    });
  }
}

/**
 * Runs `fn` with WebGPU's work scheduled as on a hardware GPU (`on`: products together in one
 * dispatch, with the maps only they read in their loads: {@link WebGpuBackend.hardwareSchedule})
 * or each product in a dispatch of its own, and puts the settings back after.
 */
export async function productsTogether<T>(
  gpu: WebGpuBackend,
  on: boolean,
  fn: () => Promise<T>,
): Promise<T> {
  const was = gpu.schedule;
  gpu.hardwareSchedule = on;
  try {
    return await fn();
  } finally {
    gpu.schedule = was;
  }
}
