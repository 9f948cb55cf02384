// One run of pocketlm's wasm CPU engine in Node, in a process of its own (so its wasm memory
// is this model's alone: a module instance's memory never shrinks), printing the figures as
// JSON: node tests/bench/node_engine.mjs MODEL.gguf PROMPT GEN
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));
const [file, prompt, gen] = process.argv.slice(2);
const { createEngine } = await import(`${root}pkg/index.js`);
const wasm = { variant: "simd", bytes: readFileSync(`${root}pkg/wasm/simd/pocketlm_bg.wasm`) };
const bytes = readFileSync(file);
const t0 = performance.now();
const engine = await createEngine({ model: new File([bytes], file.split("/").pop()), worker: false, wasm, backend: "cpu", contextSize: 1024 });
const load_ms = performance.now() - t0;
const c = await engine.completions.create({ prompt, max_tokens: Number(gen), temperature: 0, ignore_eos: true });
const info = await engine.info();
await engine.unload();
const u = c.usage;
console.log(JSON.stringify({ prompt_tokens: u.prompt_tokens, generated: u.completion_tokens, prefill_tok_s: u.prefill_tokens_per_second, decode_tok_s: u.decode_tokens_per_second, ttft_ms: u.time_to_first_token_ms, load_ms, memory_bytes: info.memory.wasmBytes, load_peak_bytes: info.memory.loadPeakBytes }));
