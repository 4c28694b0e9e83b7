/**
 * Headless Chromium for the tests that open pages, driven by puppeteer-core (no browser download:
 * it starts the system's Chromium, Debian's `/usr/bin/chromium` or `$CHROMIUM`). A thin layer over
 * puppeteer gives the tests what they check on every page: the errors it logged or threw, and the
 * URLs it requested (to show that a page loads nothing but itself).
 *
 * Tests that need it use `ignore: chromiumIgnore`: skipped where Chromium is missing, except when
 * `SGN_REQUIRE_CHROMIUM=1` (as in CI), where they run and fail in {@link launchChromium}.
 *
 * @example
 * ```ts ignore
 * import { chromiumIgnore, launchChromium } from "./headless.ts";
 *
 * Deno.test({ name: "page loads", ignore: chromiumIgnore }, async () => {
 *   await using browser = await launchChromium();
 *   const page = await browser.open("data:text/html,<p id=x>hi</p>");
 *   await page.waitFor("document.getElementById('x')");
 *   console.log(await page.evaluate<string>("document.body.textContent"), page.errors);
 * });
 * ```
 *
 * @module
 */

// A full npm: specifier, as everywhere in the project (there is no import map).
// deno-lint-ignore no-import-prefix
import puppeteer, { type Page as PuppeteerPage } from "npm:puppeteer-core@25.16.0";

function findChromium(): string | undefined {
  const fromEnv = Deno.env.get("CHROMIUM");
  const candidates = fromEnv ? [fromEnv] : ["/usr/bin/chromium", "/usr/bin/chromium-browser"];
  for (const path of candidates) {
    try {
      if (Deno.statSync(path).isFile) return path;
    } catch {
      // Not there: try the next one.
    }
  }
  return undefined;
}

/**
 * The Chromium executable: `$CHROMIUM` when set, else `/usr/bin/chromium`; undefined when absent.
 *
 * @example
 * ```ts ignore
 * if (!CHROMIUM) console.log("no Chromium: browser tests are skipped");
 * ```
 */
export const CHROMIUM: string | undefined = findChromium();

/**
 * True when `SGN_REQUIRE_CHROMIUM=1`: a missing Chromium then fails the tests that need it.
 *
 * @example
 * ```ts ignore
 * if (!CHROMIUM && !CHROMIUM_REQUIRED) console.log("browser tests skipped");
 * ```
 */
export const CHROMIUM_REQUIRED: boolean = Deno.env.get("SGN_REQUIRE_CHROMIUM") === "1";

/**
 * The `ignore` value of a test that needs Chromium: skip it when Chromium is missing, unless
 * `SGN_REQUIRE_CHROMIUM=1`, when the test runs and {@link launchChromium} fails it.
 *
 * @example
 * ```ts ignore
 * Deno.test({ name: "draws", ignore: chromiumIgnore }, async () => {});
 * ```
 */
export const chromiumIgnore: boolean = !CHROMIUM && !CHROMIUM_REQUIRED;

/** An open tab, with what it logged and requested since it opened. */
export interface Page {
  /** Console errors, error log entries (a failed load) and uncaught exceptions, as text. */
  readonly errors: string[];
  /** Every console message and log entry, as "type: text". */
  readonly console: string[];
  /** URLs of every request the page made, the page itself first. */
  readonly requests: string[];
  /** The puppeteer page, for anything else. */
  readonly tab: PuppeteerPage;
  /** Evaluates an expression in the page; awaits a promise and returns the value (as JSON). */
  evaluate<T>(expression: string): Promise<T>;
  /** Polls the expression until it is truthy, else throws naming it (default 5,000 ms). */
  waitFor(expression: string, timeoutMs?: number): Promise<void>;
  /** Saves a PNG of the whole page (not only the viewport). */
  screenshot(path: string): Promise<void>;
}

/** Options of {@link Browser.open}. */
export interface OpenOptions {
  /** Viewport width in CSS pixels (default 1280). */
  width?: number;
  /** Viewport height in CSS pixels (default 900). */
  height?: number;
  /** How long to wait for the load event (default 15,000 ms). */
  timeoutMs?: number;
}

/** A running Chromium. */
export interface Browser {
  /** Opens a tab, navigates to the URL and waits for its load event. */
  open(url: string, options?: OpenOptions): Promise<Page>;
  /** Closes Chromium (puppeteer kills it if it hangs and removes its temporary profile). */
  close(): Promise<void>;
  /** For `await using browser = await launchChromium()`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** No sandbox (tests run as root), no hardware GPU, no network chatter of its own. */
const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-quic",
];

/**
 * Options of {@link launchChromium}.
 *
 * @example
 * ```ts ignore
 * await using browser = await launchChromium({ args: ["--enable-unsafe-webgpu"] });
 * ```
 */
export interface LaunchOptions {
  /** Chromium flags added after the defaults, which stay. */
  args?: string[];
}

async function watch(tab: PuppeteerPage, url: string, options: OpenOptions): Promise<Page> {
  const errors: string[] = [];
  const messages: string[] = [];
  const requests: string[] = [];
  tab.on("console", (m) => {
    const where = m.location().url;
    const text = m.type() === "error" && where ? `${m.text()} (${where})` : m.text();
    messages.push(`${m.type()}: ${text}`);
    if (m.type() === "error" || m.type() === "assert") errors.push(text);
  });
  tab.on("pageerror", (e) => {
    const text = e instanceof Error ? e.stack ?? e.message : String(e);
    messages.push(`exception: ${text}`);
    errors.push(text);
  });
  tab.on("request", (r) => void requests.push(r.url()));
  await tab.setViewport({ width: options.width ?? 1280, height: options.height ?? 900 });
  await tab.goto(url, { waitUntil: "load", timeout: options.timeoutMs ?? 15_000 });
  return {
    errors,
    console: messages,
    requests,
    tab,
    async evaluate<T>(expression: string): Promise<T> {
      return await tab.evaluate(expression) as T;
    },
    async waitFor(expression: string, timeoutMs = 5000): Promise<void> {
      // An expression that throws (what it reads is not there yet) counts as not yet true.
      const probe = `(() => { try { return !!(${expression}); } catch { return false; } })()`;
      try {
        await tab.waitForFunction(probe, { timeout: timeoutMs, polling: 50 });
      } catch (e) {
        throw new Error(
          `waitFor: ${expression} was not truthy within ${timeoutMs} ms (${(e as Error).message})`,
        );
      }
    },
    async screenshot(path: string): Promise<void> {
      await Deno.writeFile(path, await tab.screenshot({ type: "png", fullPage: true }));
    },
  };
}

/**
 * Launches headless Chromium with a fresh temporary profile. Close it in a `finally` (or with
 * `await using`), also when the test failed. Throws when Chromium is missing or does not start.
 *
 * @example
 * ```ts ignore
 * await using browser = await launchChromium();
 * const page = await browser.open("file:///tmp/report.html");
 * await page.screenshot("/tmp/report.png");
 * ```
 */
export async function launchChromium(options: LaunchOptions = {}): Promise<Browser> {
  if (!CHROMIUM) {
    throw new Error(
      "Chromium not found: install it (apt-get install chromium) or set CHROMIUM to its path" +
        (CHROMIUM_REQUIRED ? " (SGN_REQUIRE_CHROMIUM=1 requires it)" : ""),
    );
  }
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [...FLAGS, ...(options.args ?? [])],
    timeout: 20_000,
  });
  const close = () => browser.close();
  return {
    async open(url: string, openOptions: OpenOptions = {}): Promise<Page> {
      return await watch(await browser.newPage(), url, openOptions);
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
