/**
 * Small data files in the standard formats, written by the tests (IDX, gzip IDX), and the
 * command line run as a user runs it.
 */

/** An IDX file of unsigned bytes with the given dimensions. */
export function idx(rank: number, dims: number[], data: number[]): Uint8Array {
  const out = new Uint8Array(4 + 4 * rank + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, 0x0800 + rank, false);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * rank);
  return out;
}

/**
 * An IDX file with every header field given: the four magic number bytes (two zeros, the data
 * type, the rank), the dimension sizes written (any number of them) and the data bytes.
 */
export function idxRaw(magic: number[], dims: number[], data: number[]): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  const view = new DataView(out.buffer);
  out.set(magic, 0);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

export async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Writes a tiny MNIST-format directory: 3 training and 2 test images of 2 x 2. */
export async function writeIdxDir(
  dir: string,
  patch: Partial<Record<string, Uint8Array>> = {},
  compress = false,
): Promise<void> {
  const files: Record<string, Uint8Array> = {
    "train-images-idx3-ubyte": idx(3, [3, 2, 2], [0, 255, 0, 255, 10, 20, 30, 40, 1, 2, 3, 4]),
    "train-labels-idx1-ubyte": idx(1, [3], [7, 0, 9]),
    "t10k-images-idx3-ubyte": idx(3, [2, 2, 2], [255, 255, 255, 255, 0, 0, 0, 0]),
    "t10k-labels-idx1-ubyte": idx(1, [2], [1, 2]),
    ...patch,
  } as Record<string, Uint8Array>;
  for (const [name, bytes] of Object.entries(files)) {
    await Deno.writeFile(
      `${dir}/${name}${compress ? ".gz" : ""}`,
      compress ? await gzip(bytes) : bytes,
    );
  }
}

/** Runs `cli.ts` with `args` in a subprocess; its exit code and output. */
export function cli(
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  return cliWith({}, ...args);
}

/** {@link cli} with `env` added to the environment. */
export async function cliWith(
  env: Record<string, string>,
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../cli.ts", import.meta.url).pathname, ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}
