#!/usr/bin/env bash
# Sets up, then runs every test: the native suites (parity with llama.cpp, tokenizers, chat
# templates, bad input, runtime, unit tests), the wasm tests in Node and headless Chromium, then
# the npm package's tests (Node, and end to end in headless Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
python3 tests/synthetic/make_synthetic.py
cargo build --release -p pocketlm --target wasm32-unknown-unknown
cargo test --release --workspace
scripts/test-wasm.sh
# The npm package: built into pkg/, then tested in Node and in headless Chromium (tests/browser).
cargo build --release -p pocketlm-cli
scripts/build-pkg.sh
scripts/build-www.sh
(cd tests && node --test node/ browser/)
