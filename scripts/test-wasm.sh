#!/usr/bin/env bash
# The wasm tests through wasm-bindgen-test-runner (installed by install-web-tools.sh): the SIMD
# dot products against the scalar ones and an f64 reference, and greedy generation against
# llama.cpp's tokens. The simd128 build runs in Node; the relaxed-SIMD build runs in headless
# Chromium (Node 20 has relaxed-SIMD only behind a flag, and its V8 11.3 computes
# i32x4.relaxed_dot_i8x16_i7x16_add wrongly when chained).
set -euo pipefail
cd "$(dirname "$0")/.."
tests=(--test dot_products --test activation_ops --test wasm_greedy)
echo "== wasm simd128 (Node)"
cargo test --release -p pocketlm --target wasm32-unknown-unknown "${tests[@]}"

echo "== wasm simd128 + relaxed-simd (headless Chromium)"
POCKETLM_EXPECT_RELAXED_SIMD=1 CARGO_TARGET_DIR=target/relaxed RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" \
  WASM_BINDGEN_USE_BROWSER=1 CHROMEDRIVER=/usr/bin/chromedriver WASM_BINDGEN_TEST_WEBDRIVER_JSON="$PWD/scripts/chromium-webdriver.json" \
  cargo test --release -p pocketlm --target wasm32-unknown-unknown "${tests[@]}"
