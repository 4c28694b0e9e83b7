/**
 * Choosing the backend that new tensors live on. Every backend the library knows is one row of
 * {@link BACKENDS}: its name, how it is created once per process (or why it is unavailable),
 * whether it computes in float64, and its places in the "auto" preference with the words the
 * notice says. The names `SGN_BACKEND` and `--backend` accept, {@link init}, the auto rule, the
 * test harness's and the benchmarks' backend lists all come from that table. "auto" takes a
 * hardware GPU through WebGPU when there is one; on a machine whose only adapter is a software
 * rasterizer (lavapipe, llvmpipe, SwiftShader) or that has none, the native CPU backend (BLAS
 * through FFI) when it loads; else whatever exists, the plain TypeScript backend last. One line
 * says which backend was chosen and why. `SGN_BACKEND` or {@link init}'s option name a backend
 * explicitly and always win.
 *
 * @module
 */

import type { Backend } from "../kernel/backend.ts";

import type { DType } from "../kernel/shape.ts";

import { SgnError, showValue } from "../errors.ts";
import { CpuBackend } from "../cpu/oracle.ts";
import { NativeBackend } from "../cpu/native.ts";
import { WebGpuBackend } from "../wgsl/webgpu.ts";

/** What creating a backend gave: the backend, or the one line that says why it is unavailable. */
export type Found<B extends Backend = Backend> =
  | { backend: B; reason?: undefined }
  | { backend?: undefined; reason: string };

/**
 * One place of a backend in the "auto" preference. "auto" walks the places of all rows by rank,
 * lowest first, and takes the first whose backend exists and `takes` it; its notice says the
 * words of the places it passed over, joined by ", and ", then the taken place's words after
 * "; " (see {@link chooseAuto}).
 */
export interface AutoPlace<B extends Backend> {
  /** Lower is preferred; ties go in table order. */
  readonly rank: number;
  /** Whether "auto" takes the backend at this place; default: whenever it exists. */
  takes?(backend: B): boolean;
  /** Why it was taken, for the notice; default: nothing beyond the reasons passed over. */
  taken?(backend: B): string;
  /** Why this place was passed over (unavailable, or not taken); default: nothing to say. */
  passed?(found: Found<B>): string | undefined;
}

/** One backend the library knows: a row of {@link BACKENDS}, keyed by `Backend.name`. */
export interface BackendRow<B extends Backend> {
  /** The backend in words, for messages: "WebGPU", "the native CPU backend". */
  readonly title: string;
  /** Whether it computes in float64 (else "auto" does not even create it for float64 work). */
  readonly float64: boolean;
  /** Creates the backend (called once per process, by {@link findBackend}), or says why not. */
  create(): Found<B> | Promise<Found<B>>;
  /** The error when the backend is named explicitly but unavailable. */
  unavailable(reason: string): string;
  /** Its places in the "auto" preference (none: only taken when named). */
  readonly auto: readonly AutoPlace<B>[];
}

/**
 * The backend class of each name: a new backend's type is one line here, beside its row in
 * {@link BACKENDS} (a row missing from either is a type error).
 */
export interface BackendClasses {
  /** WebGPU (float32): a hardware GPU, or a software adapter such as lavapipe. */
  webgpu: WebGpuBackend;
  /** The native CPU backend: BLAS (and oneDNN) through FFI, compiled loops. */
  native: NativeBackend;
  /** The plain TypeScript backend, the float64 oracle. */
  cpu: CpuBackend;
}

/** The name of a backend in {@link BACKENDS}. */
export type BackendName = keyof BackendClasses;

/** The backend class of a row of {@link BACKENDS}. */
export type BackendOf<N extends BackendName> = BackendClasses[N];

/**
 * The backends, one row each, keyed by name, in the order of {@link BACKEND_CHOICES}. A new
 * backend is a new row here.
 *
 * @example
 * ```ts
 * import { BACKENDS } from "./device.ts";
 * console.log(Object.keys(BACKENDS), BACKENDS.webgpu.float64); // ["webgpu", "native", "cpu"] false
 * ```
 */
