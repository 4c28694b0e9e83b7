/**
 * Run folders: one training run's config.json and results.json, claimed by exactly one process.
 *
 * A folder is claimed by creating its `.claim` file exclusively (O_EXCL), so two processes, on
 * one machine or on several sharing a file system, can never write the same run. The claim
 * names its host and process and is touched while the run trains (a heartbeat); results.json is
 * rewritten whole after every epoch with a status, so a crash keeps the finished epochs. A run
 * whose process died (same host, no such process) or whose heartbeat stopped is stale: it can be
 * moved aside and run again.
 *
 * @module
 */

import { SgnError } from "../errors.ts";
import { writeFileAtomic } from "./atomic.ts";

import { RUN_STATUSES, type RunStatus } from "./results.ts";

/** The claim file's name inside a run folder. */
export const CLAIM_FILE = ".claim";

/** A heartbeat older than this marks a claim on another host as stale (default 30 minutes). */
export const DEFAULT_STALE_MS = 30 * 60 * 1000;

/** Thrown when another process holds (or finished) the run folder. */
export class RunTakenError extends SgnError {
  override name = "RunTakenError";
}

/** What a claim file holds. */
interface ClaimInfo {
  host: string;
  pid: number;
  started: string;
}

function hostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "unknown";
  }
}

/** A claimed run folder: write its files, keep the claim alive. */
export class RunFolder {
  #lastBeat = 0;
  private constructor(readonly folder: string) {}

  /**
   * Claims `folder` (created if needed, its parent too). Fails with {@link RunTakenError} when
   * it already holds a run or another process claimed it.
   *
   * @example
   * ```ts
   * import { RunFolder } from "./run_folder.ts";
   * const dir = await Deno.makeTempDir();
   * const run = await RunFolder.claim(`${dir}/res_SGN_3_1`);
   * await run.writeResults({ avg_loss: [0.5] }, "finished");
   * ```
   */
  static async claim(folder: string): Promise<RunFolder> {
    const parent = folder.includes("/") ? folder.slice(0, folder.lastIndexOf("/")) : ".";
    try {
      await Deno.mkdir(parent || "/", { recursive: true });
    } catch (e) {
      throw fsError(e, `cannot create the results folder ${parent}`);
    }
    try {
      await Deno.mkdir(folder);
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) {
        throw fsError(e, `cannot create the run folder ${folder}`);
      }
      const st = await Deno.stat(folder);
      if (!st.isDirectory) {
        throw new SgnError(`${folder} exists and is not a folder: choose another --f or --path`);
      }
      if (await exists(`${folder}/results.json`)) {
        throw new RunTakenError(
          `refusing to overwrite ${folder}/results.json: that results folder already holds a ` +
            "run (choose another --f or --path, or remove it)",
        );
      }
    }
    const info: ClaimInfo = { host: hostname(), pid: Deno.pid, started: new Date().toISOString() };
    try {
      await Deno.writeTextFile(`${folder}/${CLAIM_FILE}`, JSON.stringify(info), {
        createNew: true,
      });
    } catch (e) {
      if (e instanceof Deno.errors.AlreadyExists) {
        throw new RunTakenError(
          `${folder} is claimed by another run (${await describeClaim(folder)}); ` +
            "choose another --f, or remove the folder if that run is dead",
        );
      }
      throw fsError(e, `cannot claim the run folder ${folder}`);
    }
    return new RunFolder(folder);
  }

  /** Writes config.json whole. */
  async writeConfig(config: unknown): Promise<void> {
    await this.#write("config.json", JSON.stringify(config, null, 1));
  }

  /** Writes results.json whole, with its status (and the reason, for diverged/interrupted). */
  async writeResults(record: object, status: RunStatus, reason?: string): Promise<void> {
    const body = { ...record, status, ...(reason === undefined ? {} : { status_reason: reason }) };
    await this.#write("results.json", JSON.stringify(body));
    await this.heartbeat(true);
  }

  /** Touches the claim (at most every few seconds unless forced), so others see the run live. */
  async heartbeat(force = false): Promise<void> {
    const now = Date.now();
    if (!force && now - this.#lastBeat < 5000) return;
    this.#lastBeat = now;
    const t = new Date(now);
    await Deno.utime(`${this.folder}/${CLAIM_FILE}`, t, t).catch(() => {});
  }

  async #write(name: string, text: string): Promise<void> {
    try {
      await writeFileAtomic(`${this.folder}/${name}`, text);
    } catch (e) {
      throw fsError(e, `cannot write ${this.folder}/${name}`);
    }
  }
}

