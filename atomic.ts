/**
 * Files written whole or not at all: the data goes to a temporary file in the destination's
 * folder, which is then renamed over the destination (a rename within one file system is
 * atomic), so a crash or a full disk never leaves a half-written file behind.
 *
 * @module
 */

/**
 * Writes `data` to `path` atomically. On failure the destination is untouched and the temporary
 * file is removed.
 *
 * @example
 * ```ts
 * import { writeFileAtomic } from "./atomic.ts";
 * const dir = await Deno.makeTempDir();
 * await writeFileAtomic(`${dir}/results.json`, JSON.stringify({ avg_loss: [1.5] }));
 * console.log(await Deno.readTextFile(`${dir}/results.json`));
 * ```
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const slash = path.lastIndexOf("/");
  const dir = slash >= 0 ? path.slice(0, slash + 1) : "";
  const name = path.slice(slash + 1);
  const tmp = `${dir}.${name}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  try {
    await Deno.writeFile(tmp, bytes, { createNew: true });
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}
