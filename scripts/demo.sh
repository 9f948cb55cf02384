#!/usr/bin/env bash
# Sets up, builds the CLI, the npm package and the demo page; prints a story from the bundled
# TinyStories model with the native CLI, then serves the demo PWA (the same model, in the
# browser) at http://127.0.0.1:${PORT:-8080}/www/ until stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -p pocketlm-cli
MODEL=${MODEL:-models/TinyStories-656K-Q8_0.gguf}
./target/release/pocketlm generate --model "$MODEL" --prompt "${PROMPT:-Once upon a time}" -n "${N:-120}" --temperature "${TEMPERATURE:-0.7}" --seed "${SEED:-1}" --stop "<|end_story|>"
scripts/build-pkg.sh
scripts/build-www.sh
[ "${NO_SERVE:-}" = 1 ] || exec node tests/browser/server.mjs