/** A file-system error as an SgnError that says what failed and why. */
export function fsError(e: unknown, what: string): SgnError {
  if (e instanceof SgnError) return e;
  const err = e as Error;
  const why = err instanceof Deno.errors.NotFound
    ? "a folder on the way does not exist"
    : err instanceof Deno.errors.PermissionDenied || err instanceof Deno.errors.NotCapable
    ? "permission denied"
    : /No space left|ENOSPC|os error 28/i.test(err.message ?? "")
    ? "the disk is full"
    : err instanceof Deno.errors.NotADirectory
    ? "a part of the path is a file, not a folder"
    : (err.message ?? String(e)).split("\n")[0];
  return new SgnError(`${what}: ${why}`);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * A claim file's fields, each checked: a host name, a positive integer pid and an ISO start
 * time. Anything else (not JSON, a missing or mistyped field) is no claim at all: it proves no
 * process alive, so the run it guards is stale, never live.
 */
export function parseClaim(text: string): ClaimInfo | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) return undefined;
  const { host, pid, started } = v as Record<string, unknown>;
  if (typeof host !== "string" || host === "" || host.length > 255) return undefined;
  if (typeof pid !== "number" || !Number.isSafeInteger(pid) || pid < 1) return undefined;
  if (
    typeof started !== "string" || !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(started) ||
    Number.isNaN(Date.parse(started))
  ) return undefined;
  return { host, pid, started };
}

async function readClaim(folder: string): Promise<{ info?: ClaimInfo; mtime?: Date }> {
  try {
    const path = `${folder}/${CLAIM_FILE}`;
    const st = await Deno.lstat(path);
    if (!st.isFile || st.size > 4096) return { mtime: st.mtime ?? undefined };
    return { info: parseClaim(await Deno.readTextFile(path)), mtime: st.mtime ?? undefined };
  } catch {
    return {};
  }
}

async function describeClaim(folder: string): Promise<string> {
  const { info, mtime } = await readClaim(folder);
  if (!info) return "an unreadable claim";
  return `host ${info.host}, process ${info.pid}, started ${info.started}` +
    (mtime ? `, last alive ${mtime.toISOString()}` : "");
}

/**
 * Whether the process that made a claim still runs on this host (Linux: /proc; elsewhere
 * unknown). A process with the claim's pid that started after the claim was made is another
 * process that reuses the number: the claimant is gone.
 */
async function processAlive(pid: number, claimed: string): Promise<boolean | undefined> {
  if (Deno.build.os !== "linux") return undefined;
  let stat: string;
  try {
    stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  } catch {
    return false;
  }
  const started = await processStartMs(stat);
  // Two seconds of slack: the claim's clock and the kernel's tick count round differently.
  if (started !== undefined && started > Date.parse(claimed) + 2000) return false;
  return true;
}

/** When a process started (ms since 1970), from its /proc/<pid>/stat line; undefined if unknown. */
async function processStartMs(stat: string): Promise<number | undefined> {
  // Field 22 (starttime, in clock ticks after boot) counts from the fields after "(comm)".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[19]);
  try {
    const btime = /^btime (\d+)$/m.exec(await Deno.readTextFile("/proc/stat"));
    if (!btime || !Number.isFinite(ticks)) return undefined;
    // USER_HZ is 100 on every Linux architecture Deno runs on.
    return Number(btime[1]) * 1000 + ticks * 10;
  } catch {
    return undefined;
  }
}

/** Where a planned run stands in its folder. */
export type RunState =
  | { kind: "absent" }
  | { kind: "finished" }
  | {
    kind: "live";
    claim: string;
    /** Set when the claimant's process lives here but its heartbeat stopped: said, not acted on. */
    stalled?: string;
  }
  /** A finished run of other settings than those asked for: left alone, never counted as done. */
  | { kind: "other"; why: string }
  /** Not a run folder at all (a file, a symbolic link): left alone. */
  | { kind: "bad"; why: string }
  | {
    kind: "stale";
    why: string;
    /**
     * Names this stale state (its claim, or its files' times): {@link moveAside} moves the folder
     * to a name made from it, so two processes that saw the same stale run cannot both move it
     * (the second finds the name taken), and neither can move a fresh run that replaced it.
     */
    id: string;
  };

