/**
 * Bad and hostile input, one row per class of fault: every one must end in one line that says
 * what was wrong (exit code 2 from the command line, an SgnError from code), never a stack
 * trace, a hang or silently wrong numbers. Then the ways a run could lose data: a full disk, two
 * processes on one run folder, a killed reproduction resumed, a run that diverges after some
 * epochs.
 */
import assert from "node:assert/strict";
import { seedSineFileName } from "../datasets/mod.ts";
import { init } from "../autodiff/device.ts";
import { tensor } from "../autodiff/tensor.ts";
import * as ops from "../autodiff/ops.ts";
import { mlp } from "../models/networks.ts";
import { oneHot } from "../models/losses.ts";
import { SGN } from "../sgn/sgn.ts";
import { Adam, SGD } from "../sgn/baselines.ts";
import { train } from "../train/loop.ts";
import { cli, gzip, idx, writeIdxDir } from "./data_files.ts";
import { denoDownloadLine, skipped } from "./harness.ts";

const tmp = await Deno.makeTempDir({ prefix: "sgn-bad-input-" });
const aFile = `${tmp}/a-file`;
await Deno.writeTextFile(aFile, "not a folder");

// Data files with one fault each.
const corruptGz = `${tmp}/corrupt-gz`;
await Deno.mkdir(corruptGz);
await writeIdxDir(corruptGz, {}, true);
const gz = await Deno.readFile(`${corruptGz}/train-images-idx3-ubyte.gz`);
await Deno.writeFile(`${corruptGz}/train-images-idx3-ubyte.gz`, gz.subarray(0, gz.length - 9));
const sizes = `${tmp}/sizes`;
await Deno.mkdir(sizes);
await writeIdxDir(sizes, { "t10k-images-idx3-ubyte": idx(3, [2, 3, 3], new Array(18).fill(7)) });
const sine = `${tmp}/sine`;
await Deno.mkdir(sine);
await Deno.writeTextFile(
  `${sine}/${seedSineFileName(10)}`,
  JSON.stringify({
    X_train: [[0.1], [0.2], [0.3], [0.4]],
    y_train: [0.1, 0.2, 0.3, 1e39],
    X_test: [[0.5]],
    y_test: [0.5],
  }),
);
const specs = `${tmp}/specs`;
await Deno.mkdir(specs);
await Deno.writeTextFile(`${specs}/list.json`, "[1, 2]");
await Deno.writeTextFile(`${specs}/empty.json`, "{}");
await Deno.writeTextFile(
  `${specs}/extra.json`,
  JSON.stringify({ conv_layers: { layer0: { type: "POOL", pool_size: 2, dilation: 1 } } }),
);

const conv = (layer: object) =>
  JSON.stringify({
    conv_layers: { layer0: { type: "CONV", num_filters: 2, filter_size: 3, ...layer } },
    mlp_layers: { layer0: { type: "FC", output_size: 4 } },
  });
await Deno.writeTextFile(`${specs}/filters.json`, conv({ num_filters: 1e9 }));
await Deno.writeTextFile(`${specs}/padding.json`, conv({ padding: 1e15 }));
await Deno.writeTextFile(
  `${specs}/dense.json`,
  JSON.stringify({
    conv_layers: { layer0: { type: "POOL" } },
    mlp_layers: { layer0: { type: "FC", output_size: 1e10 } },
  }),
);

const SINE = ["--dataset", "sine_10", "--layers", "4", "--epochs", "1", "--backend", "cpu"];
const FASHION = ["--dataset", "fashion", "--epochs", "1", "--backend", "cpu"];

