/**
 * A small headless-Chromium harness for tests that open pages: it launches the system's
 * Chromium (Debian's `/usr/bin/chromium`, or `$CHROMIUM`) and speaks the Chrome DevTools Protocol
 * over Deno's own WebSocket. Written here rather than taken from puppeteer or playwright because
 * their installers download a browser build, which cannot be fetched on our machines.
 *
 * Tests that need it use `ignore: chromiumIgnore`: skipped where Chromium is missing, except when
 * `SGN_REQUIRE_CHROMIUM=1` (as in CI), where they run and fail in {@link launchChromium}.
 *
 * @example
 * ```ts ignore
 * import { chromiumIgnore, launchChromium } from "./chromium.ts";
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

/** An open tab. */
export interface Page {
  /** Console messages of type error, error log entries, and uncaught exceptions (text) since the page opened. */
  readonly errors: string[];
  /** All console messages (and log entries) as "type: text". */
  readonly console: string[];
  /** URLs of every request the page made, the page itself first (to check a page is offline). */
  readonly requests: string[];
  /** Evaluates an expression in the page; awaits promises and returns the value by value (JSON). */
  evaluate<T>(expression: string): Promise<T>;
  /** Polls the expression until it is truthy, else throws with the expression (default 5,000 ms). */
  waitFor(expression: string, timeoutMs?: number): Promise<void>;
  /** Saves a PNG of the whole page (not only the viewport). */
  screenshot(path: string): Promise<void>;
  /** Closes the tab. */
  close(): Promise<void>;
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
  /** Closes Chromium, kills what is left of it and removes its profile folder. */
  close(): Promise<void>;
  /** For `await using browser = await launchChromium()`. */
  [Symbol.asyncDispose](): Promise<void>;
}

const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-quic",
  "--remote-debugging-port=0",
];

// deno-lint-ignore no-explicit-any
type Json = any;

interface Pending {
  resolve: (v: Json) => void;
  reject: (e: Error) => void;
  method: string;
}

/** One DevTools connection; events are routed to listeners by session id ("" = the browser). */
class Cdp {
  #ws: WebSocket;
  #next = 1;
  #pending = new Map<number, Pending>();
  #listeners = new Map<string, (method: string, params: Json) => void>();
  #closed: Promise<void>;
  #isClosed = false;

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    this.#closed = new Promise((resolve) => {
      ws.addEventListener("close", () => {
        this.#isClosed = true;
        for (const p of this.#pending.values()) {
          p.reject(new Error(`DevTools connection closed during ${p.method}`));
        }
        this.#pending.clear();
        resolve();
      });
    });
    ws.addEventListener("message", (e) => this.#onMessage(e.data as string));
  }

  static connect(url: string, timeoutMs: number): Promise<Cdp> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      const timer = setTimeout(() => {
        ws.close();
        reject(new Error(`DevTools websocket ${url} did not open within ${timeoutMs} ms`));
      }, timeoutMs);
      ws.addEventListener("open", () => {
        clearTimeout(timer);
        resolve(new Cdp(ws));
      }, { once: true });
      ws.addEventListener("error", (e) => {
        clearTimeout(timer);
        reject(new Error(`DevTools websocket ${url}: ${(e as ErrorEvent).message ?? "error"}`));
      }, { once: true });
    });
  }

  #onMessage(text: string) {
    const msg = JSON.parse(text);
    if (typeof msg.id === "number") {
      const p = this.#pending.get(msg.id);
      if (!p) return;
      this.#pending.delete(msg.id);
      if (msg.error) p.reject(new Error(`${p.method}: ${msg.error.message}`));
      else p.resolve(msg.result);
      return;
    }
    this.#listeners.get(msg.sessionId ?? "")?.(msg.method, msg.params);
  }

  send(method: string, params: Json = {}, sessionId?: string): Promise<Json> {
    if (this.#isClosed) return Promise.reject(new Error(`DevTools connection closed: ${method}`));
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, method });
      this.#ws.send(
        JSON.stringify(sessionId ? { id, method, params, sessionId } : { id, method, params }),
      );
    });
  }

  listen(sessionId: string, fn: (method: string, params: Json) => void) {
    this.#listeners.set(sessionId, fn);
  }

  unlisten(sessionId: string) {
    this.#listeners.delete(sessionId);
  }

  close(): Promise<void> {
    if (!this.#isClosed) this.#ws.close();
    return this.#closed;
  }
}

