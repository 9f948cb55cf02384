// The engine in the calling context: picks the wasm build, gets the model's bytes (IndexedDB
// store, or a File/Blob), streams them into wasm memory chunk by chunk, and runs generations a
// piece of text at a time, yielding to the event loop between tokens so aborts get through.
// The worker (worker.js) runs this same class; index.js wraps either in the OpenAI-style API.

import { PocketLMError, abortError, throwIfAborted } from "./errors.js";
import { ChunkReader, ensureModel, readModel } from "./store.js";

// A module whose one function uses i32x4.relaxed_dot_i8x16_i7x16_add_s: valid only where the
// engine has relaxed-SIMD.
const RELAXED_PROBE = (() => {
  const body = [0x00, ...[0, 1, 2].flatMap(() => [0xfd, 0x0c, ...new Array(16).fill(0)]), 0xfd, 0x93, 0x02, 0x0b];
  return new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0, 0, 0, 0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, 0x03, 0x02, 0x01, 0x00, 0x0a, body.length + 2, 0x01, body.length, ...body]);
})();

/** Whether this context can run the threaded build: a worker (the pool's caller waits on it,
 * which a page's main thread may not) of a cross-origin isolated page (shared memory). */
function canThread() {
  return globalThis.crossOriginIsolated === true && typeof SharedArrayBuffer !== "undefined" && typeof WorkerGlobalScope !== "undefined" && globalThis instanceof WorkerGlobalScope;
}

/** The CPU threads `threads` asks for here: 1 where threads cannot run. */
function threadCount(threads) {
  if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1)) throw new PocketLMError("INVALID_ARGUMENT", `threads must be a whole number ≥ 1, not ${JSON.stringify(threads)}`);
  if (!canThread()) return 1;
  return threads ?? Math.min(navigator.hardwareConcurrency || 1, 8);
}

/** "threads" where relaxed-SIMD validates and `threads` > 1 can run (see canThread), else
 * "relaxed" where the engine validates relaxed-SIMD, else "simd". */
export function wasmVariant(threads) {
  const relaxed = WebAssembly.validate(RELAXED_PROBE);
  if (relaxed && threadCount(threads) > 1) return "threads";
  return relaxed ? "relaxed" : "simd";
}

// One module instance per context: a threaded one keeps its pool of workers.
let loaded = null;
async function loadWasm(wasm = {}, threads) {
  const variant = wasm.variant ?? wasmVariant(threads);
  if (loaded && loaded.variant === variant) return loaded;
  // Static specifiers, so that bundlers see every build.
  const mod = variant === "threads" ? await import("./wasm/threads/pocketlm.js") : variant === "relaxed" ? await import("./wasm/relaxed/pocketlm.js") : await import("./wasm/simd/pocketlm.js");
  await mod.default(wasm.bytes ? { module_or_path: wasm.bytes } : undefined);
  if (variant === "threads") await mod.startThreads(threadCount(threads));
  loaded = { mod, variant };
  return loaded;
}

const HF_FILES = [
  { name: "config.json" },
  { name: "tokenizer.json" },
  { name: "tokenizer_config.json", optional: true },
  { name: "model.safetensors" },
];

let registryPromise = null;
/** The known models of registry.json, by id. */
export function registry() {
  registryPromise ??= fetch(new URL("./registry.json", import.meta.url)).then((r) => r.json());
  return registryPromise;
}