/**
 * Reads a run folder's state. Finished only when results.json parses, is an object with its
 * per-epoch losses, says "finished" and holds every epoch its config.json records (files without
 * a status, such as the seed's, count as finished when they hold `expectedEpochs` epochs); and,
 * when `expected` (the config.json the run would write) is given, only when its config.json
 * records the same settings: a finished run of other settings is `other`, left alone. Live while
 * the claimant's process runs on this host (whatever its heartbeat says), or, on another host,
 * while its heartbeat is younger than `staleMs`. Stale when the folder holds anything else (a
 * dead or unreadable claim, a crashed, diverged or interrupted run, partial files). A path that
 * is a file or a symbolic link is `bad`.
 */
export async function runState(
  folder: string,
  expectedEpochs: number,
  staleMs = DEFAULT_STALE_MS,
  expected?: Record<string, unknown>,
): Promise<RunState> {
  let st: Deno.FileInfo;
  try {
    st = await Deno.lstat(folder);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { kind: "absent" };
    throw e;
  }
  if (st.isSymlink) {
    return {
      kind: "bad",
      why: `${folder} is a symbolic link, not a run folder of this grid: left alone (remove it)`,
    };
  }
  if (!st.isDirectory) {
    return { kind: "bad", why: `${folder} is a file where a run folder belongs: left alone` };
  }
  let empty = true;
  for await (const _ of Deno.readDir(folder)) {
    empty = false;
    break;
  }
  if (empty) return { kind: "absent" }; // claiming an empty folder needs no move
  const results = await readResults(`${folder}/results.json`);
  let inconsistent: string | undefined;
  if (results.ok) {
    const epochs = results.value.avg_loss.length;
    const seedFormat = results.value.status === undefined;
    const status = results.value.status ?? (epochs >= expectedEpochs ? "finished" : undefined);
    if (status === "finished") {
      const config = await readConfig(`${folder}/config.json`);
      const recorded = typeof config?.epochs === "number" ? config.epochs : undefined;
      if (!seedFormat && recorded !== undefined && epochs !== recorded) {
        inconsistent = `its results.json says finished but holds ${epochs} of the ${recorded} ` +
          "epochs its config.json records";
      } else if (!seedFormat && epochs === 0) {
        inconsistent = "its results.json says finished but holds no epoch";
      } else {
        const other = expected && differences(config, expected, seedFormat);
        if (!other) return { kind: "finished" };
        return {
          kind: "other",
          why: `${folder} holds a finished run of other settings (${other}): left alone; move ` +
            "it away or choose another --path to run these settings",
        };
      }
    }
  }
  const { info, mtime } = await readClaim(folder);
  const age = mtime ? Date.now() - mtime.getTime() : Infinity;
  if (info) {
    const id = `${info.pid}-${info.started}`;
    const alive = info.host === hostname() ? await processAlive(info.pid, info.started) : undefined;
    if (alive === true) {
      const claim = await describeClaim(folder);
      return age > staleMs
        ? {
          kind: "live",
          claim,
          stalled: `its heartbeat stopped ${Math.round(age / 60000)} minutes ago, but its ` +
            `process ${info.pid} still runs here: left to it (stop that process to rerun)`,
        }
        : { kind: "live", claim };
    }
    if (alive === false) {
      return { kind: "stale", why: `its process ${info.pid} on ${info.host} is gone`, id };
    }
    // Another host: its heartbeat is all there is to go by, while the run is unfinished.
    if (!results.ok || results.value.status === "running") {
      if (age > staleMs) {
        return { kind: "stale", why: `no sign of life for ${Math.round(age / 60000)} minutes`, id };
      }
      return { kind: "live", claim: await describeClaim(folder) };
    }
  }
  const what = inconsistent ??
    (results.ok
      ? `its results.json says "${results.value.status ?? "unfinished"}"` +
        (results.value.status_reason ? ` (${results.value.status_reason})` : "")
      : results.reason);
  const why = what + (info === undefined && mtime !== undefined ? "; its claim is unreadable" : "");
  const f = await Deno.stat(`${folder}/results.json`).catch(() => Deno.stat(folder));
  const id = info ? `${info.pid}-${info.started}` : `t${f.mtime?.getTime() ?? 0}-${f.size}`;
  return { kind: "stale", why, id };
}

