// Interleaved A/B of package builds in headless Chromium: each variant is a copy of pkg/ in
// target/ab/<name>/ (cp -r pkg/*.js pkg/*.json pkg/*.d.ts pkg/wasm target/ab/<name>/ after each
// build); the runs alternate between the variants, a fresh page each, so that a drift of the
// machine's speed falls on all of them alike (on these VMs it moves by ±30 % within minutes:
// only such pairs compare), in an order that turns round each repetition (A B, B A, ...: the
// second page of a pair measured 10-20 % slower, decode and prefill, with identical builds).
// Prints each run and the medians (load peak: wasm memory once the model is built).
//
//   node tests/bench/ab.mjs --model smollm2-135m-Q4_0 --gen 64 --reps 6 --threads 2 before after
//
// The model is tests/bench/models/<model>.gguf (run.mjs or make_synthetic.py --out writes it).
import { launchChromium } from "../browser/chromium.mjs";
import { startServer } from "../browser/server.mjs";
import { BENCH_PROMPT, median, pocketlmBrowser } from "./engines.mjs";
import { checkVariantsAndModel, takeOption, variantPage } from "./variants.mjs";

const args = process.argv.slice(2);
const model = takeOption(args, "model", "smollm2-135m-Q4_0");
const gen = Number(takeOption(args, "gen", 64));
const reps = Number(takeOption(args, "reps", 5));
const threads = Number(takeOption(args, "threads", 1));
const variants = args;
if (variants.length < 2) throw new Error("name two or more variants (directories of target/ab/)");
checkVariantsAndModel(variants, model);

const srv = await startServer();
const browser = await launchChromium();
const runs = Object.fromEntries(variants.map((v) => [v, []]));
for (let i = 0; i < reps; i++) {
  for (const v of i % 2 ? [...variants].reverse() : variants) {
    const page = await variantPage(browser, srv, v);
    const r = await pocketlmBrowser(page, `${srv.url}/tests/bench/models/${model}.gguf`, BENCH_PROMPT, gen, "cpu", threads);
    runs[v].push(r);
    console.log(`${v} run ${i + 1}: decode ${r.decode_tok_s.toFixed(2)} tok/s, prefill ${r.prefill_tok_s.toFixed(1)} tok/s, warm load ${r.warm_load_ms.toFixed(0)} ms, load peak ${(r.load_peak_bytes / 1e6).toFixed(1)} MB`);
    await page.close();
  }
}
await browser.close();
await srv.close();
for (const v of variants) {
  const f = (k, d, scale = 1) => `${(median(runs[v].map((r) => r[k])) / scale).toFixed(d)} [${runs[v].map((r) => (r[k] / scale).toFixed(d)).join(" ")}]`;
  console.log(`${v}: decode ${f("decode_tok_s", 1)}, prefill ${f("prefill_tok_s", 1)}, warm load ms ${f("warm_load_ms", 0)}, load peak MB ${f("load_peak_bytes", 1, 1e6)}`);
}
