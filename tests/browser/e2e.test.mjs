// The npm package in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core;
// WebGPU through SwiftShader): loading by URL into IndexedDB, streaming, greedy parity with the
// native engine, abort, offline reload, resumed and verified downloads, and the errors of a
// lying server and a full disk.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { launchChromium } from "./chromium.mjs";
import { startServer } from "./server.mjs";

const root = fileURLToPath(new URL("../../", import.meta.url));
const MODEL = "/models/TinyStories-656K-Q8_0.gguf";
const MODEL_SIZE = 749728;
const CHUNK = 64 * 1024;

let srv, browser, context, page;

async function ctl(q) {
  await fetch(`${srv.url}/__ctl?${q}`);
}
async function requests() {
  return (await fetch(`${srv.url}/__log`)).json();
}
async function openPage() {
  page = await context.newPage();
  page.on("pageerror", (e) => console.error("page error:", e));
  await page.goto(`${srv.url}/tests/browser/page.html`);
  await page.waitForFunction(() => window.ready === true);
}
/** Runs `fn(pocketlm, arg)` in the page; a thrown PocketLMError comes back as {error: {code, message}}. */
function inPage(fn, arg) {
  return page.evaluate(
    async ([src, arg]) => {
      const f = new Function(`return (${src})`)();
      try {
        return await f(window.pocketlm, arg);
      } catch (e) {
        return { error: { code: e.code ?? null, name: e.name, message: e.message } };
      }
    },
    [fn.toString(), arg],
  );
}

/** Loads the model in the page (from IndexedDB when stored) and returns its greedy ids after `prompt`. */
function greedyInPage(prompt, n, options = {}) {
  return inPage(
    async (p, [model, prompt, n, options]) => {
      const engine = await p.createEngine({ model, ...options });
      const c = await engine.completions.create({ prompt, max_tokens: n, temperature: 0 });
      await engine.unload();
      return c.pocketlm.ids;
    },
    [srv.url + MODEL, prompt, n, options],
  );
}

/** A load into an emptied store (the tests that use it expect an error back). */
function freshLoadInPage(options) {
  return inPage(
    async (p, [model, options]) => {
      await p.cache.clear();
      return p.createEngine({ model, ...options });
    },
    [srv.url + MODEL, options],
  );
}

function nativeGreedy(prompt, n) {
  return JSON.parse(execFileSync(`${root}target/release/pocketlm`, ["generate", "--backend", "cpu", "--model", `${root}models/TinyStories-656K-Q8_0.gguf`, "--prompt", prompt, "-n", String(n), "--temperature", "0", "--json"], { encoding: "utf8" }));
}

before(async () => {
  srv = await startServer();
  browser = await launchChromium();
  context = await browser.newContext();
  await openPage();
});

after(async () => {
  await browser?.close();
  await srv?.close();
});

test("a model by URL streams greedy text equal to the native engine's, in a worker", async () => {
  await ctl("reset=1");
  const r = await inPage(async (p, model) => {
    await p.cache.clear();
    const phases = new Set();
    const engine = await p.createEngine({ model, backend: "cpu", chunkSize: 64 * 1024, onProgress: (e) => phases.add(e.phase) });
    let text = "";
    let last;
    for await (const c of await engine.completions.create({ prompt: "Once upon a time", max_tokens: 40, temperature: 0, stream: true })) {
      text += c.choices[0].text;
      last = c;
    }
    const info = await engine.info();
    await engine.unload();
    return { text, ids: last.pocketlm.ids, prompt_ids: last.pocketlm.prompt_ids, phases: [...phases], info, cached: await p.cache.has(model) };
  }, srv.url + MODEL);
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  const native = nativeGreedy("Once upon a time", 40);
  assert.deepEqual(r.prompt_ids, native.prompt_ids);
  assert.deepEqual(r.ids, native.ids);
  assert.equal(r.text, native.text);
  assert.deepEqual(r.phases.sort(), ["compile", "download", "load", "verify"]);
  assert.equal(r.info.backend, "cpu");
  assert.match(r.info.backendReason, /asked for the CPU/);
  assert.ok(r.cached);
  const log = await requests();
  assert.equal(log.filter((q) => q.method === "GET").length, Math.ceil(MODEL_SIZE / CHUNK), "one range request per chunk");
});

