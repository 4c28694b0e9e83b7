/**
 * Readers of the standard binary formats: IDX (MNIST, Fashion-MNIST; plain or gzip) and the
 * CIFAR-10 binary batches. Bytes in, typed arrays out; every malformed input is an error that
 * names the file and what is wrong.
 *
 * @module
 */

import { checkInt, SgnError, showValue } from "../errors.ts";

/** A parsed IDX file: its dimensions and its unsigned-byte payload. */
export interface Idx {
  /** Size of each dimension, outermost first (e.g. [60000, 28, 28] for MNIST's images). */
  dims: number[];
  /** The payload, row-major, one byte per element. */
  data: Uint8Array;
}

/** What a decompressed file may hold beyond the size its header announces (see maybeGunzip). */
const GZIP_MARGIN = 1 << 20;
/** The most a gzip file whose header announces no size may inflate to. */
const GZIP_LIMIT = 2 ** 31 - 1;

/**
 * Gunzips when the bytes start with the gzip magic number, else returns them. `name` (the file)
 * appears in the error when the gzip stream is corrupt. Files of several gzip members (as
 * `cat a.gz b.gz` makes, and `gzip -t` accepts) are read whole.
 *
 * The output never grows past what the file announces: `announced` reads the size from the first
 * decompressed bytes (an IDX header says it; see {@link idxSize}), and inflating stops, with an
 * error, a margin (1 MiB) past it, so a small file that inflates to gigabytes is refused before
 * it fills the memory. Without `announced`, the limit is 2 GiB.
 *
 * @example
 * ```ts
 * import { idxSize, maybeGunzip } from "./idx.ts";
 * const gz = new Uint8Array(await new Response(
 *   new Blob([new Uint8Array([0, 0, 8, 1, 0, 0, 0, 1, 7])]).stream()
 *     .pipeThrough(new CompressionStream("gzip")),
 * ).arrayBuffer());
 * console.log((await maybeGunzip(gz, "labels", (head) => idxSize(head, 1))).length); // 9
 * ```
 */
