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
  | { lib: undefined; path?: undefined; reason: string; errors?: string[] };

/** A native library to look for: its name in messages, where to look, how to install it. */
export interface LibrarySearch {
  /** Its name in messages ("BLAS", "oneDNN"). */
  what: string;
  /** The environment variable that names a path instead (`none` turns the library off). */
  variable: string;
  /** The paths tried, in order, on an operating system (`Deno.build.os`). */
  candidates: (os: string) => string[];
  /** How to install it, per operating system ("linux", "darwin", "windows"). */
  install: { linux: string; darwin: string; windows: string };
}

/**
 * Opens the first candidate of `search` that loads with `symbols`, or says in one line why none
 * did: no FFI here, no permission, `VARIABLE=none`, a given path that did not load, or none
 * found (with how to install it).
 *
 * @example
 * ```ts
 * import { openFirst } from "./ffi.ts";
 * const r = openFirst({
 *   what: "libm",
 *   variable: "SGN_LIBM",
 *   candidates: () => ["libm.so.6"],
 *   install: { linux: "it ships with glibc", darwin: "-", windows: "-" },
 * }, { cos: { parameters: ["f64"], result: "f64" } });
 * console.log(r.lib ? r.lib.symbols.cos(0) : r.reason); // 1 (or why not)
 * ```
 */
export function openFirst<S extends Deno.ForeignLibraryInterface>(
  search: LibrarySearch,
  symbols: S,
): Opened<S> {
  const deno = denoNs();
  if (!deno?.dlopen) return { lib: undefined, reason: "this runtime cannot load native libraries" };
  const { variable } = search;
  const given = env(variable);
  if (given === "none") return { lib: undefined, reason: `${variable}=none` };
  const os = deno.build.os;
  const errors: string[] = [];
  for (const path of given ? [given] : search.candidates(os)) {
    try {
      return { lib: deno.dlopen(path, symbols), path };
    } catch (e) {
      if (e instanceof deno.errors.NotCapable || e instanceof deno.errors.PermissionDenied) {
        return { lib: undefined, reason: "no FFI permission (run with --allow-ffi or -A)" };
      }
      errors.push(`${path}: ${(e as Error).message.split("\n")[0]}`);
    }
  }
  const install = search.install[os as keyof LibrarySearch["install"]] ?? search.install.linux;
  return {
    lib: undefined,
    reason: given
      ? `${variable}=${given} did not load (${errors[0]})`
      : `no ${search.what} library found (${install}, or set ${variable} to its path)`,
    errors,
  };
}
