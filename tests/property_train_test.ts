/**
 * Generated cases for the run machinery and the report, each checked against a small model of
 * the documented rules written here, not against the code's other paths:
 * - grid shards: for random experiments, configurations, seeds and shard counts N (1 to the
 *   grid's size + 3), the N shards partition the plan exactly, run p in shard p mod N + 1;
 * - atomic writes: leftover temporary files of a crashed writer, a destination that cannot be
 *   replaced, racing writers in this process and in child processes: the file is always one
 *   writer's whole content, its mode is kept, and no temporary file is left behind;
 * - results folders in random states (finished, seed-format, diverged, interrupted, running,
 *   truncated, missing files, live, dead and stale claims): what `reproduce` skips, leaves to a
 *   live process or reruns (moving the old folder aside), and what the report reads or lists as
 *   a problem;
 * - report groups in unusual states (all runs diverged but one, one finite run, runs of
 *   different lengths, NaN and ±Infinity, one seed): every band value and final figure against a
 *   float64 computation here, every group once in the table and once in the legend's data.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fc, property } from "./property.ts";
import { gridGroups, GRIDS, planRuns, reproduce } from "../train/reproduce.ts";
import { runConfig } from "../train/experiment.ts";
import { writeFileAtomic } from "../train/atomic.ts";
import {
  buildReportHtml,
  type Collection,
  collectRuns,
  groupRuns,
  type Run,
} from "../report/mod.ts";

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

// --- report groups in unusual states -----------------------------------------------------------

const value = fc.oneof(
  { weight: 6, arbitrary: fc.double({ min: -1e3, max: 1e3, noNaN: true }) },
  { weight: 1, arbitrary: fc.constantFrom(NaN, Infinity, -Infinity) },
);
const finite = fc.double({ min: 1e-3, max: 1e3, noNaN: true });

/** One run's per-epoch losses, of the given shape. */
const series = (len: fc.Arbitrary<number>, v: fc.Arbitrary<number>) =>
  len.chain((n) => fc.array(v, { minLength: n, maxLength: n }));

/** A group's runs' losses, in one of the unusual states the report must survive. */
const groupLosses = fc.oneof(
  // All runs diverged (a non-finite last epoch) but one.
  fc.tuple(
    series(fc.integer({ min: 1, max: 5 }), finite),
    fc.array(
      series(fc.integer({ min: 1, max: 5 }), finite).chain((s) =>
        fc.constantFrom(NaN, Infinity, -Infinity).map((bad) => [...s, bad])
      ),
      { minLength: 1, maxLength: 4 },
    ),
  ).map(([good, bad]) => [good, ...bad]),
  // Exactly one run at all, finite or not.
  series(fc.integer({ min: 1, max: 6 }), value).map((s) => [s]),
  // Runs of different lengths, any values.
  fc.array(series(fc.integer({ min: 1, max: 6 }), value), { minLength: 2, maxLength: 5 }),
  // Every run diverged.
  fc.array(series(fc.integer({ min: 1, max: 4 }), fc.constantFrom(NaN, Infinity)), {
    minLength: 1,
    maxLength: 3,
  }),
);

const groupCase = fc.record({
  source: fc.constantFrom("ours", "seed"),
  experiment: fc.constantFrom("mnist", "boston"),
  config: fc.constantFrom("SGN_3", "SGD_0.1", "SGN_10"),
  losses: groupLosses,
  metric: fc.constantFrom("test_acc", "test_loss", undefined),
  statuses: fc.array(fc.constantFrom("finished", "diverged", "interrupted", "running", undefined), {
    minLength: 6,
    maxLength: 6,
  }),
  secondsPerEpoch: fc.array(fc.double({ min: 0.01, max: 100, noNaN: true }), {
    minLength: 6,
    maxLength: 6,
  }),
});

/** Runs built from the cases (later cases for the same key join that group). */
type GroupCase = typeof groupCase extends fc.Arbitrary<infer T> ? T : never;

function runsOf(cases: GroupCase[]): Run[] {
  const runs: Run[] = [];
  for (const g of cases) {
    g.losses.forEach((loss, i) => {
      const [solver, setting] = g.config.split("_");
      const status = g.statuses[i];
      runs.push({
        source: g.source,
        dir: `${g.source}/${g.experiment}/res_${g.config}_${runs.length + 1}`,
        experiment: g.experiment,
        config: g.config,
        solver,
        setting,
        seed: String(runs.length + 1),
        avgLoss: loss,
        ...(g.metric ? { metric: g.metric, metricValues: loss.map((x) => x / 7) } : {}),
        seconds: loss.map((_, k) => g.secondsPerEpoch[i] * (k + 1)),
        timeBasis: "epoch_time",
        ...(status ? { status } : {}),
      } as Run);
    });
  }
  return runs;
}