/** [what, cli arguments, the one line expected on stderr]. */
const CLI_ROWS: [string, string[], RegExp][] = [
  ["a seed beyond 2^32", ["train", "--seed", "1e300"], /--seed must be an integer from 0 up to/],
  ["a layer of 1e10 units", ["train", "--layers", "1e10"], /--layers must be one to 100 positive/],
  ["hexadecimal epochs", ["train", "--epochs", "0x1"], /--epochs must be a positive integer/],
  ["a billion CG iterations", ["train", "--cg_max_iter", "1000000000"], /in \[1, 10000\], got/],
  ["a NaN damping", ["train", "--rho", "nan"], /--rho must be a number >= 0/],
  ["an infinite learning rate", ["train", "--lr", "Infinity"], /--lr must be a number > 0/],
  ["an unknown backend", ["train", "--backend", "tpu"], /--backend must be one of auto, webgpu/],
  ["an unknown flag", ["train", "--lerning_rate", "1"], /unknown flag --lerning_rate/],
  ["a run name that escapes --path", ["train", "--f", "../../x"], /--f must be a plain folder/],
  ["an empty run name", ["train", "--f", ""], /--f is empty: give it a value/],
  ["--path that is a file", ["train", ...SINE, "--path", aFile], /is a file, not a folder/],
  ["--path under /proc", ["train", ...SINE, "--path", "/proc/sgn"], /cannot create the results/],
  ["an experiment named like a prototype property", ["reproduce", "constructor"], /unknown exp/],
  ["another one", ["reproduce", "toString"], /unknown experiment "toString"/],
  ["ten billion seeds", ["reproduce", "mnist", "--seeds", "1-10000000000"], /--seeds: "1-1/],
  ["a shard beyond the count", ["reproduce", "mnist", "--shard", "3/2"], /shard must be I\/N/],
  [
    "--data-dir that is a file",
    ["train", ...FASHION, "--architecture", "architecture_1", "--data-dir", aFile],
    /the data directory .*a-file.* is not a folder/,
  ],
  [
    "a truncated gzip IDX file",
    ["train", "--dataset", "mnist", "--epochs", "1", "--data-dir", corruptGz],
    /train-images-idx3-ubyte\.gz: not a valid gzip file/,
  ],
  [
    "test images of another size",
    ["train", "--dataset", "mnist", "--epochs", "1", "--data-dir", sizes],
    /the test images are 3x3 but the training images are 2x2/,
  ],
  [
    "a value a float32 cannot hold",
    ["train", ...SINE, "--data-dir", sine],
    /y_train\[3\] must be a finite float32, got 1e\+39/,
  ],
  [
    "an architecture that is a list",
    ["train", ...FASHION, "--architecture", `${specs}/list.json`],
    /conv net spec must be an object/,
  ],
  [
    "an empty architecture",
    ["train", ...FASHION, "--architecture", `${specs}/empty.json`],
    /conv_layers must name at least one layer/,
  ],
  [
    "an architecture with an unknown field",
    ["train", ...FASHION, "--architecture", `${specs}/extra.json`],
    /conv_layers\.layer0: unknown field "dilation"/,
  ],
  ["an unknown command", ["frobnicate"], /unknown command "frobnicate"/],
  [
    "layers that fit one by one but not together",
    ["train", "--dataset", "sine_10", "--layers", "100000", "100000", "--backend", "cpu"],
    /the network is too large: a training step needs about \d.* GiB \(MLP 1-100000-100000-1/,
  ],
  [
    "a dense layer 1e10 wide",
    ["train", ...FASHION, "--architecture", `${specs}/dense.json`],
    /the network is too large: .*fc10000000000, fc10: 2070000000010 parameters/,
  ],
  [
    "a billion filters",
    ["train", ...FASHION, "--architecture", `${specs}/filters.json`],
    /the network is too large: a training step needs/,
  ],
  [
    "a padding of 1e15",
    ["train", ...FASHION, "--architecture", `${specs}/padding.json`],
    /the network is too large: a training step needs/,
  ],
  ["an empty --runs", ["reproduce", "sine_10", "--runs", ""], /--runs is empty: give it a value/],
  ["--runs naming nothing", ["reproduce", "sine_10", "--runs", ","], /--runs "," names no conf/],
  ["an empty --data-dir", ["train", ...SINE, "--data-dir", ""], /--data-dir is empty/],
  ["a repeated flag", ["train", "--epochs", "1", "--epochs", "2"], /--epochs is given twice/],
  ["a flag as a value", ["train", "--f", "--float64"], /--f needs a value, got the flag --float64/],
  [
    "a report path in a missing folder, said before training",
    ["reproduce", "sine_10", "--backend", "cpu", "--path", `${tmp}/grid`, "--report", "/no/r.html"],
    /cannot write the report to "\/no\/r\.html": the folder \/no does not exist/,
  ],
  [
    "a glob with a reversed range",
    ["report", `${tmp}/res_[9-1]`, "-o", `${tmp}/r.html`],
    /not a valid glob/,
  ],
];

for (const [what, args, expected] of CLI_ROWS) {
  Deno.test(`bad input (cli): ${what}`, async () => {
    const r = await cli(...args);
    // Nothing trained before the error: no grid folder was made.
    await assert.rejects(() => Deno.stat(`${tmp}/grid`), Deno.errors.NotFound);
    assert.equal(r.code, 2, `exit code; stderr: ${r.stderr}`);
    const lines = r.stderr.trim().split("\n").filter((l) =>
      !l.startsWith("sgn: using the") && !denoDownloadLine(l)
    );
    assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
    assert.match(lines[0], /^error: /);
    assert.match(lines[0], expected);
  });
}

/** [what, code that must throw, the expected message]. */
const API_ROWS: [string, () => unknown, RegExp][] = [
  ["a misspelled task", () => trainSine({ task: "regresion" }), /task must be "classification"/],
  ["NaN in the test data", () => trainSine({ testNaN: true }), /test set: input value 1 is NaN/],
  ["a string operand", () => ops.add(tensor([1, 2]), "x" as never), /add: operands must be/],
  ["an array operand", () => ops.mul([1, 2] as never, tensor([1])), /make it a tensor with/],
  ["numbers as SGN's parameters", () => new SGN([1, 2] as never), /SGN: parameter 0 is 1, not a/],
  ["no parameters for SGD", () => new SGD([]), /SGD: the parameters must be a non-empty list/],
  [
    "a misspelled SGN option",
    () => new SGN([], { dampRhoo: 1 } as never),
    /unknown SGN option "dampRhoo"/,
  ],
  [
    "a misspelled SGD option",
    () => new SGD([], { momentun: 0.9 } as never),
    /unknown SGD option "momentun"/,
  ],
  [
    "a misspelled train option",
    () => train({ batchsize: 3 } as never),
    /unknown train option "batchsize"/,
  ],
  [
    "a NaN learning rate",
    () => new Adam(mlp({ inputs: 1, hidden: [], outputs: 1 }).init(), { lr: NaN }),
    /Adam lr must be a number > 0, got NaN/,
  ],
  ["a fractional seed", () => trainSine({ seed: 1.5 }), /train: seed must be a non-negative/],
  ["a NaN seed", () => trainSine({ seed: NaN }), /train: seed must be a non-negative integer/],
  [
    "hidden sizes as a string",
    () => mlp({ inputs: 1, hidden: "20" as never, outputs: 1 }),
    /mlp: hidden must be an array of layer sizes/,
  ],
  ["no mlp options", () => mlp(undefined as never), /mlp: options must be an object/],
  ["one-hot with no classes", () => oneHot([0], 0), /oneHot: classes must be a positive/],
  ...["constructor", "toString", "valueOf", "__proto__", "hasOwnProperty"].map((name) =>
    [
      `an activation named ${name}`,
      () => mlp({ inputs: 1, hidden: [2], outputs: 1, activation: name as never }),
      new RegExp(`mlp: unknown activation "${name}"`),
    ] as [string, () => unknown, RegExp]
  ),
];

await init({ backend: "cpu" });

async function trainSine(o: { task?: string; testNaN?: boolean; seed?: number }) {
  const net = mlp({ inputs: 1, hidden: [3], outputs: 1 });
  const xs = Float32Array.from({ length: 16 }, (_, i) => i / 16);
  const test = Float32Array.from([0.5, NaN]);
  const opt = new SGN(net.init());
  try {
    return await train({
      network: net,
      optimizer: opt,
      task: (o.task ?? "regression") as "regression",
      backend: await init({ backend: "cpu" }),
      train: { inputs: xs, targets: xs },
      test: { inputs: o.testNaN ? test : xs, targets: o.testNaN ? test.map(() => 0) : xs },
      epochs: 1,
      batchSize: 8,
      ...(o.seed !== undefined ? { seed: o.seed } : {}),
    });
  } finally {
    opt.dispose();
  }
}

for (const [what, fn, expected] of API_ROWS) {
  Deno.test(`bad input (api): ${what}`, async () => {
    await assert.rejects(async () => await fn(), (e: Error) => {
      assert.equal(e.name, "SgnError", `${e.name}: ${e.message}`);
      assert.match(e.message, expected);
      return true;
    });
  });
}

// --- data loss ---------------------------------------------------------------------------------

const SINE_RUN = [
  "train",
  ...["--dataset", "sine_10", "--layers", "4", "--batch_size", "500", "--backend", "cpu"],
];

Deno.test("disk full: the run stops with one line and results.json keeps the last whole epoch", async () => {
  const mnt = `${tmp}/tiny`;
  await Deno.mkdir(mnt);
  const mount = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt],
    stderr: "piped",
  }).output().catch((e) => ({ success: false, stderr: new TextEncoder().encode(String(e)) }));
  if (!mount.success) {
    skipped(
      "disk full",
      `cannot mount a tmpfs here (${new TextDecoder().decode(mount.stderr).trim()})`,
    );
    return;
  }
  try {
    // Leave a few KiB free: room for config.json and some epochs, not for 40.
    await Deno.writeFile(`${mnt}/filler`, new Uint8Array(64 * 1024 - 12 * 1024));
    const r = await cli(...SINE_RUN, "--epochs", "40", "--path", mnt, "--f", "run");
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /error: cannot write .*run\/results\.json: the disk is full/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    const saved = JSON.parse(await Deno.readTextFile(`${mnt}/run/results.json`));
    assert.equal(saved.status, "running");
    assert.ok(saved.avg_loss.length >= 1 && saved.avg_loss.length < 40, `${saved.avg_loss.length}`);
    assert.equal(saved.epoch_time.length, saved.avg_loss.length, "a whole record");
    const leftovers = [...Deno.readDirSync(`${mnt}/run`)].filter((e) => e.name.endsWith(".tmp"));
    assert.deepEqual(leftovers, [], "no temporary file left behind");
  } finally {
    await new Deno.Command("umount", { args: [mnt] }).output();
  }
});

