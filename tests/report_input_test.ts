/**
 * `cli.ts report` on hostile input and paths: the command's exit codes, symlink loops, FIFOs,
 * devices and folders where files should be, oversized files, --out onto an input, and writes
 * that are whole or not at all.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { writeFileAtomic } from "../train/atomic.ts";
import { SgnError } from "../errors.ts";
import { collectRuns, expandGlob, INPUT_LIMITS, NoRunsError, writeReport } from "../report/mod.ts";
import { reportCommand } from "../cli/report.ts";
import { RUN, SGN_CONFIG, writeRun } from "./report_fixtures.ts";

Deno.test("report: the command's errors exit 2; no run at all is an error", async () => {
  const root = await Deno.makeTempDir({ prefix: "sgn-report-test-" });
  try {
    await writeRun(join(root, "res_SGN_3_1"), "{bad", SGN_CONFIG);
    await assert.rejects(
      writeReport([root], join(root, "r.html")),
      (e: unknown) =>
        e instanceof NoRunsError && e.problems.length === 1 &&
        e.problems[0].file === join(root, "res_SGN_3_1/results.json"),
    );
    assert.equal(await reportCommand([root, "--out", join(root, "r.html")]), 2);
    assert.equal(await reportCommand([root]), 2);
    assert.equal(await reportCommand(["--out", join(root, "r.html")]), 2);
    assert.equal(await reportCommand(["--bogus"]), 2);
    await assert.rejects(Deno.stat(join(root, "r.html")), Deno.errors.NotFound);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

const CLI = new URL("../cli.ts", import.meta.url).pathname;

/** Rejects when `promise` has not settled after `ms`, so a hang fails the test instead of stalling it. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not end within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** `cli.ts report ...args` in a subprocess, killed after `ms`. */
async function runReportCli(args: string[], ms = 120_000) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), ms);
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CLI, "report", ...args],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
      signal: abort.signal,
    }).output();
    return {
      code: out.code,
      signal: out.signal,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: new TextDecoder().decode(out.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
}

/** The error output of a command that failed cleanly: "error: ..." on one line, no stack. */
function assertOneLineError(stderr: string, why: RegExp) {
  const lines = stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, `more than one line on stderr:\n${stderr}`);
  assert.match(lines[0], /^error: /);
  assert.match(lines[0], why);
  assert.doesNotMatch(stderr, /^\s+at /m, "a stack trace");
}

async function mkfifo(path: string) {
  const { code, stderr } = await new Deno.Command("mkfifo", { args: [path], stderr: "piped" })
    .output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
}

