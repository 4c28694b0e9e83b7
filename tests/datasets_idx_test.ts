/**
 * The IDX reader (MNIST's and Fashion-MNIST's format) on small files the tests write, plain and
 * gzip: scaling to [0, 1] or standardized, the user's files left unwritten, every header field
 * that is wrong named with its file, images and labels that disagree named both, and non-square
 * images read row-major, height then width.
 */

import assert from "node:assert/strict";
import { relative } from "node:path";
import { loadMnist, parseIdx } from "../datasets/mod.ts";
import { SgnError } from "../errors.ts";
import { gzip, idx, idxRaw, writeIdxDir } from "./data_files.ts";
import { rejectsNaming } from "./dataset_errors.ts";

Deno.test("IDX directory: plain and gzip files load, scaled to [0, 1] or standardized", async () => {
  for (const compress of [false, true]) {
    const dir = await Deno.makeTempDir();
    await writeIdxDir(dir, {}, compress);
    const before = await Deno.readFile(`${dir}/train-labels-idx1-ubyte${compress ? ".gz" : ""}`);
    const mlp = await loadMnist("mlp", dir);
    assert.deepEqual(
      (await loadMnist("mlp", relative(Deno.cwd(), dir))).train.inputs,
      mlp.train.inputs,
    );
    assert.deepEqual(mlp.inputShape, [4]);
    assert.deepEqual(Array.from(mlp.train.targets), [7, 0, 9]);
    assert.deepEqual(Array.from(mlp.train.inputs.subarray(0, 4)), [0, 1, 0, 1]);
    assert.deepEqual(Array.from(mlp.test.targets), [1, 2]);
    const conv = await loadMnist("conv", dir);
    assert.deepEqual(conv.inputShape, [1, 2, 2]);
    assert.deepEqual(Array.from(conv.train.inputs.subarray(0, 4)), [-1, 1, -1, 1]);
    assert.deepEqual(
      Array.from(conv.test.inputs.subarray(0, 4)),
      [0, 0, 0, 0],
      "constant image -> 0",
    );
    const after = await Deno.readFile(`${dir}/train-labels-idx1-ubyte${compress ? ".gz" : ""}`);
    assert.deepEqual(after, before, "the user's files are not written");
    await Deno.remove(dir, { recursive: true });
  }
});

const TWELVE = [0, 255, 0, 255, 10, 20, 30, 40, 1, 2, 3, 4];