/** A run's config.json as an object, or undefined when it is missing or unreadable. */
async function readConfig(path: string): Promise<Record<string, unknown> | undefined> {
  try {
    const st = await Deno.lstat(path);
    if (!st.isFile || st.size > 2 ** 20) return undefined;
    const v = JSON.parse(await Deno.readTextFile(path));
    return typeof v === "object" && v !== null && !Array.isArray(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * How a recorded config.json differs from the one asked for, e.g. `epochs 1 (asked 3)`;
 * undefined when it records the same settings. The backend a run used is not a setting (the
 * precision is). The seed's own files record only its `config` block: for them, the keys they
 * have are compared.
 */
export function differences(
  recorded: Record<string, unknown> | undefined,
  asked: Record<string, unknown>,
  seedFormat = false,
): string | undefined {
  if (!recorded) return "no readable config.json";
  const out: string[] = [];
  const show = (v: unknown) => v === undefined ? "none" : JSON.stringify(v);
  const compare = (key: string, r: unknown, a: unknown) => {
    if (JSON.stringify(r) !== JSON.stringify(a)) out.push(`${key} ${show(r)} (asked ${show(a)})`);
  };
  for (const [key, a] of Object.entries(asked)) {
    if (key === "backend") continue;
    if (key === "config" && typeof a === "object" && a !== null) {
      const r = recorded.config;
      const rc = typeof r === "object" && r !== null ? r as Record<string, unknown> : {};
      for (const [k, v] of Object.entries(a)) {
        if (seedFormat && !Object.hasOwn(rc, k)) continue;
        compare(k, rc[k], v);
      }
      continue;
    }
    if (seedFormat && !Object.hasOwn(recorded, key)) continue;
    compare(key, recorded[key], a);
  }
  return out.length ? out.slice(0, 4).join(", ") + (out.length > 4 ? ", ..." : "") : undefined;
}

/** The few fields of results.json that decide a run's state. */
interface ResultsHead {
  avg_loss: number[];
  status?: RunStatus;
  status_reason?: string;
}

/** Most bytes read from a results.json when deciding its state. */
const MAX_RESULTS_BYTES = 64 * 2 ** 20;

async function readResults(
  path: string,
): Promise<{ ok: true; value: ResultsHead } | { ok: false; reason: string }> {
  let text: string;
  try {
    const st = await Deno.stat(path);
    if (!st.isFile) return { ok: false, reason: "results.json is not a regular file" };
    if (st.size > MAX_RESULTS_BYTES) return { ok: false, reason: "results.json is too large" };
    text = await Deno.readTextFile(path);
  } catch (e) {
    return {
      ok: false,
      reason: e instanceof Deno.errors.NotFound ? "no results.json" : "results.json unreadable",
    };
  }
  try {
    const v = JSON.parse(text);
    if (typeof v !== "object" || v === null || !Array.isArray(v.avg_loss)) {
      return { ok: false, reason: "results.json has no avg_loss list" };
    }
    if (v.status !== undefined && !RUN_STATUSES.includes(v.status)) {
      return { ok: false, reason: `results.json has an unknown status "${v.status}"` };
    }
    return { ok: true, value: v };
  } catch {
    return { ok: false, reason: "results.json is not valid JSON (truncated?)" };
  }
}

/**
 * Moves a stale run folder aside (to `<folder>.stale-<id>`, see {@link RunState}), so that it
 * can be run afresh. Returns the new name, or undefined when another process moved it (or
 * replaced it with a fresh run) first.
 */
export async function moveAside(folder: string, id: string): Promise<string | undefined> {
  let tag = id.replace(/[^A-Za-z0-9-]/g, "");
  // A name the file system takes: a long id becomes a short hash of itself.
  if (tag.length > 40) tag = `h${fnv1a(tag)}`;
  const to = `${folder}.stale-${tag}`;
  try {
    await Deno.rename(folder, to);
    return to;
  } catch (e) {
    const err = e as Error;
    if (
      err instanceof Deno.errors.NotFound || err instanceof Deno.errors.AlreadyExists ||
      /not empty|ENOTEMPTY|os error 39/i.test(err.message)
    ) return undefined;
    throw fsError(e, `cannot move the stale run ${folder} aside`);
  }
}

/** A 32-bit FNV-1a hash of `text`, as 8 hex digits. */
function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, "0");
}