Deno.test("two runs started at once on one name: one trains, the other is refused", async () => {
  const dir = `${tmp}/race`;
  const both = await Promise.all([
    cli(...SINE_RUN, "--epochs", "2", "--path", dir, "--f", "same"),
    cli(...SINE_RUN, "--epochs", "2", "--path", dir, "--f", "same"),
  ]);
  const codes = both.map((r) => r.code).sort();
  assert.deepEqual(codes, [0, 2], both.map((r) => r.stderr).join("\n"));
  const loser = both.find((r) => r.code === 2)!;
  assert.match(loser.stderr, /claimed by another run|being trained by another run|refusing/);
  const saved = JSON.parse(await Deno.readTextFile(`${dir}/same/results.json`));
  assert.equal(saved.status, "finished");
  assert.equal(saved.avg_loss.length, 2);
});

Deno.test("a killed reproduce resumes: the dead run is moved aside and every run finishes once", async () => {
  const dir = `${tmp}/killed`;
  const args = [
    "run",
    "-A",
    new URL("../cli.ts", import.meta.url).pathname,
    "reproduce",
    ...["sine_10", "--runs", "SGN_10", "--seeds", "1-2", "--epochs", "4"],
    ...["--backend", "cpu", "--path", dir, "--no-report"],
  ];
  const child = new Deno.Command(Deno.execPath(), { args, stdout: "null", stderr: "null" })
    .spawn();
  const first = `${dir}/sine_10/res_SGN_10_1`;
  // Kill it once the first run has written an epoch.
  for (let i = 0; i < 3000; i++) {
    const text = await Deno.readTextFile(`${first}/results.json`).catch(() => "");
    if (text.includes('"running"')) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  child.kill("SIGKILL");
  await child.status;
  const killed = JSON.parse(await Deno.readTextFile(`${first}/results.json`));
  assert.equal(killed.status, "running", "killed mid-run");
  const again = await cli(...args.slice(3));
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /res_SGN_10_1: its process \d+ on .* is gone; moved aside to /);
  assert.match(again.stdout, /2 runs done, 0 skipped/);
  for (const seed of [1, 2]) {
    const r = JSON.parse(await Deno.readTextFile(`${dir}/sine_10/res_SGN_10_${seed}/results.json`));
    assert.equal(r.status, "finished");
    assert.equal(r.avg_loss.length, 4);
  }
  const aside = [...Deno.readDirSync(`${dir}/sine_10`)].filter((e) => e.name.includes(".stale-"));
  assert.equal(aside.length, 1, "the dead run kept, aside");
  const third = await cli(...args.slice(3));
  assert.match(third.stdout, /0 runs done, 2 skipped/, "nothing runs twice");
});

