// Side-by-side benchmarks: pocketlm (native CLI, wasm in Node, wasm and WebGPU in headless
// Chromium) against @wllama/wllama (llama.cpp in wasm, single- and multi-thread) and native
// llama.cpp (llama-cpp-python, when installed), on the same GGUF files, prompt and greedy
// generation. Writes tests/bench/results/latest.json (+ a dated copy), the chart
// tests/bench/results/decode.svg and the generated section of BENCHMARKS.md.
//
//   node tests/bench/run.mjs [--models smollm2-135m,qwen2.5-0.5b] [--quants Q4_0,Q8_0]
//     [--engines pocketlm-native,pocketlm-node,pocketlm-chromium,pocketlm-webgpu,wllama,wllama-webgpu,llama.cpp]
//     [--threads 1,2] [--runs 5] [--gen 128]
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { launchChromium } from "../browser/chromium.mjs";
import { startServer } from "../browser/server.mjs";
import { BENCH_PROMPT, median, pocketlmBrowser, pocketlmNative, pocketlmNode, wllama } from "./engines.mjs";
import { renderChart, renderMarkdown } from "./report.mjs";

const root = fileURLToPath(new URL("../../", import.meta.url));
if (process.argv.includes("--report-only")) {
  // Rewrites the chart and BENCHMARKS.md's section from the last run's JSON.
  writeReport(JSON.parse(readFileSync(`${root}tests/bench/results/latest.json`, "utf8")), false);
  process.exit(0);
}
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const models = arg("models", "smollm2-135m,qwen2.5-0.5b").split(",");
const quants = arg("quants", "Q4_0,Q8_0").split(",");
const engines = arg("engines", "pocketlm-native,pocketlm-node,pocketlm-chromium,pocketlm-webgpu,wllama,wllama-webgpu,llama.cpp").split(",");
const threadCounts = arg("threads", `1,${Math.min(cpus().length, 4)}`).split(",").map(Number);
const runs = Number(arg("runs", 5));
const gen = Number(arg("gen", 128));
const prompt = BENCH_PROMPT;

const modelDir = `${root}tests/bench/models/`;
mkdirSync(modelDir, { recursive: true });
for (const m of models) {
  const missing = quants.filter((q) => !existsSync(`${modelDir}${m}-${q === "Q4_K_M" ? "Q4_K_M" : q}.gguf`));
  if (missing.length) execFileSync("python3", [`${root}tests/synthetic/make_synthetic.py`, "--out", modelDir, "--only", m, "--quant", ...missing], { stdio: "inherit" });
}