/** What to load: `{name, id, files}` to download by URL, or `{name, blobs}` for local files. */
export async function resolveModel(model) {
  const isBlob = (b) => typeof Blob !== "undefined" && b instanceof Blob;
  if (isBlob(model)) return { name: model.name ?? "model.gguf", blobs: [{ name: model.name?.endsWith(".gguf") ? model.name : "model.gguf", blob: model }] };
  if (Array.isArray(model) && model.every(isBlob)) return { name: "local files", blobs: model.map((b) => ({ name: b.name, blob: b })) };
  if (typeof model !== "string" || !model) throw new PocketLMError("INVALID_ARGUMENT", "model must be a URL, a registry id, a File/Blob or an array of Files");
  if (!/^[a-z]+:|^[./]/i.test(model)) {
    const entry = (await registry()).models.find((m) => m.id === model);
    if (!entry) throw new PocketLMError("INVALID_ARGUMENT", `unknown model id ${JSON.stringify(model)}: not a URL and not in the registry`);
    const base = new URL("./registry.json", import.meta.url);
    return { name: entry.id, id: entry.id, files: entry.files.map((f) => ({ name: f.name, url: new URL(f.url, base).href, size: f.size ?? undefined })) };
  }
  const url = new URL(model, globalThis.location?.href).href;
  if (url.endsWith("/")) return { name: url, id: url, files: HF_FILES.map((f) => ({ ...f, url: url + f.name })) };
  const name = decodeURIComponent(new URL(url).pathname.split("/").pop() || "model.gguf");
  return { name: url, id: url, files: [{ name: name.endsWith(".gguf") ? name : `${name}.gguf`, url }] };
}

async function readBlobs(blobs, { begin, push, onProgress, signal }, chunkSize) {
  const total = blobs.reduce((a, b) => a + b.blob.size, 0);
  let loaded = 0;
  for (const { name, blob } of blobs) {
    begin(name, blob.size);
    for (let at = 0; at < blob.size; at += chunkSize) {
      throwIfAborted(signal);
      const part = new Uint8Array(await blob.slice(at, Math.min(blob.size, at + chunkSize)).arrayBuffer());
      push(name, part);
      loaded += part.length;
      onProgress?.({ phase: "load", loaded, total, file: name });
    }
  }
}

/** A macrotask boundary (no 4 ms clamp, unlike setTimeout): lets messages and aborts in. */
function nextTask() {
  return new Promise((resolve) => {
    const ch = new MessageChannel();
    ch.port1.onmessage = () => {
      ch.port1.close();
      resolve();
    };
    ch.port2.postMessage(null);
  });
}

const REQUEST_FIELDS = ["max_tokens", "temperature", "top_p", "top_k", "min_p", "repetition_penalty", "frequency_penalty", "presence_penalty", "seed", "stop", "ignore_eos"];

export class LocalEngine {
  #engine;
  #meta;
  #busy = false;

  constructor(engine, meta) {
    this.#engine = engine;
    this.#meta = meta;
  }

  /** Loads `options.model`; see index.d.ts for the options. */
  static async create(options = {}) {
    const { onProgress, signal, backend = "auto" } = options;
    if (!["auto", "cpu", "webgpu"].includes(backend)) throw new PocketLMError("INVALID_ARGUMENT", `backend must be "auto", "webgpu" or "cpu", not ${JSON.stringify(backend)}`);
    if (backend === "webgpu" && !(typeof navigator !== "undefined" && navigator.gpu)) throw new PocketLMError("NO_WEBGPU", "this browser has no WebGPU (navigator.gpu): use backend \"cpu\" or \"auto\"");
    const src = await resolveModel(options.model);
    // The reader worker and the wasm module start together, and before the download.
    const reader = src.blobs ? null : ChunkReader.start();
    const wasmReady = loadWasm(options.wasm, options.threads);
    wasmReady.catch(() => {});
    let mod = null;
    let loader = null;
    const sink = {
      begin: (file, size) => loader.beginFile(file, size),
      // Straight into the file's place in wasm memory: one copy, no temporary buffer.
      push: (file, bytes) => {
        const at = loader.chunkTarget(file, bytes.length);
        new Uint8Array(mod.wasmMemory().buffer, at, bytes.length).set(bytes);
        loader.commit(file, bytes.length);
      },
      onProgress,
      signal,
    };
    const t0 = performance.now();
    try {
      const manifest = src.blobs ? null : await ensureModel(src.id, src.files, { onProgress, signal, chunkSize: options.chunkSize });
      const wasm = await wasmReady;
      mod = wasm.mod;
      loader = new mod.ModelLoader(src.name);
      if (src.blobs) await readBlobs(src.blobs, sink, options.chunkSize ?? 16 << 20);
      else await readModel(manifest, sink, reader);
      onProgress?.({ phase: "compile", loaded: 0, total: 1, file: src.name });
      const engine = await loader.finish({ context_size: options.contextSize, quantize: options.quantize, backend: backend === "webgpu" ? "gpu" : backend });
      onProgress?.({ phase: "compile", loaded: 1, total: 1, file: src.name });
      return new LocalEngine(engine, { model: src.name, id: src.id ?? null, wasm: wasm.variant, loadMs: performance.now() - t0, requestedBackend: backend });
    } catch (e) {
      // finish() consumes the loader (even when it fails); before it, free the received bytes.
      if (loader?.__wbg_ptr) loader.free();
      throw PocketLMError.from(e);
    } finally {
      reader?.close();
    }
  }

