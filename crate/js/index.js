// pocketlm's public API: createEngine() and the OpenAI-style engine, the weight cache, errors.
// The engine lives in a dedicated Web Worker by default (worker.js); `worker: false` runs it in
// the calling context. Both sides speak the same small protocol: run(kind, request, onPiece).

import { LocalEngine, dispatch, registry, wasmVariant } from "./core.js";
import { PocketLMError, abortError } from "./errors.js";
import { cache } from "./store.js";

export { PocketLMError, cache, registry, wasmVariant };

/** The page's side of the worker: calls with progress, streamed pieces and abort. */
class WorkerClient {
  #worker;
  #pending = new Map();
  #next = 1;

  constructor() {
    this.#worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module", name: "pocketlm" });
    this.#worker.onmessage = ({ data }) => {
      const p = this.#pending.get(data.id);
      if (!p) return;
      if (data.type === "progress") p.onProgress?.(data.progress);
      else if (data.type === "piece") p.onPiece?.(data.text);
      else {
        this.#pending.delete(data.id);
        p.signal?.removeEventListener("abort", p.abort);
        if (data.type === "result") p.resolve(data.result);
        else p.reject(new PocketLMError(data.error.code, data.error.message));
      }
    };
    this.#worker.onerror = (e) => this.#failAll(new PocketLMError("INTERNAL", `the pocketlm worker failed: ${e.message ?? "unknown error"}`));
    this.#worker.onmessageerror = () => this.#failAll(new PocketLMError("INTERNAL", "a message from the pocketlm worker could not be read"));
  }

  #failAll(err) {
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
  }

  call(method, args, { onProgress, onPiece, signal } = {}) {
    if (signal?.aborted) return Promise.reject(abortError());
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      const abort = () => this.#worker.postMessage({ type: "abort", id });
      signal?.addEventListener("abort", abort, { once: true });
      this.#pending.set(id, { resolve, reject, onProgress, onPiece, signal, abort });
      this.#worker.postMessage({ id, method, args });
    });
  }

  terminate() {
    this.#failAll(new PocketLMError("ABORTED", "the engine was unloaded"));
    this.#worker.terminate();
  }
}

/** The same calls on a LocalEngine in this context. */
class LocalClient {
  constructor(engine) {
    this.engine = engine;
  }
  async call(method, args, { onPiece, signal } = {}) {
    const e = this.engine;
    if (!e) throw new PocketLMError("INVALID_ARGUMENT", "the engine was unloaded");
    if (method === "unload") {
      e.unload();
      this.engine = null;
      return null;
    }
    return dispatch(e, method, args, { onPiece, signal });
  }
  terminate() {}
}

let completionCounter = 0;
const newId = (prefix) => `${prefix}-${Date.now().toString(36)}${(completionCounter++).toString(36)}`;

function usage(r) {
  return {
    prompt_tokens: r.prompt_tokens,
    completion_tokens: r.completion_tokens,
    total_tokens: r.prompt_tokens + r.completion_tokens,
    cached_prompt_tokens: r.cached_prompt_tokens,
    prefill_tokens_per_second: r.prefill_tok_s,
    decode_tokens_per_second: r.decode_tok_s,
    time_to_first_token_ms: r.time_to_first_token_ms,
  };
}

const finishReason = (r) => (r.finish_reason === "context_full" ? "length" : r.finish_reason);