Deno.test("a run that diverges after some epochs keeps them, marked diverged", async () => {
  const dir = `${tmp}/diverged`;
  const r = await cli(
    "train",
    ...["--dataset", "boston", "--layers", "16", "16", "--solver", "SGD", "--lr", "20"],
    ...["--epochs", "6", "--batch_size", "101", "--backend", "cpu", "--path", dir, "--f", "d"],
  );
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /error: epoch \d: the (test|mean training) loss is (Infinity|NaN)/);
  const saved = JSON.parse(await Deno.readTextFile(`${dir}/d/results.json`));
  assert.equal(saved.status, "diverged");
  assert.match(saved.status_reason, /the run diverged/);
  assert.ok(saved.avg_loss.length >= 1, "the finished epochs are kept");
  assert.ok(saved.avg_loss.every(Number.isFinite) && saved.test_loss.every(Number.isFinite));
});

Deno.test("bad input (api): a second step() before the first settles is refused, and no update is lost", async () => {
  const net = mlp({ inputs: 1, hidden: [3], outputs: 1 });
  const x = tensor([[0.1], [0.5], [0.9]]);
  const y = tensor([[0.2], [0.4], [0.8]]);
  const { meanSquaredError } = await import("../models/losses.ts");
  for (
    const make of [() => new SGN(net.init()), () => new SGD(net.init()), () => new Adam(net.init())]
  ) {
    const opt = make();
    try {
      const model = (...p: ReturnType<typeof net.init>) => net.forward(p, x);
      const first = opt.step(model, meanSquaredError(y));
      await assert.rejects(
        () => opt.step(model, meanSquaredError(y)),
        (e: Error) => e.name === "SgnError" && /previous step has not finished/.test(e.message),
      );
      await first;
      // The refused call changed nothing: the next step runs as the second one.
      await opt.step(model, meanSquaredError(y));
      assert.equal(opt.t, 2);
    } finally {
      opt.dispose();
    }
  }
});