  info() {
    const m = this.#engine.info();
    const backendReason = m.backend_reason ?? (m.backend === "webgpu" ? `WebGPU on ${m.adapter?.name || "the browser's adapter"}` : this.#meta.requestedBackend === "cpu" ? "asked for the CPU" : "wasm SIMD on the CPU");
    return { ...this.#meta, ...m, backendReason, memory: { wasmBytes: m.wasm_memory_bytes, loadPeakBytes: m.load_peak_bytes, kvCacheBytes: m.kv_cache_bytes } };
  }

  tokenize(text, addSpecial = true) {
    return Array.from(this.#engine.tokenize(String(text), addSpecial));
  }

  detokenize(ids, skipSpecial = false) {
    return this.#engine.detokenize(Uint32Array.from(ids), skipSpecial);
  }

  applyChatTemplate(messages) {
    return this.#engine.applyChatTemplate(messages, true);
  }

  /**
   * One generation: `kind` "chat" (request.messages) or "completion" (request.prompt).
   * `onPiece(text)` gets each piece of text; resolves with the engine's summary.
   */
  async run(kind, request, onPiece, signal) {
    if (this.#busy) throw new PocketLMError("INVALID_ARGUMENT", "this engine is already generating: one request at a time");
    throwIfAborted(signal);
    this.#busy = true;
    try {
      const opts = {};
      for (const k of REQUEST_FIELDS) if (request[k] !== undefined && request[k] !== null) opts[k] = request[k];
      const t0 = performance.now();
      if (kind === "chat") await this.#engine.startChat(request.messages, opts);
      else await this.#engine.startCompletion(String(request.prompt ?? ""), opts);
      let ttft = null;
      let lastYield = performance.now();
      for (;;) {
        if (signal?.aborted) this.#engine.abort();
        const piece = await this.#engine.nextText();
        if (piece === undefined) break;
        if (piece) {
          ttft ??= performance.now() - t0;
          onPiece(piece);
        }
        if (performance.now() - lastYield > 10) {
          await nextTask();
          lastYield = performance.now();
        }
      }
      const result = this.#engine.finish();
      if (result.finish_reason === "aborted") throw abortError();
      return { ...result, time_to_first_token_ms: ttft ?? performance.now() - t0 };
    } catch (e) {
      try {
        this.#engine.finish();
      } catch {
        // no generation was in progress
      }
      throw PocketLMError.from(e);
    } finally {
      this.#busy = false;
    }
  }

  /** Forgets the cached conversation. */
  reset() {
    this.#engine.reset();
  }

  /** Testing hook: behave as if the GPU device were lost (the session moves to the CPU). */
  loseDevice() {
    this.#engine.simulateDeviceLoss();
  }

  unload() {
    this.#engine.free();
    this.#engine = null;
  }
}

/** The proxy's calls on a LocalEngine (shared by worker.js and `worker: false`); "unload" and
 * "create" are the callers' own. */
export function dispatch(engine, method, args, { onPiece, signal } = {}) {
  switch (method) {
    case "info":
      return engine.info();
    case "tokenize":
      return engine.tokenize(args.text, args.addSpecial);
    case "detokenize":
      return engine.detokenize(args.ids, args.skipSpecial);
    case "applyChatTemplate":
      return engine.applyChatTemplate(args.messages);
    case "run":
      return engine.run(args.kind, args.request, onPiece, signal);
    case "reset":
      return engine.reset();
    case "loseDevice":
      return engine.loseDevice();
    default:
      throw new PocketLMError("INVALID_ARGUMENT", `unknown method ${method}`);
  }
}
