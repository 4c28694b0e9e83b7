/**
 * What the native libraries share: the Deno namespace (absent in a browser), environment reads
 * that survive a missing permission, and opening the first library of a list that loads. BLAS
 * (`cpu/blas.ts`) and oneDNN (`cpu/dnnl.ts`) are both loaded through {@link openFirst}.
 *
 * @module
 */

/**
 * The Deno namespace, or undefined in a browser (reached through `globalThis.Deno?.` so that the
 * browser bundle's guard check holds).
 */
export function denoNs(): typeof Deno | undefined {
  return (globalThis as { Deno?: typeof Deno }).Deno?.valueOf() as typeof Deno | undefined;
}

/** An environment variable, or undefined when unset or not readable (no permission). */
export function env(name: string): string | undefined {
  try {
    return denoNs()?.env.get(name);
  } catch {
    return undefined;
  }
}

/** The library that loaded and its path, or the one-line reason none did. */
export type Opened<S extends Deno.ForeignLibraryInterface> =
  | { lib: Deno.DynamicLibrary<S>; path: string; reason?: undefined }
  | { lib: undefined; path?: undefined; reason: string };

/**
 * Opens the first of `paths` that loads with `symbols`. `variable` is the environment variable
 * that names a path instead (its value `none` turns the library off); `hint` says how to install
 * the library, for the reason given when none loads.
 *
 * @example
 * ```ts
 * import { openFirst } from "./ffi.ts";
 * const r = openFirst(["libm.so.6"], { cos: { parameters: ["f64"], result: "f64" } }, "SGN_LIBM", "");
 * console.log(r.lib ? r.lib.symbols.cos(0) : r.reason); // 1 (or why not)
 * ```
 */
export function openFirst<S extends Deno.ForeignLibraryInterface>(
  paths: readonly string[],
  symbols: S,
  variable: string,
  hint: string,
): Opened<S> {
  const deno = denoNs();
  if (!deno?.dlopen) return { lib: undefined, reason: "this runtime cannot load native libraries" };
  const given = env(variable);
  if (given === "none") return { lib: undefined, reason: `${variable}=none` };
  const errors: string[] = [];
  for (const path of given ? [given] : paths) {
    try {
      return { lib: deno.dlopen(path, symbols), path };
    } catch (e) {
      if (e instanceof deno.errors.NotCapable || e instanceof deno.errors.PermissionDenied) {
        return { lib: undefined, reason: "no FFI permission (run with --allow-ffi or -A)" };
      }
      errors.push(`${path}: ${(e as Error).message.split("\n")[0]}`);
    }
  }
  return {
    lib: undefined,
    reason: given
      ? `${variable}=${given} did not load (${errors[0]})`
      : `not found (${hint}, or set ${variable} to its path)`,
  };
}
