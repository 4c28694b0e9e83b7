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

import { SgnError } from "../backend.ts";
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

async function readClaim(folder: string): Promise<{ info?: ClaimInfo; mtime?: Date }> {
  try {
    const path = `${folder}/${CLAIM_FILE}`;
    const st = await Deno.stat(path);
    if (!st.isFile || st.size > 4096) return { mtime: st.mtime ?? undefined };
    const info = JSON.parse(await Deno.readTextFile(path));
    return { info, mtime: st.mtime ?? undefined };
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

/** Whether a process exists on this host (Linux: /proc; elsewhere unknown). */
async function processAlive(pid: number): Promise<boolean | undefined> {
  if (Deno.build.os !== "linux") return undefined;
  try {
    await Deno.stat(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/** Where a planned run stands in its folder. */
export type RunState =
  | { kind: "absent" }
  | { kind: "finished" }
  | { kind: "live"; claim: string }
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
 * Reads a run folder's state: finished only when results.json parses, is an object with its
 * per-epoch losses, and says "finished" (files without a status, such as the seed's, count as
 * finished when they hold `expectedEpochs` epochs); live while a process holds the claim;
 * stale when the folder holds anything else (a dead claim, a crashed or diverged run, partial
 * files).
 */
export async function runState(
  folder: string,
  expectedEpochs: number,
  staleMs = DEFAULT_STALE_MS,
): Promise<RunState> {
  if (!(await exists(folder))) return { kind: "absent" };
  let empty = true;
  for await (const _ of Deno.readDir(folder)) {
    empty = false;
    break;
  }
  if (empty) return { kind: "absent" }; // claiming an empty folder needs no move
  const results = await readResults(`${folder}/results.json`);
  if (results.ok) {
    const epochs = results.value.avg_loss.length;
    const status = results.value.status ?? (epochs >= expectedEpochs ? "finished" : undefined);
    if (status === "finished") return { kind: "finished" };
  }
  const { info, mtime } = await readClaim(folder);
  if (info && (results.ok ? results.value.status === "running" : true)) {
    const alive = info.host === hostname() ? await processAlive(info.pid) : undefined;
    const age = mtime ? Date.now() - mtime.getTime() : Infinity;
    const id = `${info.pid}-${info.started}`;
    if (alive === false) {
      return { kind: "stale", why: `its process ${info.pid} on ${info.host} is gone`, id };
    }
    if (age > staleMs) {
      return { kind: "stale", why: `no sign of life for ${Math.round(age / 60000)} minutes`, id };
    }
    return { kind: "live", claim: await describeClaim(folder) };
  }
  const why = results.ok
    ? `its results.json says "${results.value.status ?? "unfinished"}"` +
      (results.value.status_reason ? ` (${results.value.status_reason})` : "")
    : results.reason;
  const st = await Deno.stat(`${folder}/results.json`).catch(() => Deno.stat(folder));
  const id = info ? `${info.pid}-${info.started}` : `t${st.mtime?.getTime() ?? 0}-${st.size}`;
  return { kind: "stale", why, id };
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
  const to = `${folder}.stale-${id.replace(/[^A-Za-z0-9-]/g, "")}`;
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