export async function maybeGunzip(
  bytes: Uint8Array,
  name = "data",
  announced?: (head: Uint8Array) => number | undefined,
): Promise<Uint8Array> {
  if (bytes.length < 2 || bytes[0] !== 0x1f || bytes[1] !== 0x8b) return bytes;
  const corrupt = (e: unknown) =>
    new SgnError(
      `${name}: not a valid gzip file (${(e as Error).message.split("\n")[0]}); ` +
        "download it again, or give the uncompressed IDX file",
    );
  let zlib: typeof import("node:zlib") | undefined;
  try {
    zlib = await import("node:zlib");
  } catch {
    zlib = undefined; // a browser: one gzip member, through DecompressionStream
  }
  let limit = GZIP_LIMIT;
  if (announced) {
    const head = zlib ? gunzipHead(zlib, bytes) : await webGunzip(bytes, 1 << 16, true);
    const size = head ? announced(head) : undefined;
    if (size !== undefined) limit = Math.min(GZIP_LIMIT, size + GZIP_MARGIN);
  }
  const tooLarge = () =>
    new SgnError(
      `${name}: this gzip file inflates to more than ${limit} bytes, ` +
        (limit < GZIP_LIMIT ? "past the size its header announces" : "the most it may hold") +
        "; it is not the data set's file (download it again)",
    );
  if (zlib) {
    try {
      return zlib.gunzipSync(bytes, { maxOutputLength: limit });
    } catch (e) {
      if ((e as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") throw tooLarge();
      throw corrupt(e);
    }
  }
  let out: Uint8Array | undefined;
  try {
    out = await webGunzip(bytes, limit, false);
  } catch (e) {
    throw corrupt(e);
  }
  if (!out) throw tooLarge();
  return out;
}

/** The first decompressed bytes of a gzip file (its start inflated), or undefined. */
function gunzipHead(zlib: typeof import("node:zlib"), bytes: Uint8Array): Uint8Array | undefined {
  // A few hundred compressed bytes hold the header; a long file name field may need more.
  for (let n = 256;; n *= 4) {
    try {
      const head = zlib.gunzipSync(bytes.subarray(0, n), {
        finishFlush: zlib.constants.Z_SYNC_FLUSH,
        maxOutputLength: 1 << 22,
      });
      if (head.length > 0 || n >= bytes.length) return head;
    } catch {
      return undefined;
    }
    if (n > 1 << 16) return undefined;
  }
}

/**
 * Inflates one gzip member with the web's DecompressionStream, reading chunk by chunk: undefined
 * once more than `limit` bytes came out (or, with `prefix`, the bytes so far).
 */
async function webGunzip(
  bytes: Uint8Array,
  limit: number,
  prefix: boolean,
): Promise<Uint8Array | undefined> {
  const reader = new Blob([bytes as BlobPart]).stream()
    .pipeThrough(new DecompressionStream("gzip")).getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      total += value.length;
      if (total > limit) return prefix ? concat(chunks, total) : undefined;
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  return concat(chunks, total);
}

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/**
 * The size in bytes an IDX file of `rank` dimensions announces in its header (the header and
 * the data its dimensions hold), or undefined when `head` is too short to say.
 *
 * @example
 * ```ts
 * import { idxSize } from "./idx.ts";
 * console.log(idxSize(new Uint8Array([0, 0, 8, 1, 0, 0, 0, 5]), 1)); // 13
 * ```
 */
export function idxSize(head: Uint8Array, rank: number): number | undefined {
  const header = 4 + 4 * rank;
  if (head.length < header) return undefined;
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  let size = 1;
  for (let i = 0; i < rank; i++) size *= view.getUint32(4 + 4 * i, false);
  return header + size;
}

/** The IDX data type codes (the magic number's third byte). */
const IDX_TYPES: Record<number, string> = {
  0x08: "unsigned byte",
  0x09: "signed byte",
  0x0b: "16-bit integer",
  0x0c: "32-bit integer",
  0x0d: "float32",
  0x0e: "float64",
};

/** What the dimensions of an IDX file of `rank` dimensions hold, for errors. */
function dimensionNames(rank: number): string[] {
  if (rank === 1) return ["count"];
  if (rank === 3) return ["count", "height", "width"];
  return Array.from({ length: rank }, (_, i) => `dimension ${i}`);
}

function hex(x: number, digits: number): string {
  return `0x${x.toString(16).padStart(digits, "0")}`;
}

/**
 * Parses an IDX file of unsigned bytes with `rank` dimensions (3 for images: count, height,
 * width; 1 for labels: count). Every header field is checked and a wrong one named: the magic
 * number's two zero bytes, its data type byte (0x08, unsigned byte) and its rank byte, each
 * dimension (none may be 0), and the data size the dimensions announce (a file shorter or longer
 * than that is an error). `name` (the file) starts every error.
 *
 * @example
 * ```ts
 * import { parseIdx } from "./idx.ts";
 * const bytes = new Uint8Array([0, 0, 8, 1, 0, 0, 0, 2, 7, 9]);
 * console.log(parseIdx(bytes, 1, "labels").dims); // [2]
 * ```
 */
export function parseIdx(bytes: Uint8Array, rank: number, name: string): Idx {
  if (!(bytes instanceof Uint8Array)) {
    throw new SgnError(`parseIdx: the file's bytes must be a Uint8Array, got ${showValue(bytes)}`);
  }
  checkInt(rank, "parseIdx: rank", 1, 16);
  name = typeof name === "string" ? name : "IDX file";
  const header = 4 + 4 * rank;
  const fields = dimensionNames(rank);
  const shape = `${rank} dimension${rank === 1 ? "" : "s"} (${fields.join(", ")})`;
  if (bytes.length < 4) {
    throw new SgnError(
      `${name}: ${bytes.length} bytes is too short for an IDX header (${header} bytes: the ` +
        `magic number and ${shape})`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, false);
  const expected = 0x0800 + rank; // type 0x08 = unsigned byte, then the number of dimensions
  if (magic !== expected) {
    const type = bytes[2];
    const why = bytes[0] !== 0 || bytes[1] !== 0
      ? `its first two bytes are ${hex(view.getUint16(0, false), 4)}, not 0: not an IDX file`
      : type !== 0x08
      ? `the data type byte is ${hex(type, 2)} (${IDX_TYPES[type] ?? "no IDX type"}), ` +
        "expected 0x08 (unsigned byte)"
      : `the rank byte says ${bytes[3]} dimension${bytes[3] === 1 ? "" : "s"}, expected ${shape}`;
    throw new SgnError(
      `${name}: wrong magic number ${hex(magic, 8)}, expected ${hex(expected, 8)} (an IDX file ` +
        `of unsigned bytes with ${rank} dimensions): ${why}; is this the right file?`,
    );
  }
  if (bytes.length < header) {
    throw new SgnError(
      `${name}: ${bytes.length} bytes is too short for an IDX header (${header} bytes: the ` +
        `magic number and ${shape})`,
    );
  }
  const dims = Array.from({ length: rank }, (_, i) => view.getUint32(4 + 4 * i, false));
  const zero = dims.indexOf(0);
  if (zero >= 0) {
    throw new SgnError(
      `${name}: dimension ${zero} (${fields[zero]}) is 0 in the header: the file holds no data`,
    );
  }
  const size = dims.reduce((a, b) => a * b, 1);
  const announced = `the header announces ${dims.join(" x ")} = ${size} bytes of data ` +
    `(${fields.join(" x ")})`;
  if (bytes.length < header + size) {
    throw new SgnError(
      `${name}: truncated: ${announced}, the file has ${bytes.length - header}`,
    );
  }
  if (bytes.length > header + size) {
    throw new SgnError(
      `${name}: ${bytes.length - header - size} bytes after the data: ${announced}, the file ` +
        `has ${bytes.length - header}; a dimension in the header is wrong, or the file is not ` +
        "one IDX file",
    );
  }
  return { dims, data: bytes.subarray(header, header + size) };
}

/** Checks that labels are integers in [0, classes). */
export function checkLabels(labels: Uint8Array, classes: number, name: string): void {
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] >= classes) {
      throw new SgnError(`${name}: label ${labels[i]} at index ${i} is outside 0..${classes - 1}`);
    }
  }
}

