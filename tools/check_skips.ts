/**
 * Fails when the test run skipped a test that tests/expected_skips.txt does not list: tests that
 * Deno reports as ignored, and lines `[sgn tests] SKIP <test>: <reason>` that tests print when a
 * part of them cannot run. CI pipes the test output through it:
 * `deno task test 2>&1 | tee log; deno run --allow-read tools/check_skips.ts log`.
 *
 * @module
 */

/** A skip seen in a test log: the test's name and, where the test said it, the reason. */
export interface Skip {
  test: string;
  reason?: string;
}

/** The skips of a test log (ANSI colours removed). */
export function skipsOf(log: string): Skip[] {
  const out: Skip[] = [];
  // deno-lint-ignore no-control-regex
  for (const raw of log.replace(/\x1b\[[0-9;]*m/g, "").split("\n")) {
    const line = raw.replace(/^\.\/tests\/\S+ => /, "").trim();
    const ignored = /^(.*?) \.\.\. ignored(?: \(.*\))?$/.exec(line);
    if (ignored) out.push({ test: ignored[1].replace(/^.* \.\.\. /, "") });
    const said = /^\[sgn tests\] SKIP (.*?): (.*)$/.exec(line);
    if (said) out.push({ test: said[1], reason: said[2] });
  }
  return out;
}

/** The expected skips: [pattern, reason] per non-comment line. */
export function expectedSkips(text: string): [RegExp, string][] {
  return text.split("\n")
    .filter((l) => l.trim() !== "" && !l.startsWith("#"))
    .map((l) => {
      const [pattern, reason = ""] = l.split("\t");
      return [new RegExp(pattern), reason.trim()];
    });
}

if (import.meta.main) {
  const [logPath] = Deno.args;
  if (!logPath) {
    console.error("usage: deno run --allow-read tools/check_skips.ts <test log>");
    Deno.exit(2);
  }
  const log = await Deno.readTextFile(logPath);
  const list = expectedSkips(
    await Deno.readTextFile(new URL("../tests/expected_skips.txt", import.meta.url)),
  );
  const skips = skipsOf(log);
  const unexpected = skips.filter((s) => !list.some(([re]) => re.test(s.test)));
  for (const s of skips) {
    const tag = unexpected.includes(s) ? "UNEXPECTED" : "expected";
    console.log(`skip (${tag}): ${s.test}${s.reason ? ` (${s.reason})` : ""}`);
  }
  if (unexpected.length > 0) {
    console.error(
      `${unexpected.length} test(s) skipped that tests/expected_skips.txt does not list: make ` +
        "them run here (install what they need in .ci/run), or list them with the reason",
    );
    Deno.exit(1);
  }
  console.log(`skips: ${skips.length}, all expected`);
}