/** Statistics over values, in float64, two-pass, by explicit loops. */
function stats(xs: number[]): { mean: number; min: number; max: number; std: number } {
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const x of xs) {
    sum += x;
    if (x < min) min = x;
    if (x > max) max = x;
  }
  const mean = sum / xs.length;
  let ss = 0;
  for (const x of xs) ss += (x - mean) ** 2;
  // The report promises the sample standard deviation (n - 1), 0 for a single run.
  return { mean, min, max, std: xs.length > 1 ? Math.sqrt(ss / (xs.length - 1)) : 0 };
}

function near(a: number | null | undefined, e: number, what: string, rtol = 1e-9) {
  assert.ok(
    typeof a === "number" && Math.abs(a - e) <= rtol * Math.abs(e) + 1e-12,
    `${what}: ${a}, expected ${e}`,
  );
}

/** The band the report must draw for one series per run, checked value by value. */
function checkBand(
  band: {
    mean: (number | null)[];
    min: (number | null)[];
    max: (number | null)[];
    std: (number | null)[];
  },
  perRun: number[][],
  what: string,
  rtol = 1e-9,
) {
  const len = Math.min(...perRun.map((s) => s.length));
  assert.equal(band.mean.length, len, `${what}: epochs drawn`);
  for (let k = 0; k < len; k++) {
    const xs = perRun.map((s) => s[k]);
    if (xs.some((x) => !Number.isFinite(x))) {
      for (const key of ["mean", "min", "max", "std"] as const) {
        assert.equal(band[key][k], null, `${what}: ${key}[${k}] with a non-finite run`);
      }
      continue;
    }
    const s = stats(xs);
    for (const key of ["mean", "min", "max", "std"] as const) {
      near(band[key][k], s[key], `${what}: ${key}[${k}]`, rtol);
    }
  }
}

/** Reads a table cell's "mean [min – max] (k of n diverged)" or "not finite ...". */
function parseFinal(text: string) {
  const m = /^(\S+)(?: \[(\S+) – (\S+)\])?(?: \((\d+) of (\d+) diverged\))?$/.exec(text);
  return m && m[1] !== "not"
    ? {
      mean: Number(m[1].replace("%", "")),
      min: m[2] === undefined ? undefined : Number(m[2].replace("%", "")),
      max: m[3] === undefined ? undefined : Number(m[3].replace("%", "")),
      diverged: m[4] === undefined ? 0 : Number(m[4]),
      of: m[5] === undefined ? undefined : Number(m[5]),
    }
    : undefined;
}