const machineCpu = cpuTag();
const haveLlamaCpp = (() => {
  try {
    execFileSync("python3", ["-c", "import llama_cpp"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

const srv = await startServer();
const browser = await launchChromium();
const page = await (await browser.newContext()).newPage();
page.on("pageerror", (e) => console.error("page error:", e));
await page.goto(`${srv.url}/tests/bench/page.html`);
await page.waitForFunction(() => window.ready === true);
const isolated = await page.evaluate(() => crossOriginIsolated);

const results = [];
for (const m of models) {
  for (const q of quants) {
    const file = `${modelDir}${m}-${q}.gguf`;
    const url = `${srv.url}/tests/bench/models/${m}-${q}.gguf`;
    for (const engine of engines) {
      for (const threads of threadCounts) {
        const once = () => {
          switch (engine) {
            case "pocketlm-native":
              return pocketlmNative(root, file, prompt, gen, threads);
            case "pocketlm-node":
              return pocketlmNode(root, file, prompt, gen, threads);
            case "pocketlm-chromium":
              return pocketlmBrowser(page, url, prompt, gen, "cpu", threads);
            case "pocketlm-webgpu":
              return pocketlmBrowser(page, url, prompt, gen, "webgpu", threads);
            case "wllama":
              return threads > 1 && !isolated ? null : wllama(page, url, prompt, gen, threads);
            case "wllama-webgpu":
              return threads > 1 ? null : wllama(page, url, prompt, gen, threads, true);
            case "llama.cpp":
              return haveLlamaCpp ? JSON.parse(execFileSync("python3", [`${root}tests/bench/native_llama.py`, file, prompt, String(gen), String(threads)], { encoding: "utf8" })) : null;
            default:
              throw new Error(`unknown engine ${engine}`);
          }
        };
        const samples = [];
        let error = null;
        for (let i = 0; i < runs; i++) {
          try {
            const r = await once();
            if (r === null) break;
            samples.push(r);
          } catch (e) {
            error = String(e.message ?? e).split("\n")[0];
            break;
          }
        }
        if (!samples.length && !error) continue;
        const stat = (k) => {
          const xs = samples.map((s) => s[k]).filter((v) => typeof v === "number" && Number.isFinite(v));
          return xs.length ? { median: median(xs), min: Math.min(...xs), max: Math.max(...xs) } : null;
        };
        const row = { model: m, quant: q, file_bytes: statSync(file).size, engine, threads, runs: samples.length, gen, date: new Date().toISOString().slice(0, 10), cpu: machineCpu, error };
        for (const k of ["prompt_tokens", "generated", "prefill_tok_s", "decode_tok_s", "ttft_ms", "load_ms", "warm_load_ms", "memory_bytes", "load_peak_bytes"]) row[k] = stat(k);
        results.push(row);
        console.log(`${m} ${q} ${engine} ×${threads}: ${error ?? `decode ${row.decode_tok_s?.median.toFixed(2)} tok/s, prefill ${row.prefill_tok_s?.median.toFixed(1)} tok/s (${samples.length} runs)`}`);
      }
    }
  }
}
await browser.close();
await srv.close();

const wasmSizes = Object.fromEntries(
  ["simd", "relaxed", "threads"].filter((v) => existsSync(`${root}pkg/wasm/${v}/pocketlm_bg.wasm`)).map((v) => {
    const b = readFileSync(`${root}pkg/wasm/${v}/pocketlm_bg.wasm`);
    return [v, { raw: b.length, gzip: gzipSync(b, { level: 9 }).length }];
  }),
);
const wl = readFileSync(`${root}tests/node_modules/@wllama/wllama/esm/wasm/wllama.wasm`);
wasmSizes.wllama = { raw: wl.length, gzip: gzipSync(wl, { level: 9 }).length };
// The CPU's family, model and vector extensions: the same model name covers machines whose
// kernels run at different speeds (AVX-VNNI turns a relaxed dot product into one instruction).
function cpuTag() {
  try {
    const info = readFileSync("/proc/cpuinfo", "utf8");
    const field = (k) => info.match(new RegExp(`^${k}\\s*:\\s*(.*)$`, "m"))?.[1];
    const flags = new Set((field("flags") ?? "").split(" "));
    const ext = [["avx512f", "AVX-512"], ["avx2", "AVX2"], ["avx_vnni", "AVX-VNNI"], ["avx512_vnni", "AVX-512 VNNI"]].filter(([f]) => flags.has(f)).map(([, n]) => n);
    return `${cpus()[0]?.model}, family ${field("cpu family")} model ${field("model")} (${ext.join(", ")})`;
  } catch {
    return cpus()[0]?.model;
  }
}
const machine = {
  cpu: cpus()[0]?.model,
  cpu_detail: machineCpu,
  cores: cpus().length,
  memory_bytes: totalmem(),
  node: process.version,
  chromium: browser.version(),
  cross_origin_isolated: isolated,
  llama_cpp_python: haveLlamaCpp,
  wllama: JSON.parse(readFileSync(`${root}tests/node_modules/@wllama/wllama/package.json`, "utf8")).version,
  date: new Date().toISOString(),
};
// Rows of earlier runs that this run did not measure stay (a run of one model adds to the
// others' figures); each row records its own runs, generated tokens and date.
const key = (r) => `${r.model}\t${r.quant}\t${r.engine}\t${r.threads}`;
const latest = `${root}tests/bench/results/latest.json`;
const earlier = existsSync(latest) ? JSON.parse(readFileSync(latest, "utf8")).results ?? [] : [];
const fresh = new Set(results.map(key));
const merged = [...earlier.filter((r) => !fresh.has(key(r))), ...results];
const order = (r) => [models.indexOf(r.model), r.model, quants.indexOf(r.quant), r.quant];
merged.sort((a, b) => String(order(a)).localeCompare(String(order(b))) || 0);
const report = { machine, prompt_chars: prompt.length, gen, runs, wasm_sizes: wasmSizes, results: merged };
writeReport(report, true);

function writeReport(report, withJson) {
  const out = `${root}tests/bench/results/`;
  mkdirSync(out, { recursive: true });
  if (withJson) {
    writeFileSync(`${out}latest.json`, JSON.stringify(report, null, 1));
    writeFileSync(`${out}${report.machine.date.slice(0, 10)}.json`, JSON.stringify(report, null, 1));
  }
  writeFileSync(`${out}decode.svg`, renderChart(report));
  const md = readFileSync(`${root}BENCHMARKS.md`, "utf8");
  const [begin, end] = ["<!-- bench:begin -->", "<!-- bench:end -->"];
  const section = `${begin}\n${renderMarkdown(report)}\n${end}`;
  writeFileSync(`${root}BENCHMARKS.md`, md.includes(begin) ? md.replace(new RegExp(`${begin}[\\s\\S]*${end}`), section) : `${md}\n${section}\n`);
  console.log("wrote tests/bench/results/latest.json, tests/bench/results/decode.svg and BENCHMARKS.md");
}
