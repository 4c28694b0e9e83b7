/**
 * Mutation testing: small realistic bugs (a sign, a constant, a branch, a swapped argument) put
 * into the source one at a time, in a temporary copy of the repository, each followed by the
 * tests that should catch it. A mutant the tests catch is "killed"; one they miss "survived",
 * which points at a missing test. Every mutant of this list must be killed.
 *
 * Run: `deno run -A tools/mutate.ts [--only TEXT] [--list]` (about 10 minutes for the whole
 * list on 2 cores; not part of CI). Exits 1 when a mutant survives or no longer applies.
 *
 * @module
 */

import { parseArgs } from "node:util";

/** One mutation: in `file`, the one occurrence of `find` becomes `replace`. */
export interface Mutant {
  file: string;
  find: string;
  replace: string;
  /** What the bug is, in words. */
  what: string;
  /** The test files that should catch it. */
  tests: string[];
  /**
   * Seconds per property for the generated tests (`SGN_FUZZ_SECONDS`, tests/property.ts), for a
   * bug that only a longer search finds (default: the tests' own budget).
   */
  fuzz?: number;
}

/** Every mutant: the `MUTANTS` list of each module in tools/mutants/, by file name. */
export async function allMutants(): Promise<Mutant[]> {
  const dir = new URL("./mutants/", import.meta.url);
  const names = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.endsWith(".ts"))
    .sort();
  const out: Mutant[] = [];
  for (const n of names) out.push(...(await import(new URL(n, dir).href)).MUTANTS as Mutant[]);
  return out;
}

/**
 * Why `m` cannot be applied to the file text `source`: its text is missing or not unique (the
 * code it names has moved, so the mutant must be pointed at the code as it is now), or its
 * replacement is the same text. Undefined when it applies.
 */
export function notApplicable(m: Mutant, source: string): string | undefined {
  const at = source.indexOf(m.find);
  if (at < 0) return "the text to mutate is missing";
  if (source.indexOf(m.find, at + 1) >= 0) return "the text to mutate is not unique";
  if (m.find === m.replace) return "the replacement changes nothing";
  return undefined;
}

/**
 * Copies the repository's files as they are in the working tree (tracked ones, and untracked
 * ones git does not ignore) to a new folder.
 */
async function copyRepo(root: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "sgn-mutate-" });
  const list = await new Deno.Command("git", {
    args: ["ls-files", "-z", "--cached", "--others", "--exclude-standard"],
    cwd: root,
  }).output();
  const files = new TextDecoder().decode(list.stdout).split("\0").filter(Boolean);
  for (const f of files) {
    const to = `${dir}/${f}`;
    await Deno.mkdir(to.slice(0, to.lastIndexOf("/")), { recursive: true });
    await Deno.copyFile(`${root}/${f}`, to);
  }
  return dir;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { only: { type: "string", default: "" }, list: { type: "boolean", default: false } },
  });
  const chosen = (await allMutants()).filter((m) => `${m.file} ${m.what}`.includes(values.only));
  if (values.list) {
    chosen.forEach((m, i) => console.log(`${i + 1}. ${m.file}: ${m.what}`));
    Deno.exit(0);
  }
  const root = new URL("..", import.meta.url).pathname;
  const dir = await copyRepo(root);
  let killed = 0;
  const bad: string[] = [];
  /**
   * Runs the test files: "failed" only when a test failed (Deno's closing line says FAILED), not
   * when the process merely crashed after every test passed (the rare heap abort at exit, see
   * tools/repeat_suite.ts), which would count a surviving mutant as killed. Such a crash is run
   * again, up to twice.
   */
  const runTests = async (tests: string[], fuzz?: number): Promise<"passed" | "failed"> => {
    for (let attempt = 0;; attempt++) {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["test", "-A", "--fail-fast", "--no-check", ...tests],
        cwd: dir,
        stdout: "piped",
        stderr: "piped",
        env: { NO_COLOR: "1", ...(fuzz ? { SGN_FUZZ_SECONDS: String(fuzz) } : {}) },
      }).output();
      if (out.code === 0) return "passed";
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      const passedAll = /^ok \| \d+ passed \| 0 failed/m.test(text) && !/^FAILED \|/m.test(text);
      if (!passedAll) return "failed";
      if (attempt === 2) return "passed";
      console.log(`  (every test passed, then the process exited ${out.code}: run again)`);
    }
  };
  try {
    // The unmutated copy must pass, or a "kill" would mean nothing.
    const all = [...new Set(chosen.flatMap((m) => m.tests))];
    if ((await runTests(all)) !== "passed") {
      console.error(`the tests fail without any mutant: fix them first (${all.join(" ")})`);
      Deno.exit(2);
    }
    for (const [i, m] of chosen.entries()) {
      const path = `${dir}/${m.file}`;
      const original = await Deno.readTextFile(path);
      const label = `${i + 1}/${chosen.length} ${m.file}: ${m.what}`;
      const why = notApplicable(m, original);
      if (why) {
        console.log(`NOT APPLIED ${label} (${why})`);
        bad.push(label);
        continue;
      }
      await Deno.writeTextFile(path, original.replace(m.find, m.replace));
      const t0 = performance.now();
      const run = await runTests(m.tests, m.fuzz);
      await Deno.writeTextFile(path, original);
      const secs = ((performance.now() - t0) / 1000).toFixed(0);
      if (run === "failed") {
        killed++;
        console.log(`killed    ${label} (${secs} s)`);
      } else {
        console.log(`SURVIVED  ${label} (${secs} s)`);
        bad.push(label);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  console.log(`\nmutation score: ${killed} of ${chosen.length} killed`);
  if (bad.length > 0) Deno.exit(1);
}