function unescape(s: string): string {
  return s.replace(/&#(\d+);/g, (_, c) => String.fromCharCode(Number(c)));
}

property(
  "report groups in unusual states: every figure by hand, every group once in table and legend",
  fc.array(groupCase, { minLength: 1, maxLength: 6 }),
  200,
  (cases) => {
    const runs = runsOf(cases);
    const groups = groupRuns(runs, ["ours", "seed"]);
    const keyOf = (r: { source: string; experiment: string; config: string }) =>
      `${r.source} ${r.experiment} ${r.config}`;
    const byKey = new Map<string, Run[]>();
    for (const r of runs) byKey.set(keyOf(r), [...(byKey.get(keyOf(r)) ?? []), r]);
    assert.equal(groups.length, byKey.size, "one group per source, experiment and configuration");
    for (const g of groups) {
      const members = byKey.get(keyOf(g));
      assert.ok(members, `${g.label}: no such configuration`);
      assert.deepEqual(g.runs.map((r) => r.dir).sort(), members.map((r) => r.dir).sort());
      const what = g.label;
      checkBand(g.loss, members.map((r) => r.avgLoss), `${what} loss`);
      const metrics = new Set(members.map((r) => r.metric));
      if (metrics.size === 1 && members[0].metric) {
        checkBand(g.metricBand!, members.map((r) => r.metricValues!), `${what} metric`);
      } else assert.equal(g.metricBand, undefined, `${what}: no metric band`);
      const lengths = members.map((r) => r.avgLoss.length);
      assert.deepEqual(g.epochs, { min: Math.min(...lengths), max: Math.max(...lengths) });
      const last = members.map((r) => r.avgLoss[r.avgLoss.length - 1]);
      const fin = last.filter((x) => Number.isFinite(x));
      assert.equal(g.final.loss.nonFinite, last.length - fin.length, `${what}: non-finite count`);
      if (fin.length) {
        const s = stats(fin);
        near(g.final.loss.mean, s.mean, `${what}: final mean`);
        near(g.final.loss.min, s.min, `${what}: final min`);
        near(g.final.loss.max, s.max, `${what}: final max`);
      } else assert.equal(g.final.loss.mean, null, `${what}: no finite final loss`);
      let spe = 0;
      for (const r of members) spe += r.seconds[r.seconds.length - 1] / r.seconds.length;
      near(g.final.secondsPerEpoch, spe / members.length, `${what}: seconds per epoch`);
      const open = members.filter((r) => (r.status ?? "finished") !== "finished").length;
      assert.equal(g.status.summary === undefined, open === 0, `${what}: status summary`);
      for (const st of ["diverged", "interrupted", "running"] as const) {
        const count: number = members.filter((r) => r.status === st).length;
        assert.equal(g.status.counts[st], count, `${what}: ${st} runs`);
        if (count) {
          assert.ok(g.status.short?.includes(`${count} ${st}`), `${what}: ${g.status.short}`);
        }
      }
      const len = Math.min(...lengths);
      assert.equal(g.seconds.length, len, `${what}: seconds drawn`);
      for (let k = 0; k < len; k++) {
        near(g.seconds[k], stats(members.map((r) => r.seconds[k])).mean, `${what}: seconds[${k}]`);
      }
      if (g.metricBand) {
        const lastMetric = members.map((r) => r.metricValues![r.metricValues!.length - 1]);
        const ok = lastMetric.filter((x) => Number.isFinite(x));
        assert.equal(g.final.metric!.nonFinite, lastMetric.length - ok.length);
        if (ok.length) near(g.final.metric!.mean, stats(ok).mean, `${what}: final metric`);
        else assert.equal(g.final.metric!.mean, null);
      }
    }

    const collection: Collection = {
      sources: [...new Set(runs.map((r) => r.source))].map((label) => ({
        label,
        path: `/x/${label}`,
        runs: runs.filter((r) => r.source === label).length,
      })),
      runs,
      groups,
      problems: [],
      inputs: [],
    };
    const html = buildReportHtml(collection, { title: "t", script: "" });
    // The legend is drawn from the page data, one entry per group.
    const json = /<script type="application\/json" id="sgn-data">(.*?)<\/script>/s.exec(html);
    assert.ok(json, "page data embedded");
    const page = JSON.parse(json[1]) as { groups: { label: string; n: number; status?: string }[] };
    assert.deepEqual(page.groups.map((p) => p.label), groups.map((g) => g.label), "legend");
    assert.equal(new Set(page.groups.map((p) => p.label)).size, byKey.size, "legend labels unique");
    // The table: one row per group, in the same order, its final figures as computed here.
    const rows = [...html.matchAll(/<tr data-group="([^"]*)"[^>]*>(.*?)<\/tr>/g)];
    assert.deepEqual(rows.map((r) => unescape(r[1])), groups.map((g) => g.label), "table rows");
    for (const [i, row] of rows.entries()) {
      const g = groups[i];
      const members = byKey.get(keyOf(g))!;
      const n = members.length;
      const cells = [...row[2].matchAll(/<td[^>]*>(.*?)<\/td>/g)].map((m) => unescape(m[1]));
      assert.equal(Number(cells[3]), n, `${g.label}: runs`);
      if (g.metric) {
        // "test_acc: 12.34% [..]" (percent, two decimals) or "test_loss: 0.1234 [..]".
        assert.ok(cells[6].startsWith(`${g.metric}: `), `${g.label}: metric cell "${cells[6]}"`);
        const rest = cells[6].slice(g.metric.length + 2);
        const lastMetric = members.map((r) => r.metricValues![r.metricValues!.length - 1]);
        const ok = lastMetric.filter((x) => Number.isFinite(x));
        const m = parseFinal(rest);
        if (!ok.length) assert.match(rest, /^not finite/, `${g.label}: metric "${rest}"`);
        else {
          assert.ok(m, `${g.label}: metric cell "${rest}"`);
          const acc = g.metric === "test_acc";
          const want = stats(ok);
          for (const key of ["mean", "min", "max"] as const) {
            if (key !== "mean" && ok.length < 2) continue;
            const e = (acc ? 100 : 1) * want[key];
            const tol = acc ? 0.0051 : 1e-3 * Math.abs(e) + 1e-12;
            assert.ok(Math.abs(m[key]! - e) <= tol, `${g.label}: metric ${key} ${m[key]}, ${e}`);
          }
          assert.equal(m.diverged, members.length - ok.length, `${g.label}: metric diverged`);
        }
      } else assert.equal(cells[6], "—", `${g.label}: no metric`);
      const last = members.map((r) => r.avgLoss[r.avgLoss.length - 1]);
      const fin = last.filter((x) => Number.isFinite(x));
      const cell = parseFinal(cells[5]);
      if (!fin.length) {
        assert.equal(cell, undefined, `${g.label}: "${cells[5]}" says not finite`);
        assert.match(cells[5], /^not finite/);
        continue;
      }
      assert.ok(cell, `${g.label}: final loss cell "${cells[5]}"`);
      const s = stats(fin);
      // Four significant digits in the table.
      near(cell.mean, s.mean, `${g.label}: table mean`, 1e-3);
      if (fin.length > 1) {
        near(cell.min, s.min, `${g.label}: table min`, 1e-3);
        near(cell.max, s.max, `${g.label}: table max`, 1e-3);
      }
      assert.equal(cell.diverged, n - fin.length, `${g.label}: diverged runs`);
      if (cell.diverged) assert.equal(cell.of, n, `${g.label}: out of every run`);
      if (page.groups[i].n !== n) assert.fail(`${g.label}: legend n ${page.groups[i].n}`);
      assert.equal(page.groups[i].status, g.status.short, `${g.label}: legend status`);
    }
  },
);