/** Text of a Runtime.RemoteObject as the console would show it. */
function remoteText(o: Json): string {
  if (o === undefined) return "";
  if ("value" in o) return typeof o.value === "string" ? o.value : JSON.stringify(o.value);
  return o.unserializableValue ?? o.description ?? o.type;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function base64Bytes(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

class CdpPage implements Page {
  readonly errors: string[] = [];
  readonly console: string[] = [];
  readonly requests: string[] = [];
  #cdp: Cdp;
  #session: string;
  #targetId: string;
  #onLoad: (() => void) | undefined;
  #closed = false;

  constructor(cdp: Cdp, session: string, targetId: string) {
    this.#cdp = cdp;
    this.#session = session;
    this.#targetId = targetId;
    cdp.listen(session, (method, params) => this.#onEvent(method, params));
  }

  #onEvent(method: string, p: Json) {
    switch (method) {
      case "Runtime.consoleAPICalled": {
        const text = (p.args ?? []).map(remoteText).join(" ");
        this.console.push(`${p.type}: ${text}`);
        if (p.type === "error" || p.type === "assert") this.errors.push(text);
        break;
      }
      case "Runtime.exceptionThrown": {
        const d = p.exceptionDetails ?? {};
        const where = d.url ? ` (${d.url}:${d.lineNumber + 1}:${d.columnNumber + 1})` : "";
        const text = `${d.exception?.description ?? d.text ?? "exception"}${where}`;
        this.console.push(`exception: ${text}`);
        this.errors.push(text);
        break;
      }
      case "Log.entryAdded": {
        const e = p.entry ?? {};
        const text = e.url ? `${e.text} (${e.url})` : e.text;
        this.console.push(`${e.level}: ${text}`);
        if (e.level === "error") this.errors.push(text);
        break;
      }
      case "Network.requestWillBeSent":
        this.requests.push(p.request?.url ?? "");
        break;
      case "Page.loadEventFired":
        this.#onLoad?.();
        break;
    }
  }

  #send(method: string, params: Json = {}): Promise<Json> {
    return this.#cdp.send(method, params, this.#session);
  }

  async init(url: string, options: OpenOptions) {
    await Promise.all([
      this.#send("Runtime.enable"),
      this.#send("Page.enable"),
      this.#send("Log.enable"),
      this.#send("Network.enable"),
      this.#send("Emulation.setDeviceMetricsOverride", {
        width: options.width ?? 1280,
        height: options.height ?? 900,
        deviceScaleFactor: 1,
        mobile: false,
      }),
    ]);
    const timeoutMs = options.timeoutMs ?? 15_000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const loaded = new Promise<void>((resolve, reject) => {
      this.#onLoad = resolve;
      timer = setTimeout(
        () => reject(new Error(`${url} did not fire its load event within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      const nav = await this.#send("Page.navigate", { url });
      if (nav.errorText) throw new Error(`cannot open ${url}: ${nav.errorText}`);
      await loaded;
    } finally {
      clearTimeout(timer);
      this.#onLoad = undefined;
    }
  }

  async evaluate<T>(expression: string): Promise<T> {
    const r = await this.#send("Runtime.evaluate", {
      expression,
      awaitPromise: true,
      returnByValue: true,
    });
    if (r.exceptionDetails) {
      const d = r.exceptionDetails;
      throw new Error(`evaluate(${expression}): ${d.exception?.description ?? d.text}`);
    }
    return r.result.value as T;
  }

  async waitFor(expression: string, timeoutMs = 5000): Promise<void> {
    const end = Date.now() + timeoutMs;
    let last = "";
    while (true) {
      try {
        if (await this.evaluate<boolean>(`!!(${expression})`)) return;
        last = "";
      } catch (e) {
        // The page may still be loading what the expression needs: keep polling, keep the reason.
        last = ` (last error: ${(e as Error).message})`;
      }
      if (Date.now() >= end) {
        throw new Error(`waitFor: ${expression} was not truthy within ${timeoutMs} ms${last}`);
      }
      await sleep(50);
    }
  }

  async screenshot(path: string): Promise<void> {
    const m = await this.#send("Page.getLayoutMetrics");
    const size = m.cssContentSize ?? m.contentSize;
    const r = await this.#send("Page.captureScreenshot", {
      format: "png",
      captureBeyondViewport: true,
      clip: { x: 0, y: 0, width: Math.ceil(size.width), height: Math.ceil(size.height), scale: 1 },
    });
    await Deno.writeFile(path, base64Bytes(r.data));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.#cdp.send("Target.closeTarget", { targetId: this.#targetId });
    } catch {
      // The browser may already be gone; nothing is left to close then.
    }
    this.#cdp.unlisten(this.#session);
  }
}

/** Reads stderr lines until the DevTools URL appears; keeps draining afterwards so Chromium never blocks on a full pipe. */
async function devtoolsUrl(
  stderr: ReadableStream<Uint8Array>,
  timeoutMs: number,
): Promise<{ url: string; drained: Promise<void>; log: string[] }> {
  const log: string[] = [];
  // A TextDecoder rather than TextDecoderStream, whose type differs when DOM types are loaded.
  const decoder = new TextDecoder();
  const reader = stderr.getReader();
  let buffer = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("timeout")), timeoutMs);
  });
  try {
    while (true) {
      const { value, done } = await Promise.race([reader.read(), timeout]);
      if (done) throw new Error("Chromium exited before it printed its DevTools URL");
      buffer += decoder.decode(value, { stream: true });
      const lines = buffer.split("\n");
      buffer = lines.pop()!;
      for (const line of lines) {
        log.push(line);
        const m = /DevTools listening on (ws:\/\/\S+)/.exec(line);
        if (m) {
          const drained = (async () => {
            try {
              while (true) {
                const { value, done } = await reader.read();
                if (done) return;
                log.push(decoder.decode(value, { stream: true }));
                if (log.length > 200) log.splice(0, log.length - 200);
              }
            } catch {
              // The pipe breaks when Chromium is killed; its output is no longer needed.
            }
          })();
          return { url: m[1], drained, log };
        }
      }
    }
  } catch (e) {
    reader.cancel().catch(() => {});
    const why = (e as Error).message === "timeout"
      ? `Chromium printed no DevTools URL within ${timeoutMs} ms`
      : (e as Error).message;
    throw new Error(`${why}; its stderr:\n${[...log, buffer].join("\n")}`);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Options of {@link launchChromium}.
 *
 * @example
 * ```ts ignore
 * const options: LaunchOptions = { args: ["--enable-unsafe-webgpu"] };
 * await using browser = await launchChromium(options);
 * ```
 */
export interface LaunchOptions {
  /**
   * Chromium flags added after the defaults (headless, no hardware GPU, no sandbox, no network
   * chatter, a DevTools port), which stay: a test asks for a feature, not for a different harness.
   */
  args?: string[];
}

/**
 * Launches headless Chromium with a fresh profile in a temporary folder. Close it in a `finally`
 * (or with `await using`): that kills Chromium's whole process group and removes the profile, also
 * when the test failed. Throws when Chromium is missing or does not start.
 *
 * @example
 * ```ts ignore
 * const browser = await launchChromium({ args: ["--enable-unsafe-webgpu"] });
 * try {
 *   const page = await browser.open("file:///tmp/report.html");
 *   await page.screenshot("/tmp/report.png");
 * } finally {
 *   await browser.close();
 * }
 * ```
 */
export async function launchChromium(options: LaunchOptions = {}): Promise<Browser> {
  if (!CHROMIUM) {
    throw new Error(
      "Chromium not found: install it (apt-get install chromium) or set CHROMIUM to its path" +
        (CHROMIUM_REQUIRED ? " (SGN_REQUIRE_CHROMIUM=1 requires it)" : ""),
    );
  }
  const profile = await Deno.makeTempDir({ prefix: "sgn-chromium-" });
  // Its own process group (detached), so close() can kill the renderer and helper processes too.
  const child = new Deno.Command(CHROMIUM, {
    // The URL last: Chromium takes what follows the flags as the pages to open.
    args: [...FLAGS, ...(options.args ?? []), `--user-data-dir=${profile}`, "about:blank"],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    detached: true,
  }).spawn();
  const status = child.status;
  let exited = false;
  status.then(() => exited = true);

  const killGroup = () => {
    if (exited) return;
    try {
      Deno.kill(-child.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  };
  // Should the test process end without close() (an uncaught error), leave no browser behind.
  const onUnload = () => {
    killGroup();
    try {
      Deno.removeSync(profile, { recursive: true });
    } catch {
      // Best effort at exit.
    }
  };
  globalThis.addEventListener("unload", onUnload);

  let cdp: Cdp | undefined;
  let drained: Promise<void> = Promise.resolve();
  let closed = false;
  const pages: CdpPage[] = [];

  const close = async () => {
    if (closed) return;
    closed = true;
    if (cdp) {
      for (const p of pages) await p.close();
      // Ask politely first so Chromium flushes and exits; the kill below covers a hung browser.
      await Promise.race([cdp.send("Browser.close").catch(() => {}), sleep(2000)]);
      await Promise.race([cdp.close(), sleep(1000)]);
    }
    await Promise.race([status, sleep(2000)]);
    killGroup();
    await status;
    await drained;
    globalThis.removeEventListener("unload", onUnload);
    for (let i = 0; i < 10; i++) {
      try {
        await Deno.remove(profile, { recursive: true });
        break;
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) break;
        // Helper processes may still be writing into the profile for a moment.
        await sleep(100);
      }
    }
  };

  try {
    const found = await devtoolsUrl(child.stderr, 20_000);
    drained = found.drained;
    cdp = await Cdp.connect(found.url, 10_000);
  } catch (e) {
    await close();
    throw e;
  }
  const connection = cdp;

  return {
    async open(url: string, options: OpenOptions = {}): Promise<Page> {
      const { targetId } = await connection.send("Target.createTarget", { url: "about:blank" });
      const { sessionId } = await connection.send("Target.attachToTarget", {
        targetId,
        flatten: true,
      });
      const page = new CdpPage(connection, sessionId, targetId);
      pages.push(page);
      await page.init(url, options);
      return page;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
