/**
 * The mutation list (tools/mutants/) stays pointed at the code: every mutant's text occurs
 * exactly once in its file and its replacement differs, so a refactor that moves the code a
 * mutant names fails here at once instead of silently shrinking the mutation score. The mutants
 * themselves run in `deno run -A tools/mutate.ts` (not part of the test suite: too slow).
 */
import assert from "node:assert/strict";
import { allMutants, notApplicable } from "../tools/mutate.ts";

const root = new URL("..", import.meta.url);

Deno.test("mutants: every mutant applies to the code as it is, once", async () => {
  const mutants = await allMutants();
  assert.ok(mutants.length >= 100, `${mutants.length} mutants listed`);
  const problems: string[] = [];
  for (const m of mutants) {
    const why = notApplicable(m, await Deno.readTextFile(new URL(m.file, root)));
    if (why) problems.push(`${m.file}: ${m.what}: ${why}`);
    for (const t of m.tests) {
      try {
        await Deno.stat(new URL(t, root));
      } catch {
        problems.push(`${m.file}: ${m.what}: its test file ${t} does not exist`);
      }
    }
  }
  assert.deepEqual(problems, []);
});

Deno.test("mutants: no two mutants are the same bug", async () => {
  const seen = new Set<string>();
  for (const m of await allMutants()) {
    const key = `${m.file}\0${m.find}\0${m.replace}`;
    assert.ok(!seen.has(key), `listed twice: ${m.file}: ${m.what}`);
    seen.add(key);
  }
});
