/**
 * Shared test helpers: the backends under test, seeded random data, and closeness checks that
 * report the worst element.
 */
import type { Backend, DeviceBuffer } from "../kernel/backend.ts";
import type { TypedArray } from "../kernel/shape.ts";
import { CpuBackend } from "../cpu/oracle.ts";
import { NativeBackend } from "../cpu/native.ts";
import { WebGpuBackend } from "../wgsl/webgpu.ts";
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

/** The CPU backend (float32 and float64). */
export const cpu: CpuBackend = new CpuBackend();

let gpuPromise: Promise<WebGpuBackend | undefined> | undefined;

/**
 * The WebGPU backend, created once per test process. Prints which adapter runs the tests. When
 * SGN_REQUIRE_WEBGPU=1 (as in CI), a missing adapter is an error rather than a skipped backend.
 */
export function webgpu(): Promise<WebGpuBackend | undefined> {
  gpuPromise ??= (async () => {
    const be = await WebGpuBackend.create();
    if (be) {
      console.log(`[sgn tests] WebGPU adapter: ${be.description}`);
    } else if (Deno.env.get("SGN_REQUIRE_WEBGPU") === "1") {
      throw new Error("SGN_REQUIRE_WEBGPU=1 but no WebGPU adapter was found");
    } else {
      skipped("WebGPU tests", "no WebGPU adapter (SGN_REQUIRE_WEBGPU=1 makes this an error)");
    }
    return be;
  })();
  return gpuPromise;
}

let nativePromise: Promise<NativeBackend | undefined> | undefined;

/**
 * The native CPU backend (BLAS through FFI), created once per test process. When
 * SGN_REQUIRE_NATIVE=1 (as in CI), a missing BLAS is an error rather than a skipped backend;
 * SGN_BLAS=none makes it unavailable on purpose (the fallback tests).
 */
export function native(): Promise<NativeBackend | undefined> {
  nativePromise ??= (() => {
    const r = NativeBackend.create();
    if (r.backend) {
      console.log(`[sgn tests] native backend: ${r.backend.description}`);
    } else if (Deno.env.get("SGN_REQUIRE_NATIVE") === "1") {
      throw new Error(`SGN_REQUIRE_NATIVE=1 but the native backend is unavailable: ${r.reason}`);
    } else {
      skipped("native-backend tests", `unavailable: ${r.reason}`);
    }
    return Promise.resolve(r.backend);
  })();
  return nativePromise;
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
 * Every backend available: the CPU oracle, then native (as users get it, and the variant with
 * its optional parts off with `loops`) and WebGPU where they exist.
 */
export async function backends({ loops = false } = {}): Promise<Backend[]> {
  const [nat, js, gpu] = [await native(), loops ? await nativeJs() : undefined, await webgpu()];
  return [cpu, ...(nat ? [nat] : []), ...(js ? [js] : []), ...(gpu ? [gpu] : [])];
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
