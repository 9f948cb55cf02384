// What the package-copy tools (ab.mjs, profile.mjs) share: their command-line options, the
// checks that the package copies (target/ab/<name>/, copies of pkg/) and the model file exist,
// and a fresh Chromium page with one copy loaded as window.pocketlm (ab.html).
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));

/** Removes `--name value` from `args` and returns the value, or `dflt` when absent. */
export function takeOption(args, name, dflt) {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args.splice(i, 2)[1] : dflt;
}

/** Throws unless each of `variants` is a package copy in target/ab/ and `model` is in tests/bench/models/. */
export function checkVariantsAndModel(variants, model) {
  for (const v of variants) if (!existsSync(`${root}target/ab/${v}/index.js`)) throw new Error(`target/ab/${v}/index.js is missing: copy pkg/ there`);
  if (!existsSync(`${root}tests/bench/models/${model}.gguf`)) throw new Error(`tests/bench/models/${model}.gguf is missing`);
}

/** A page of a fresh browser context with package copy `variant` loaded as window.pocketlm. */
export async function variantPage(browser, srv, variant) {
  const page = await (await browser.newContext()).newPage();
  page.on("pageerror", (e) => console.error("page error:", e));
  await page.goto(`${srv.url}/tests/bench/ab.html?v=${encodeURIComponent(variant)}`);
  await page.waitForFunction(() => window.ready === true);
  return page;
}