test("in the worker of a cross-origin isolated page, two threads (the threaded build) give the tokens of one", async () => {
  // A SmolLM2-135M-shaped file: matrices large enough to be split across the threads.
  const r = await inPage(async (p, url) => {
    const blob = await (await fetch(url)).blob();
    const run = async (options) => {
      const engine = await p.createEngine({ model: new File([blob], "smollm2-135m-Q4_0.gguf"), backend: "cpu", contextSize: 256, ...options });
      const c = await engine.completions.create({ prompt: "Once upon a time, in a small village", max_tokens: 8, temperature: 0, ignore_eos: true });
      const info = await engine.info();
      await engine.unload();
      return { ids: c.pocketlm.ids, wasm: info.wasm, threads: info.threads, sections: info.parallel_sections };
    };
    return { isolated: crossOriginIsolated, one: await run({ threads: 1 }), two: await run({ threads: 2 }), page: await run({ threads: 2, worker: false }) };
  }, `${srv.url}/tests/synthetic/smollm2-135m-Q4_0.gguf`);
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.ok(r.isolated, "the test page is cross-origin isolated (COOP/COEP)");
  assert.deepEqual([r.one.wasm, r.one.threads], ["relaxed", 1]);
  assert.deepEqual([r.two.wasm, r.two.threads], ["threads", 2]);
  assert.ok(r.two.sections > 8 * 30 * 7, `mat-vecs split across threads: ${r.two.sections}`);
  assert.equal(r.two.ids.length, 8);
  assert.deepEqual(r.two.ids, r.one.ids, "two threads give the tokens of one");
  // The page's main thread may not wait on a pool: there the engine takes one thread.
  assert.deepEqual([r.page.wasm, r.page.threads], ["relaxed", 1]);
  assert.deepEqual(r.page.ids, r.one.ids);
});

test("a Hugging Face directory streams a chat completion; abort mid-stream, then generate again", async () => {
  const r = await inPage(async (p, model) => {
    const engine = await p.createEngine({ model, backend: "cpu", chunkSize: 1 << 20 });
    const messages = [{ role: "user", content: "Lily and Tom" }];
    const whole = await engine.chat.completions.create({ messages, max_tokens: 30, temperature: 0 });
    let text = "";
    for await (const c of await engine.chat.completions.create({ messages, max_tokens: 30, temperature: 0, stream: true })) text += c.choices[0].delta.content ?? "";
    const ctl = new AbortController();
    let pieces = 0;
    let aborted = null;
    try {
      for await (const c of await engine.chat.completions.create({ messages, max_tokens: 200, temperature: 0, stream: true, signal: ctl.signal })) {
        if (c.choices[0].delta.content && ++pieces === 3) ctl.abort();
      }
    } catch (e) {
      aborted = e.code;
    }
    const again = await engine.chat.completions.create({ messages, max_tokens: 30, temperature: 0 });
    const prompt = await engine.applyChatTemplate(messages);
    const promptIds = await engine.tokenize(prompt, { addSpecial: false });
    await engine.unload();
    return { whole: whole.choices[0].message.content, streamed: text, aborted, again: again.choices[0].message.content, promptIds, used: whole.pocketlm.prompt_ids, usage: whole.usage };
  }, srv.url + "/hf-chat/");
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.ok(r.whole.length > 20, r.whole);
  assert.equal(r.streamed, r.whole);
  assert.equal(r.aborted, "ABORTED");
  assert.equal(r.again, r.whole);
  assert.deepEqual(r.used, r.promptIds);
  assert.equal(r.usage.completion_tokens, 30);
});

test("with the network off for weights, a reloaded page generates from IndexedDB", async () => {
  await ctl("offline=1");
  await page.close();
  await openPage();
  const r = await greedyInPage("Once upon a time", 40);
  await ctl("reset=1");
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.deepEqual(r, nativeGreedy("Once upon a time", 40).ids);
});

