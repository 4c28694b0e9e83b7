/**
 * Finding a report's input files, and reading them safely: sources (`label=path`), globs the
 * shell did not expand, run folders at any depth, and the bounded read of one file. Nothing here
 * prints, and nothing knows what the files hold (see run.ts).
 *
 * Input is not trusted. Symlinked folders are followed, but each real folder is entered at most
 * once per walk (tracked by `Deno.realPath`), so a symlink loop such as `a/loop -> ..` ends. Only
 * regular files are read (a FIFO, a device such as /dev/zero, a folder named results.json is a
 * reason, never opened), and no larger than {@link INPUT_LIMITS}, checked before reading and
 * again while reading, so a file that grows meanwhile is still cut off.
 *
 * @module
 */

import { SgnError } from "../errors.ts";
import { basename, join, resolve } from "node:path";

/** The largest input files the report reads, in bytes. */
export interface InputLimits {
  /** results.json */
  resultsJson: number;
  /** config.json */
  configJson: number;
}

/**
 * The size limits of the input files: a results.json of 600 epochs is some tens of KiB and a
 * config.json under one, so a larger file is not a run's (and is not read into memory).
 *
 * @example
 * ```ts
 * import { INPUT_LIMITS } from "./walk.ts";
 * console.log(INPUT_LIMITS.resultsJson / 2 ** 20); // 64
 * ```
 */
export const INPUT_LIMITS: Readonly<InputLimits> = Object.freeze({
  resultsJson: 64 * 2 ** 20,
  configJson: 2 ** 20,
});

/** Where runs come from: a folder, a run folder, a results.json, or a glob, under a label. */
export interface ReportSource {
  /** Name of the source in the legend and table, e.g. "ours" or "seed". */
  label: string;
  /** A path or a glob (`*`, `?`, `[...]`, `**`), as given on the command line. */
  path: string;
}

/**
 * Reads `label=path` (or a bare path, labelled by {@link defaultLabel}).
 *
 * @example
 * ```ts
 * import { parseSourceArg } from "./walk.ts";
 * console.log(parseSourceArg("seed=../shared/seed/results/mnist"));
 * // { label: "seed", path: "../shared/seed/results/mnist" }
 * ```
 */
export function parseSourceArg(arg: string): ReportSource {
  const m = /^([^=/\\]+)=(.+)$/.exec(arg);
  return m ? { label: m[1], path: m[2] } : { label: defaultLabel(arg), path: arg };
}

/** Any of the wildcards of a glob: a path without one is taken as it is. */
export const GLOB = /[*?[]/;

/**
 * The label of an unlabelled source: the folder above a `results` folder when the path runs
 * through one (…/main/results/mnist is "main", …/seed/results/mnist is "seed"), else the name of
 * the top folder the path gives; run folders (res_*) and a glob's wildcard part are skipped.
 *
 * @example
 * ```ts
 * import { defaultLabel } from "./walk.ts";
 * console.log(defaultLabel("/work/shared/seed/results/mnist/res_SGN_*")); // "seed"
 * ```
 */
export function defaultLabel(path: string): string {
  const segments = resolve(
    path.split("/").filter((_s, i, all) => !all.slice(0, i + 1).some((x) => GLOB.test(x))).join(
      "/",
    ) || ".",
  ).split("/").filter(Boolean);
  while (
    segments.length &&
    (/^res_/.test(segments.at(-1)!) || /\.json$/.test(segments.at(-1)!))
  ) segments.pop();
  const at = segments.lastIndexOf("results");
  if (at > 0 && at >= segments.length - 2) return segments[at - 1];
  return segments.at(-1) ?? "runs";
}

function globRegex(segment: string): RegExp {
  let re = "";
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i];
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "[") {
      const end = segment.indexOf("]", i + 2);
      if (end < 0) {
        re += "\\[";
        continue;
      }
      let body = segment.slice(i + 1, end);
      if (body.startsWith("!")) body = "^" + body.slice(1);
      re += `[${body.replace(/\\/g, "\\\\")}]`;
      i = end;
    } else re += c.replace(/[.+^${}()|\\]/g, "\\$&");
  }
  try {
    return new RegExp(`^${re}$`);
  } catch (e) {
    // A class the regular expression engine refuses, e.g. a reversed range [9-1].
    throw new SgnError(
      `the pattern "${segment}" is not a valid glob (${
        (e as Error).message.replace(/^.*: /, "")
      }); write ranges low to high, e.g. [1-9]`,
    );
  }
}

/** Whether `path` is a folder, or a symlink to one. */
export async function isDir(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

/** The real path of `path`, or undefined when it does not exist. */
export async function realPathOrUndefined(path: string): Promise<string | undefined> {
  try {
    return await Deno.realPath(path);
  } catch {
    return undefined;
  }
}

/** Whether `path` exists (a symlink: its target). */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function subdirs(path: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(path)) {
      if (e.name.startsWith(".") || e.name === "node_modules") continue;
      const full = join(path, e.name);
      if (e.isDirectory || (e.isSymlink && await isDir(full))) out.push(e.name);
    }
  } catch {
    // An unreadable folder holds no runs we can draw; the caller reports an empty result.
  }
  return out.sort();
}

/**
 * Expands a glob the shell did not (quoted, or on Windows): `*`, `?` and `[...]` within one
 * path segment, `**` for any depth of folders. A path without wildcards comes back as it is.
 *
 * @example
 * ```ts ignore
 * console.log(await expandGlob("results/*\/res_SGN_*")); // ["results/mnist/res_SGN_3_1", ...]
 * ```
 */
