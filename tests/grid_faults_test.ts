/**
 * A grid over results folders that a cluster and its users leave behind: finished runs of other
 * settings (fewer epochs, another precision), symbolic links, a file where a run folder belongs,
 * a run that says finished but holds no epoch under an unreadable claim, and a live process whose
 * heartbeat stalled under a tiny --stale-minutes. `reproduce` must count none of them as done,
 * take over no live run, go on past every odd folder, list each in its summary and exit non-zero.
 * The command line as a user runs it.
 */
import assert from "node:assert/strict";
import { cli } from "./data_files.ts";

const GRID = ["reproduce", "sine_10", "--runs", "SGN_10", "--backend", "cpu", "--no-report"];

Deno.test("grid faults: done means done with these settings, odd folders are listed and passed", async () => {
  const root = await Deno.makeTempDir({ prefix: "sgn-grid-faults-" });
  try {
    const first = await cli(...GRID, "--seeds", "1-2", "--epochs", "1", "--path", root);
    assert.equal(first.code, 0, first.stderr);
    const dir = `${root}/sine_10`;
    const run = (seed: number) => `${dir}/res_SGN_10_${seed}`;
    // Seed 2: the same run, recorded in another precision.
    const config = JSON.parse(await Deno.readTextFile(`${run(2)}/config.json`));
    await Deno.writeTextFile(
      `${run(2)}/config.json`,
      JSON.stringify({ ...config, dtype: "float64" }),
    );
    // Seeds 3-5: a link to another seed's run, a dangling link, a file.
    await Deno.symlink(run(1), run(3));
    await Deno.symlink(`${root}/nowhere`, run(4));
    await Deno.writeTextFile(run(5), "not a run");
    // Seed 6: "finished" with no epoch, under a claim whose pid is not a number.
    await Deno.mkdir(run(6));
    await Deno.writeTextFile(
      `${run(6)}/results.json`,
      JSON.stringify({ avg_loss: [], epoch_time: [], status: "finished" }),
    );
    await Deno.writeTextFile(
      `${run(6)}/.claim`,
      JSON.stringify({ host: Deno.hostname(), pid: "abc", started: new Date().toISOString() }),
    );
    // Seed 7: running, claimed by a live process here (this one) whose heartbeat stopped.
    await Deno.mkdir(run(7));
    await Deno.writeTextFile(
      `${run(7)}/results.json`,
      JSON.stringify({ avg_loss: [1], epoch_time: [1], status: "running" }),
    );
    await Deno.writeTextFile(
      `${run(7)}/.claim`,
      JSON.stringify({ host: Deno.hostname(), pid: Deno.pid, started: new Date().toISOString() }),
    );
    const old = new Date(Date.now() - 3600_000);
    await Deno.utime(`${run(7)}/.claim`, old, old);
    const listing = async () =>
      (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
    const before = await listing();

    const r = await cli(
      ...GRID,
      ...["--seeds", "1-7", "--epochs", "2", "--path", root, "--stale-minutes", "0.001"],
    );
    assert.equal(r.code, 1, `a grid with failed runs exits 1: ${r.stderr}`);
    const line = (seed: number) =>
      r.stdout.split("\n").find((l) => l.includes(`res_SGN_10_${seed}:`)) ?? "";
    assert.match(line(1), /FAILED: .*other settings \(epochs 1 \(asked 2\)\): left alone/);
    assert.match(line(2), /FAILED: .*other settings \(epochs 1 \(asked 2\), dtype "float64"/);
    assert.match(line(3), /FAILED: .*is a symbolic link, not a run folder of this grid/);
    assert.match(line(4), /FAILED: .*is a symbolic link/);
    assert.match(line(5), /FAILED: .*is a file where a run folder belongs/);
    assert.match(
      r.stdout,
      /res_SGN_10_6: its results\.json says finished but holds no epoch; its claim is unreadable; moved aside/,
    );
    assert.match(r.stdout, /res_SGN_10_6: done in/);
    assert.match(
      line(7),
      /left to another process .*heartbeat stopped 60 minutes ago, but its process \d+ still runs here/,
    );
    assert.match(r.stdout, /1 runs done, 0 skipped, 1 left to other processes, 5 failed/);
    // Nothing but seed 6 moved; the others are as they were.
    const after = await listing();
    const moved = after.filter((n) => n.startsWith("res_SGN_10_6.stale-"));
    assert.equal(moved.length, 1);
    assert.deepEqual(after.filter((n) => !moved.includes(n)), before);
    assert.equal(
      JSON.parse(await Deno.readTextFile(`${run(7)}/results.json`)).status,
      "running",
      "the live run was not touched",
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