test("an interrupted download resumes with only the missing chunks", async () => {
  const half = 6 * CHUNK;
  await ctl("reset=1");
  await ctl(`fail_from=${half}`);
  const first = await freshLoadInPage({ chunkSize: CHUNK });
  assert.equal(first.error?.code, "NETWORK", JSON.stringify(first));
  await ctl("reset=1");
  const second = await greedyInPage("Once upon a time", 10, { chunkSize: CHUNK });
  assert.equal(second.error, undefined, JSON.stringify(second.error));
  const gets = (await requests()).filter((q) => q.method === "GET");
  assert.ok(gets.length > 0 && gets.every((q) => q.start >= half), `resume fetched ${JSON.stringify(gets.map((q) => q.start))}`);
  assert.equal(gets.length, Math.ceil(MODEL_SIZE / CHUNK) - 6);
  assert.deepEqual(second, nativeGreedy("Once upon a time", 10).ids);
});

test("a corrupted stored chunk is detected and fetched again; a chunk stored the old way is read", async () => {
  await ctl("reset=1");
  const r = await inPage(async (p, model) => {
    // Flip bytes of chunk 3 in IndexedDB, as a failing disk would; chunk 4 is stored again as
    // a plain Uint8Array, as versions before the Blob chunks stored it, and must still be read.
    const db = await new Promise((res, rej) => {
      const o = indexedDB.open("pocketlm");
      o.onsuccess = () => res(o.result);
      o.onerror = () => rej(o.error);
    });
    const file = "TinyStories-656K-Q8_0.gguf";
    const stored = (i) =>
      new Promise((res, rej) => {
        const g = db.transaction("chunks").objectStore("chunks").get([model, file, i]);
        g.onsuccess = () => res(g.result);
        g.onerror = () => rej(g.error);
      });
    const [rec3, rec4] = [await stored(3), await stored(4)];
    if (!(rec3.data instanceof Blob)) throw new Error(`chunks are stored as ${Object.prototype.toString.call(rec3.data)}, not Blob`);
    const bytes3 = new Uint8Array(await rec3.data.arrayBuffer());
    bytes3[100] ^= 0xff;
    bytes3[101] ^= 0xff;
    rec3.data = new Blob([bytes3]);
    rec4.data = new Uint8Array(await rec4.data.arrayBuffer());
    await new Promise((res, rej) => {
      const t = db.transaction("chunks", "readwrite");
      t.objectStore("chunks").put(rec3);
      t.objectStore("chunks").put(rec4);
      t.oncomplete = res;
      t.onerror = () => rej(t.error);
    });
    db.close();
    const bad = [];
    const engine = await p.createEngine({ model, onProgress: (e) => e.phase === "verify" && !e.ok && bad.push(e.chunk) });
    const c = await engine.completions.create({ prompt: "Once upon a time", max_tokens: 10, temperature: 0 });
    await engine.unload();
    return { bad, ids: c.pocketlm.ids };
  }, srv.url + MODEL);
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.deepEqual(r.bad, [3]);
  const gets = (await requests()).filter((q) => q.method === "GET");
  assert.deepEqual(gets.map((q) => q.start), [3 * CHUNK]);
  assert.deepEqual(r.ids, nativeGreedy("Once upon a time", 10).ids);
});

test("when the reader worker cannot start, the engine's context reads the stored chunks itself", async () => {
  await ctl("reset=1");
  const stored = await greedyInPage("Once upon a time", 10, { worker: false });
  assert.equal(stored.error, undefined, JSON.stringify(stored.error));
  await ctl("reset=1");
  const r = await inPage(async (p, model) => {
    // The reader's script fails to load, as a page's worker-src policy would make it.
    const Real = window.Worker;
    let blocked = 0;
    window.Worker = class extends Real {
      constructor(url, options) {
        const href = String(url);
        if (href.includes("/reader.js")) blocked++;
        super(href.replace("/reader.js", "/no-such-reader.js"), options);
      }
    };
    try {
      const engine = await p.createEngine({ model, worker: false });
      const c = await engine.completions.create({ prompt: "Once upon a time", max_tokens: 10, temperature: 0 });
      await engine.unload();
      return { blocked, ids: c.pocketlm.ids };
    } finally {
      window.Worker = Real;
    }
  }, srv.url + MODEL);
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.equal(r.blocked, 1);
  assert.deepEqual((await requests()).filter((q) => q.method === "GET"), [], "read from IndexedDB, not the network");
  assert.deepEqual(r.ids, nativeGreedy("Once upon a time", 10).ids);
});

