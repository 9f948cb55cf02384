#!/usr/bin/env bash
# The CPU kernels alone (crate/benches/mat_mul.rs: Qwen2.5-0.5B's matrix shapes, decode and a
# 120-token prompt, ns per weight and token): the simd128 build in Node, the relaxed-SIMD build
# in headless Chromium (as scripts/test-wasm.sh runs the wasm tests). Prints the figures.
#   scripts/bench-kernels.sh [node|chromium]...   (both by default)
set -euo pipefail
cd "$(dirname "$0")/.."
where=("$@"); [ ${#where[@]} -gt 0 ] || where=(node chromium)
for w in "${where[@]}"; do
  case $w in
    node)
      echo "== wasm simd128 (Node $(node --version))"
      cargo bench -p pocketlm --target wasm32-unknown-unknown --bench mat_mul 2>&1 | grep -E "ns/weight|probe picks|error|panicked" ;;
    chromium)
      echo "== wasm simd128 + relaxed-simd ($(chromium --version 2>/dev/null | head -1))"
      CARGO_TARGET_DIR=target/relaxed RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" \
        WASM_BINDGEN_USE_BROWSER=1 CHROMEDRIVER=/usr/bin/chromedriver WASM_BINDGEN_TEST_WEBDRIVER_JSON="$PWD/scripts/chromium-webdriver.json" \
        cargo bench -p pocketlm --target wasm32-unknown-unknown --bench mat_mul 2>&1 | grep -E "ns/weight|probe picks|error|panicked" ;;
    *) echo "unknown: $w (node or chromium)" >&2; exit 2 ;;
  esac
done
