/**
 * `cli.ts report`: the command-line face of {@link writeReport}. It prints what the library
 * returns: problems on stderr as "<file>: <why>", a summary line on stdout.
 *
 * @module
 */

import { SgnError } from "../errors.ts";
import { NoRunsError, writeReport } from "../report/mod.ts";
import { flagHelp, type FlagSpec, parseFlags } from "../train/flags.ts";

/** The flags of `report`. */
const REPORT_FLAGS: Record<string, FlagSpec> = {
  out: { kind: "string", short: "o", help: "the HTML file to write (required)" },
  title: { kind: "string", help: 'the page title (default "sgn training report")' },
  epochs: {
    kind: "int",
    min: 1,
    max: 1000000,
    help: "draw only the first N epochs of every run (e.g. the seed's 100-epoch runs on the " +
      "scale of a 5-epoch reproduction)",
  },
  help: { kind: "switch", short: "h", help: "this text" },
};

/**
 * The help text of `cli.ts report`.
 *
 * @example
 * ```ts ignore
 * console.log(REPORT_HELP);
 * ```
 */
export const REPORT_HELP =
  `Usage: deno run -A cli.ts report <results dirs or globs ...> --out report.html [--title T]

Draws train loss (avg_loss) and the test metric (test_acc or test_loss) against seconds and
epochs for runs in the seed's results format, into ONE self-contained HTML file (chart.js and
the data inline; it opens offline). Runs named res_<solver>_<setting>_<seed> are grouped per
<experiment>/<solver>_<setting> (experiment = the parent folder) and drawn as the mean over
seeds with a min-max band; a table gives the final figures per group.

Each argument is a run folder, any folder above run folders (searched recursively), a
results.json or a glob (quote it to let the report expand it: 'results/*/res_SGN_*'), optionally
labelled: label=path. Without a label, the folder above "results" names the source
(.../main/results/mnist is "main", .../seed/results/mnist is "seed").

Options:
${flagHelp(REPORT_FLAGS, 14).join("\n")}

Example:
  deno run -A cli.ts report ours=results/mnist seed=../shared/seed/results/mnist --out /tmp/r.html

Inputs are checked: symlink loops are walked once, only regular files are read (a FIFO or a
device is listed as a problem), results.json up to 64 MiB and config.json up to 1 MiB. The
report is written whole or not at all (a temporary file, then renamed), and never over one of
its inputs.

Exit status: 0 when written (problems in some files are listed but do not stop it), 2 on bad
arguments, an unusable --out, or when no run could be read; 1 on an unexpected failure.`;

/**
 * Runs `report` with its arguments (those after the word "report") and returns the exit code.
 *
 * @example
 * ```ts ignore
 * Deno.exit(await reportCommand(["ours=results/mnist", "--out", "/tmp/r.html"]));
 * ```
 */
export async function reportCommand(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseFlags(args, REPORT_FLAGS, "report", true);
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    return 2;
  }
  const values = parsed.values as { out?: string; title?: string; epochs?: number; help?: boolean };
  const positionals = parsed.positionals;
  if (values.help) {
    console.log(REPORT_HELP);
    return 0;
  }
  if (!positionals.length) {
    console.error("error: report needs one or more results folders or globs (see --help)");
    return 2;
  }
  if (!values.out) {
    console.error("error: report needs --out FILE, the HTML file to write (see --help)");
    return 2;
  }
  const maxEpochs = values.epochs;
  try {
    const s = await writeReport(positionals, values.out, { title: values.title, maxEpochs });
    for (const p of s.problems) {
      console.error(`${p.file}: ${p.reason}${p.skipped ? " (run left out)" : ""}`);
    }
    console.log(
      `wrote ${s.outPath} (${(s.bytes / 1024).toFixed(0)} KiB): ${s.runs} runs in ${s.groups} ` +
        `groups${
          s.problems.length ? `, ${s.problems.length} problems (listed above and on the page)` : ""
        }`,
    );
    return 0;
  } catch (e) {
    if (e instanceof NoRunsError) {
      for (const p of e.problems) console.error(`${p.file}: ${p.reason}`);
    }
    // One line, never a stack trace: the command's user needs what went wrong, not where.
    const message = oneLine(e instanceof Error ? e.message : String(e));
    if (e instanceof SgnError || isFileSystemError(e)) {
      console.error(`error: ${message}`);
      return 2;
    }
    console.error(`error: report failed unexpectedly: ${message}`);
    return 1;
  }
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, " ").trim();
}

function isFileSystemError(e: unknown): boolean {
  return Object.values(Deno.errors).some((kind) => e instanceof kind);
}