test("a server that lies about the size gives SIZE_MISMATCH; a full disk gives QUOTA_EXCEEDED before any download", async () => {
  await ctl("reset=1");
  await ctl("lie=1000");
  const lie = await freshLoadInPage({ chunkSize: CHUNK });
  assert.equal(lie.error?.code, "SIZE_MISMATCH", JSON.stringify(lie));
  await ctl("reset=1");
  const quota = await inPage(async (p, model) => {
    await p.cache.clear();
    navigator.storage.estimate = async () => ({ quota: 100000, usage: 0 });
    return p.createEngine({ model, worker: false, chunkSize: 64 * 1024 });
  }, srv.url + MODEL);
  assert.equal(quota.error?.code, "QUOTA_EXCEEDED", JSON.stringify(quota));
  assert.equal((await requests()).filter((q) => q.method === "GET").length, 0, "no chunk was fetched");
});

test("WebGPU (SwiftShader) streams the native engine's greedy tokens, one submit and 4 bytes read back per token", async () => {
  const r = await inPage(async (p, model) => {
    const engine = await p.createEngine({ model, backend: "webgpu" });
    let ids;
    for await (const c of await engine.completions.create({ prompt: "Once upon a time", max_tokens: 40, temperature: 0, stream: true })) ids = c.pocketlm?.ids ?? ids;
    const info = await engine.info();
    await engine.unload();
    return { ids, info };
  }, srv.url + MODEL);
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.equal(r.info.backend, "webgpu", JSON.stringify(r.info));
  assert.ok(r.info.adapter?.name !== undefined, "the adapter is reported");
  console.log("adapter:", JSON.stringify(r.info.adapter));
  assert.deepEqual(r.ids, nativeGreedy("Once upon a time", 40).ids);
  const st = r.info.gpu_stats;
  assert.equal(st.submits, st.tokens, "one submit per token");
  assert.equal(st.bytes_read_back, 4 * r.ids.length, "4 bytes read back per generated token");
});

test("a device lost mid-generation moves the session to the CPU and the request goes on", async () => {
  const r = await inPage(async (p, model) => {
    const engine = await p.createEngine({ model, backend: "webgpu" });
    let ids;
    let pieces = 0;
    for await (const c of await engine.completions.create({ prompt: "The little dog", max_tokens: 40, temperature: 0, stream: true })) {
      if (++pieces === 8) await engine.debug.loseDevice();
      ids = c.pocketlm?.ids ?? ids;
    }
    const info = await engine.info();
    const again = await engine.completions.create({ prompt: "The little dog", max_tokens: 40, temperature: 0 });
    await engine.unload();
    return { ids, info, again: again.pocketlm.ids };
  }, srv.url + MODEL);
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.equal(r.info.backend, "cpu");
  assert.match(r.info.backendReason, /DEVICE_LOST/);
  const native = nativeGreedy("The little dog", 40).ids;
  assert.deepEqual(r.ids, native, "the interrupted request finished on the CPU");
  assert.deepEqual(r.again, native, "and the next one runs on the CPU");
});

test("backend choice: auto takes WebGPU when there is an adapter; without WebGPU, webgpu is NO_WEBGPU and auto says why it took the CPU", async () => {
  const r = await inPage(async (p, model) => {
    const auto = await p.createEngine({ model });
    const info = await auto.info();
    await auto.unload();
    // A page without WebGPU (most browsers in 2025 outside Chromium): hide navigator.gpu.
    Object.defineProperty(Navigator.prototype, "gpu", { get: () => undefined, configurable: true });
    const gpu = await p.createEngine({ model, backend: "webgpu", worker: false }).then(() => ({ code: null }), (e) => ({ code: e.code }));
    const cpu = await p.createEngine({ model, worker: false });
    const cpuInfo = await cpu.info();
    await cpu.unload();
    return { gpu, info, cpuInfo };
  }, srv.url + MODEL);
  assert.equal(r.info.backend, "webgpu", JSON.stringify(r.info));
  assert.match(r.info.backendReason, /WebGPU on/);
  assert.equal(r.info.wasm, "threads", "Chromium has relaxed-SIMD, and the isolated page's worker runs the threaded build");
  assert.equal(r.gpu?.code, "NO_WEBGPU", JSON.stringify(r));
  assert.equal(r.cpuInfo.backend, "cpu");
  assert.match(r.cpuInfo.backendReason, /no WebGPU/);
});