/** A pushed sequence of values read with for-await; errors end it. */
class Channel {
  #items = [];
  #waiters = [];
  #done = false;
  #error = null;
  push(v) {
    const w = this.#waiters.shift();
    if (w) w.resolve({ value: v, done: false });
    else this.#items.push(v);
  }
  close(error = null) {
    this.#done = true;
    this.#error = error;
    for (const w of this.#waiters.splice(0)) error ? w.reject(error) : w.resolve({ value: undefined, done: true });
  }
  [Symbol.asyncIterator]() {
    return {
      next: () => {
        if (this.#items.length) return Promise.resolve({ value: this.#items.shift(), done: false });
        if (this.#done) return this.#error ? Promise.reject(this.#error) : Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
      },
      return: async () => {
        this.onCancel?.();
        return { value: undefined, done: true };
      },
    };
  }
}

export class Engine {
  #client;
  #model;
  /** `engine.chat.completions.create(request)`, as OpenAI's SDK. */
  chat = { completions: { create: (request) => this.#create("chat", request) } };
  /** `engine.completions.create(request)` for raw prompts. */
  completions = { create: (request) => this.#create("completion", request) };

  constructor(client, info) {
    this.#client = client;
    this.#model = info.model;
  }

  /** Model, backend in use and why, wasm build, sizes, memory. */
  info() {
    return this.#client.call("info", {});
  }
  tokenize(text, { addSpecial = true } = {}) {
    return this.#client.call("tokenize", { text, addSpecial });
  }
  detokenize(ids, { skipSpecial = false } = {}) {
    return this.#client.call("detokenize", { ids: Array.from(ids), skipSpecial });
  }
  /** The prompt text the chat template makes of `messages`. */
  applyChatTemplate(messages) {
    return this.#client.call("applyChatTemplate", { messages });
  }
  /** Testing hooks: `loseDevice()` behaves as if the GPU device were lost (a driver reset):
   * the session moves to the CPU and goes on. */
  debug = { loseDevice: () => this.#client.call("loseDevice", {}) };

  /** Forgets the cached conversation (the next request prefills from scratch). */
  reset() {
    return this.#client.call("reset", {});
  }
  /** Frees the model (and ends the worker). */
  async unload() {
    try {
      await this.#client.call("unload", {});
    } finally {
      this.#client.terminate();
    }
  }

  #create(kind, request) {
    if (!request || typeof request !== "object") return Promise.reject(new PocketLMError("INVALID_ARGUMENT", "create() takes a request object"));
    if (kind === "chat" && !Array.isArray(request.messages)) return Promise.reject(new PocketLMError("INVALID_ARGUMENT", "chat.completions.create needs messages: [{role, content}]"));
    const { stream = false, signal, ...rest } = request;
    const req = kind === "chat" ? { ...rest, messages: request.messages.map((m) => ({ role: String(m.role), content: String(m.content ?? "") })) } : rest;
    const id = newId(kind === "chat" ? "chatcmpl" : "cmpl");
    const created = Math.floor(Date.now() / 1000);
    const model = this.#model;
    const piece = (text) =>
      kind === "chat"
        ? { id, object: "chat.completion.chunk", created, model, choices: [{ index: 0, delta: { role: "assistant", content: text }, finish_reason: null }] }
        : { id, object: "text_completion", created, model, choices: [{ index: 0, text, finish_reason: null }] };

    if (!stream) {
      return this.#client.call("run", { kind, request: req }, { signal, onPiece: () => {} }).then((r) => ({
        id,
        object: kind === "chat" ? "chat.completion" : "text_completion",
        created,
        model,
        choices: [kind === "chat" ? { index: 0, message: { role: "assistant", content: r.text }, finish_reason: finishReason(r) } : { index: 0, text: r.text, finish_reason: finishReason(r) }],
        usage: usage(r),
        pocketlm: { prompt_ids: r.prompt_ids, ids: r.ids },
      }));
    }
    const channel = new Channel();
    const controller = new AbortController();
    signal?.addEventListener("abort", () => controller.abort(), { once: true });
    if (signal?.aborted) controller.abort();
    channel.onCancel = () => controller.abort();
    this.#client
      .call("run", { kind, request: req }, { signal: controller.signal, onPiece: (text) => channel.push(piece(text)) })
      .then((r) => {
        const last = piece("");
        if (kind === "chat") last.choices[0].delta = {};
        last.choices[0].finish_reason = finishReason(r);
        last.usage = usage(r);
        last.pocketlm = { prompt_ids: r.prompt_ids, ids: r.ids };
        channel.push(last);
        channel.close();
      })
      .catch((e) => channel.close(PocketLMError.from(e)));
    return Promise.resolve(channel);
  }
}

/**
 * Loads a model and returns an Engine. Options: {model, backend: "auto"|"webgpu"|"cpu",
 * worker: true, onProgress, signal, contextSize, quantize}. See index.d.ts.
 */
export async function createEngine(options = {}) {
  const { onProgress, signal, worker = typeof Worker !== "undefined", ...rest } = options;
  let model = rest.model;
  // The worker resolves URLs against its own script: make them absolute here.
  if (typeof model === "string" && /^[./]/.test(model) && globalThis.document) model = new URL(model, document.baseURI).href;
  if (!worker) {
    const local = await LocalEngine.create({ ...rest, model, onProgress, signal });
    return new Engine(new LocalClient(local), local.info());
  }
  const client = new WorkerClient();
  try {
    const info = await client.call("create", { ...rest, model }, { onProgress, signal });
    return new Engine(client, info);
  } catch (e) {
    client.terminate();
    throw PocketLMError.from(e);
  }
}