Deno.test("IDX: every header field, when wrong, is an error naming the file and the field", async () => {
  const images = "train-images-idx3-ubyte";
  const labels = "train-labels-idx1-ubyte";
  // [what is wrong, the file, its bytes, the field named]. The good files are 3 images of 2 x 2
  // (12 bytes of data) and 3 labels.
  const cases: [string, string, Uint8Array, RegExp][] = [
    [
      "magic number: not starting with two zero bytes (a zip file)",
      images,
      idxRaw([0x50, 0x4b, 0x08, 0x03], [3, 2, 2], TWELVE),
      /wrong magic number 0x504b0803, expected 0x00000803 .*first two bytes are 0x504b, not 0: not an IDX file/,
    ],
    [
      "data type byte: float32 pixels",
      images,
      idxRaw([0, 0, 0x0d, 3], [3, 2, 2], TWELVE),
      /wrong magic number 0x00000d03.*the data type byte is 0x0d \(float32\), expected 0x08 \(unsigned byte\)/,
    ],
    [
      "data type byte: signed bytes",
      labels,
      idxRaw([0, 0, 0x09, 1], [3], [7, 0, 9]),
      /the data type byte is 0x09 \(signed byte\), expected 0x08/,
    ],
    [
      "data type byte: no IDX type at all",
      images,
      idxRaw([0, 0, 0x42, 3], [3, 2, 2], TWELVE),
      /the data type byte is 0x42 \(no IDX type\), expected 0x08/,
    ],
    [
      "rank byte: images with 1 dimension (a labels file in its place)",
      images,
      idx(1, [12], TWELVE),
      /wrong magic number 0x00000801, expected 0x00000803 .*the rank byte says 1 dimension, expected 3 dimensions \(count, height, width\)/,
    ],
    [
      "rank byte: images with 2 dimensions",
      images,
      idx(2, [3, 4], TWELVE),
      /the rank byte says 2 dimensions, expected 3 dimensions/,
    ],
    [
      "rank byte: labels with 3 dimensions",
      labels,
      idx(3, [3, 1, 1], [7, 0, 9]),
      /the rank byte says 3 dimensions, expected 1 dimension \(count\)/,
    ],
    [
      "count dimension 0",
      images,
      idx(3, [0, 2, 2], []),
      /dimension 0 \(count\) is 0 in the header/,
    ],
    [
      "height dimension 0",
      images,
      idx(3, [3, 0, 2], []),
      /dimension 1 \(height\) is 0 in the header/,
    ],
    ["width dimension 0", images, idx(3, [3, 2, 0], []), /dimension 2 \(width\) is 0/],
    ["label count 0", labels, idx(1, [0], []), /dimension 0 \(count\) is 0/],
    [
      "count too large",
      images,
      idx(3, [4, 2, 2], TWELVE),
      /truncated: the header announces 4 x 2 x 2 = 16 bytes of data \(count x height x width\), the file has 12/,
    ],
    [
      "height too large",
      images,
      idx(3, [3, 3, 2], TWELVE),
      /truncated: the header announces 3 x 3 x 2 = 18 bytes/,
    ],
    [
      "width too large",
      images,
      idx(3, [3, 2, 5], TWELVE),
      /truncated: the header announces 3 x 2 x 5 = 30 bytes/,
    ],
    [
      "count too small",
      images,
      idx(3, [2, 2, 2], TWELVE),
      /4 bytes after the data: the header announces 2 x 2 x 2 = 8 bytes of data \(count x height x width\), the file has 12/,
    ],
    [
      "width too small",
      images,
      idx(3, [3, 2, 1], TWELVE),
      /6 bytes after the data: the header announces 3 x 2 x 1 = 6 bytes/,
    ],
    [
      "a dimension beyond any file (2^32 - 1)",
      images,
      idx(3, [3, 0xffffffff, 2], TWELVE),
      /truncated: the header announces 3 x 4294967295 x 2 = 25769803770 bytes/,
    ],
    [
      "trailing bytes after the images",
      images,
      idx(3, [3, 2, 2], [...TWELVE, 0, 0]),
      /2 bytes after the data: the header announces 3 x 2 x 2 = 12 bytes of data/,
    ],
    [
      "label count too large",
      labels,
      idx(1, [4], [7, 0, 9]),
      /truncated: the header announces 4 = 4 bytes of data \(count\), the file has 3/,
    ],
    [
      "trailing bytes after the labels",
      labels,
      idx(1, [3], [7, 0, 9, 1]),
      /1 bytes after the data: the header announces 3 = 3 bytes of data \(count\)/,
    ],
    [
      "a header cut short",
      images,
      new Uint8Array([0, 0, 8, 3, 0, 0, 0, 3, 0, 0]),
      /10 bytes is too short for an IDX header \(16 bytes: the magic number and 3 dimensions \(count, height, width\)\)/,
    ],
    ["an empty file", labels, new Uint8Array(0), /0 bytes is too short for an IDX header/],
  ];
  const dir = await Deno.makeTempDir({ prefix: "sgn-idx-test-" });
  try {
    for (const [what, file, bytes, why] of cases) {
      await writeIdxDir(dir, { [file]: bytes });
      await rejectsNaming(() => loadMnist("mlp", dir), `${dir}/${file}`, why, what);
      // The same from bytes, gzip-compressed: the .gz file is named.
      await Deno.remove(`${dir}/${file}`);
      await Deno.writeFile(`${dir}/${file}.gz`, await gzip(bytes));
      await rejectsNaming(() => loadMnist("mlp", dir), `${dir}/${file}.gz`, why, `${what} (gzip)`);
      await Deno.remove(`${dir}/${file}.gz`);
    }
    // Parsed directly: the name given is the one in the error.
    assert.throws(
      () => parseIdx(idx(3, [3, 2, 2], [...TWELVE, 1]), 3, "x.idx"),
      /^SgnError: x\.idx: 1 bytes after the data/,
    );
    assert.deepEqual(parseIdx(idx(3, [3, 2, 2], TWELVE), 3, "x.idx").dims, [3, 2, 2]);

    // A corrupt gzip stream is named as such.
    await writeIdxDir(dir);
    const gz = await gzip(idx(3, [3, 2, 2], TWELVE));
    await Deno.remove(`${dir}/${images}`);
    await Deno.writeFile(`${dir}/${images}.gz`, gz.subarray(0, gz.length - 9));
    await rejectsNaming(
      () => loadMnist("mlp", dir),
      `${dir}/${images}.gz`,
      /not a valid gzip file/,
      "a truncated gzip file",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("IDX directory: images and labels that disagree get errors naming both files", async () => {
  const cases: [Record<string, Uint8Array>, RegExp][] = [
    [
      { "train-labels-idx1-ubyte": idx(1, [2], [1, 2]) },
      /^train-images-idx3-ubyte holds 3 images but train-labels-idx1-ubyte holds 2 labels$/,
    ],
    [
      { "t10k-labels-idx1-ubyte": idx(1, [3], [1, 2, 3]) },
      /^t10k-images-idx3-ubyte holds 2 images but t10k-labels-idx1-ubyte holds 3 labels$/,
    ],
    [
      { "t10k-labels-idx1-ubyte": idx(1, [2], [1, 12]) },
      /^t10k-labels-idx1-ubyte: label 12 at index 1 is outside 0\.\.9$/,
    ],
    [
      { "train-labels-idx1-ubyte": idx(1, [3], [7, 0, 255]) },
      /^train-labels-idx1-ubyte: label 255 at index 2 is outside 0\.\.9$/,
    ],
    [
      { "t10k-images-idx3-ubyte": idx(3, [2, 1, 4], [1, 2, 3, 4, 5, 6, 7, 8]) },
      /^mnist: the test images are 1x4 but the training images are 2x2; both IDX image files/,
    ],
  ];
  for (const [patch, msg] of cases) {
    const dir = await Deno.makeTempDir();
    try {
      await writeIdxDir(dir, patch);
      await assert.rejects(() => loadMnist("mlp", dir), (e: unknown) => {
        assert.ok(e instanceof SgnError, `expected an SgnError, got ${e}`);
        assert.match(e.message, msg);
        return true;
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
  const empty = await Deno.makeTempDir();
  await assert.rejects(
    () => loadMnist("mlp", empty),
    /train-images-idx3-ubyte \(or train-images-idx3-ubyte\.gz\) not found/,
  );
  await Deno.remove(empty);
});

Deno.test("IDX: non-square images (3 x 5) load row-major, height then width", async () => {
  // Pixel (image i, row r, column c) = 100 i + 10 r + c: no two pixels equal, so a transposed
  // or column-major read puts some pixel in the wrong place.
  const pixel = (i: number, r: number, c: number) => 100 * i + 10 * r + c;
  const bytes = (count: number) => {
    const out: number[] = [];
    for (let i = 0; i < count; i++) {
      for (let r = 0; r < 3; r++) for (let c = 0; c < 5; c++) out.push(pixel(i, r, c));
    }
    return out;
  };
  const dir = await Deno.makeTempDir();
  try {
    await writeIdxDir(dir, {
      "train-images-idx3-ubyte": idx(3, [3, 3, 5], bytes(3)),
      "t10k-images-idx3-ubyte": idx(3, [2, 3, 5], bytes(2)),
    });
    for (const format of ["mlp", "conv"] as const) {
      const d = await loadMnist(format, dir);
      assert.deepEqual(d.inputShape, format === "mlp" ? [15] : [1, 3, 5], `${format} shape`);
      assert.equal(d.train.inputs.length, 3 * 15);
      assert.equal(d.test.inputs.length, 2 * 15);
      for (const [part, count] of [[d.train, 3], [d.test, 2]] as const) {
        for (let i = 0; i < count; i++) {
          // What the loader should give for image i: pixels / 255, or standardized by hand.
          const raw = Array.from({ length: 15 }, (_, k) => pixel(i, Math.floor(k / 5), k % 5));
          const mean = raw.reduce((a, b) => a + b, 0) / 15;
          const sd = Math.sqrt(raw.reduce((a, b) => a + (b - mean) ** 2, 0) / 15);
          for (let r = 0; r < 3; r++) {
            for (let c = 0; c < 5; c++) {
              const got = part.inputs[i * 15 + r * 5 + c];
              const v = pixel(i, r, c);
              const want = format === "mlp" ? v / 255 : (v - mean) / sd;
              assert.ok(
                Math.abs(got - want) < 1e-6,
                `${format}: image ${i} of ${count}, row ${r} column ${c} is ${got}, expected ` +
                  `${want} (pixel ${v})`,
              );
            }
          }
        }
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
