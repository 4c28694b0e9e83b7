/**
 * Runs the property tests (every test named `property: ...`) for as long as asked, from fresh
 * random seeds, and prints the seed and path of any failure so that it can be replayed.
 *
 * Run: `deno task fuzz [--seconds N] [--filter TEXT] [--seed S] [--path P] [files...]`
 * - `--seconds N`: seconds per property (default 60);
 * - `--filter TEXT`: only the properties whose name holds TEXT;
 * - `--seed S --path P`: replay the one case that a failure named.
 *
 * @module
 */
import { parseArgs } from "node:util";

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      seconds: { type: "string", default: "60" },
      filter: { type: "string", default: "" },
      seed: { type: "string", default: "" },
      path: { type: "string", default: "" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(
      "usage: deno task fuzz [--seconds N] [--filter TEXT] [--seed S --path P] [test files...]\n" +
        "Runs every `property: ...` test for N seconds (default 60) from a random seed; a\n" +
        "failure prints the seed and path that replay it with --seed and --path.",
    );
    Deno.exit(0);
  }
  const seconds = Number(values.seconds);
  if (!(seconds > 0)) {
    console.error(`--seconds must be a positive number, not "${values.seconds}"`);
    Deno.exit(2);
  }
  if (values.path && !values.seed) {
    console.error("--path replays a failure only together with the --seed it was found with");
    Deno.exit(2);
  }
  const root = new URL("..", import.meta.url).pathname;
  const filter = `property: ${values.filter}`;
  const run = await new Deno.Command(Deno.execPath(), {
    args: ["test", "-A", "--parallel=false", "--filter", filter, ...positionals],
    cwd: root,
    env: {
      SGN_FUZZ_SECONDS: String(seconds),
      ...(values.seed ? { SGN_FUZZ_SEED: values.seed } : {}),
      ...(values.path ? { SGN_FUZZ_PATH: values.path } : {}),
    },
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (run.code !== 0) {
    console.error(
      "fuzz: a property failed. Its counterexample, seed and path are above; replay it with " +
        "`deno task fuzz --filter <name> --seed <seed> --path <path>`.",
    );
  }
  Deno.exit(run.code);
}
