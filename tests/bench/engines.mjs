// The engines the benchmark runs, each on one model file with the same prompt and greedy
// generation, returning {prompt_tokens, generated, prefill_tok_s, decode_tok_s, ttft_ms,
// load_ms, warm_load_ms?, memory_bytes?}. Browser engines run in a page of the test server
// (COOP/COEP: cross-origin isolated, so wllama's threads work).
import { execFileSync } from "node:child_process";

/** The benchmark's prompt: ~128 tokens in the SmolLM2 and Qwen2 vocabularies (each engine
 * reports its own count). */
export const BENCH_PROMPT = "The quick brown fox jumps over the lazy dog while the small cat watches from the old wooden fence. ".repeat(6).trim();

/** The median of numbers. */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export function pocketlmNative(root, file, prompt, gen, threads) {
  const out = execFileSync(`${root}target/release/pocketlm`, ["generate", "--backend", "cpu", "--threads", String(threads), "--model", file, "--prompt", prompt, "-n", String(gen), "--temperature", "0", "--ignore-eos", "--json"], { encoding: "utf8", maxBuffer: 1 << 26 });
  const r = JSON.parse(out);
  return { prompt_tokens: r.prompt_ids.length, generated: r.ids.length, prefill_tok_s: r.prefill_tok_s, decode_tok_s: r.decode_tok_s, ttft_ms: r.ttft_ms, load_ms: r.load_ms };
}

/** pocketlm's wasm CPU engine in Node (simd128 build), each run in a fresh process. */
export function pocketlmNode(root, file, prompt, gen, threads) {
  if (threads > 1) return null;
  const out = execFileSync(process.execPath, [`${root}tests/bench/node_engine.mjs`, file, prompt, String(gen)], { encoding: "utf8", maxBuffer: 1 << 26 });
  return JSON.parse(out.trim().split("\n").pop());
}

/** pocketlm in the page: cold load (empty IndexedDB, from the network) and warm load (from IndexedDB). */
export async function pocketlmBrowser(page, url, prompt, gen, backend, threads) {
  if (threads > 1 && backend === "webgpu") return null;
  return page.evaluate(
    async ([url, prompt, gen, backend, threads]) => {
      const p = window.pocketlm;
      await p.cache.clear();
      let t0 = performance.now();
      let engine = await p.createEngine({ model: url, backend, threads, contextSize: 1024 });
      const load_ms = performance.now() - t0;
      await engine.unload();
      t0 = performance.now();
      engine = await p.createEngine({ model: url, backend, threads, contextSize: 1024 });
      const warm_load_ms = performance.now() - t0;
      const c = await engine.completions.create({ prompt, max_tokens: gen, temperature: 0, ignore_eos: true });
      const info = await engine.info();
      await engine.unload();
      await p.cache.clear();
      const u = c.usage;
      if (info.backend !== (backend === "webgpu" ? "webgpu" : "cpu")) throw new Error(`ran on ${info.backend}: ${info.backendReason}`);
      if (backend !== "webgpu" && info.threads !== threads) throw new Error(`ran on ${info.threads} threads, not ${threads}`);
      return { prompt_tokens: u.prompt_tokens, generated: u.completion_tokens, prefill_tok_s: u.prefill_tokens_per_second, decode_tok_s: u.decode_tokens_per_second, ttft_ms: u.time_to_first_token_ms, load_ms, warm_load_ms, memory_bytes: info.memory.wasmBytes, load_peak_bytes: info.memory.loadPeakBytes };
    },
    [url, prompt, gen, backend, threads],
  );
}

/** @wllama/wllama (llama.cpp in wasm), its own timings; `threads` 1 or more (multi-thread
 * build); `gpu`: its WebGPU path (all layers offloaded), else the CPU only. */
export async function wllama(page, url, prompt, gen, threads, gpu = false) {
  return page.evaluate(
    async ([url, prompt, gen, threads, gpu]) => {
      const w = new window.Wllama({ default: "/tests/node_modules/@wllama/wllama/esm/wasm/wllama.wasm" }, { suppressNativeLog: true });
      // wllama keeps each file it downloads (OPFS): emptied around each run, so that every
      // load is cold and the files of a whole run do not fill the context's storage quota
      // (which then failed the last model's loads, pocketlm's too).
      await w.cacheManager.clear();
      const t0 = performance.now();
      await w.loadModelFromUrl(url, { n_threads: threads, n_ctx: 1024, n_batch: 512, n_gpu_layers: gpu ? 999 : 0 });
      const load_ms = performance.now() - t0;
      if (threads > 1 && !w.isMultithread()) throw new Error("wllama did not start its multi-thread build");
      const t1 = performance.now();
      let first = null;
      let timings = null;
      await w.createCompletion({
        prompt, max_tokens: gen, temperature: 0, ignore_eos: true, stream: true,
        onData: (c) => {
          first ??= performance.now();
          if (c.timings) timings = c.timings;
        },
      });
      const used = w.getNumThreads();
      await w.exit();
      await w.cacheManager.clear();
      if (used !== threads) throw new Error(`wllama ran ${used} threads, not ${threads}`);
      return { prompt_tokens: timings?.prompt_n, generated: timings?.predicted_n, prefill_tok_s: timings?.prompt_per_second, decode_tok_s: timings?.predicted_per_second, ttft_ms: first - t1, load_ms };
    },
    [url, prompt, gen, threads, gpu],
  );
}