export async function expandGlob(pattern: string): Promise<string[]> {
  if (!GLOB.test(pattern)) return [pattern];
  const absolute = pattern.startsWith("/");
  const segments = pattern.split("/").filter((s) => s !== "");
  let bases = [absolute ? "/" : ""];
  for (const seg of segments) {
    const next: string[] = [];
    for (const base of bases) {
      const dir = base || ".";
      if (seg === "**") {
        // Zero or more folders: the base itself and every folder below it, each real folder
        // once, so that a symlink loop (a/loop -> ..) ends.
        const visited = new Set<string>();
        const stack = [base];
        while (stack.length) {
          const d = stack.pop()!;
          const real = await realPathOrUndefined(d || ".");
          if (real === undefined || visited.has(real)) continue;
          visited.add(real);
          next.push(d);
          for (const s of await subdirs(d || ".")) stack.push(d ? join(d, s) : s);
        }
      } else if (GLOB.test(seg)) {
        const re = globRegex(seg);
        const names: string[] = [];
        try {
          for await (const e of Deno.readDir(dir)) {
            if (re.test(e.name) && (!e.name.startsWith(".") || seg.startsWith("."))) {
              names.push(e.name);
            }
          }
        } catch {
          // Not a folder, or unreadable: nothing matches below it.
        }
        for (const name of names.sort()) next.push(base ? join(base, name) : name);
      } else {
        next.push(base ? join(base, seg) : seg);
      }
    }
    bases = [...new Set(next)];
  }
  const found: string[] = [];
  for (const b of bases) if (b && await exists(b)) found.push(b);
  return found;
}

/**
 * Run folders at or below `dir`: folders holding results.json or config.json, or named res_*
 * (a run folder's subfolders are not searched). Symlinked folders are followed, each real folder
 * once (`seen`), so a symlink loop ends. A missing or unreadable folder holds none.
 *
 * @example
 * ```ts ignore
 * console.log(await findRunDirs("results")); // ["results/boston/res_SGN_10_1", ...]
 * ```
 */
export async function findRunDirs(
  dir: string,
  seen: Set<string> = new Set<string>(),
): Promise<string[]> {
  const real = await realPathOrUndefined(dir);
  if (real === undefined || seen.has(real)) return [];
  seen.add(real);
  if (
    /^res_/.test(basename(real)) || await exists(join(dir, "results.json")) ||
    await exists(join(dir, "config.json"))
  ) return [dir];
  const out: string[] = [];
  for (const s of await subdirs(dir)) out.push(...await findRunDirs(join(dir, s), seen));
  return out;
}

function sizeText(bytes: number): string {
  const MiB = 2 ** 20;
  if (bytes >= MiB && bytes % MiB === 0) return `${bytes / MiB} MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} bytes`;
}

function kindText(info: Deno.FileInfo): string {
  if (info.isDirectory) return "a folder";
  if (info.isFifo) return "a named pipe (FIFO)";
  if (info.isCharDevice) return "a character device";
  if (info.isBlockDevice) return "a block device";
  if (info.isSocket) return "a socket";
  return "not a regular file";
}

/** What {@link readInput} found: the text, no file at all, or why it was not read. */
export type InputRead = { text: string } | { missing: true } | { reason: string };

/**
 * Reads a regular file of at most `limit` bytes as UTF-8. Anything else is a reason, found
 * without opening the file: a FIFO would block the read forever and a device such as /dev/zero
 * would never end. The size is checked with stat first and then counted while reading, so a
 * file that grows (or whose stat size is 0, as in /proc) is still cut off at `limit` + 1 bytes.
 * (Between the stat and the open, the name could be swapped for a FIFO by someone racing us;
 * Deno cannot open without blocking, so that race is left open.)
 */
export async function readInput(path: string, limit: number, what: string): Promise<InputRead> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      return { reason: `cannot be read (${(e as Error).message})` };
    }
    const link = await Deno.readLink(path).catch(() => undefined);
    return link === undefined
      ? { missing: true }
      : { reason: `is a symlink to ${link}, which does not exist` };
  }
  if (!info.isFile) {
    const target = await Deno.lstat(path).then(
      async (l) => l.isSymlink ? await realPathOrUndefined(path) : undefined,
      () => undefined,
    );
    return {
      reason: `is ${target ? `a symlink to ${target}, ` : ""}${kindText(info)}, not a regular ` +
        "file: not read",
    };
  }
  const tooBig = `over the ${sizeText(limit)} limit for a ${what}: not read`;
  if (info.size > limit) return { reason: `is ${info.size} bytes, ${tooBig}` };
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    return { reason: `cannot be read (${(e as Error).message})` };
  }
  try {
    const decoder = new TextDecoder();
    const buffer = new Uint8Array(Math.min(limit + 1, 2 ** 20));
    let text = "";
    let total = 0;
    while (true) {
      // Never ask for more than one byte past the limit: enough to tell that it is over.
      const n = await file.read(buffer.subarray(0, Math.min(buffer.length, limit + 1 - total)));
      if (n === null) break;
      total += n;
      if (total > limit) return { reason: `grew past ${limit} bytes while read, ${tooBig}` };
      text += decoder.decode(buffer.subarray(0, n), { stream: true });
    }
    return { text: text + decoder.decode() };
  } catch (e) {
    return { reason: `cannot be read (${(e as Error).message})` };
  } finally {
    file.close();
  }
}