export const BACKENDS: { readonly [N in BackendName]: BackendRow<BackendOf<N>> } = {
  webgpu: {
    title: "WebGPU",
    float64: false,
    create: async () => {
      const gpu = await WebGpuBackend.create();
      return gpu ? { backend: gpu } : { reason: "no WebGPU adapter was found" };
    },
    unavailable: (reason) =>
      `${reason}; on Linux install Mesa's Vulkan driver (apt-get install mesa-vulkan-drivers), ` +
      "or use a CPU backend (SGN_BACKEND=native or cpu)",
    auto: [
      {
        rank: 1,
        takes: (gpu) => !gpu.software,
        taken: (gpu) => `a hardware GPU (${gpu.description})`,
        passed: (found) =>
          found.backend
            ? `the only WebGPU adapter is a software one (${found.backend.description})`
            : found.reason,
      },
      // A software adapter, when the native backend is unavailable: rank 1 said why.
      { rank: 3 },
    ],
  },
  native: {
    title: "the native CPU backend",
    float64: true,
    create: () => NativeBackend.create(),
    unavailable: (reason) =>
      `the native CPU backend is unavailable: ${reason}; ` +
      "use SGN_BACKEND=cpu (plain TypeScript) or webgpu",
    auto: [{
      rank: 2,
      taken: (nat) => `BLAS loaded (${nat.description})`,
      passed: (found) => `the native CPU backend is unavailable (${found.reason})`,
    }],
  },
  cpu: {
    title: "the plain TypeScript backend",
    float64: true,
    create: () => ({ backend: new CpuBackend() }),
    unavailable: (reason) => `the plain TypeScript backend is unavailable: ${reason}`,
    auto: [{ rank: 4, taken: () => "the plain TypeScript backend is slow" }],
  },
};

/** The names of {@link BACKENDS}, in table order. */
export const BACKEND_NAMES: readonly BackendName[] = Object.keys(BACKENDS) as BackendName[];

/** Which backend {@link init} should select: "auto" or a name of {@link BACKENDS}. */
export type BackendChoice = "auto" | BackendName;

/** The accepted values of `SGN_BACKEND` and `--backend`: "auto", then the table's names. */
export const BACKEND_CHOICES: readonly BackendChoice[] = ["auto", ...BACKEND_NAMES];

const created = new Map<BackendName, Promise<Found>>();

/**
 * The process-wide backend of that name, created on the first call (one WebGPU device, one
 * BLAS, per process), or the one-line reason it is unavailable (no adapter, no FFI permission,
 * no BLAS library).
 *
 * @example
 * ```ts
 * import { findBackend } from "./device.ts";
 * const found = await findBackend("native");
 * console.log(found.backend?.description ?? `unavailable: ${found.reason}`);
 * ```
 */
export function findBackend<N extends BackendName>(name: N): Promise<Found<BackendOf<N>>> {
  if (!Object.hasOwn(BACKENDS, name)) {
    throw new SgnError(
      `findBackend: the name must be one of ${BACKEND_NAMES.join(", ")}, not ${showValue(name)}`,
    );
  }
  let found = created.get(name);
  if (!found) created.set(name, found = Promise.resolve(BACKENDS[name].create()));
  return found as Promise<Found<BackendOf<N>>>;
}

/** What "auto" says of the backends it does not create for float64 work. */
const FLOAT64_WORDS = "float64 needs a CPU backend";

/**
 * Why `choice` cannot compute in float64 (a float32-only backend), in words that follow
 * "--" or stand alone; undefined when it can, or when the choice is "auto" or empty.
 *
 * @example
 * ```ts
 * import { noFloat64 } from "./device.ts";
 * console.log(noFloat64("webgpu")); // float64 needs a CPU backend (WebGPU computes in float32)
 * ```
 */
export function noFloat64(choice: string): string | undefined {
  if (!Object.hasOwn(BACKENDS, choice)) return undefined;
  const r: BackendRow<Backend> = BACKENDS[choice as BackendName];
  return r.float64 ? undefined : `${FLOAT64_WORDS} (${r.title} computes in float32)`;
}

/** Options of {@link init}. */
export interface InitOptions {
  /** Overrides `SGN_BACKEND`; default "auto". */
  backend?: BackendChoice;
  /**
   * Receives the one line that says which backend "auto" chose and why (the library itself
   * never prints; the command line prints it). {@link backendNotice} keeps the last one.
   */
  onNotice?: (message: string) => void;
  /**
   * The element type the caller will compute in; "float64" rules out WebGPU (float32 only):
   * "auto" then picks the native CPU backend, else the plain TypeScript one. Default "float32".
   */
  dtype?: DType;
}

let current: Backend | undefined;
let notice: string | undefined;

/**
 * The line that says which backend the last "auto" choice of {@link init} took and why, or
 * undefined when no auto choice was made (a backend named explicitly needs no reason).
 *
 * @example
 * ```ts
 * import { backendNotice, init } from "./device.ts";
 * await init({ backend: "cpu" });
 * console.log(backendNotice() ?? "chosen explicitly");
 * ```
 */
export function backendNotice(): string | undefined {
  return notice;
}

