/**
 * Readers of the standard binary formats: IDX (MNIST, Fashion-MNIST; plain or gzip) and the
 * CIFAR-10 binary batches. Bytes in, typed arrays out; every malformed input is an error that
 * names the file and what is wrong.
 *
 * @module
 */

import { SgnError } from "../backend.ts";

/** A parsed IDX file: its dimensions and its unsigned-byte payload. */
export interface Idx {
  /** Size of each dimension, outermost first (e.g. [60000, 28, 28] for MNIST's images). */
  dims: number[];
  /** The payload, row-major, one byte per element. */
  data: Uint8Array;
}

/**
 * Gunzips when the bytes start with the gzip magic number, else returns them. `name` (the file)
 * appears in the error when the gzip stream is corrupt.
 */
export async function maybeGunzip(bytes: Uint8Array, name = "data"): Promise<Uint8Array> {
  if (bytes.length < 2 || bytes[0] !== 0x1f || bytes[1] !== 0x8b) return bytes;
  const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(
    new DecompressionStream("gzip"),
  );
  try {
    return new Uint8Array(await new Response(stream).arrayBuffer());
  } catch (e) {
    throw new SgnError(
      `${name}: not a valid gzip file (${(e as Error).message.split("\n")[0]}); ` +
        "download it again, or give the uncompressed IDX file",
    );
  }
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
