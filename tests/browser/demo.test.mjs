// The demo page (www/, built by scripts/build-www.sh) in headless Chromium: pick the bundled
// model, load it, stream a story, read the speed line, screenshot it; then with the browser
// offline, reload: the service worker serves the page and IndexedDB the weights.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { launchChromium } from "./chromium.mjs";
import { startServer } from "./server.mjs";

const out = fileURLToPath(new URL("../out/", import.meta.url));
let srv, browser;

before(async () => {
  srv = await startServer();
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await srv?.close();
});

async function generate(page) {
  await page.click("#load");
  // Loaded (the input enabled) or failed ("Could not load: …"): either ends the wait, and the
  // status line says which.
  await page
    .waitForFunction(() => !document.getElementById("input").disabled || /^Could not load/.test(document.getElementById("load-status").textContent), null, { timeout: 60000 })
    .catch(async (e) => {
      throw new Error(`${e.message}; load status: ${await page.$eval("#load-status", (el) => el.textContent)}`);
    });
  const loaded = await page.$eval("#load-status", (el) => el.textContent);
  assert.doesNotMatch(loaded, /^Could not load/);
  await page.fill("#input", "Once upon a time");
  await page.click("#send");
  await page.waitForFunction(() => /decode [\d.]+ tok\/s/.test(document.getElementById("stats").textContent), null, { timeout: 60000 });
  await page.waitForFunction(() => !document.getElementById("send").disabled);
  return page.evaluate(() => ({
    story: document.querySelector(".msg.assistant").textContent,
    stats: document.getElementById("stats").textContent,
    status: document.getElementById("load-status").textContent,
    cache: document.getElementById("cache-list").textContent,
  }));
}

test("the demo streams a story, shows backend and speed, and works offline after the first visit", async () => {
  const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${srv.url}/www/`);
  await page.waitForSelector("body[data-ready='1']");
  assert.equal(await page.$eval("#model-select", (s) => s.value), "tinystories-656k-q8_0");
  const first = await generate(page);
  assert.ok(first.story.startsWith("Once upon a time") && first.story.length > 60, first.story);
  // auto: Chromium here has a WebGPU adapter (SwiftShader).
  assert.match(first.stats, /^webgpu · prefill [\d.]+ tok\/s · decode [\d.]+ tok\/s/);
  assert.match(first.status, /llama, .* on webgpu/);
  assert.match(first.cache, /tinystories-656k-q8_0/);
  mkdirSync(out, { recursive: true });
  await page.screenshot({ path: `${out}demo.png`, fullPage: true });

  await page.evaluate(() => navigator.serviceWorker.ready);
  await context.setOffline(true);
  await page.reload();
  await page.waitForSelector("body[data-ready='1']", { timeout: 30000 });
  const offline = await generate(page);
  assert.ok(offline.story.startsWith("Once upon a time") && offline.story.length > 60, offline.story);
  assert.deepEqual(errors, []);
  await context.close();
});

test("the service worker keeps the whole app shell at install, the threaded build's hashed worker helper too", async () => {
  // Before any model is loaded: what a worker started before the service worker took the page
  // would fetch past it must already be kept.
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${srv.url}/www/`);
  await page.waitForSelector("body[data-ready='1']");
  const cached = await page.evaluate(async () => {
    await navigator.serviceWorker.ready;
    const keys = await caches.keys();
    const urls = [];
    for (const k of keys) for (const r of await (await caches.open(k)).keys()) urls.push(new URL(r.url).pathname);
    return urls;
  });
  for (const p of ["/www/pkg/wasm/threads/pocketlm.js", "/www/pkg/wasm/relaxed/pocketlm_bg.wasm", "/www/app.js"]) assert.ok(cached.includes(p), `${p} not in ${cached}`);
  assert.ok(cached.some((p) => /^\/www\/pkg\/wasm\/threads\/snippets\/.+\/workerHelpers[^/]*\.js$/.test(p)), `no worker helper in ${cached}`);
  await context.close();
});
