/**
 * Writing a file whole or not at all: the data goes to a temporary file in the destination's
 * folder, is flushed to disk, and is then renamed over the destination. A rename within one
 * file system is atomic, so a reader (or a crash) sees either the old file or the new one,
 * never a half-written one.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";

/**
 * Writes `data` (a string is written as UTF-8) to `path` atomically: to a temporary file
 * `.<name>.<random>.tmp` beside it, flushed, then renamed over `path`. An existing destination
 * keeps its permission bits; on failure the temporary file is removed and the destination is
 * left as it was. A symlink at `path` is replaced by the file, not written through (resolve it
 * first with `Deno.realPath` to write to its target).
 *
 * @example
 * ```ts
 * import { writeFileAtomic } from "./atomic.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await writeFileAtomic(`${dir}/results.json`, JSON.stringify({ status: "running" }));
 * console.log(await Deno.readTextFile(`${dir}/results.json`)); // {"status":"running"}
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const random = crypto.getRandomValues(new Uint8Array(6));
  const suffix = Array.from(random, (b) => b.toString(16).padStart(2, "0")).join("");
  const temp = join(dirname(path), `.${basename(path)}.${suffix}.tmp`);
  let mode: number | undefined;
  try {
    const old = await Deno.stat(path);
    if (old.isFile && old.mode !== null) mode = old.mode & 0o7777;
  } catch {
    // No destination yet (or not one we can stat): the new file gets the default mode.
  }
  let created = false;
  try {
    // createNew: never reuse (or follow a symlink planted at) an existing temporary name.
    const file = await Deno.open(temp, { write: true, createNew: true, mode });
    created = true;
    try {
      let done = 0;
      while (done < bytes.length) done += await file.write(bytes.subarray(done));
      // Flushed before the rename, so that after a crash the new name never holds a file whose
      // data did not reach the disk.
      await file.syncData();
    } finally {
      file.close();
    }
    if (mode !== undefined) await Deno.chmod(temp, mode);
    await Deno.rename(temp, path);
  } catch (e) {
    if (created) await Deno.remove(temp).catch(() => {});
    throw e;
  }
}