/** Reads `SGN_BACKEND`; undefined when unset or unreadable. */
export function envBackendChoice(): BackendChoice | undefined {
  let v: string | undefined;
  try {
    v = (globalThis as { Deno?: typeof Deno }).Deno?.env.get("SGN_BACKEND");
  } catch {
    return undefined; // no permission to read the environment: not an error
  }
  if (v === undefined || v === "") return undefined;
  return checkBackendChoice(v, "SGN_BACKEND");
}

/** Validates a backend name given by a user (`what` names where it came from). */
export function checkBackendChoice(v: string, what: string): BackendChoice {
  if (!(BACKEND_CHOICES as readonly string[]).includes(v)) {
    throw new SgnError(`${what} must be one of ${BACKEND_CHOICES.join(", ")}, not "${v}"`);
  }
  return v as BackendChoice;
}

/**
 * Selects the default backend and returns it. With "auto" (the default) a hardware GPU wins,
 * then the native CPU backend, then a software WebGPU adapter, then the plain TypeScript
 * backend ({@link BACKENDS}' places); one line (to `onNotice`) says which and why. A backend
 * named explicitly fails with a clear error when unavailable ("cpu" always works).
 *
 * @example
 * ```ts
 * import { init, tensor } from "../mod.ts";
 * const backend = await init({ backend: "cpu" });
 * const t = tensor([1, 2, 3]);
 * console.log(backend.name, await t.data());
 * ```
 */
export async function init(options: InitOptions = {}): Promise<Backend> {
  if (typeof options !== "object" || options === null) {
    throw new SgnError(
      `init: options must be an object such as { backend: "cpu" }, got ${showValue(options)}`,
    );
  }
  const choice = options.backend ?? envBackendChoice() ?? "auto";
  if (!BACKEND_CHOICES.includes(choice)) checkBackendChoice(String(choice), "init's backend");
  const float64 = options.dtype === "float64";
  notice = undefined;
  if (choice !== "auto") {
    const no = float64 ? noFloat64(choice) : undefined;
    if (no) {
      const cpus = BACKEND_NAMES.filter((n) => BACKENDS[n].float64);
      throw new SgnError(`${no}: use SGN_BACKEND=${cpus.join(" or ")}`);
    }
    const found = await findBackend(choice);
    if (!found.backend) throw new SgnError(BACKENDS[choice].unavailable(found.reason));
    return (current = found.backend);
  }
  const [chosen, why] = await chooseAuto(float64);
  notice = `sgn: using the ${chosen.name} backend` + (why === "" ? "" : `: ${why}`);
  options.onNotice?.(notice);
  return (current = chosen);
}

/** Every place of every row in the "auto" preference, by rank (ties in table order). */
const PLACES: { name: BackendName; place: AutoPlace<Backend> }[] = BACKEND_NAMES
  .flatMap((name) => {
    const r: BackendRow<Backend> = BACKENDS[name];
    return r.auto.map((place) => ({ name, place }));
  })
  .sort((a, b) => a.place.rank - b.place.rank);

/**
 * The "auto" rule: the first place of {@link BACKENDS} by rank whose backend exists and takes
 * it, and the reason in words. Backends are created as the walk reaches them (a hardware GPU
 * found first means BLAS is never loaded), and for float64 work the float32-only ones are not
 * created at all. `find` is {@link findBackend}, or a stand-in in tests.
 *
 * @example
 * ```ts
 * import { chooseAuto } from "./device.ts";
 * const [backend, why] = await chooseAuto(true);
 * console.log(backend.name, why); // native or cpu, "float64 needs a CPU backend; ..."
 * ```
 */
export async function chooseAuto(
  float64: boolean,
  find: (name: BackendName) => Promise<Found> = findBackend,
): Promise<[Backend, string]> {
  const passed: string[] = [];
  const say = (words: string | undefined) => {
    if (words !== undefined && words !== "" && !passed.includes(words)) passed.push(words);
  };
  for (const { name, place } of PLACES) {
    if (float64 && !BACKENDS[name].float64) {
      say(FLOAT64_WORDS);
      continue;
    }
    const found = await find(name);
    if (found.backend && (place.takes?.(found.backend) ?? true)) {
      const taken = place.taken?.(found.backend) ?? "";
      return [found.backend, [passed.join(", and "), taken].filter((w) => w !== "").join("; ")];
    }
    say(place.passed?.(found));
  }
  throw new SgnError(`no backend is available: ${passed.join(", and ")}`);
}

/** Makes `backend` the default for new tensors. */
export function setBackend(backend: Backend): void {
  current = backend;
}

/** The default backend; throws if neither {@link init} nor {@link setBackend} has run. */
export function getBackend(): Backend {
  if (!current) {
    throw new SgnError(
      "no backend selected yet: call `await init()` (WebGPU, else CPU) or `setBackend(...)` first",
    );
  }
  return current;
}
