/**
 * Generated cases for the run machinery's files, each checked against a small model of the
 * documented rules written here, not against the code's other paths:
 * - grid shards: for random experiments, configurations, seeds and shard counts N (1 to the
 *   grid's size + 3), the N shards partition the plan exactly, run p in shard p mod N + 1;
 * - atomic writes: leftover temporary files of a crashed writer, a destination that cannot be
 *   replaced, racing writers in this process and in child processes: the file is always one
 *   writer's whole content, its mode is kept, and no temporary file is left behind;
 * - results folders in random states (finished, seed-format, diverged, interrupted, running,
 *   truncated, missing files, live, dead and stale claims): what `reproduce` skips, leaves to a
 *   live process or reruns (moving the old folder aside), and what the report reads or lists as
 *   a problem.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fc, property } from "./property.ts";
import { gridGroups, GRIDS, planRuns, reproduce } from "../train/reproduce.ts";
import { runConfig } from "../train/experiment.ts";
import { writeFileAtomic } from "../train/atomic.ts";
import { collectRuns } from "../report/mod.ts";

// --- grid shards -----------------------------------------------------------------------------

const gridCase = fc.constantFrom(...Object.keys(GRIDS)).chain((experiment) =>
  fc.record({
    experiment: fc.constant(experiment),
    runs: fc.shuffledSubarray(gridGroups(GRIDS[experiment]), { minLength: 1, maxLength: 5 }),
    seeds: fc.uniqueArray(fc.integer({ min: 0, max: 2 ** 32 - 1 }), {
      minLength: 1,
      maxLength: 5,
    }),
  }).chain((g) =>
    fc.record({
      grid: fc.constant(g),
      count: fc.integer({ min: 1, max: g.runs.length * g.seeds.length + 3 }),
    })
  )
);

property("grid shards partition the plan: every run in exactly one shard", gridCase, 100, (c) => {
  const { experiment, runs, seeds } = c.grid;
  const options = { runs, seeds, path: "/nowhere" };
  // The plan, enumerated here: configurations in the order given, seeds within each.
  const names = runs.flatMap((g) => seeds.map((s) => `res_${g}_${s}`));
  assert.deepEqual(planRuns(experiment, options).map((r) => r.name), names);
  const owner = new Map<string, number>();
  for (let index = 1; index <= c.count; index++) {
    const shard = planRuns(experiment, { ...options, shard: { index, count: c.count } });
    for (const r of shard) {
      assert.ok(!owner.has(r.name), `${r.name} in shards ${owner.get(r.name)} and ${index}`);
      owner.set(r.name, index);
    }
  }
  assert.equal(owner.size, names.length, "runs lost");
  for (const index of [0, c.count + 1]) {
    assert.throws(
      () => planRuns(experiment, { ...options, shard: { index, count: c.count } }),
      /shard must be I\/N/,
      `shard ${index}/${c.count}`,
    );
  }
  names.forEach((name, p) => assert.equal(owner.get(name), (p % c.count) + 1, name));
});

// --- atomic writes ---------------------------------------------------------------------------

const LEFTOVERS = [".results.json.tmp", "results.json.tmp", "results.json~", ".results.json.1.tmp"];

const atomicCase = fc.record({
  before: fc.option(fc.uint8Array({ maxLength: 3000 }), { nil: undefined }),
  data: fc.oneof(fc.uint8Array({ maxLength: 70000 }), fc.string({ unit: "grapheme" })),
  leftovers: fc.subarray(LEFTOVERS),
  hexLeftover: fc.option(fc.stringMatching(/^[0-9a-f]{12}$/), { nil: undefined }),
  mode: fc.constantFrom(0o600, 0o640, 0o644, 0o666, 0o755, 0o777),
  blocked: fc.boolean(),
});

async function listing(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

const utf8 = (d: string | Uint8Array) => typeof d === "string" ? new TextEncoder().encode(d) : d;

property(
  "atomic writes: whole content, mode kept, a crashed writer's leftovers and failures leave no temp",
  atomicCase,
  25,
  async (c) => {
    const dir = await Deno.makeTempDir({ prefix: "sgn-atomic-" });
    try {
      const path = join(dir, "results.json");
      const planted = [...c.leftovers];
      if (c.hexLeftover) planted.push(`.results.json.${c.hexLeftover}.tmp`);
      for (const name of planted) await Deno.writeTextFile(join(dir, name), "half a wri");
      if (c.blocked) {
        // A destination that cannot be replaced: a non-empty folder of that name.
        await Deno.mkdir(path);
        await Deno.writeTextFile(join(path, "inside"), "x");
      } else if (c.before) {
        await Deno.writeFile(path, c.before);
        await Deno.chmod(path, c.mode);
      }
      const expectedNames = [...new Set([...planted, "results.json"])].sort();
      if (c.blocked) {
        await assert.rejects(() => writeFileAtomic(path, c.data));
        assert.deepEqual(await listing(dir), expectedNames, "no temporary file left");
        assert.equal(await Deno.readTextFile(join(path, "inside")), "x");
        return;
      }
      await writeFileAtomic(path, c.data);
      assert.deepEqual(await Deno.readFile(path), utf8(c.data));
      assert.deepEqual(await listing(dir), expectedNames, "only the destination was added");
      for (const name of planted) {
        assert.equal(await Deno.readTextFile(join(dir, name)), "half a wri", `${name} untouched`);
      }
      if (c.before) assert.equal((await Deno.stat(path)).mode! & 0o777, c.mode, "mode kept");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

/** Distinct contents, each recognisable whole: a header naming the writer, then filler. */
function contents(sizes: number[]): Uint8Array[] {
  return sizes.map((size, w) => {
    const out = new Uint8Array(size + 16);
    out.set(new TextEncoder().encode(`writer ${String(w).padStart(4, "0")}:`));
    for (let i = 12; i < out.length; i++) out[i] = 97 + ((i * 7 + w * 13) % 26);
    return out;
  });
}

