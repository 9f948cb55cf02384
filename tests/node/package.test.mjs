// The npm package (pkg/, built by scripts/build-pkg.sh) in Node: the CPU engine in the calling
// context (worker: false) on the bundled TinyStories model, through the public API.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));
const { createEngine, PocketLMError } = await import(`${root}pkg/index.js`);
const modelBytes = readFileSync(`${root}models/TinyStories-656K-Q8_0.gguf`);
const wasm = { variant: "simd", bytes: readFileSync(`${root}pkg/wasm/simd/pocketlm_bg.wasm`) };
const modelBlob = () => new File([modelBytes], "TinyStories-656K-Q8_0.gguf");

const engine = await createEngine({ model: modelBlob(), worker: false, wasm, chunkSize: 100_000 });

test("greedy ids equal the native CLI's and llama.cpp's", async () => {
  const prompt = "Once upon a time";
  const r = await engine.completions.create({ prompt, max_tokens: 40, temperature: 0 });
  const cli = JSON.parse(
    execFileSync(`${root}target/release/pocketlm`, ["generate", "--backend", "cpu", "--model", `${root}models/TinyStories-656K-Q8_0.gguf`, "--prompt", prompt, "-n", "40", "--temperature", "0", "--json"], { encoding: "utf8" }),
  );
  assert.deepEqual(r.pocketlm.prompt_ids, cli.prompt_ids);
  assert.deepEqual(r.pocketlm.ids, cli.ids);
  assert.equal(r.choices[0].text, cli.text);
  const fx = JSON.parse(readFileSync(`${root}tests/fixtures/greedy_llama_cpp.json`, "utf8")).cases.find((c) => c.model.endsWith("TinyStories-656K-Q8_0.gguf") && c.prompt === prompt);
  const firstTie = fx.top2_margins.findIndex((m) => m < 0.1);
  const upTo = Math.min(40, firstTie < 0 ? 40 : firstTie);
  assert.deepEqual(r.pocketlm.ids.slice(0, upTo), fx.ids.slice(0, upTo));
  assert.equal(r.usage.completion_tokens, 40);
  assert.equal(r.choices[0].finish_reason, "length");
  assert.ok(r.usage.decode_tokens_per_second > 0);
});

test("a stream's chunks add up to the whole completion", async () => {
  const req = { prompt: "The little dog", max_tokens: 30, temperature: 0.8, seed: 11 };
  const whole = await engine.completions.create(req);
  let text = "";
  let last;
  for await (const chunk of await engine.completions.create({ ...req, stream: true })) {
    text += chunk.choices[0].text;
    last = chunk;
  }
  assert.equal(text, whole.choices[0].text);
  assert.deepEqual(last.pocketlm.ids, whole.pocketlm.ids);
  assert.equal(last.choices[0].finish_reason, "length");
  assert.ok(last.usage.time_to_first_token_ms >= 0);
});

test("abort mid-stream ends with ABORTED, and the engine generates again", async () => {
  const ctl = new AbortController();
  let pieces = 0;
  await assert.rejects(
    (async () => {
      for await (const chunk of await engine.completions.create({ prompt: "Tom", max_tokens: 200, temperature: 0, stream: true, signal: ctl.signal })) {
        if (chunk.choices[0].text && ++pieces === 3) ctl.abort();
      }
    })(),
    (e) => e instanceof PocketLMError && e.code === "ABORTED",
  );
  const again = await engine.completions.create({ prompt: "Tom", max_tokens: 5, temperature: 0 });
  assert.equal(again.usage.completion_tokens, 5);
});

test("tokenize and detokenize round-trip", async () => {
  const ids = await engine.tokenize("Lily saw a big tree.");
  assert.equal(ids[0], 1, "BOS first");
  assert.equal(await engine.detokenize(ids, { skipSpecial: true }), "Lily saw a big tree.");
  await assert.rejects(engine.detokenize([999999]), (e) => e.code === "INVALID_ARGUMENT");
});

test("bad input gives typed errors, never a crash", async () => {
  const truncated = new File([modelBytes.subarray(0, 5000)], "cut.gguf");
  await assert.rejects(createEngine({ model: truncated, worker: false, wasm }), (e) => e instanceof PocketLMError && e.code === "MODEL_FORMAT" && /cut\.gguf/.test(e.message));
  await assert.rejects(createEngine({ model: modelBlob(), worker: false, wasm, backend: "webgpu" }), (e) => e.code === "NO_WEBGPU");
  await assert.rejects(engine.completions.create({ prompt: "x", top_p: 7 }), (e) => e.code === "INVALID_ARGUMENT");
  await assert.rejects(engine.chat.completions.create({ messages: [{ role: "user", content: "hi" }] }), (e) => e.code === "CHAT_TEMPLATE");
  const small = await createEngine({ model: modelBlob(), worker: false, wasm, contextSize: 8 });
  await assert.rejects(small.completions.create({ prompt: "Once upon a time there was a girl named Lily", max_tokens: 4 }), (e) => e.code === "CONTEXT_FULL");
  const info = await small.info();
  assert.equal(info.context_size, 8);
  assert.equal(info.backend, "cpu");
  assert.equal(info.architecture, "llama");
});