Deno.test("report: symlink loops end, and the real runs are found once", async () => {
  const root = await Deno.makeTempDir({ prefix: "sgn-report-test-" });
  try {
    await writeRun(join(root, "a/res_SGN_3_1"), RUN, SGN_CONFIG);
    await writeRun(join(root, "b/res_SGN_3_2"), RUN, SGN_CONFIG);
    // Two loops back to the root: a walk that follows links without remembering where it has
    // been branches twice per level (2^40 paths before the kernel's symlink limit stops it).
    await Deno.symlink("..", join(root, "a/loop"));
    await Deno.symlink("..", join(root, "b/loop"));
    const runs = [join(root, "a/res_SGN_3_1"), join(root, "b/res_SGN_3_2")];

    const globbed = await within(20_000, "expandGlob", expandGlob(join(root, "**/res_SGN_*")));
    assert.deepEqual(globbed.sort(), runs);
    assert.deepEqual(
      (await within(20_000, "expandGlob", expandGlob(join(root, "a/loop/**/res_SGN_3_1")))).length,
      1,
    );
    for (const path of [root, join(root, "**/res_SGN_*"), join(root, "a/loop")]) {
      const c = await within(20_000, `collectRuns(${path})`, collectRuns([{ label: "x", path }]));
      assert.deepEqual(c.runs.map((r) => r.seed).sort(), ["1", "2"], path);
      assert.deepEqual(c.groups.map((g) => g.label), ["x a SGN_3 (n=1)", "x b SGN_3 (n=1)"]);
      assert.deepEqual(c.problems, [], path);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("report: only regular files are read: a FIFO, /dev/zero, a folder are problems", async () => {
  const root = await Deno.makeTempDir({ prefix: "sgn-report-test-" });
  try {
    await writeRun(join(root, "res_SGN_3_1"), RUN, SGN_CONFIG);
    await writeRun(join(root, "res_SGN_3_2"), undefined, SGN_CONFIG);
    await mkfifo(join(root, "res_SGN_3_2/results.json"));
    await writeRun(join(root, "res_SGN_3_3"), undefined, SGN_CONFIG);
    await Deno.symlink("/dev/zero", join(root, "res_SGN_3_3/results.json"));
    await writeRun(join(root, "res_SGN_3_4"), undefined, SGN_CONFIG);
    await Deno.mkdir(join(root, "res_SGN_3_4/results.json"));
    await writeRun(join(root, "res_SGN_3_5"), undefined, SGN_CONFIG);
    await Deno.symlink(join(root, "gone.json"), join(root, "res_SGN_3_5/results.json"));
    // A config.json that is not a regular file only loses the run its name: still drawn.
    await writeRun(join(root, "res_SGN_3_6"), RUN);
    await mkfifo(join(root, "res_SGN_3_6/config.json"));

    const c = await within(20_000, "collectRuns", collectRuns([{ label: "x", path: root }]));
    assert.deepEqual(c.runs.map((r) => r.seed), ["1", "6"]);
    const expect: [string, RegExp, boolean][] = [
      ["res_SGN_3_2/results.json", /^is a named pipe \(FIFO\), not a regular file/, true],
      [
        "res_SGN_3_3/results.json",
        /^is a symlink to \/dev\/zero, a character device, not a regular file/,
        true,
      ],
      ["res_SGN_3_4/results.json", /^is a folder, not a regular file/, true],
      ["res_SGN_3_5/results.json", /^is a symlink to .*gone\.json, which does not exist/, true],
      ["res_SGN_3_6/config.json", /^is a named pipe \(FIFO\), not a regular file/, false],
    ];
    for (const [file, why, skipped] of expect) {
      const p = c.problems.find((p) => p.file === join(root, file));
      assert.ok(p, `no problem for ${file}: ${JSON.stringify(c.problems)}`);
      assert.match(p.reason, why);
      assert.equal(p.skipped, skipped, file);
    }
    assert.equal(c.problems.length, expect.length, JSON.stringify(c.problems));

    // The command ends too, lists the problems and draws the two good runs.
    const out = join(root, "r.html");
    const run = await runReportCli([root, "--out", out]);
    assert.equal(run.signal, null, `killed: the command hung\n${run.stderr}`);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /2 runs in 1 groups, 5 problems/);
    assert.match(run.stderr, /res_SGN_3_2\/results\.json: is a named pipe/);
    assert.match(run.stderr, /res_SGN_3_3\/results\.json: is a symlink to \/dev\/zero/);
    assert.ok((await Deno.stat(out)).size > 1000);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("report: files over the size limits are problems and are not read", async () => {
  const root = await Deno.makeTempDir({ prefix: "sgn-report-test-" });
  try {
    assert.equal(INPUT_LIMITS.resultsJson, 64 * 2 ** 20);
    assert.equal(INPUT_LIMITS.configJson, 2 ** 20);
    // One byte over the real limit, as a sparse file: no 64 MiB written or read.
    await writeRun(join(root, "big/res_SGN_3_1"), undefined, SGN_CONFIG);
    const big = await Deno.open(join(root, "big/res_SGN_3_1/results.json"), {
      write: true,
      create: true,
    });
    await big.truncate(64 * 2 ** 20 + 1);
    big.close();
    await writeRun(join(root, "big/res_SGN_3_2"), RUN, SGN_CONFIG);
    const c = await collectRuns([{ label: "x", path: join(root, "big") }]);
    assert.deepEqual(c.runs.map((r) => r.seed), ["2"]);
    assert.deepEqual(c.problems, [{
      file: join(root, "big/res_SGN_3_1/results.json"),
      reason: "is 67108865 bytes, over the 64 MiB limit for a results.json: not read",
      skipped: true,
    }]);

    // Smaller limits from code: results.json and config.json each over theirs.
    const results = JSON.stringify(RUN);
    const config = JSON.stringify(SGN_CONFIG);
    await writeRun(join(root, "small/res_SGN_3_1"), results, config);
    await writeRun(join(root, "small/res_SGN_3_2"), `${results}${" ".repeat(100)}`, config);
    const limits = { resultsJson: results.length, configJson: config.length - 1 };
    const s = await collectRuns([{ label: "x", path: join(root, "small") }], { limits });
    assert.deepEqual(s.runs.map((r) => r.seed), ["1"]);
    assert.deepEqual(s.problems.map((p) => [p.file, p.reason, p.skipped]), [
      [
        join(root, "small/res_SGN_3_1/config.json"),
        `is ${config.length} bytes, over the ${config.length - 1} bytes limit for a ` +
        "config.json: not read",
        false,
      ],
      [
        join(root, "small/res_SGN_3_2/results.json"),
        `is ${results.length + 100} bytes, over the ${results.length} bytes limit for a ` +
        "results.json: not read",
        true,
      ],
    ]);
    await assert.rejects(
      collectRuns([{ label: "x", path: root }], { limits: { configJson: 0 } }),
      /limits.configJson must be a positive number of bytes, got 0/,
    );

    // A file whose size stat does not know (0 in /proc) is still cut off while read.
    if (Deno.build.os === "linux") {
      await writeRun(join(root, "proc/res_SGN_3_1"), undefined, SGN_CONFIG);
      await Deno.symlink("/proc/self/status", join(root, "proc/res_SGN_3_1/results.json"));
      const p = await collectRuns([{ label: "x", path: join(root, "proc") }], {
        limits: { resultsJson: 100 },
      });
      assert.equal(p.runs.length, 0);
      assert.match(p.problems[0].reason, /^grew past 100 bytes while read, over the 100 bytes/);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("report: --out must be a file in an existing folder and never an input", async () => {
  const root = await Deno.makeTempDir({ prefix: "sgn-report-test-" });
  try {
    const run = join(root, "res_SGN_3_1");
    const results = JSON.stringify(RUN);
    await writeRun(run, results, SGN_CONFIG);
    await Deno.symlink(join(run, "results.json"), join(root, "alias.html"));
    await Deno.mkdir(join(root, "other"));
    await Deno.writeTextFile(join(root, "other/config.json"), "{}");
    await Deno.symlink(join(root, "other/config.json"), join(root, "alias2.html"));
    // A run whose results.json links to a file with another name: that file is an input too.
    await Deno.mkdir(join(root, "store"));
    await Deno.writeTextFile(join(root, "store/r1.json"), results);
    await writeRun(join(root, "res_SGN_3_2"), undefined, SGN_CONFIG);
    await Deno.symlink(join(root, "store/r1.json"), join(root, "res_SGN_3_2/results.json"));
    const sources = [run, join(root, "res_SGN_3_2")];
    const refused: [string, RegExp][] = [
      [join(root, "missing/r.html"), /the folder .*missing does not exist; create it first/],
      [root, /that is a folder; give the report a file name, e.g. .*\/report\.html/],
      [`${root}/`, /that names a folder; give a file name/],
      [join(run, "results.json"), /a file named results\.json would be taken for a run's/],
      [join(root, "elsewhere/config.json"), /a file named config\.json/],
      [join(root, "alias.html"), /a file named results\.json would be taken for a run's/],
      [join(root, "store/r1.json"), /that is .*store\/r1\.json, one of the report's inputs/],
      [join(root, "alias2.html"), /a file named config\.json would be taken for a run's/],
      ["/dev/null", /that is not a regular file \(a device or a FIFO\)/],
      [join(root, "alias.html/r.html"), /is not a folder/],
    ];
    for (const [out, why] of refused) {
      await assert.rejects(
        writeReport(sources, out),
        (e: unknown) => {
          assert.ok(e instanceof SgnError, `${out}: ${e}`);
          assert.match(e.message, new RegExp(`^cannot write the report to "${out}": `));
          assert.match(e.message, why);
          return true;
        },
      );
    }
    assert.equal(await Deno.readTextFile(join(run, "results.json")), results);
    assert.deepEqual(
      [...Deno.readDirSync(root)].map((e) => e.name).sort(),
      ["alias.html", "alias2.html", "other", "res_SGN_3_1", "res_SGN_3_2", "store"],
    );
    assert.deepEqual([...Deno.readDirSync(join(root, "store"))].map((e) => e.name), ["r1.json"]);
    assert.equal(await Deno.readTextFile(join(root, "store/r1.json")), results);
    assert.equal(await Deno.readTextFile(join(root, "other/config.json")), "{}");

    // The command: one line, exit code 2, no stack trace; and a write that fails is the same.
    const cases: [string, RegExp][] = [
      [join(root, "missing/r.html"), /does not exist; create it first \(mkdir -p /],
      [root, /that is a folder/],
      [join(run, "results.json"), /would be taken for a run's results/],
      [join(root, "store/r1.json"), /one of the report's inputs/],
    ];
    if (Deno.build.os === "linux") {
      // Nobody, not even root, creates files in /proc: the write itself fails.
      cases.push(["/proc/sgn-report.html", /^error: cannot write the report to "\/proc\/.*"/]);
    }
    const runs = await Promise.all(cases.map(([out]) => runReportCli([...sources, "--out", out])));
    runs.forEach((r, i) => {
      assert.equal(r.code, 2, `--out ${cases[i][0]}: exit ${r.code}\n${r.stderr}`);
      assertOneLineError(r.stderr, cases[i][1]);
      assert.equal(r.stdout, "");
    });
    assert.equal(await Deno.readTextFile(join(run, "results.json")), results);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("writeFileAtomic: whole or not at all, and no temporary file left", async () => {
  const root = await Deno.makeTempDir({ prefix: "sgn-atomic-test-" });
  const names = () => [...Deno.readDirSync(root)].map((e) => e.name).sort();
  try {
    const dest = join(root, "results.json");
    await writeFileAtomic(dest, "first");
    assert.equal(await Deno.readTextFile(dest), "first");
    await Deno.chmod(dest, 0o640);
    await writeFileAtomic(dest, new TextEncoder().encode("second"));
    assert.equal(await Deno.readTextFile(dest), "second");
    assert.equal((await Deno.stat(dest)).mode! & 0o777, 0o640, "the mode is kept");
    assert.deepEqual(names(), ["results.json"]);

    // The rename fails (the destination is a folder with a file in it): nothing is left.
    await Deno.mkdir(join(root, "taken"));
    await Deno.writeTextFile(join(root, "taken/x"), "x");
    await assert.rejects(writeFileAtomic(join(root, "taken"), "data"));
    assert.deepEqual(names(), ["results.json", "taken"]);
    assert.deepEqual([...Deno.readDirSync(join(root, "taken"))].map((e) => e.name), ["x"]);
    await assert.rejects(
      writeFileAtomic(join(root, "no/such/folder/f"), "data"),
      Deno.errors.NotFound,
    );

    // The write fails half-way (a file size limit of 64 KiB, with SIGXFSZ ignored so that the
    // write returns EFBIG): the old file is whole and the temporary file is gone. A plain
    // Deno.writeTextFile would leave a 64 KiB truncated file here.
    if (Deno.build.os === "linux") {
      const script = join(root, "write.ts");
      await Deno.writeTextFile(
        script,
        `import { writeFileAtomic } from ${
          JSON.stringify(new URL("../train/atomic.ts", import.meta.url).href)
        };
try {
  await writeFileAtomic(${JSON.stringify(dest)}, "y".repeat(1 << 20));
  console.log("written");
} catch (e) {
  console.log("failed:", (e as Error).message);
}`,
      );
      const { code, stdout, stderr } = await new Deno.Command("bash", {
        args: ["-c", 'ulimit -f 64; trap "" XFSZ; exec "$0" run -A "$1"', Deno.execPath(), script],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const said = new TextDecoder().decode(stdout);
      assert.equal(code, 0, new TextDecoder().decode(stderr));
      assert.match(said, /^failed: File too large/, said);
      const after = await Deno.readTextFile(dest);
      assert.ok(after === "second", `the destination holds ${after.length} bytes, not "second"`);
      assert.deepEqual(names(), ["results.json", "taken", "write.ts"]);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