function whichWriter(got: Uint8Array, all: Uint8Array[]): number {
  const w = all.findIndex((c) => c.length === got.length && c.every((b, i) => got[i] === b));
  assert.ok(w >= 0, `a read saw ${got.length} bytes that are no writer's whole content`);
  return w;
}

property(
  "atomic writes racing in one process: every read sees one writer's whole file",
  fc.array(fc.integer({ min: 0, max: 400000 }), { minLength: 2, maxLength: 8 }),
  8,
  async (sizes) => {
    const dir = await Deno.makeTempDir({ prefix: "sgn-atomic-race-" });
    try {
      const path = join(dir, "results.json");
      const all = contents(sizes);
      let done = false;
      const reader = (async () => {
        while (!done) {
          try {
            whichWriter(await Deno.readFile(path), all);
          } catch (e) {
            if (!(e instanceof Deno.errors.NotFound)) throw e;
          }
          await new Promise((r) => setTimeout(r, 0));
        }
      })();
      try {
        // Every writer writes twice, so that later writes replace an existing file.
        await Promise.all([...all, ...all].map((c) => writeFileAtomic(path, c)));
      } finally {
        done = true;
        await reader;
      }
      whichWriter(await Deno.readFile(path), all);
      assert.deepEqual(await listing(dir), ["results.json"], "no temporary file left");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

const CHILD = `
import { writeFileAtomic } from ${
  JSON.stringify(new URL("../train/atomic.ts", import.meta.url).href)
};
const [path, w, size, times] = Deno.args;
const out = new Uint8Array(Number(size) + 16);
out.set(new TextEncoder().encode("writer " + w.padStart(4, "0") + ":"));
for (let i = 12; i < out.length; i++) out[i] = 97 + ((i * 7 + Number(w) * 13) % 26);
for (let k = 0; k < Number(times); k++) await writeFileAtomic(path, out);
`;

Deno.test("atomic writes racing in child processes: every read sees one writer's whole file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sgn-atomic-procs-" });
  try {
    const script = join(dir, "child.ts");
    await Deno.writeTextFile(script, CHILD);
    const out = join(dir, "out");
    await Deno.mkdir(out);
    const path = join(out, "results.json");
    const sizes = [0, 150000, 600000, 31];
    const all = contents(sizes);
    const children = sizes.map((size, w) =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--no-check",
          "--allow-read",
          "--allow-write",
          script,
          path,
          `${w}`,
          `${size}`,
          "15",
        ],
        stdout: "null",
        stderr: "piped",
      }).spawn()
    );
    let finished = 0;
    const statuses = Promise.all(children.map((c) => c.output().finally(() => finished++)));
    const seen = new Set<number>();
    while (finished < children.length) {
      try {
        seen.add(whichWriter(await Deno.readFile(path), all));
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
    }
    for (const [w, s] of (await statuses).entries()) {
      assert.equal(s.code, 0, `writer ${w}: ${new TextDecoder().decode(s.stderr)}`);
    }
    seen.add(whichWriter(await Deno.readFile(path), all));
    assert.deepEqual(await listing(out), ["results.json"], "no temporary file left");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// --- results folders: what reproduce reruns, what the report reads ----------------------------

/** The states a run folder can be found in. */
const STATES = [
  "absent",
  "empty",
  "finished",
  "seedFormat",
  "diverged",
  "interrupted",
  "running",
  "truncated",
  "unknownStatus",
  "configOnly",
  "emptyLoss",
] as const;
type FolderState = (typeof STATES)[number];
/**
 * Claims: a live process here (heartbeat just now), a dead one, a live one whose heartbeat
 * stopped (hung), another host's with a recent heartbeat (half the stale time ago) or an old one,
 * and an unreadable claim file.
 */
const CLAIMS = [
  "none",
  "liveHere",
  "deadHere",
  "hungHere",
  "freshElsewhere",
  "staleElsewhere",
  "garbage",
] as const;
type Claim = (typeof CLAIMS)[number];

/** A folder's case, its epoch count near the planned one (where "finished" is decided). */
const folderCase = (planned: number) =>
  fc.record({
    state: fc.constantFrom(...STATES),
    claim: fc.constantFrom(...CLAIMS),
    epochs: fc.constantFrom(0, planned - 1, planned, planned, planned + 1),
    nan: fc.constantFrom(false, false, true),
    bad: fc.constantFrom(NaN, Infinity, -Infinity),
    config: fc.constantFrom(...CONFIGS),
  });
/**
 * What a folder's config.json records against the settings the grid asks for: the same, other
 * epochs, another precision, or nothing readable.
 */
const CONFIGS = ["same", "same", "otherEpochs", "otherDtype", "garbled"] as const;
type FolderCase = {
  state: FolderState;
  claim: Claim;
  epochs: number;
  nan: boolean;
  bad: number;
  config: (typeof CONFIGS)[number];
};

/** The losses a folder's results.json holds: a diverged one ends NaN or ±Infinity. */
function lossOf(c: FolderCase, seq: number): number[] {
  const loss = Array.from({ length: c.epochs }, (_, k) => 1 / (k + 2 + seq));
  if (c.nan && loss.length) loss[loss.length - 1] = c.bad;
  return loss;
}

const HOST = Deno.hostname();
/** Above Linux's largest pid (pid_max is at most 2^22): a process that cannot exist. */
const DEAD_PID = 999_999_999;
const STALE_MS = 60_000;

/** Python's json.dump of a list with NaN or ±Infinity, as the seed's diverged runs hold it. */
function pyList(xs: number[]): string {
  return `[${xs.map((x) => (Number.isNaN(x) ? "NaN" : String(x))).join(", ")}]`;
}

/**
 * Writes a run folder in state `c`. With `asked` (the config.json the grid's run would write),
 * its config.json is that, changed as `c.config` says; without, a token config.
 */
async function makeFolder(
  dir: string,
  c: FolderCase,
  seq: number,
  asked?: Record<string, unknown>,
): Promise<void> {
  if (c.state === "absent") return;
  await Deno.mkdir(dir, { recursive: true });
  const loss = lossOf(c, seq);
  const times = loss.map((_, k) => k + 1);
  const body = (status?: string, reason?: string) =>
    `{"avg_loss": ${pyList(loss)}, "test_loss": ${pyList(loss)}, "epoch_time": ${
      pyList(times)
    }, "tot_time": ${loss.length}, "tot_iterations": ${loss.length}` +
    (status ? `, "status": "${status}"` : "") +
    (reason ? `, "status_reason": "${reason}"` : "") + "}";
  const config = !asked
    ? JSON.stringify({ config: { SOLVER: "SGN", MAX_CG_ITERS: 10 }, seed: seq })
    : c.config === "garbled"
    ? "{not json"
    : c.state === "seedFormat"
    ? JSON.stringify({ config: asked.config }) // the seed records neither epochs nor precision
    : JSON.stringify({
      ...asked,
      ...(c.config === "otherEpochs" ? { epochs: (asked.epochs as number) + 1 } : {}),
      ...(c.config === "otherDtype" ? { dtype: "float64" } : {}),
    });
  const files: Record<string, string> = {};
  switch (c.state) {
    case "empty":
      break;
    case "finished":
      files["results.json"] = body("finished");
      break;
    case "seedFormat":
      files["results.json"] = body();
      break;
    case "diverged":
      files["results.json"] = body("diverged", "epoch 3: the mean training loss is NaN");
      break;
    case "interrupted":
      files["results.json"] = body("interrupted", "interrupted in epoch 2 at step 1 of 7");
      break;
    case "running":
      files["results.json"] = body("running");
      break;
    case "truncated":
      files["results.json"] = body("finished").slice(0, 25);
      break;
    case "unknownStatus":
      files["results.json"] = body("paused");
      break;
    case "configOnly":
      break;
    case "emptyLoss":
      files["results.json"] = JSON.stringify({ avg_loss: [], epoch_time: [], status: "running" });
      break;
  }
  if (c.state !== "empty") files["config.json"] = config;
  // A live claimant wrote its claim after it started (an older claim names another process).
  const started = c.claim === "liveHere" || c.claim === "hungHere"
    ? new Date().toISOString()
    : `2026-01-0${1 + (seq % 9)}T00:00:00.000Z`;
  if (c.claim !== "none" && c.state !== "empty") {
    files[".claim"] = c.claim === "garbage" ? "{not json" : JSON.stringify({
      host: c.claim.endsWith("Here") ? HOST : `${HOST}-elsewhere`,
      pid: c.claim === "deadHere" ? DEAD_PID : Deno.pid,
      started,
    });
  }
  for (const [name, text] of Object.entries(files)) await Deno.writeTextFile(join(dir, name), text);
  if (files[".claim"]) {
    const age = c.claim === "staleElsewhere" || c.claim === "hungHere"
      ? 10 * STALE_MS
      : c.claim === "freshElsewhere"
      ? STALE_MS / 2
      : 0;
    const t = new Date(Date.now() - age);
    await Deno.utime(join(dir, ".claim"), t, t);
  }
}

/**
 * The documented rule (reproduce, run_folder.ts), written out: done, busy, run, rerun, or left
 * alone (a finished run of other settings).
 */
function expectedFate(c: FolderCase, planned: number): "done" | "busy" | "run" | "rerun" | "left" {
  if (c.state === "absent" || c.state === "empty") return "run";
  // Strict JSON: Python's bare NaN (the seed's diverged files) does not parse there.
  const parses = ["finished", "seedFormat", "diverged", "interrupted", "running", "emptyLoss"]
    .includes(c.state) && !(c.nan && c.epochs > 0 && c.state !== "emptyLoss");
  const seedFormat = c.state === "seedFormat";
  const status = seedFormat
    ? (c.epochs >= planned ? "finished" : undefined)
    : c.state === "emptyLoss"
    ? "running"
    : c.state;
  if (parses && status === "finished") {
    // Done means done with these settings: every epoch its config records, and the same config.
    const recorded = c.config === "garbled"
      ? undefined
      : c.config === "otherEpochs"
      ? planned + 1
      : planned;
    const whole = seedFormat || ((recorded === undefined || c.epochs === recorded) && c.epochs > 0);
    if (whole) {
      return c.config === "garbled" || (!seedFormat && c.config !== "same") ? "left" : "done";
    }
  }
  // Alive on this host by its pid, whatever its heartbeat; elsewhere by its heartbeat while the
  // run is unfinished; an unreadable claim proves nothing.
  if (c.claim === "liveHere" || c.claim === "hungHere") return "busy";
  if (c.claim === "freshElsewhere" && (!parses || status === "running")) return "busy";
  return "rerun";
}

const gridStates = fc.integer({ min: 1, max: 3 }).chain((planned) =>
  fc.record({
    planned: fc.constant(planned),
    folders: fc.array(folderCase(planned), { minLength: 1, maxLength: 8 }),
  })
);

property(
  "reproduce on random results folders: finished runs skipped, live ones left, the rest rerun",
  gridStates,
  30,
  async ({ planned, folders }) => {
    const root = await Deno.makeTempDir({ prefix: "sgn-reproduce-states-" });
    try {
      const seeds = folders.map((_, i) => i + 1);
      const base = join(root, "sine_10");
      const extra = { backend: "cpu" as const, "data-dir": join(root, "no-data") };
      const plan = planRuns("sine_10", {
        runs: ["SGN_10"],
        seeds,
        epochs: planned,
        path: root,
        extra,
      });
      for (const [i, c] of folders.entries()) {
        await makeFolder(
          join(base, `res_SGN_10_${seeds[i]}`),
          c,
          i,
          runConfig(plan[i].settings, ""),
        );
      }
      const before = new Map<string, string[]>();
      for (const s of seeds) {
        const d = join(base, `res_SGN_10_${s}`);
        before.set(d, await listing(d).catch(() => []));
      }
      // Every run that starts fails at once on its data (a folder that does not exist), so the
      // decision is seen without training: started runs come back as failed.
      const summary = await reproduce("sine_10", {
        runs: ["SGN_10"],
        seeds,
        epochs: planned,
        path: root,
        staleMs: STALE_MS,
        extra,
      });
      const fate = (name: string) =>
        summary.skipped.includes(name)
          ? "done"
          : summary.busy.includes(name)
          ? "busy"
          : summary.failed.some((f) => f.name === name && /other settings/.test(f.error))
          ? "left"
          : summary.failed.some((f) => f.name === name)
          ? "started"
          : "lost";
      const aside = (await listing(base).catch(() => [])).filter((n) => n.includes(".stale-"));
      for (const [i, c] of folders.entries()) {
        const name = `res_SGN_10_${seeds[i]}`;
        const want = expectedFate(c, planned);
        const what = `${name} (${c.state}, claim ${c.claim}, config ${c.config}, ${c.epochs} ` +
          `epochs of ${planned})`;
        assert.equal(fate(name), want === "run" || want === "rerun" ? "started" : want, what);
        const movedAside = aside.filter((n) => n.startsWith(`${name}.stale-`));
        assert.equal(movedAside.length, want === "rerun" ? 1 : 0, `${what}: moved aside`);
        const d = join(base, name);
        if (want === "done" || want === "busy" || want === "left") {
          assert.deepEqual(await listing(d), before.get(d), `${what}: left as it was`);
        }
        if (want === "rerun") {
          assert.deepEqual(await listing(join(base, movedAside[0])), before.get(d), what);
        }
      }
      assert.equal(
        summary.skipped.length + summary.busy.length + summary.failed.length,
        folders.length,
      );
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
);

property(
  "the report on random results folders: readable runs drawn, the others named as problems",
  fc.array(folderCase(2), { minLength: 1, maxLength: 8 }),
  20,
  async (folders) => {
    const root = await Deno.makeTempDir({ prefix: "sgn-report-states-" });
    try {
      const base = join(root, "exp");
      await Deno.mkdir(base, { recursive: true });
      for (const [i, c] of folders.entries()) {
        await makeFolder(join(base, `res_SGN_10_${i + 1}`), c, i);
      }
      const col = await collectRuns([{ label: "ours", path: root }]);
      const drawn = new Set(col.runs.map((r) => r.seed));
      const counts: Record<string, number> = {
        finished: 0,
        diverged: 0,
        interrupted: 0,
        running: 0,
      };
      for (const [i, c] of folders.entries()) {
        const valid = ["finished", "seedFormat", "diverged", "interrupted", "running"].includes(
          c.state,
        ) && c.epochs > 0;
        const name = `res_SGN_10_${i + 1}`;
        assert.equal(drawn.has(String(i + 1)), valid, `${name} (${c.state}, ${c.epochs} epochs)`);
        const run = col.runs.find((r) => r.seed === String(i + 1));
        if (run) {
          // Python's NaN and ±Infinity read back as such, every value as written.
          assert.deepEqual(run.avgLoss, lossOf(c, i), `${name}: avg_loss`);
          assert.deepEqual(run.metricValues, lossOf(c, i), `${name}: test_loss`);
          assert.deepEqual(run.seconds, lossOf(c, i).map((_, k) => k + 1), `${name}: seconds`);
        }
        const hasFiles = c.state !== "absent" && c.state !== "empty";
        if (hasFiles && !valid) {
          assert.ok(
            col.problems.some((p) => p.skipped && p.file.includes(`${name}/results.json`)),
            `${name} (${c.state}) is a problem`,
          );
        }
        if (valid) counts[c.state === "seedFormat" ? "finished" : c.state]++;
      }
      if (col.groups.length) {
        assert.equal(col.groups.length, 1);
        assert.deepEqual(col.groups[0].status.counts, counts);
      } else assert.equal(drawn.size, 0);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
);
