// Where a generation's time goes in headless Chromium: V8's sampling profiler (through CDP)
// around one completion of a package copy (target/ab/<variant>/, as ab.mjs), then the functions
// by self time (wasm functions by name: build the package copy with POCKETLM_KEEP_NAMES=1
// scripts/build-pkg.sh, which else strips rustc's name section; wasm-opt is off in crate/Cargo.toml) and the top callers of the heaviest ones.
//
//   node tests/bench/profile.mjs --model qwen2.5-0.5b-Q4_K_M --gen 16 --threads 1 \
//        [--wasm relaxed|threads|simd] [--prompt "..."] [--out /tmp/chrome.cpuprofile] [--top 25] base
//
// The profile is written as a .cpuprofile (Chrome DevTools opens it). Threads > 1 profile the
// main thread only: the pool's workers are other isolates.
import { writeFileSync } from "node:fs";
import { launchChromium } from "../browser/chromium.mjs";
import { startServer } from "../browser/server.mjs";
import { BENCH_PROMPT } from "./engines.mjs";
import { checkVariantsAndModel, takeOption, variantPage } from "./variants.mjs";

const args = process.argv.slice(2);
const model = takeOption(args, "model", "smollm2-135m-Q4_0");
const gen = Number(takeOption(args, "gen", 16));
const threads = Number(takeOption(args, "threads", 1));
const prompt = takeOption(args, "prompt", BENCH_PROMPT);
const out = takeOption(args, "out", "/tmp/chrome.cpuprofile");
const top = Number(takeOption(args, "top", 25));
// The package's wasm build (its own pick by default: threads where threads > 1).
const wasmVariant = takeOption(args, "wasm", undefined);
const [variant] = args;
if (!variant) throw new Error("name a variant: a copy of pkg/ in target/ab/<variant>/");
checkVariantsAndModel([variant], model);

const srv = await startServer();
const browser = await launchChromium();
try {
  const page = await variantPage(browser, srv, variant);
  await page.evaluate(
    async ([url, threads, variant]) => {
      window.engine = await window.pocketlm.createEngine({ model: url, backend: "cpu", threads, worker: false, contextSize: 1024, wasm: variant ? { variant } : undefined });
    },
    [`${srv.url}/tests/bench/models/${model}.gguf`, threads, wasmVariant],
  );
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Profiler.enable");
  await cdp.send("Profiler.setSamplingInterval", { interval: 200 });
  await cdp.send("Profiler.start");
  const usage = await page.evaluate(
    async ([gen, prompt]) => (await window.engine.completions.create({ prompt, max_tokens: gen, temperature: 0, ignore_eos: true })).usage,
    [gen, prompt],
  );
  const { profile } = await cdp.send("Profiler.stop");
  writeFileSync(out, JSON.stringify(profile));
  console.log(`usage ${JSON.stringify(usage)}; profile written to ${out}`);
  report(profile);
} finally {
  await browser.close();
  await srv.close();
}

/** Self time per function (ms) from a CDP profile, and the heaviest functions' callers. */
function report(profile) {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const name = (n) => n.callFrame.functionName || `(anonymous ${n.callFrame.url.split("/").pop()})`;
  const byFn = new Map();
  const callers = new Map();
  for (const [id, us] of selfUs) {
    const n = nodes.get(id);
    const f = name(n);
    byFn.set(f, (byFn.get(f) ?? 0) + us);
    const p = nodes.get(parent.get(id));
    const by = callers.get(f) ?? new Map();
    const pf = p ? name(p) : "(root)";
    by.set(pf, (by.get(pf) ?? 0) + us);
    callers.set(f, by);
  }
  const total = [...byFn.values()].reduce((a, b) => a + b, 0);
  const rows = [...byFn].sort((a, b) => b[1] - a[1]).slice(0, top);
  console.log(`self time, ${(total / 1000).toFixed(0)} ms sampled:`);
  for (const [f, us] of rows) console.log(`${(us / 1000).toFixed(1).padStart(9)} ms ${((100 * us) / total).toFixed(1).padStart(5)} %  ${f}`);
  for (const [f] of rows.slice(0, 5)) {
    const by = [...callers.get(f)].sort((a, b) => b[1] - a[1]).slice(0, 3);
    console.log(`${f} <- ${by.map(([p, us]) => `${p} ${(us / 1000).toFixed(0)} ms`).join(", ")}`);
  }
}
