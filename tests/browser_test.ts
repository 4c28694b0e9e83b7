/**
 * The browser demo end to end: bundle (tools/bundle.ts), serve the repository
 * (examples/browser/serve.ts), open the demo in headless Chromium and let it train a few epochs.
 * Headless Chromium here has no WebGPU adapter, so this is the CPU backend's path through the
 * browser bundle; the page must say so.
 */

import assert from "node:assert/strict";
import { bundle } from "../tools/bundle.ts";
import { serveStatic } from "../examples/browser/serve.ts";
import { chromiumIgnore, launchChromium } from "./chromium.ts";

// examples/browser/demo.ts's DemoState, restated: importing that file here would bring its DOM
// types into the type check of the Deno tests.
interface DemoState {
  backend: string;
  backendDescription: string;
  notice: string;
  epochs: number;
  epochsDone: number;
  losses: { epoch: number; train: number; test: number; seconds: number }[];
  done: boolean;
  error: string | null;
}

Deno.test({
  name: "browser demo: trains the sine with SGN in Chromium and plots the losses",
  // Skipped without Chromium, unless SGN_REQUIRE_CHROMIUM=1 (CI): then launchChromium fails it.
  ignore: chromiumIgnore,
  async fn() {
    const shots = await Deno.makeTempDir({ prefix: "sgn-browser-shot-" });
    // The page loads ../../dist/demo.js: bundle afresh into the repository's dist/, so the test sees
    // what `deno task bundle` produces from the sources under test.
    const files = await bundle();
    const sizes = files.map((f) =>
      `${f.path.split("/").at(-1)} ${(f.bytes / 1024).toFixed(0)} KiB`
    );
    console.log(`bundle: ${sizes.join(", ")}`);
    const server = serveStatic();
    const browser = await launchChromium();
    try {
      const epochs = 3;
      // The seed's full data (7 batches an epoch); three epochs take a few seconds on the CPU.
      const page = await browser.open(`${server.url}examples/browser/?epochs=${epochs}`);
      // Live: the chart has the first epoch while the later ones still train (about 3 s).
      await page.waitFor("globalThis.sgnDemo?.epochsDone >= 1", 30_000);
      const live = await page.evaluate<{ done: boolean; points: number }>(
        "({ done: sgnDemo.done, points: sgnDemoChart.data.datasets[1].data.length })",
      );
      assert.equal(live.done, false, "training was over before the first look");
      assert.ok(live.points >= 1, "the chart was empty after an epoch");
      await page.waitFor("globalThis.sgnDemo.done", 45_000);
      const state = await page.evaluate<DemoState>("globalThis.sgnDemo");
      const shot = `${shots}/demo.png`;
      await page.screenshot(shot);
      console.log(`screenshot: ${shot}`);
      console.log(
        `backend ${state.backend}; losses ${
          state.losses.map((l) => `${l.train.toFixed(4)}/${l.test.toFixed(4)}`).join(", ")
        }`,
      );

      assert.equal(state.error, null, `the demo failed: ${state.error}`);
      assert.deepEqual(page.errors, [], `page errors:\n${page.errors.join("\n")}`);
      assert.equal(state.epochsDone, epochs);
      assert.equal(state.losses.length, epochs);

      // Which backend ran, and that the page says so.
      const gpu = await page.evaluate<boolean>(
        "(async () => !!(await navigator.gpu?.requestAdapter()))()",
      );
      assert.equal(state.backend, gpu ? "webgpu" : "cpu");
      const line = await page.evaluate<string>("document.getElementById('backend').textContent");
      assert.match(line, gpu ? /^Backend: WebGPU/ : /^Backend: CPU \(no WebGPU adapter/);

      // SGN learns: the loss falls by a real margin within three epochs, and stays finite.
      for (const l of state.losses) assert.ok(Number.isFinite(l.train) && Number.isFinite(l.test));
      const first = state.losses[0];
      const last = state.losses.at(-1)!;
      assert.ok(last.train < 0.5 * first.train, `train loss ${first.train} -> ${last.train}`);
      assert.ok(last.test < 0.8 * first.test, `test loss ${first.test} -> ${last.test}`);

      // The chart: two series with the right names and one point per epoch, on a log scale, and
      // pixels drawn on the canvas.
      const chart = await page.evaluate<{
        labels: string[];
        points: number[][];
        yType: string;
        width: number;
        height: number;
        inked: number;
      }>(`(() => {
        const canvas = document.getElementById("loss");
        const ctx = canvas.getContext("2d");
        const img = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
        let inked = 0;
        for (let i = 3; i < img.length; i += 4) if (img[i] > 0) inked++;
        const inst = globalThis.sgnDemoChart;
        return {
          labels: inst.data.datasets.map((d) => d.label),
          points: inst.data.datasets.map((d) => d.data.map((p) => p.y)),
          yType: inst.options.scales.y.type,
          width: canvas.width,
          height: canvas.height,
          inked: inked / (canvas.width * canvas.height),
        };
      })()`);
      assert.deepEqual(chart.labels, ["train loss", "test loss"]);
      assert.deepEqual(chart.points, [
        state.losses.map((l) => l.train),
        state.losses.map((l) => l.test),
      ]);
      assert.equal(chart.yType, "logarithmic");
      assert.ok(chart.width > 300 && chart.height > 200, `canvas ${chart.width}x${chart.height}`);
      assert.ok(chart.inked > 0.01, `only ${(100 * chart.inked).toFixed(2)}% of the canvas drawn`);
    } finally {
      await browser.close();
      await server.shutdown();
    }
  },
});
