#!/usr/bin/env bash
# Sets up, builds the CLI and generates a story with the bundled-size TinyStories model.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -p pocketlm-cli
MODEL=${MODEL:-../shared/models/tinystories-656k-q8_0/TinyStories-656K-Q8_0.gguf}
./target/release/pocketlm generate --model "$MODEL" --prompt "${PROMPT:-Once upon a time}" -n "${N:-120}" --temperature "${TEMPERATURE:-0.7}" --seed "${SEED:-1}"