/** Images and labels from a pair of IDX files, with their counts checked against each other. */
export function imagesAndLabels(
  images: Idx,
  labels: Idx,
  names: [string, string],
  classes = 10,
): { images: Uint8Array; labels: Uint8Array; count: number; height: number; width: number } {
  const [count, height, width] = images.dims;
  if (labels.dims[0] !== count) {
    throw new SgnError(
      `${names[0]} holds ${count} images but ${names[1]} holds ${labels.dims[0]} labels`,
    );
  }
  checkLabels(labels.data, classes, names[1]);
  return { images: images.data, labels: labels.data, count, height, width };
}

/** Bytes per CIFAR-10 record: one label byte, then 3 x 32 x 32 pixel bytes (channel-major). */
export const CIFAR_RECORD: number = 1 + 3 * 32 * 32;

/** Parses one CIFAR-10 binary batch into labels and NCHW pixel bytes. */
export function parseCifarBatch(
  bytes: Uint8Array,
  name: string,
): { labels: Uint8Array; images: Uint8Array; count: number } {
  if (bytes.length === 0 || bytes.length % CIFAR_RECORD !== 0) {
    throw new SgnError(
      `${name}: ${bytes.length} bytes is not a whole number of ${CIFAR_RECORD}-byte CIFAR-10 ` +
        "records (1 label byte + 3072 pixel bytes); the file is truncated or not a CIFAR-10 batch",
    );
  }
  const count = bytes.length / CIFAR_RECORD;
  const labels = new Uint8Array(count);
  const images = new Uint8Array(count * (CIFAR_RECORD - 1));
  for (let i = 0; i < count; i++) {
    labels[i] = bytes[i * CIFAR_RECORD];
    images.set(
      bytes.subarray(i * CIFAR_RECORD + 1, (i + 1) * CIFAR_RECORD),
      i * (CIFAR_RECORD - 1),
    );
  }
  checkLabels(labels, 10, name);
  return { labels, images, count };
}
