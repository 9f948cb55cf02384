// pocketlm's one error class: every failure reaches callers as a PocketLMError with a stable
// `code` (MODEL_FORMAT, TOKENIZER, CHAT_TEMPLATE, CONTEXT_FULL, OUT_OF_MEMORY, INVALID_ARGUMENT,
// ABORTED, QUOTA_EXCEEDED, NETWORK, SIZE_MISMATCH, NO_WEBGPU, DEVICE_LOST, INTERNAL).

export class PocketLMError extends Error {
  constructor(code, message, options) {
    super(message, options);
    this.name = "PocketLMError";
    this.code = code;
  }

  /** Any thrown value (a wasm Error with a code, a DOMException, a string) as a PocketLMError. */
  static from(e) {
    if (e instanceof PocketLMError) return e;
    if (e && typeof e === "object") {
      if (typeof e.code === "string" && /^[A-Z_]+$/.test(e.code)) return new PocketLMError(e.code, e.message);
      if (e.name === "AbortError") return new PocketLMError("ABORTED", "aborted");
      if (e.name === "QuotaExceededError") return new PocketLMError("QUOTA_EXCEEDED", `storage is full: ${e.message}`);
      if (e instanceof RangeError && /memory/i.test(e.message)) return new PocketLMError("OUT_OF_MEMORY", e.message);
      if (e instanceof WebAssembly.RuntimeError) return new PocketLMError("INTERNAL", `wasm trapped: ${e.message}`);
      return new PocketLMError("INTERNAL", String(e.message ?? e));
    }
    return new PocketLMError("INTERNAL", String(e));
  }

  toJSON() {
    return { code: this.code, message: this.message };
  }
}

export function abortError() {
  return new PocketLMError("ABORTED", "aborted");
}

/** Throws ABORTED when `signal` has been aborted. */
export function throwIfAborted(signal) {
  if (signal?.aborted) throw abortError();
}