// --- compressed data -----------------------------------------------------------------------

Deno.test("data: a small gzip file that inflates far past its IDX header's size is refused while inflating", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sgn-gzip-bomb-" });
  try {
    await writeIdxDir(dir, {}, true);
    // Three 2x2 images announced, then 64 MiB of zeros: about 64 KiB compressed.
    const bomb = new Uint8Array(16 + 64 * 2 ** 20);
    bomb.set(idx(3, [3, 2, 2], new Array(12).fill(1)).subarray(0, 16));
    await Deno.writeFile(`${dir}/train-images-idx3-ubyte.gz`, await gzip(bomb));
    const { loadMnist } = await import("../datasets/mod.ts");
    await assert.rejects(
      () => loadMnist("mlp", dir),
      /train-images-idx3-ubyte\.gz: this gzip file inflates to more than 1048604 bytes, past the size its header announces/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("data: a gzip file of two members (cat a.gz b.gz; gzip -t accepts it) is read whole", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sgn-gzip-members-" });
  try {
    await writeIdxDir(dir, {}, true);
    const images = idx(3, [3, 2, 2], [0, 255, 0, 255, 10, 20, 30, 40, 1, 2, 3, 4]);
    const [a, b] = [await gzip(images.subarray(0, 11)), await gzip(images.subarray(11))];
    const two = new Uint8Array(a.length + b.length);
    two.set(a);
    two.set(b, a.length);
    await Deno.writeFile(`${dir}/train-images-idx3-ubyte.gz`, two);
    const { loadMnist } = await import("../datasets/mod.ts");
    const data = await loadMnist("mlp", dir);
    assert.deepEqual(
      Array.from(data.train.inputs, (v) => Math.round(v * 255)),
      [0, 255, 0, 255, 10, 20, 30, 40, 1, 2, 3, 4],
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// --- names looked up in tables ---------------------------------------------------------------

/** Names every plain object answers to: a lookup that is not an own-key check finds them. */
const PROTO_NAMES = ["constructor", "toString", "valueOf", "__proto__", "hasOwnProperty"];

Deno.test("bad input: a user-given name that a plain object inherits is unknown everywhere", async () => {
  const flags = [
    ["train", "--dataset"],
    ["train", "--solver"],
    ["train", "--architecture"],
    ["train", "--backend"],
    ["train", "--init"],
    ["train", "--order"],
    ["train", "--rho_schedule"],
    ["reproduce", "--runs"],
    ["demo", "--backend"],
  ];
  for (const name of PROTO_NAMES) {
    for (const [command, flag] of flags) {
      const args = command === "reproduce"
        ? ["reproduce", "sine_10", flag, name, "--dry-run"]
        : command === "train"
        ? [
          "train",
          "--epochs",
          "1",
          ...(flag === "--dataset" ? [] : ["--dataset", "sine_10"]),
          flag,
          name,
        ]
        : [command, flag, name];
      const r = await cli(...args);
      assert.equal(r.code, 2, `${args.join(" ")}: exit ${r.code}\n${r.stderr}`);
      assert.match(r.stderr, /^error: /m, args.join(" "));
      assert.ok(r.stderr.includes(name), `${args.join(" ")}: the error names "${name}"`);
    }
    const r = await cli("reproduce", name);
    assert.equal(r.code, 2, `reproduce ${name}`);
    // Through the API: an activation in mlp() and in a conv net's spec.
    assert.throws(
      () => mlp({ inputs: 1, hidden: [1], outputs: 1, activation: name as never }),
      (e: Error) => e.name === "SgnError" && e.message.includes(`"${name}"`),
    );
    const { convNet } = await import("../models/networks.ts");
    assert.throws(
      () =>
        convNet(
          {
            conv_layers: { layer0: { type: "ACT", activation: name as never } },
          },
          [1, 4, 4],
          2,
        ),
      (e: Error) => e.name === "SgnError" && e.message.includes(`"${name}"`),
      `conv net activation ${name}`,
    );
  }
});
